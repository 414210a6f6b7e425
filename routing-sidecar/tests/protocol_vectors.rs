//! `docs/protocol.md` must carry the current test vectors, and the vectors in
//! it must be correct: the signatures verify and the wire bytes decode to a
//! message whose canonical bytes are the ones printed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, VerifyingKey};
use fabric_core::canonical;
use fabric_core::message::Message;
use fabric_core::wire::{self, DecodeLimits, Frame, vectors};
use fabric_link_state::lsa::link_state_update_bytes;

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
const BEGIN: &str = "<!-- BEGIN TEST VECTORS -->";
const END: &str = "<!-- END TEST VECTORS -->";
const FIX: &str = "run `cargo run -q -p routing-sidecar --example protocol_vectors` and paste its output \
                   into docs/protocol.md between the TEST VECTORS markers";

fn doc() -> String {
    std::fs::read_to_string(DOC_PATH).unwrap_or_else(|error| panic!("cannot read {DOC_PATH}: {error}"))
}

/// The text between the marker lines, without the newlines next to them.
fn vectors_section(doc: &str) -> &str {
    let start = doc.find(BEGIN).unwrap_or_else(|| panic!("{DOC_PATH} lacks `{BEGIN}`; {FIX}")) + BEGIN.len();
    let length = doc[start..].find(END).unwrap_or_else(|| panic!("{DOC_PATH} lacks `{END}`; {FIX}"));
    doc[start..start + length].trim_matches(['\n', '\r'])
}

#[test]
fn doc_contains_current_vectors() {
    let doc = doc();
    let in_doc = vectors_section(&doc);
    let generated = vectors::test_vectors_markdown();
    assert!(in_doc == generated.trim_matches('\n'), "the test vectors in docs/protocol.md are stale: {FIX}");
}

/// One `### ` section of the vectors.
struct DocVector {
    title: String,
    public_key: Vec<u8>,
    public_key_base64: String,
    canonical: Vec<u8>,
    signature: Vec<u8>,
    wire: Vec<u8>,
}

fn parse_hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits in {digits:?}");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex {digits:?}")))
        .collect()
}

/// The value of a line like "Label: `value`".
fn inline_value<'a>(section: &'a str, label: &str) -> &'a str {
    section
        .lines()
        .find_map(|line| line.strip_prefix(label)?.strip_prefix(": `")?.strip_suffix('`'))
        .unwrap_or_else(|| panic!("no `{label}` line in vector section"))
}

/// The contents of the first code block after the line starting with
/// `caption`.
fn block_after(section: &str, caption: &str) -> String {
    let mut lines = section.lines().skip_while(|line| !line.starts_with(caption));
    assert!(lines.next().is_some(), "no `{caption}` in vector section");
    let mut lines = lines.skip_while(|line| !line.starts_with("```"));
    assert!(lines.next().is_some(), "no code block after `{caption}`");
    lines.take_while(|line| !line.starts_with("```")).collect::<Vec<_>>().join("\n")
}

fn parse_vectors(section: &str) -> Vec<DocVector> {
    section
        .split("\n### ")
        .skip(1)
        .map(|vector| DocVector {
            title: vector.lines().next().unwrap_or("").to_owned(),
            public_key: parse_hex(inline_value(vector, "Public key (hex)")),
            public_key_base64: inline_value(vector, "Public key (base64)").to_owned(),
            canonical: parse_hex(&block_after(vector, "Canonical signing bytes (hex")),
            signature: parse_hex(&block_after(vector, "Ed25519 signature (hex")),
            wire: parse_hex(&block_after(vector, "Wire encoding (hex")),
        })
        .collect()
}

/// The canonical bytes of a decoded frame and its signature's bytes, as
/// the signature claims them.
fn canonical_of(frame: &Frame) -> (Vec<u8>, [u8; 64]) {
    match frame {
        Frame::Routing(Message::Announcement(a)) => {
            let block = a.signature.as_ref().expect("vector announcement is signed");
            (canonical::announcement_bytes(a, block.algorithm, &block.key_id), block.bytes)
        }
        Frame::Routing(Message::Withdrawal(w)) => {
            let block = w.signature.as_ref().expect("vector withdrawal is signed");
            (canonical::withdrawal_bytes(w, block.algorithm, &block.key_id), block.bytes)
        }
        Frame::LinkState(u) => {
            let block = u.signature.as_ref().expect("vector link-state update is signed");
            (link_state_update_bytes(u, block.algorithm, &block.key_id), block.bytes)
        }
        other => panic!("not a signed message: {other:?}"),
    }
}

fn check_vector(vector: &DocVector) {
    let title = &vector.title;
    let key_bytes: [u8; 32] = vector.public_key.as_slice().try_into().expect("32-byte public key");
    assert_eq!(BASE64.encode(key_bytes), vector.public_key_base64, "{title}: base64 and hex keys differ");
    let signature: [u8; 64] = vector.signature.as_slice().try_into().expect("64-byte signature");
    let key = VerifyingKey::from_bytes(&key_bytes).expect("valid public key");
    assert!(
        key.verify_strict(&vector.canonical, &Signature::from_bytes(&signature)).is_ok(),
        "{title}: signature does not verify over the canonical bytes"
    );

    let frame = wire::decode_frame(&vector.wire, &DecodeLimits::default())
        .unwrap_or_else(|error| panic!("{title}: wire encoding does not decode: {error}"));
    let (canonical, signature_on_wire) = canonical_of(&frame);
    assert_eq!(signature_on_wire, signature, "{title}: signature on the wire");
    assert_eq!(canonical, vector.canonical, "{title}: canonical bytes of the decoded wire message");
}

#[test]
fn doc_vectors_verify() {
    let doc = doc();
    let vectors = parse_vectors(vectors_section(&doc));
    let titles: Vec<&str> = vectors.iter().map(|vector| vector.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Route announcement",
            "Route withdrawal",
            "Route announcement, v2 (with issue time)",
            "Route withdrawal, v2 (with issue time)",
            "Link-state update",
            "Link-state update, v2 (with destinations)"
        ],
        "vector sections in docs/protocol.md"
    );
    for vector in &vectors {
        check_vector(vector);
    }
}

#[test]
fn vectors_use_the_documented_key() {
    let identity = vectors::identity();
    assert_eq!(identity.key_id().as_str(), "k1");
    assert_eq!(identity.secret_bytes(), [7u8; 32]);
    for vector in vectors::test_vectors() {
        assert_eq!(vector.public_key, identity.verifying_key().to_bytes());
        assert_eq!(vector.signer().as_str(), "node-a");
    }
}
