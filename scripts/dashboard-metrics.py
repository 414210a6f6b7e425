#!/usr/bin/env python3
"""Print every metric name the Grafana dashboards query, one per line, sorted.

Reads the dashboards (default: every *.json in charts/fabric-routing/dashboards/,
the only copy in the repository), collects the PromQL of every panel target
(rows and collapsed rows included) and of every query template variable, and
extracts the metric names: identifiers that are not PromQL functions,
keywords, label names (inside {...}, by/without/on/ignoring/group_left/
group_right lists, the label argument of label_values) or Grafana variables.
Histogram series suffixes _bucket, _sum and _count are stripped, so
`fabric_convergence_seconds_bucket` prints as `fabric_convergence_seconds`;
counters keep their `_total` as exposed.

Usage:
  scripts/dashboard-metrics.py [--by-file] [DASHBOARD.json | DIR ...]

  --by-file   print `FILE<TAB>METRIC` lines (FILE is the base name) instead of
              the union of names.

Exit status: 0, or 1 when a dashboard is not valid JSON or has a query whose
metric names cannot be found (a query naming no metric at all).
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "charts", "fabric-routing", "dashboards")

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters",
    "double_exponential_smoothing", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time",
    "min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time",
    "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin", "sinh", "sort",
    "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
    # aggregation operators
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio",
    # Grafana template functions
    "label_values", "label_names", "metrics", "query_result",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "atan2", "inf", "nan", "start", "end"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def strip_suffix(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def metric_names(expr):
    """Metric names in one PromQL expression (or label_values(...) query)."""
    text = expr
    # label_values(<series selector>, <label>): keep the selector only.
    text = re.sub(r"\blabel_values\s*\(([^()]*?(?:\{[^}]*\})?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)",
                  r"(\1)", text)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)          # string literals
    text = re.sub(r"'(?:[^'\\]|\\.)*'", "''", text)
    text = re.sub(r"\{[^}]*\}", " ", text)                   # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                  # range / subquery durations
    text = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", " ", text)  # Grafana variables
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\b(\d+(ms|[smhdwy]))+\b", " ", text)    # durations (offset 1h30m)
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", " ", text)  # numbers
    names = set()
    for match in IDENT.finditer(text):
        word = match.group(0)
        rest = text[match.end():].lstrip()
        if word in KEYWORDS:
            continue
        if word in FUNCTIONS and rest.startswith("("):
            continue
        names.add(strip_suffix(word))
    return names


def walk_panels(panels):
    for panel in panels or []:
        yield panel
        yield from walk_panels(panel.get("panels"))


def queries(dashboard):
    for panel in walk_panels(dashboard.get("panels")):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if expr:
                yield f"panel {panel.get('title')!r}", expr
    for var in (dashboard.get("templating") or {}).get("list") or []:
        if var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if query:
            yield f"variable {var.get('name')!r}", query


def dashboard_files(args):
    paths = args or [DEFAULT_DIR]
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if name.endswith(".json"):
                    yield os.path.join(path, name)
        else:
            yield path


def main(argv):
    by_file = "--by-file" in argv
    args = [a for a in argv if a != "--by-file"]
    if any(a.startswith("-") for a in args):
        print(__doc__, file=sys.stderr)
        return 2
    status = 0
    union = set()
    lines = []
    for path in dashboard_files(args):
        try:
            with open(path, encoding="utf-8") as f:
                dashboard = json.load(f)
        except (OSError, ValueError) as e:
            print(f"dashboard-metrics: {path}: {e}", file=sys.stderr)
            status = 1
            continue
        found = set()
        for where, expr in queries(dashboard):
            names = metric_names(expr)
            if not names:
                print(f"dashboard-metrics: {path}: {where}: no metric in {expr!r}", file=sys.stderr)
                status = 1
            found |= names
        union |= found
        lines.extend(f"{os.path.basename(path)}\t{name}" for name in sorted(found))
    for line in (lines if by_file else sorted(union)):
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
