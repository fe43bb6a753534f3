//! With `zero_on_return`, no byte of one user reaches the next, also in
//! the spare capacity that only unsafe code can read.

use std::mem::MaybeUninit;

use prodkit_bufpool::{BufPool, PoolConfig};

/// Whether every byte of `buf`'s capacity is zero.
fn all_zero(buf: &mut Vec<u8>) -> bool {
    let len = buf.len();
    let spare: &[MaybeUninit<u8>] = buf.spare_capacity_mut();
    // SAFETY: with `zero_on_return` the pool hands out buffers whose whole
    // capacity it wrote (zeros on return, or a zeroed allocation), so the
    // spare bytes are initialised; reading them is what this test checks.
    let spare_zero = spare.iter().all(|b| unsafe { b.assume_init() } == 0);
    len == 0 && spare_zero
}

#[test]
fn returned_buffers_come_back_zeroed_whole() {
    let pool = BufPool::new(PoolConfig {
        zero_on_return: true,
        thread_cache: 1,
        max_per_class: 4,
        ..PoolConfig::default()
    })
    .unwrap();
    for size in [100, 5_000, 70_000] {
        // Several at once, so that some go through the shared queue.
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut buf = pool.get(size);
            assert!(all_zero(&mut buf));
            let cap = buf.capacity();
            buf.resize(cap, 0xAB);
            held.push(buf);
        }
        // One grows past its class by Vec's own reallocation.
        held[0].extend(std::iter::repeat_n(0xCD, size));
        drop(held);
        let mut again = Vec::new();
        for _ in 0..3 {
            let mut buf = pool.get(size);
            assert!(all_zero(&mut buf), "a {size}-byte buffer came back dirty");
            again.push(buf);
        }
    }
}
