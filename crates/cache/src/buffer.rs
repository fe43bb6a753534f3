//! The lossy read buffer: a hit records its entry here under the store's
//! shared lock, and whoever next holds the shard's order lock replays the
//! records into the policy (Caffeine's read buffer, one per shard).
//!
//! Lossy on purpose: a record may be overwritten before it is replayed when
//! readers outrun the drainer, and a record read while its writer is between
//! its two steps may be a stale token. Both only make the policy a little less
//! exact; neither can corrupt it, because the drainer checks every position
//! it takes against the shard's entries before it uses it.
//!
//! Sampling: once a shard has seen only hits for a long while (64 full
//! buffers, 2,048 reads, with no entry coming or going between them),
//! its readers record one read in 2, then 4, then 8; the first write brings it
//! back to every read. The
//! policy then sees every read wherever entries come and go (every trace with
//! misses), and a read-only shard stops paying for records that change
//! nothing but the order of entries that all stay. A record carries the
//! number of reads it stands for, which the policy counts. (The hit count
//! is kept apart, per thread: see `stats.rs`.)
//!
//! The position of the next record is a plain load and store, not a
//! read-modify-write: two readers racing may take the same slot, one record
//! overwriting the other, which the buffer allows; a read pays no locked
//! instruction beyond the shard lock's own.

#[cfg(prodkit_loom)]
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(prodkit_loom))]
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use std::cell::Cell;

/// Records per shard between two replays.
pub(crate) const SLOTS: usize = 32;
const EMPTY: u64 = u64::MAX;
/// The sparsest sampling: one read in `2^MAX_LEVEL`.
const MAX_LEVEL: u32 = 3;

pub(crate) struct ReadBuffer {
    /// Records so far: the position of the next one.
    position: AtomicU64,
    slots: [AtomicU64; SLOTS],
    /// The sampling level: record one read in `2^level`. Read by every
    /// reader, written only when it changes, so its line stays shared.
    level: AtomicU32,
    /// Structural writes (an entry came or went), counted under the lock.
    writes: AtomicU32,
    /// `writes` as the last full buffer saw it, and how many full buffers in
    /// a row saw it unchanged.
    seen_writes: AtomicU32,
    quiet: AtomicU32,
}

/// Full buffers in a row with no entry coming or going after which a shard
/// samples: 64 x 32 = 2,048 reads, longer than a hit streak in any trace
/// with misses.
const QUIET_FULL: u32 = 64;

thread_local! {
    /// A thread's reads, for sampling: which one in `2^level` it records.
    static READS: Cell<u32> = const { Cell::new(0) };
}

