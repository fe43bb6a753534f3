//! The lossy read buffer: a hit records its entry here under the shard's read
//! lock, and whoever next holds the write lock replays the records into the
//! policy (Caffeine's read buffer, one per shard).
//!
//! Lossy on purpose: a record may be overwritten before it is replayed when
//! readers outrun the drainer, and a record read while its writer is between
//! its two steps may be a stale index. Both only make the policy a little less
//! exact; neither can corrupt it, because the drainer checks every index it
//! takes against the shard's entries before it uses it. With one thread (or no
//! contention) every hit is replayed, in order, before the next write.

#[cfg(prodkit_loom)]
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(prodkit_loom))]
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Records per shard between two drains.
pub(crate) const SLOTS: usize = 32;
const EMPTY: u32 = u32::MAX;

pub(crate) struct ReadBuffer {
    /// Records ever made: the position of the next one, and the shard's hit
    /// count (`stats()` reads it, so counting hits costs nothing more).
    head: AtomicU64,
    slots: [AtomicU32; SLOTS],
}

impl ReadBuffer {
    pub(crate) fn new() -> ReadBuffer {
        ReadBuffer {
            head: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU32::new(EMPTY)),
        }
    }

    /// Records a hit on entry `index`; true when this record filled the
    /// buffer, so the caller should try to drain it.
    #[inline]
    pub(crate) fn record(&self, index: u32) -> bool {
        // Relaxed: the count needs no order; the slot's value is published to
        // the drainer by the shard lock that the drainer takes afterwards (or
        // it is missed, which the buffer allows).
        let at = self.head.fetch_add(1, Ordering::Relaxed);
        self.slots[at as usize % SLOTS].store(index, Ordering::Relaxed);
        at as usize % SLOTS == SLOTS - 1
    }

    /// Records ever made.
    pub(crate) fn recorded(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }

    /// Hands each record made since `*drained` (at most a buffer's worth, the
    /// newest) to `f`, and moves `*drained` on. Called with the shard's write
    /// lock held, so there is one drainer at a time.
    pub(crate) fn drain(&self, drained: &mut u64, mut f: impl FnMut(u32)) {
        let head = self.head.load(Ordering::Acquire);
        let from = head.saturating_sub(SLOTS as u64).max(*drained);
        for at in from..head {
            let index = self.slots[at as usize % SLOTS].swap(EMPTY, Ordering::Relaxed);
            if index != EMPTY {
                f(index);
            }
        }
        *drained = head;
    }
}

impl std::fmt::Debug for ReadBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadBuffer")
            .field("recorded", &self.recorded())
            .finish()
    }
}

#[cfg(all(test, not(prodkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn one_thread_replays_every_record_in_order() {
        let b = ReadBuffer::new();
        let mut drained = 0;
        let mut seen = Vec::new();
        for i in 0..(SLOTS as u32 + 5) {
            if b.record(i) {
                b.drain(&mut drained, |x| seen.push(x));
            }
        }
        b.drain(&mut drained, |x| seen.push(x));
        assert_eq!(seen, (0..SLOTS as u32 + 5).collect::<Vec<_>>());
        assert_eq!(b.recorded(), SLOTS as u64 + 5);
    }

    #[test]
    fn an_overrun_keeps_the_newest_records() {
        let b = ReadBuffer::new();
        for i in 0..(3 * SLOTS as u32) {
            b.record(i);
        }
        let mut drained = 0;
        let mut seen = Vec::new();
        b.drain(&mut drained, |x| seen.push(x));
        assert_eq!(
            seen,
            (2 * SLOTS as u32..3 * SLOTS as u32).collect::<Vec<_>>()
        );
        b.drain(&mut drained, |x| seen.push(x));
        assert_eq!(seen.len(), SLOTS, "a second drain replays nothing twice");
    }
}

/// Loom: two readers record while a drainer drains. Whatever the
/// interleaving, the drainer sees only indexes that a reader recorded and
/// none twice; a record whose reader was between its two steps during the
/// drain may be lost (the buffer is lossy), but not one made before it.
#[cfg(all(test, prodkit_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_records_race_a_drain_without_inventing_or_repeating() {
        loom::model(|| {
            let b = Arc::new(ReadBuffer::new());
            b.record(9);
            let readers: Vec<_> = (0..2u32)
                .map(|t| {
                    let b = b.clone();
                    loom::thread::spawn(move || {
                        b.record(10 + t);
                    })
                })
                .collect();
            let mut drained = 0;
            let mut seen = Vec::new();
            b.drain(&mut drained, |x| seen.push(x));
            for r in readers {
                r.join().unwrap();
            }
            b.drain(&mut drained, |x| seen.push(x));
            assert_eq!(
                seen.first(),
                Some(&9),
                "the settled record is replayed first"
            );
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(
                sorted.len(),
                seen.len(),
                "a record replayed twice: {seen:?}"
            );
            assert!(seen.iter().all(|x| [9, 10, 11].contains(x)), "{seen:?}");
        });
    }
}
