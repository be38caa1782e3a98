//! Memory held by the in-memory session store: inserts 100,000 realistic sessions and reports
//! the growth of the process's resident set size (from /proc/self/statm).
//!
//! Run: `cargo bench --bench session_memory`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authgate::session::memory::MemoryStore;
use authgate::session::{new_id, SessionStore};

#[path = "support/session_fixture.rs"]
mod session_fixture;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    // Criterion-style flags (`--bench`) are accepted and ignored; under `cargo test` this
    // runs a small smoke count instead of the full measurement.
    let full = std::env::args().any(|a| a == "--bench");
    let count: u64 = if full { 100_000 } else { 1_000 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStore::new(count * 2, Duration::from_secs(7200));
    let now = SystemTime::now();
    // Warm the allocator and the store's internals before measuring.
    runtime
        .block_on(store.put(new_id(), Arc::new(session_fixture::session(now))))
        .expect("the memory store stores");
    let before = rss_bytes();
    for _ in 0..count {
        runtime
            .block_on(store.put(new_id(), Arc::new(session_fixture::session(now))))
            .expect("the memory store stores");
    }
    let held = store.len();
    let after = rss_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "sessions held: {held}; RSS grew by {:.1} MiB; {} bytes per session",
        grown as f64 / (1024.0 * 1024.0),
        grown / count
    );
    assert!(held >= count, "every session is held");
}
