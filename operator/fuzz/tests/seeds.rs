//! Every target over its committed corpus (`corpus/<target>/`): the seeds
//! and the crashes kept as regressions, checked by `cargo test`.

use std::path::Path;

#[test]
fn every_seed_runs_clean_through_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in fabric_fuzz::TARGETS {
        let dir = corpus.join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "{target} has no seed");
        for seed in seeds {
            fabric_fuzz::run(target, &std::fs::read(&seed).unwrap());
        }
    }
}
