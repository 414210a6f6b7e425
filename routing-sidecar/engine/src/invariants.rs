//! A from-scratch recomputation of everything the engine keeps
//! incrementally, compared with what it holds. Property tests call it after
//! every input; the sidecar can expose it as a debug check.

use std::collections::HashMap;

use crate::Engine;
use crate::candidate::flags;
use crate::intern::DestIx;
use crate::table::TableGauges;

impl Engine {
    /// Checks that the incremental state equals a recomputation over the
    /// stored candidates: eligibility, best route, reported best, route
    /// counts per neighbor, expiry bound, users per tag set, the table's
    /// gauges. Returns the first difference.
    pub fn verify_invariants(&self) -> Result<(), String> {
        let mut counts: HashMap<_, u32> = HashMap::new();
        let mut tag_set_users: HashMap<_, u32> = HashMap::new();
        let mut gauges = TableGauges::default();
        for (i, entry) in self.table.iter().enumerate() {
            let dest = DestIx(i as u32);
            let name = self.destinations.resolve(dest);
            gauges.routed(false, entry.best.is_some());
            for candidate in &entry.candidates {
                gauges.candidates_stored += 1;
                gauges.standing(candidate.ineligible, true);
                *tag_set_users.entry(candidate.tags).or_default() += 1;
                let fresh = self.assess(dest, candidate);
                if fresh.ineligible != candidate.ineligible {
                    return Err(format!(
                        "{name} via {}: stored eligibility {:?}, recomputed {:?}",
                        self.nodes.resolve(candidate.next_hop),
                        candidate.ineligible,
                        fresh.ineligible
                    ));
                }
                if candidate.is(flags::DRY_RUN_FLAGGED) != fresh.dry_run.is_some() {
                    return Err(format!("{name}: dry-run flag differs from recomputation"));
                }
                if !candidate.is(flags::LOCAL) {
                    *counts.entry(candidate.next_hop).or_default() += 1;
                    if let Some(expiry) = self.earliest_expiry {
                        if candidate.expires_at < expiry {
                            return Err(format!("{name}: expires before the earliest-expiry bound"));
                        }
                    } else {
                        return Err(format!("{name}: learned route but no earliest-expiry bound"));
                    }
                }
            }
            let best = self.select_best(entry).map(|b| b as u32);
            if best != entry.best {
                return Err(format!("{name}: stored best {:?}, recomputed {best:?}", entry.best));
            }
            if entry.reported != self.fingerprint(entry) {
                return Err(format!("{name}: reported best differs from the selected one"));
            }
            let mut seen = Vec::new();
            for n in &entry.advertised_to {
                if seen.contains(n) {
                    return Err(format!("{name}: advertised twice to the same neighbor"));
                }
                seen.push(*n);
            }
        }
        if gauges != self.gauges {
            return Err(format!("gauges: kept {:?}, recounted {gauges:?}", self.gauges));
        }
        let live: std::collections::HashSet<_> = self.tag_sets.live().collect();
        if let Some(ix) = tag_set_users.keys().find(|ix| !live.contains(*ix)) {
            return Err(format!("tag set {ix:?} is used by a stored candidate but was freed"));
        }
        for ix in live {
            let (counted, stored) = (self.tag_sets.references(ix), tag_set_users.get(&ix).copied().unwrap_or(0));
            if counted != stored {
                return Err(format!("tag set {ix:?}: counted {counted} users, stored {stored}"));
            }
        }
        for (ix, runtime) in &self.neighbors {
            let stored = counts.get(ix).copied().unwrap_or(0);
            if stored != runtime.routes {
                return Err(format!(
                    "neighbor {}: counted {} routes, stored {stored}",
                    self.nodes.resolve(*ix),
                    runtime.routes
                ));
            }
        }
        Ok(())
    }
}
