//! `mimalloc` for the `bufpool/get-put` groups (see `bufpool.rs`): a fresh
//! `Vec` per operation from mimalloc, the allocator many services switch
//! to instead of pooling. Its own program, since the global allocator is
//! the whole process's.

use mimalloc::MiMalloc;
use prodkit_benches::Figures;
use prodkit_benches::pages::fresh;
use prodkit_benches::rounds::{imp, measure, one_thread, two_threads};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

fn op(size: usize) -> impl FnMut() {
    move || fresh(size)
}

fn main() {
    let mut figures = Figures::new("bufpool_mimalloc");
    for (name, size) in SIZES {
        measure(
            &mut figures,
            &format!("bufpool/get-put/{name}"),
            "ns/op",
            vec![imp("mimalloc", one_thread(op(size)))],
        );
        measure(
            &mut figures,
            &format!("bufpool/get-put-2t/{name}"),
            "ns/op",
            vec![imp("mimalloc", two_threads(move || op(size)))],
        );
    }
    figures.write().expect("the report folder is writable");
}
