//! `system_mmap` for the `bufpool/get-put` groups (see `bufpool.rs`): a
//! fresh `Vec` per operation from glibc with its mmap threshold frozen at
//! 128 KiB through `mallopt`, as an allocator that returns large blocks to
//! the operating system behaves (glibc's default threshold adapts upwards
//! after the first free of a mapped block, and then reuses it). Its own
//! program, since `mallopt` changes the whole process. Also its page
//! faults per operation.

use prodkit_benches::pages::{fresh, minor_faults};
use prodkit_benches::rounds::{imp, measure, one_thread, two_threads};
use prodkit_benches::{Better, Figures};

const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

fn op(size: usize) -> impl FnMut() {
    move || fresh(size)
}

fn main() {
    // SAFETY: `mallopt` only sets glibc's allocation parameters; it is
    // called once, before this program allocates from other threads.
    let frozen = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    assert_eq!(frozen, 1, "mallopt(M_MMAP_THRESHOLD) failed");
    let mut figures = Figures::new("bufpool_mmap");
    for (name, size) in SIZES {
        measure(
            &mut figures,
            &format!("bufpool/get-put/{name}"),
            "ns/op",
            vec![imp("system_mmap", one_thread(op(size)))],
        );
        measure(
            &mut figures,
            &format!("bufpool/get-put-2t/{name}"),
            "ns/op",
            vec![imp("system_mmap", two_threads(move || op(size)))],
        );
        let mut run = op(size);
        let before = minor_faults();
        for _ in 0..2_000 {
            run();
        }
        figures.record(
            &format!("bufpool/faults-per-op/{name}"),
            "system_mmap",
            (minor_faults() - before) as f64 / 2_000.0,
            "faults/op",
            Better::Lower,
        );
    }
    figures.write().expect("the report folder is writable");
}
