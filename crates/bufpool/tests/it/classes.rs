//! Every buffer lands in the class of its capacity, and a get takes one
//! the pool retains whenever there is one: random sequences of gets,
//! growths, drops and detaches against a model written from the
//! definition (a multiset of capacities per class).

use prodkit_bufpool::{BufPool, PoolConfig, PooledBuf};
use proptest::prelude::*;

use crate::Op;

const MIN: usize = 64;
const MAX: usize = 4096;

fn op() -> impl Strategy<Value = Op> {
    crate::op(10_000, 10_000)
}

/// The class a request of `n` bytes takes: the smallest power of two of
/// at least `n`, from `MIN`; `None` above `MAX`.
fn class_of_request(n: usize) -> Option<usize> {
    let size = n.max(MIN).next_power_of_two();
    (size <= MAX).then_some(size)
}

/// The class a buffer of `cap` bytes goes back to: the largest power of
/// two not above it; `None` below `MIN` or above `MAX` (the issue: "a
/// buffer above the largest class is freed, not kept").
fn class_of_capacity(cap: usize) -> Option<usize> {
    if !(MIN..=MAX).contains(&cap) {
        return None;
    }
    Some(1 << (usize::BITS - 1 - cap.leading_zeros()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn buffers_land_in_the_class_of_their_capacity(
        ops in proptest::collection::vec(op(), 1..200),
        thread_cache in 0usize..4,
    ) {
        let pool = BufPool::new(PoolConfig {
            min_class: MIN,
            max_class: MAX,
            max_retained_bytes: 1 << 30,
            max_per_class: 1_000,
            thread_cache,
            zero_on_return: false,
        })
        .unwrap();
        // The model: the capacities retained, per class size.
        let mut model: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        let (mut hits, mut misses, mut returns, mut too_large) = (0u64, 0u64, 0u64, 0u64);
        let mut held: Vec<PooledBuf<'_>> = Vec::new();
        for op in ops {
            match op {
                Op::Get(n) => {
                    let buf = pool.get(n);
                    prop_assert!(buf.is_empty());
                    prop_assert!(buf.capacity() >= n);
                    match class_of_request(n) {
                        Some(class) => {
                            let kept = model.entry(class).or_default();
                            if let Some(at) = kept.iter().position(|&c| c == buf.capacity()) {
                                kept.swap_remove(at);
                                hits += 1;
                            } else {
                                prop_assert!(kept.is_empty(), "a miss while class {class} holds {kept:?}");
                                prop_assert_eq!(buf.capacity(), class, "a new buffer has its class's size");
                                misses += 1;
                            }
                        }
                        None => misses += 1,
                    }
                    held.push(buf);
                }
                Op::Grow(i, n) if !held.is_empty() => {
                    let at = i % held.len();
                    held[at].extend(std::iter::repeat_n(7u8, n));
                }
                Op::Drop(i) if !held.is_empty() => {
                    let buf = held.swap_remove(i % held.len());
                    let cap = buf.capacity();
                    drop(buf);
                    match class_of_capacity(cap) {
                        Some(class) => {
                            model.entry(class).or_default().push(cap);
                            returns += 1;
                        }
                        None => too_large += 1,
                    }
                }
                Op::IntoVec(i) if !held.is_empty() => {
                    let v = held.swap_remove(i % held.len()).into_vec();
                    drop(v);
                }
                _ => {}
            }
            let s = pool.stats();
            prop_assert_eq!((s.hits, s.misses, s.returns, s.discarded_too_large), (hits, misses, returns, too_large));
            prop_assert_eq!(s.discarded_over_cap, 0);
            for class in &s.classes {
                let kept = model.get(&class.size).map_or(&[][..], Vec::as_slice);
                prop_assert_eq!(class.buffers, kept.len(), "class {}", class.size);
                prop_assert_eq!(class.retained_bytes, kept.iter().sum::<usize>(), "class {}", class.size);
            }
        }
    }
}
