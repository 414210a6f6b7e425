//! Collects, while compiling, what each object's conditions will say, and
//! turns it into `ConditionSpec`s at the end. The same conflict usually
//! shows up once per sidecar; notes are aggregated so that each object gets
//! one line per conflict listing the sidecars concerned.

use std::collections::{BTreeMap, BTreeSet};

use fabric_core::NodeId;

use super::output::{Compilation, CompiledSidecar, ConditionSpec, ConditionType, Problem, Severity};
use crate::api::ConditionStatus;
use crate::index::{ObjectKey, ObjectKind};
use crate::validation::Violation;

/// One collision between objects, as seen from one of them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ConflictNote {
    /// CamelCase reason, e.g. `EqualPriority`.
    pub reason: &'static str,
    /// What collided, e.g. `equal priority 10` or `neighbor eu-2`.
    pub subject: String,
    pub others: BTreeSet<ObjectKey>,
    pub winner: ObjectKey,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DegradedNote {
    pub reason: &'static str,
    pub message: String,
    pub related: BTreeSet<ObjectKey>,
}

#[derive(Default)]
pub(crate) struct Report {
    invalid: BTreeMap<ObjectKey, Vec<Violation>>,
    refused: BTreeMap<ObjectKey, (&'static str, String)>,
    /// Conflict note -> sidecars it concerns (empty for namespace-wide ones).
    conflicts: BTreeMap<ObjectKey, BTreeMap<ConflictNote, BTreeSet<NodeId>>>,
    /// Unknown neighbor node id -> sidecars configured with it.
    missing_neighbors: BTreeMap<ObjectKey, BTreeMap<String, BTreeSet<NodeId>>>,
    degraded: BTreeMap<ObjectKey, BTreeSet<DegradedNote>>,
    contributions: BTreeMap<ObjectKey, BTreeSet<NodeId>>,
    problems: Vec<Problem>,
}

impl Report {
    /// The object breaks validation rules and is left out entirely.
    pub(super) fn invalid(&mut self, object: ObjectKey, violations: Vec<Violation>) {
        for violation in &violations {
            self.problems.push(Problem {
                severity: Severity::Error,
                object: Some(object.clone()),
                sidecar: None,
                field: Some(violation.field.clone()),
                message: violation.message.clone(),
                related: Vec::new(),
            });
        }
        self.invalid.insert(object, violations);
    }

    /// The object is valid on its own but refused in context.
    pub(super) fn refuse(&mut self, object: ObjectKey, reason: &'static str, message: String) {
        self.problems.push(Problem {
            severity: Severity::Error,
            object: Some(object.clone()),
            sidecar: None,
            field: None,
            message: message.clone(),
            related: Vec::new(),
        });
        self.refused.insert(object, (reason, message));
    }

    /// Records a collision between `parties` (all get a Conflict condition
    /// naming the others); `winner` is the one that applies.
    pub(super) fn conflict(
        &mut self,
        reason: &'static str,
        subject: &str,
        parties: &BTreeSet<ObjectKey>,
        winner: &ObjectKey,
        sidecar: Option<&NodeId>,
    ) {
        for party in parties {
            let others = parties.iter().filter(|p| *p != party).cloned().collect();
            let note = ConflictNote { reason, subject: subject.to_owned(), others, winner: winner.clone() };
            let sidecars = self.conflicts.entry(party.clone()).or_default().entry(note).or_default();
            sidecars.extend(sidecar.cloned());
        }
    }

    pub(super) fn missing_neighbor(&mut self, object: &ObjectKey, node_id: &str, sidecar: &NodeId) {
        let missing = self.missing_neighbors.entry(object.clone()).or_default();
        missing.entry(node_id.to_owned()).or_default().insert(sidecar.clone());
    }

    pub(super) fn degraded(
        &mut self,
        object: &ObjectKey,
        reason: &'static str,
        message: String,
        related: BTreeSet<ObjectKey>,
    ) {
        self.degraded.entry(object.clone()).or_default().insert(DegradedNote { reason, message, related });
    }

    pub(super) fn contributes(&mut self, object: &ObjectKey, sidecar: &NodeId) {
        // No key clone when the object is known (the usual case: it is
        // called once per object per sidecar).
        match self.contributions.get_mut(object) {
            Some(sidecars) => {
                sidecars.insert(sidecar.clone());
            }
            None => {
                self.contributions.insert(object.clone(), BTreeSet::from([sidecar.clone()]));
            }
        }
    }

    /// `object` shapes every one of `sidecars` (given in node-id order).
    pub(super) fn contributes_to_all<'a>(&mut self, object: &ObjectKey, sidecars: impl Iterator<Item = &'a NodeId>) {
        self.contributions.entry(object.clone()).or_default().extend(sidecars.cloned());
    }

