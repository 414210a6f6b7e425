//! Prints the protocol test vectors as Markdown, for the "Test vectors"
//! section of `docs/protocol.md`:
//!
//! ```text
//! cargo run -q -p routing-sidecar --example protocol_vectors
//! ```
//!
//! `tests/protocol_vectors.rs` fails while the document differs from this
//! output.

fn main() {
    print!("{}", fabric_core::wire::vectors::test_vectors_markdown());
}
