//! The pool: size classes, each a bounded shared queue, a byte budget over
//! everything retained, and the calibration of the default size.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_queue::ArrayQueue;

use crate::buf::PooledBuf;
use crate::local;
use crate::stats::{ClassStats, Counters, LocalStats, Stats};
use crate::{ConfigError, PoolConfig};

/// A pool of byte buffers in power-of-two size classes.
///
/// [`get`](Self::get) hands out a [`PooledBuf`], which goes back to the
/// pool when dropped, to the class of its capacity (also after it grew). A
/// thread keeps a few buffers of each class for itself, so that the steady
/// state of a get and a drop takes no lock, no atomic read-modify-write
/// and no allocation; the rest wait in a bounded shared queue per class.
/// Everything retained, the threads' caches included, stays within
/// `max_retained_bytes`.
///
/// ```
/// use std::io::Write;
/// use prodkit_bufpool::BufPool;
///
/// let pool = BufPool::default();
/// let mut buf = pool.get(16 * 1024);
/// assert!(buf.capacity() >= 16 * 1024);
/// write!(buf, "hello")?;
/// assert_eq!(&buf[..], b"hello");
/// drop(buf); // back to the 16 KiB class
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct BufPool {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// Tells this pool's thread caches apart from other pools'.
    pub(crate) id: u64,
    pub(crate) config: PoolConfig,
    min_shift: u32,
    pub(crate) classes: Box<[Class]>,
    /// Bytes the pool may still retain: `max_retained_bytes` less the
    /// shared queues' buffers and the threads' cache reservations.
    free: AtomicUsize,
    /// The counters of threads that use the pool, for `stats`.
    threads: Mutex<Vec<Arc<LocalStats>>>,
    /// Counts of threads gone, and of operations made without a thread
    /// cache (while a thread exits).
    pub(crate) retired: Counters,
    /// Sampled counts of buffers returned, per class, for calibration.
    returned: Box<[AtomicU64]>,
}

#[derive(Debug)]
pub(crate) struct Class {
    pub(crate) size: usize,
    queue: ArrayQueue<Vec<u8>>,
    /// The queue's buffers' capacity.
    bytes: AtomicUsize,
}

/// Each returned buffer counts towards calibration one time in this many.
pub(crate) const SAMPLE: u32 = 64;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Default for BufPool {
    /// A pool with the default configuration: classes from 1 KiB to 4 MiB,
    /// 64 MiB retained at most.
    fn default() -> BufPool {
        BufPool::new(PoolConfig::default()).expect("the default configuration is valid")
    }
}

