//! Golden files of the compiler: the example fabrics (`examples/manifests`,
//! `examples/demo/manifests`) compiled to one config per sidecar and the
//! conditions and problems of every object, stored under
//! `tests/golden/<fabric>/`. A change in what the compiler produces shows
//! in review as a diff of these files.
//!
//! `FABRIC_BLESS=1 cargo test -p operator --test golden_compile` rewrites
//! them from the current compiler; without it the test compares and fails
//! on the first difference, naming the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fabric_operator_core::compile::{Compilation, ConditionSpec, Problem, Settings, compile_with};
use fabric_operator_core::manifests::load_dir;
use fabric_testkit::golden::{blessing, first_difference};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files a compilation is stored as: `sidecars/<node id>.yaml` with the
/// config as sent (its `version` is the content hash, so it is as
/// deterministic as the rest), and `report.yaml` with the conditions per
/// object and the problems, in the compiler's order.
fn render(compilation: &Compilation) -> BTreeMap<String, String> {
    #[derive(serde::Serialize)]
    struct Report<'a> {
        conditions: BTreeMap<String, &'a [ConditionSpec]>,
        problems: &'a [Problem],
    }
    let mut files = BTreeMap::new();
    for (node, sidecar) in &compilation.sidecars {
        files.insert(format!("sidecars/{node}.yaml"), sidecar.config.to_yaml());
    }
    let report = Report {
        conditions: compilation
            .conditions
            .iter()
            .map(|(object, specs)| (object.to_string(), specs.as_slice()))
            .collect(),
        problems: &compilation.problems,
    };
    files.insert("report.yaml".into(), serde_norway::to_string(&report).expect("the report serializes"));
    files
}

fn check_golden(fabric: &str, manifests: &Path) {
    let loaded = load_dir(manifests).unwrap_or_else(|e| panic!("{}: {e}", manifests.display()));
    let compilation = compile_with(&loaded.index, &Settings::default());
    // The golden files hold the YAML; the text sent is the JSON, written
    // with the shared trusted keys' JSON made once per compile, and must
    // be byte for byte what serde_json makes of the config.
    for (node, sidecar) in &compilation.sidecars {
        let json = serde_json::to_string(&sidecar.config).expect("the config serializes");
        assert!(*sidecar.text == *json, "{fabric}: {node}: the text sent is not the config's JSON");
    }
    let files = render(&compilation);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(fabric);
    if blessing() {
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in &files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        return;
    }
    let mut stored = Vec::new();
    collect(&dir, &dir, &mut stored);
    let expected: Vec<&String> = files.keys().collect();
    assert_eq!(
        stored.iter().collect::<Vec<_>>(),
        expected,
        "{fabric}: the golden files are not the files the compiler produces; rerun with FABRIC_BLESS=1 and review the diff"
    );
    for (name, text) in &files {
        let path = dir.join(name);
        let want = std::fs::read_to_string(&path).unwrap();
        assert!(
            want == *text,
            "{}: the compiler's output changed at {}\nrerun with FABRIC_BLESS=1 and review the diff",
            path.display(),
            first_difference(&want, text)
        );
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
        }
    }
    out.sort();
}

#[test]
fn example_fabric_compiles_to_its_golden_files() {
    check_golden("manifests", &repository().join("examples/manifests"));
}

#[test]
fn demo_fabric_compiles_to_its_golden_files() {
    check_golden("demo", &repository().join("examples/demo/manifests"));
}