impl ReadBuffer {
    pub(crate) fn new() -> ReadBuffer {
        ReadBuffer {
            position: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(EMPTY)),
            level: AtomicU32::new(0),
            writes: AtomicU32::new(0),
            seen_writes: AtomicU32::new(0),
            quiet: AtomicU32::new(0),
        }
    }

    /// Records a hit (a token: the key's hash tag in the high half, the
    /// entry's position, below 2^30, in the low half), or skips it while the
    /// shard samples; true when this record filled the
    /// buffer, so the caller should try to replay it.
    #[inline]
    pub(crate) fn record(&self, token: u64) -> bool {
        // Relaxed throughout: the count needs no order, and a token reaches
        // the drainer through the shard lock the drainer takes afterwards (or
        // it is missed, which the buffer allows).
        let Some(level) = self.sample() else {
            return false;
        };
        let at = self.position.load(Ordering::Relaxed);
        self.position.store(at.wrapping_add(1), Ordering::Relaxed);
        // The level rides in the token (bits 30 and 31 of the position's
        // half): the replay counts the record for the reads it stands for.
        let token = token | u64::from(level) << 30;
        self.slots[at as usize % SLOTS].store(token, Ordering::Relaxed);
        let full = at as usize % SLOTS == SLOTS - 1;
        if full {
            self.on_full();
        }
        full
    }

    /// A reader filled the buffer (whether or not it gets to replay it), or
    /// a writer made as many updates: after `QUIET_FULL` of these with no
    /// structural write, sample sparser. Plain loads and stores: two threads
    /// racing here may lose a count, which only delays sampling.
    pub(crate) fn on_full(&self) {
        let writes = self.writes.load(Ordering::Relaxed);
        if writes != self.seen_writes.load(Ordering::Relaxed) {
            self.seen_writes.store(writes, Ordering::Relaxed);
            self.quiet.store(0, Ordering::Relaxed);
            return;
        }
        let quiet = self.quiet.load(Ordering::Relaxed) + 1;
        self.quiet.store(quiet, Ordering::Relaxed);
        if quiet >= QUIET_FULL {
            self.sparser();
        }
    }

    /// Whether this access is one the shard samples: `Some(level)`, and it
    /// stands for `2^level` accesses; `None`, skip it.
    #[inline]
    pub(crate) fn sample(&self) -> Option<u32> {
        let level = self.level.load(Ordering::Relaxed);
        if level > 0 {
            let n = READS.with(|r| {
                let n = r.get().wrapping_add(1);
                r.set(n);
                n
            });
            if n & ((1 << level) - 1) != 0 {
                return None;
            }
        }
        Some(level)
    }

    /// Records so far (a drain with no new one has nothing to do).
    pub(crate) fn position(&self) -> u64 {
        self.position.load(Ordering::Relaxed)
    }

    /// Hands each token recorded since the last replay to `f`, in the
    /// order recorded: the slots of positions `from..to` (all of them when
    /// the readers went round the buffer since). A record that a reader
    /// slow between its two steps left behind `from` waits for the buffer
    /// to come round, or is overwritten, which the buffer allows. Called
    /// with the shard's lock held exclusively, so there is one drainer at a
    /// time.
    pub(crate) fn drain(&self, from: u64, to: u64, mut f: impl FnMut(u64)) {
        let count = to.wrapping_sub(from).min(SLOTS as u64) as usize;
        let start = if count == SLOTS { to } else { from };
        for n in 0..count {
            let slot = &self.slots[(start as usize).wrapping_add(n) % SLOTS];
            let token = slot.load(Ordering::Relaxed);
            if token != EMPTY {
                // A plain store, not a swap: a record landing in between is
                // lost, which the buffer allows, and the drain costs no
                // read-modify-write per record.
                slot.store(EMPTY, Ordering::Relaxed);
                f(token);
            }
        }
    }

    /// The shard has seen only hits for long enough: record one read in
    /// twice as many.
    fn sparser(&self) {
        let level = self.level.load(Ordering::Relaxed);
        if level < MAX_LEVEL {
            self.level.store(level + 1, Ordering::Relaxed);
        }
    }

    /// An entry came or went (called under the shard's exclusive lock):
    /// record every read again.
    #[inline]
    pub(crate) fn on_write(&self) {
        let writes = self.writes.load(Ordering::Relaxed);
        self.writes.store(writes.wrapping_add(1), Ordering::Relaxed);
        if self.level.load(Ordering::Relaxed) != 0 {
            self.level.store(0, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for ReadBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadBuffer")
            .field("position", &self.position())
            .finish()
    }
}

/// Drains what was recorded since `from`, as a shard does; for the tests.
#[cfg(test)]
fn drain_since(b: &ReadBuffer, from: &mut u64, out: &mut Vec<u64>) {
    let to = b.position();
    b.drain(*from, to, |x| out.push(x));
    *from = to;
}

#[cfg(all(test, not(prodkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn with_writes_every_read_is_replayed_in_order_and_counted() {
        let b = ReadBuffer::new();
        let (mut seen, mut from) = (Vec::new(), 0);
        for i in 0..(SLOTS as u64 + 5) {
            if b.record(i) {
                drain_since(&b, &mut from, &mut seen);
            }
        }
        drain_since(&b, &mut from, &mut seen);
        assert_eq!(seen, (0..SLOTS as u64 + 5).collect::<Vec<_>>());
        assert_eq!(b.position(), SLOTS as u64 + 5);
    }

    #[test]
    fn an_overrun_keeps_the_newest_records_and_a_drain_replays_each_once() {
        let b = ReadBuffer::new();
        for i in 0..(3 * SLOTS as u64) {
            b.record(i);
        }
        let (mut seen, mut from) = (Vec::new(), 0);
        drain_since(&b, &mut from, &mut seen);
        assert_eq!(
            seen,
            (2 * SLOTS as u64..3 * SLOTS as u64).collect::<Vec<_>>(),
            "the newest, in order"
        );
        drain_since(&b, &mut from, &mut seen);
        assert_eq!(seen.len(), SLOTS, "a second drain replays nothing twice");
    }

    #[test]
    fn a_read_only_shard_samples_down_to_one_in_eight_and_a_write_stops_it() {
        let b = ReadBuffer::new();
        let reads = Cell::new(0u64);
        let read_until_full = |b: &ReadBuffer| loop {
            reads.set(reads.get() + 1);
            if b.record(7) {
                break;
            }
        };
        // The first full buffer notes the write count; QUIET_FULL more with
        // no write between them make it sparser, then each further one.
        for _ in 0..QUIET_FULL {
            read_until_full(&b);
        }
        assert_eq!(b.level.load(Ordering::Relaxed), 1);
        read_until_full(&b);
        read_until_full(&b);
        assert_eq!(b.level.load(Ordering::Relaxed), MAX_LEVEL);
        read_until_full(&b);
        assert_eq!(b.level.load(Ordering::Relaxed), MAX_LEVEL);
        // One read in eight is recorded now.
        let recorded = b.position();
        for _ in 0..800 {
            b.record(7);
        }
        assert_eq!(b.position() - recorded, 100, "after {} reads", reads.get());
        b.on_write();
        assert_eq!(b.level.load(Ordering::Relaxed), 0);
        // After a write, the quiet count starts again.
        read_until_full(&b);
        assert_eq!(b.level.load(Ordering::Relaxed), 0);
    }
}

#[cfg(all(test, prodkit_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_records_race_a_drain_without_inventing_or_repeating() {
        loom::model(|| {
            let b = Arc::new(ReadBuffer::new());
            b.record(9);
            let readers: Vec<_> = (0..2u64)
                .map(|t| {
                    let b = b.clone();
                    loom::thread::spawn(move || {
                        b.record(10 + t);
                    })
                })
                .collect();
            let (mut seen, mut from) = (Vec::new(), 0);
            drain_since(&b, &mut from, &mut seen);
            for r in readers {
                r.join().unwrap();
            }
            drain_since(&b, &mut from, &mut seen);
            assert!(
                seen.contains(&9),
                "the settled record is replayed: {seen:?}"
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
            // Two racing records may take one slot and one position.
            assert!((2..=3).contains(&b.position()), "{}", b.position());
        });
    }
}
