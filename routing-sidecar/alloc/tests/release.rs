//! `release_freed` gives freed memory back to the OS at once, where
//! mimalloc alone keeps it until later allocator activity.

#[global_allocator]
static ALLOCATOR: fabric_alloc::Allocator = fabric_alloc::Allocator;

/// Resident set of this process in MiB (`/proc/self/statm`, pages of 4 KiB).
fn rss_mib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).expect("resident field").parse().expect("a number");
    pages * 4096 / (1 << 20)
}

#[test]
fn memory_freed_by_a_burst_of_work_leaves_the_process_when_released() {
    const BLOCKS: usize = 4096;
    const BLOCK: usize = 32 * 1024;
    // 128 MiB in blocks the size of a config's parsing garbage, each
    // touched so that it is resident.
    let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8 | 1; BLOCK]).collect();
    let touched = rss_mib();
    drop(blocks);
    let freed = rss_mib();
    fabric_alloc::release_freed();
    let released = rss_mib();
    assert!(touched >= 128, "the blocks were resident: {touched} MiB");
    assert!(freed + 64 > touched, "mimalloc kept most of it at the free: {touched} -> {freed} MiB");
    assert!(released + 96 <= freed, "released: {freed} -> {released} MiB");
}
