//! `fabric-operator analyze -f DIR` on the example folders, as a user runs it.

use std::path::PathBuf;
use std::process::Command;

fn examples(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("examples").join(name)
}

fn analyze(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_fabric-operator")).arg("analyze").args(args).output().expect("runs");
    let code = output.status.code().expect("exited");
    (code, String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn the_example_fabric_passes_and_prints_every_config() {
    let dir = examples("manifests");
    let (code, stdout, stderr) = analyze(&["-f", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("0 error(s), 0 warning(s); 10 object(s), 5 sidecar(s), 5 config(s) compiled\n"),
        "{stdout}"
    );
    for node in ["border-a", "eu-1", "eu-2", "us-1", "us-2"] {
        assert!(stdout.contains(&format!("--- # sidecar {node} (Pod fabric/{node}-0), version ")), "{node}: {stdout}");
        assert!(stdout.contains(&format!("  nodeId: {node}\n")), "{node}");
    }
    assert!(stdout.contains("  linkState:\n    mode: preferLinkState"), "{stdout}");
    assert!(stdout.contains("  linkStateAreas:\n  - area: eu\n    neighbors:\n    - border-a\n"), "{stdout}");
}

#[test]
fn the_broken_fabric_fails_naming_the_conflict_and_the_unknown_neighbor() {
    let dir = examples("manifests-broken");
    let (code, stdout, _) = analyze(&["-f", dir.to_str().unwrap(), "--no-configs"]);
    assert_eq!(code, 1, "{stdout}");
    let expected = "\
error: RoutePolicy shop/team-a: Conflict=True (EqualPriority): equal priority 5 with RoutePolicy shop/team-b on sidecar(s) a, b: this object wins
error: RoutePolicy shop/team-b: Conflict=True (EqualPriority): equal priority 5 with RoutePolicy shop/team-a on sidecar(s) a, b: RoutePolicy shop/team-a wins
warning: NeighborPolicy shop/mesh: NeighborNotFound=True (UnknownNodeId): neighbor ghost-1 is not a known sidecar (configured without an address on a, b)
2 error(s), 1 warning(s); 3 object(s), 2 sidecar(s), 2 config(s) compiled
";
    assert_eq!(stdout, expected);
}

#[test]
fn a_missing_folder_exits_2_with_the_path() {
    let (code, _, stderr) = analyze(&["-f", "/nonexistent/fabric"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read /nonexistent/fabric"), "{stderr}");
}