    pub(super) fn problem(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// The compiled config of `sidecar` failed validation: a problem, and a
    /// Degraded condition on every object that shaped it.
    pub(super) fn invalid_sidecar_config(
        &mut self,
        sidecar: &NodeId,
        sources: &BTreeSet<ObjectKey>,
        field: String,
        reason: String,
    ) {
        let message = format!(
            "the config compiled for sidecar {sidecar} is invalid ({field}: {reason}); it keeps its last good config"
        );
        for source in sources.iter().filter(|s| s.kind != ObjectKind::Pod) {
            let related = sources.iter().filter(|s| *s != source).cloned().collect();
            self.degraded(source, "SidecarConfigInvalid", message.clone(), related);
        }
        self.problems.push(Problem {
            severity: Severity::Error,
            object: sources.iter().find(|s| s.kind == ObjectKind::Pod).cloned(),
            sidecar: Some(sidecar.clone()),
            field: Some(field),
            message: reason,
            related: sources.iter().filter(|s| s.kind != ObjectKind::Pod).cloned().collect(),
        });
    }

    /// Builds the conditions of every object in `objects` (with its
    /// generation) and the final compilation.
    pub(super) fn finish(
        mut self,
        objects: Vec<(ObjectKey, Option<i64>)>,
        sidecars: BTreeMap<NodeId, CompiledSidecar>,
    ) -> Compilation {
        let mut conditions = BTreeMap::new();
        for (object, generation) in objects {
            let list = self.conditions_of(&object, generation);
            conditions.insert(object, list);
        }
        self.problems.sort();
        self.problems.dedup();
        Compilation { sidecars, conditions, problems: self.problems, contributions: self.contributions }
    }

    fn conditions_of(&self, object: &ObjectKey, generation: Option<i64>) -> Vec<ConditionSpec> {
        let make = |type_, status, reason: &str, message: String, related: BTreeSet<ObjectKey>| ConditionSpec {
            type_,
            status,
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            related: related.into_iter().collect(),
        };
        let mut list = Vec::new();

        let accepted = if let Some(violations) = self.invalid.get(object) {
            let text: Vec<String> = violations.iter().map(ToString::to_string).collect();
            make(ConditionType::Accepted, ConditionStatus::False, "Invalid", text.join("; "), BTreeSet::new())
        } else if let Some((reason, message)) = self.refused.get(object) {
            make(ConditionType::Accepted, ConditionStatus::False, reason, message.clone(), BTreeSet::new())
        } else {
            let count = self.contributions.get(object).map_or(0, BTreeSet::len);
            let message = format!("compiled; shapes the config of {count} sidecar(s)");
            make(ConditionType::Accepted, ConditionStatus::True, "Compiled", message, BTreeSet::new())
        };
        list.push(accepted);

        list.push(match self.conflicts.get(object) {
            Some(notes) if !notes.is_empty() => {
                let mut related = BTreeSet::new();
                let mut lines = Vec::new();
                for (note, sidecars) in notes {
                    related.extend(note.others.iter().cloned());
                    lines.push(conflict_line(object, note, sidecars));
                }
                let reason = notes.keys().next().map_or("Conflict", |note| note.reason);
                make(ConditionType::Conflict, ConditionStatus::True, reason, lines.join("; "), related)
            }
            _ => make(ConditionType::Conflict, ConditionStatus::False, "NoConflict", String::new(), BTreeSet::new()),
        });

        if object.kind == ObjectKind::NeighborPolicy {
            list.push(match self.missing_neighbors.get(object) {
                Some(missing) if !missing.is_empty() => {
                    let lines: Vec<String> = missing
                        .iter()
                        .map(|(node_id, sidecars)| {
                            format!(
                                "neighbor {node_id} is not a known sidecar (configured without an address on {})",
                                join(sidecars)
                            )
                        })
                        .collect();
                    let reason = "UnknownNodeId";
                    make(
                        ConditionType::NeighborNotFound,
                        ConditionStatus::True,
                        reason,
                        lines.join("; "),
                        BTreeSet::new(),
                    )
                }
                _ => {
                    let reason = "AllNeighborsKnown";
                    make(
                        ConditionType::NeighborNotFound,
                        ConditionStatus::False,
                        reason,
                        String::new(),
                        BTreeSet::new(),
                    )
                }
            });
        }

        list.push(match self.degraded.get(object) {
            Some(notes) if !notes.is_empty() => {
                let related = notes.iter().flat_map(|n| n.related.iter().cloned()).collect();
                let reason = notes.iter().next().map_or("Degraded", |n| n.reason);
                let lines: Vec<&str> = notes.iter().map(|n| n.message.as_str()).collect();
                make(ConditionType::Degraded, ConditionStatus::True, reason, lines.join("; "), related)
            }
            _ => make(ConditionType::Degraded, ConditionStatus::False, "Healthy", String::new(), BTreeSet::new()),
        });
        list
    }
}

fn join<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

fn conflict_line(object: &ObjectKey, note: &ConflictNote, sidecars: &BTreeSet<NodeId>) -> String {
    let with =
        if note.others.is_empty() { "within this object".to_owned() } else { format!("with {}", join(&note.others)) };
    let on = if sidecars.is_empty() { String::new() } else { format!(" on sidecar(s) {}", join(sidecars)) };
    let outcome = if &note.winner == object { "this object wins".to_owned() } else { format!("{} wins", note.winner) };
    format!("{} {with}{on}: {outcome}", note.subject)
}