impl BufPool {
    /// A pool with `config`, once it is valid.
    ///
    /// ```
    /// use prodkit_bufpool::{BufPool, PoolConfig};
    ///
    /// let pool = BufPool::new(PoolConfig { max_retained_bytes: 8 << 20, ..PoolConfig::default() })?;
    /// # let _ = pool;
    /// # Ok::<(), prodkit_bufpool::ConfigError>(())
    /// ```
    pub fn new(config: PoolConfig) -> Result<BufPool, ConfigError> {
        config.validate()?;
        let min_shift = config.min_class.trailing_zeros();
        let count = (config.max_class.trailing_zeros() - min_shift + 1) as usize;
        let classes = (0..count)
            .map(|i| Class {
                size: config.min_class << i,
                queue: ArrayQueue::new(config.max_per_class),
                bytes: AtomicUsize::new(0),
            })
            .collect();
        Ok(BufPool {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Relaxed),
                free: AtomicUsize::new(config.max_retained_bytes),
                config,
                min_shift,
                classes,
                threads: Mutex::new(Vec::new()),
                retired: Counters::default(),
                returned: (0..count).map(|_| AtomicU64::new(0)).collect(),
            }),
        })
    }

    /// The configuration.
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// assert_eq!(BufPool::default().config().max_class, 4 << 20);
    /// ```
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// An empty buffer with room for at least `min_capacity` bytes: a
    /// retained one of the smallest class that fits, else a new one of
    /// that class (above `max_class`, a new one of exactly that size, freed
    /// on drop).
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// let pool = BufPool::default();
    /// let buf = pool.get(1500);
    /// assert!(buf.is_empty());
    /// assert_eq!(buf.capacity(), 2048);
    /// ```
    #[inline]
    pub fn get(&self, min_capacity: usize) -> PooledBuf<'_> {
        PooledBuf::new(self.take(min_capacity), self)
    }

    /// A buffer of `len` zero bytes, to read into.
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// let pool = BufPool::default();
    /// let buf = pool.get_zeroed(100);
    /// assert_eq!(&buf[..], &[0u8; 100][..]);
    /// ```
    pub fn get_zeroed(&self, len: usize) -> PooledBuf<'_> {
        let mut buf = self.take(len);
        buf.resize(len, 0);
        PooledBuf::new(buf, self)
    }

    /// A buffer of the capacity that fits 95 % of the buffers returned so
    /// far (learned from a sample of the returns, valyala/bytebufferpool's
    /// idea): for callers that do not know the size they will need, so
    /// that most never grow theirs. `min_class` before anything returns.
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// let pool = BufPool::default();
    /// for _ in 0..1000 {
    ///     let mut buf = pool.get(0);
    ///     buf.extend_from_slice(&[1; 5000]); // grows to the 4 KiB class
    /// }
    /// assert_eq!(pool.calibrated_size(), 4096);
    /// assert!(pool.get_calibrated().capacity() >= 4096);
    /// ```
    pub fn get_calibrated(&self) -> PooledBuf<'_> {
        self.get(self.calibrated_size())
    }

    /// The size [`get_calibrated`](Self::get_calibrated) asks for.
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// assert_eq!(BufPool::default().calibrated_size(), 1024);
    /// ```
    pub fn calibrated_size(&self) -> usize {
        let inner = &self.inner;
        let counts: Vec<u64> = inner.returned.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return inner.config.min_class;
        }
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            // seen / total >= 95 %, in integers.
            if seen * 100 >= total * 95 {
                return inner.classes[i].size;
            }
        }
        inner.config.max_class
    }

    /// What the pool did and what it retains now.
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// let pool = BufPool::default();
    /// drop(pool.get(8 << 20)); // above the largest class: freed
    /// let s = pool.stats();
    /// assert_eq!((s.misses, s.discarded_too_large, s.retained_bytes), (1, 1, 0));
    /// ```
    pub fn stats(&self) -> Stats {
        let inner = &self.inner;
        let mut stats = Stats::default();
        inner.retired.add_to(&mut stats);
        stats.classes = inner
            .classes
            .iter()
            .map(|c| ClassStats {
                size: c.size,
                buffers: c.queue.len(),
                retained_bytes: c.bytes.load(Relaxed),
            })
            .collect();
        for t in inner
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            t.counters.add_to(&mut stats);
            for (i, class) in stats.classes.iter_mut().enumerate() {
                class.buffers += t.cached_buffers[i].load(Relaxed);
                class.retained_bytes += t.cached_bytes[i].load(Relaxed);
            }
        }
        stats.retained_bytes = stats.classes.iter().map(|c| c.retained_bytes).sum();
        stats
    }

    /// A buffer for `min_capacity`, counted.
    #[inline]
    fn take(&self, min_capacity: usize) -> Vec<u8> {
        let inner = &*self.inner;
        let idx = inner.class_for_get(min_capacity);
        let found = local::with(self, |l| l.get(inner, idx, min_capacity));
        match found {
            Some(buf) => buf,
            // No thread cache (the thread is exiting): the shared path.
            None => {
                inner.retired.gets.fetch_add(1, Relaxed);
                match idx.and_then(|i| inner.pop_shared(i)) {
                    Some(buf) => buf,
                    None => {
                        inner.retired.misses.fetch_add(1, Relaxed);
                        inner.fresh(inner.size_for(idx, min_capacity))
                    }
                }
            }
        }
    }

    /// Takes `buf` back (a `PooledBuf` dropped), leaving it empty. While
    /// its thread exits (its cache gone), a buffer is freed, not kept.
    #[inline]
    pub(crate) fn give_back(&self, buf: &mut Vec<u8>) {
        let inner = &*self.inner;
        let idx = inner.class_for_put(buf.capacity());
        if idx.is_some() {
            buf.clear();
            if inner.config.zero_on_return {
                zero(buf);
            }
        }
        local::with(self, |l| l.put(inner, idx, buf));
    }
}

