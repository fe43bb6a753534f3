//! Buffer pools, ns per operation in interleaved rounds (see
//! `prodkit_benches::rounds`). Every implementation does the same work per
//! operation: obtain a buffer of the size, write one byte per 4 KiB page
//! (`prodkit_benches::pages::touch`), release it.
//!
//! - `bufpool/get-put/{1KiB,64KiB,1MiB}`: one thread. `prodkit`: a
//!   `BufPool` with its defaults; `naive`: the seed's design (three fixed
//!   classes behind a mutex each, exact-capacity returns only, 1 MiB always
//!   allocated); `system`: a fresh `Vec` from the default allocator (glibc);
//!   `bytes`: one `BytesMut` per thread, `clear` + `reserve`; `floor`: one
//!   `Vec` per thread, reused: the page writes alone. `system_mmap` and
//!   `mimalloc` come from their own programs (`bufpool_mmap`,
//!   `bufpool_mimalloc`), which change the allocator process-wide.
//! - `bufpool/get-put-2t/{...}`: the same by two threads at once, one pool
//!   between them (time per operation of the pair).
//! - `bufpool/get-put-only/{...}`: no page writes: the pool's own cost per
//!   get and put.
//! - `bufpool/read-body-64KiB`: a 64 KiB body read from memory under a
//!   1 MiB limit: `prodkit`'s `read_to_pooled` against `read_to_end` of the
//!   same `Take` into a fresh `Vec` (`system`).
//! - `bufpool/faults-per-op/{...}`: minor page faults per operation, a
//!   non-time figure, over 2,000 operations after warm-up.

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use prodkit_benches::naive::bufpool::BufferPool as Naive;
use prodkit_benches::pages::{minor_faults, touch};
use prodkit_benches::rounds::{Imp, imp, measure, one_thread, two_threads};
use prodkit_benches::{Better, Figures};
use prodkit_bufpool::{BufPool, read_to_pooled};

const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

/// What a group does with each implementation's operation, given as a
/// factory that makes one for each thread (with its own state: the
/// floor's and bytes' buffers). Each operation is a closure of its own
/// type, called directly in the measured loop: no indirect call, as in the
/// `system_mmap` and `mimalloc` programs.
trait WithOp {
    fn with<M, F>(&mut self, name: &'static str, make: M)
    where
        M: Fn() -> F + Send + Sync + 'static,
        F: FnMut() + 'static;
}

/// Hands `to` the operation of each of `names` at `size`, with page writes
/// or not.
fn each_op(names: &[&'static str], size: usize, write: bool, to: &mut impl WithOp) {
    let pages = if write { size } else { 0 };
    let pool = Arc::new(BufPool::default());
    let naive = Arc::new(Naive::default());
    for &name in names {
        match name {
            "prodkit" => {
                let pool = Arc::clone(&pool);
                to.with(name, move || {
                    let pool = Arc::clone(&pool);
                    move || {
                        let mut buf = pool.get(size);
                        touch(&mut buf, pages);
                        black_box(&buf);
                    }
                });
            }
            "naive" => {
                let naive = Arc::clone(&naive);
                to.with(name, move || {
                    let naive = Arc::clone(&naive);
                    move || {
                        let mut buf = naive.get(size);
                        touch(&mut buf, pages);
                        naive.put(black_box(buf));
                    }
                });
            }
            "system" => to.with(name, move || {
                move || prodkit_benches::pages::fresh_touching(size, pages)
            }),
            "bytes" => to.with(name, move || {
                let mut b = BytesMut::new();
                move || {
                    b.clear();
                    b.reserve(size);
                    let spare = b.spare_capacity_mut();
                    let mut at = 0;
                    while at < pages.min(spare.len()) {
                        spare[at].write(1);
                        at += 4096;
                    }
                    black_box(&b);
                }
            }),
            "floor" => to.with(name, move || {
                let mut buf: Vec<u8> = Vec::with_capacity(size);
                move || {
                    buf.clear();
                    touch(&mut buf, pages);
                    black_box(&buf);
                }
            }),
            other => unreachable!("{other}"),
        }
    }
}

/// Collects the implementations of a group, run by `threads` threads.
struct Imps {
    threads: usize,
    imps: Vec<Imp>,
}

impl WithOp for Imps {
    fn with<M, F>(&mut self, name: &'static str, make: M)
    where
        M: Fn() -> F + Send + Sync + 'static,
        F: FnMut() + 'static,
    {
        self.imps.push(if self.threads == 1 {
            imp(name, one_thread(make()))
        } else {
            imp(name, two_threads(make))
        });
    }
}

fn group(
    figures: &mut Figures,
    name: &str,
    names: &[&'static str],
    size: usize,
    write: bool,
    threads: usize,
) {
    let mut imps = Imps {
        threads,
        imps: Vec::new(),
    };
    each_op(names, size, write, &mut imps);
    measure(figures, name, "ns/op", imps.imps);
}

/// Records each implementation's page faults per operation.
struct Faults<'f> {
    figures: &'f mut Figures,
    group: String,
}

impl WithOp for Faults<'_> {
    fn with<M, F>(&mut self, name: &'static str, make: M)
    where
        M: Fn() -> F + Send + Sync + 'static,
        F: FnMut() + 'static,
    {
        let mut run = make();
        for _ in 0..100 {
            run();
        }
        let before = minor_faults();
        let n = 2_000;
        for _ in 0..n {
            run();
        }
        let per = (minor_faults() - before) as f64 / f64::from(n);
        self.figures
            .record(&self.group, name, per, "faults/op", Better::Lower);
    }
}

fn faults(figures: &mut Figures, size_name: &str, size: usize) {
    let mut faults = Faults {
        figures,
        group: format!("bufpool/faults-per-op/{size_name}"),
    };
    each_op(
        &["prodkit", "naive", "system", "floor"],
        size,
        true,
        &mut faults,
    );
}

fn read_body(figures: &mut Figures) {
    let body: Arc<Vec<u8>> = Arc::new((0..64 << 10).map(|i| i as u8).collect());
    let pool = BufPool::default();
    let b = Arc::clone(&body);
    let ours = one_thread(move || {
        let read = read_to_pooled(&pool, &b[..], 1 << 20).expect("under the limit");
        black_box(&read);
    });
    let b = Arc::clone(&body);
    // The same limit as `read_to_pooled`'s: one byte past 1 MiB read at
    // most, through `Take`.
    let fresh = one_thread(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&b[..], (1 << 20) + 1), &mut v)
            .expect("from memory");
        black_box(&v);
    });
    measure(
        figures,
        "bufpool/read-body-64KiB",
        "ns/op",
        vec![imp("prodkit", ours), imp("system", fresh)],
    );
}

fn main() {
    let mut figures = Figures::new("bufpool");
    let all = ["prodkit", "naive", "system", "bytes", "floor"];
    for (size_name, size) in SIZES {
        group(
            &mut figures,
            &format!("bufpool/get-put/{size_name}"),
            &all,
            size,
            true,
            1,
        );
    }
    for (size_name, size) in SIZES {
        group(
            &mut figures,
            &format!("bufpool/get-put-2t/{size_name}"),
            &all,
            size,
            true,
            2,
        );
    }
    for (size_name, size) in SIZES {
        group(
            &mut figures,
            &format!("bufpool/get-put-only/{size_name}"),
            &["prodkit", "naive", "system"],
            size,
            false,
            1,
        );
    }
    read_body(&mut figures);
    for (size_name, size) in SIZES {
        faults(&mut figures, size_name, size);
    }
    figures.write().expect("the report folder is writable");
}
