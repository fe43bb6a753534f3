//! Integration tests of prodkit-jsonfast, one binary (see the workspace
//! style). Its global allocator counts each thread's allocations, for
//! `alloc.rs`.

mod alloc;
mod differential;
mod errors;
mod limits;
mod ndjson;
mod numbers;
mod suite;

use std::path::PathBuf;

#[global_allocator]
static COUNTING: alloc::Counting = alloc::Counting;

/// The shared data folder: `$PRODKIT_DATA`, else `../shared/data` beside
/// the workspace (DESIGN.md's data rule); `None` (and a line saying so)
/// when `sub` is not there.
pub(crate) fn data(sub: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("PRODKIT_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    let path = root.join(sub);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "{} not found: test skipped (set PRODKIT_DATA to the folder holding json/)",
            path.display()
        );
        None
    }
}