/// Writes zeros over the whole capacity of the (cleared) `buf`.
fn zero(buf: &mut Vec<u8>) {
    let cap = buf.capacity();
    buf.resize(cap, 0);
    buf.clear();
}

impl Inner {
    /// The class of a buffer asked with `min_capacity` bytes; `None` above
    /// the largest.
    #[inline]
    pub(crate) fn class_for_get(&self, min_capacity: usize) -> Option<usize> {
        let size = min_capacity.max(self.config.min_class);
        if size > self.config.max_class {
            return None;
        }
        // ceil(log2(size)) - min_shift
        let shift = usize::BITS - (size - 1).leading_zeros();
        Some((shift - self.min_shift) as usize)
    }

    /// The class a buffer of `capacity` goes back to: the largest not
    /// above it; `None` below the smallest or at twice the largest.
    #[inline]
    pub(crate) fn class_for_put(&self, capacity: usize) -> Option<usize> {
        if capacity < self.config.min_class {
            return None;
        }
        let shift = usize::BITS - 1 - capacity.leading_zeros();
        let idx = (shift - self.min_shift) as usize;
        (idx < self.classes.len()).then_some(idx)
    }

    /// The capacity of a new buffer of class `idx`, or of exactly
    /// `min_capacity` above the classes.
    pub(crate) fn size_for(&self, idx: Option<usize>, min_capacity: usize) -> usize {
        idx.map_or(min_capacity, |i| self.classes[i].size)
    }

    /// A new buffer of `size` bytes' capacity; zeroed with
    /// `zero_on_return`, so that no byte of another part of the program
    /// comes with it either (for large sizes the allocator gives zeroed
    /// pages at no cost).
    pub(crate) fn fresh(&self, size: usize) -> Vec<u8> {
        if self.config.zero_on_return {
            let mut buf = vec![0; size];
            buf.clear();
            buf
        } else {
            Vec::with_capacity(size)
        }
    }

    /// Takes `n` bytes of the budget, if there are.
    pub(crate) fn reserve(&self, n: usize) -> bool {
        self.free
            .fetch_update(Relaxed, Relaxed, |free| free.checked_sub(n))
            .is_ok()
    }

    /// Gives `n` bytes back to the budget.
    pub(crate) fn release(&self, n: usize) {
        self.free.fetch_add(n, Relaxed);
    }

    /// A buffer of class `idx` from its shared queue.
    pub(crate) fn pop_shared(&self, idx: usize) -> Option<Vec<u8>> {
        let class = &self.classes[idx];
        let buf = class.queue.pop()?;
        class.bytes.fetch_sub(buf.capacity(), Relaxed);
        self.release(buf.capacity());
        Some(buf)
    }

    /// Keeps `buf` in class `idx`'s shared queue if the budget and the
    /// queue allow; else hands it back.
    pub(crate) fn push_shared(&self, idx: usize, buf: Vec<u8>) -> Result<(), Vec<u8>> {
        let cap = buf.capacity();
        if !self.reserve(cap) {
            return Err(buf);
        }
        let class = &self.classes[idx];
        // Counted before the push, so that a pop that follows at once
        // never takes the count below zero.
        class.bytes.fetch_add(cap, Relaxed);
        match class.queue.push(buf) {
            Ok(()) => Ok(()),
            Err(buf) => {
                class.bytes.fetch_sub(cap, Relaxed);
                self.release(cap);
                Err(buf)
            }
        }
    }

    /// A sampled count of `SAMPLE` returns to class `idx`.
    pub(crate) fn sampled_return(&self, idx: usize) {
        self.returned[idx].fetch_add(u64::from(SAMPLE), Relaxed);
    }

    pub(crate) fn register(&self, stats: Arc<LocalStats>) {
        self.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stats);
    }

    /// A thread leaves: its counts join the pool's.
    pub(crate) fn unregister(&self, stats: &Arc<LocalStats>) {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.retain(|t| !Arc::ptr_eq(t, stats));
        self.retired.absorb(&stats.counters);
    }
}
