//! The allocator of the sidecar binary and of the benches that measure
//! what it would do, and the release of the memory it freed.
//!
//! mimalloc: ingestion allocates and frees small blocks for every message,
//! which it serves from thread-local pages (docs/benchmarks-history.md,
//! "Routing engine"). It gives freed memory back to the OS only on later
//! allocator activity, so after a config of 100k routes was parsed and
//! turned into an engine an idle sidecar kept 95–205 MB resident, until
//! the next burst of work (a neighbor's table) paid for the release
//! instead; with [`release_freed`] at the end of the work that freed the
//! memory, 68–75 MB (docs/architecture.md, "Crates").

/// The global allocator: `#[global_allocator] static A: Allocator = Allocator;`.
pub use mimalloc::MiMalloc as Allocator;

/// Returns to the OS the memory this thread's heap no longer uses, and
/// what any thread freed before. Takes milliseconds on a large heap: for
/// the end of a large piece of work (a config applied), not per message.
pub fn release_freed() {
    // `mi_collect` has no precondition: it walks mimalloc's own structures
    // and is sound on any thread at any time, also when mimalloc is not
    // the global allocator (its heaps are then empty).
    #[allow(unsafe_code)]
    // SAFETY: see above.
    unsafe {
        libmimalloc_sys::mi_collect(true)
    }
}
