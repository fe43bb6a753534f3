//! Integration tests of prodkit-bufpool, one binary (see the workspace
//! style). Its global allocator counts each thread's allocations, for the
//! steady-state test in `alloc.rs`.

mod alloc;
#[cfg(feature = "bytes")]
mod bufmut;
mod calibration;
mod classes;
mod fastpath;
mod read;
mod retention;
mod zeroing;

use proptest::prelude::*;

#[global_allocator]
static COUNTING: alloc::Counting = alloc::Counting;

pub(crate) use prodkit_testkit::watchdog;

/// One step of the random sequences the property tests run on a pool.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// `get` of this many bytes.
    Get(usize),
    /// Grow the held buffer at this index (modulo) by this many bytes.
    Grow(usize, usize),
    /// Drop the held buffer at this index (modulo).
    Drop(usize),
    /// Detach the held buffer at this index (modulo) with `into_vec`.
    IntoVec(usize),
}

/// Steps with gets below `max_get` bytes and growths below `max_grow`.
pub(crate) fn op(max_get: usize, max_grow: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..max_get).prop_map(Op::Get),
        2 => (any::<usize>(), 0..max_grow).prop_map(|(i, n)| Op::Grow(i, n)),
        3 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::IntoVec),
    ]
}
