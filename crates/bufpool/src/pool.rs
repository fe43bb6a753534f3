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
    /// Bytes the shared queues may still take: half of
    /// `max_retained_bytes` less their buffers.
    free: AtomicUsize,
    /// Bytes the threads' caches may still reserve: the other half, so
    /// that idle threads' reservations never starve the shared queues.
    free_for_caches: AtomicUsize,
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

/// One return in this many has its length counted for calibration.
pub(crate) const SAMPLE: u32 = 64;

/// Takes `n` from `budget` if it holds that much.
fn take(budget: &AtomicUsize, n: usize) -> bool {
    budget
        .fetch_update(Relaxed, Relaxed, |free| free.checked_sub(n))
        .is_ok()
}

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
                free: AtomicUsize::new(config.max_retained_bytes - config.max_retained_bytes / 2),
                free_for_caches: AtomicUsize::new(config.max_retained_bytes / 2),
                config,
                min_shift,
                classes,
                threads: Mutex::new(Vec::new()),
                retired: Counters::default(),
                // One more: lengths above the largest class.
                returned: (0..=count).map(|_| AtomicU64::new(0)).collect(),
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
    /// on drop). Like `Vec::with_capacity`, it panics when the size
    /// overflows (above `isize::MAX`); [`try_get`](Self::try_get) does not.
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// let pool = BufPool::default();
    /// let buf = pool.get(1500);
    /// assert!(buf.is_empty());
    /// assert_eq!(buf.capacity(), 2048);
    /// ```
    #[inline(always)]
    pub fn get(&self, min_capacity: usize) -> PooledBuf<'_> {
        PooledBuf::new(self.take(min_capacity), self)
    }

    /// As [`get`](Self::get), but a size above the classes that the
    /// allocator refuses, or that overflows, is an error instead of a panic
    /// or an abort.
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// let pool = BufPool::default();
    /// assert!(pool.try_get(usize::MAX).is_err());
    /// assert!(pool.try_get(100).is_ok());
    /// ```
    pub fn try_get(
        &self,
        min_capacity: usize,
    ) -> Result<PooledBuf<'_>, std::collections::TryReserveError> {
        if min_capacity > self.inner.config.max_class {
            let mut buf = Vec::new();
            buf.try_reserve_exact(min_capacity)?;
            self.inner.retired.gets.fetch_add(1, Relaxed);
            self.inner.retired.misses.fetch_add(1, Relaxed);
            return Ok(PooledBuf::new(buf, self));
        }
        Ok(self.get(min_capacity))
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

    /// A buffer of the class that fits what 95 % of the buffers returned so
    /// far held (their lengths, one return in 64 counted by each thread,
    /// its first included; valyala/bytebufferpool's idea): for callers
    /// that do not know the size they will need, so that most never grow
    /// theirs. `min_class` before anything returns.
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// let pool = BufPool::default();
    /// for _ in 0..1000 {
    ///     let mut buf = pool.get(0);
    ///     buf.extend_from_slice(&[1; 5000]); // grows to the 4 KiB class
    /// }
    /// assert_eq!(pool.calibrated_size(), 8192); // the class that fits 5000
    /// assert!(pool.get_calibrated().capacity() >= 5000);
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
        let mut seen: u64 = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            // seen / total >= 95 %, in integers.
            if u128::from(seen) * 100 >= u128::from(total) * 95 {
                // The last bucket holds lengths above the classes: the
                // largest class is the most the pool can offer.
                return inner
                    .classes
                    .get(i)
                    .map_or(inner.config.max_class, |c| c.size);
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
        let mut stats = Stats {
            classes: inner
                .classes
                .iter()
                .map(|c| ClassStats {
                    size: c.size,
                    buffers: c.queue.len(),
                    retained_bytes: c.bytes.load(Relaxed),
                })
                .collect(),
            ..Stats::default()
        };
        // The gone threads' counts and the live ones' under one lock: a
        // thread leaving moves its counts from one to the other under it,
        // so they are counted once, and no count ever goes down.
        let threads = inner.lock_threads();
        inner.retired.add_to(&mut stats);
        for t in threads.iter() {
            t.counters.add_to(&mut stats);
            for (i, class) in stats.classes.iter_mut().enumerate() {
                let (buffers, bytes) = t.cached[i].read();
                class.buffers += buffers;
                class.retained_bytes += bytes;
            }
        }
        drop(threads);
        stats.retained_bytes = stats.classes.iter().map(|c| c.retained_bytes).sum();
        stats
    }

    /// A buffer for `min_capacity`, counted.
    #[inline(always)]
    fn take(&self, min_capacity: usize) -> Vec<u8> {
        let inner = &*self.inner;
        let idx = inner.class_for_get(min_capacity);
        if let Some(i) = idx
            && let Some(buf) = local::pop(inner, i)
        {
            return buf;
        }
        self.take_slow(idx, min_capacity)
    }

    /// `take` past the fast case: another pool's cache, the shared queue,
    /// a new buffer.
    #[cold]
    #[inline(never)]
    fn take_slow(&self, idx: Option<usize>, min_capacity: usize) -> Vec<u8> {
        let inner = &*self.inner;
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

    /// Takes `buf` back (a `PooledBuf` dropped), leaving it empty.
    #[inline(always)]
    pub(crate) fn give_back(&self, buf: &mut Vec<u8>) {
        let inner = &*self.inner;
        let idx = inner.class_for_put(buf.capacity());
        let len = buf.len();
        if let Some(i) = idx {
            buf.clear();
            if inner.config.zero_on_return {
                zero(buf);
            }
            if local::push(inner, i, buf) {
                return;
            }
        }
        self.give_back_slow(idx, len, buf);
    }

    /// `give_back` past the fast case (`buf` already cleared and zeroed
    /// when it has a class): a sample to take, room to reserve, another
    /// pool's cache, the shared queue.
    #[cold]
    #[inline(never)]
    fn give_back_slow(&self, idx: Option<usize>, len: usize, buf: &mut Vec<u8>) {
        let inner = &*self.inner;
        if local::with(self, |l| l.put(inner, idx, len, buf)).is_none() {
            // No thread cache (the thread is exiting): the shared path.
            let counter = match idx {
                None => &inner.retired.too_large,
                Some(i) => match inner.push_shared(i, std::mem::take(buf)) {
                    Ok(()) => &inner.retired.returns,
                    Err(_freed) => &inner.retired.over_cap,
                },
            };
            counter.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for BufPool {
    /// Frees what this thread's cache holds for the pool at once (other
    /// threads free theirs when they next use a pool, or exit).
    fn drop(&mut self) {
        local::forget(self.inner.id);
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
    /// above it; `None` below the smallest class or above the largest (a
    /// buffer above `max_class` could serve no `get` of the classes).
    #[inline]
    pub(crate) fn class_for_put(&self, capacity: usize) -> Option<usize> {
        if capacity < self.config.min_class || capacity > self.config.max_class {
            return None;
        }
        let shift = usize::BITS - 1 - capacity.leading_zeros();
        Some((shift - self.min_shift) as usize)
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

    /// Takes `n` bytes of the shared queues' budget, if there are.
    pub(crate) fn reserve(&self, n: usize) -> bool {
        take(&self.free, n)
    }

    /// Gives `n` bytes back to the shared queues' budget.
    pub(crate) fn release(&self, n: usize) {
        self.free.fetch_add(n, Relaxed);
    }

    /// Takes `n` bytes of the caches' budget, if there are.
    pub(crate) fn reserve_for_cache(&self, n: usize) -> bool {
        take(&self.free_for_caches, n)
    }

    /// Gives `n` bytes back to the caches' budget.
    pub(crate) fn release_for_cache(&self, n: usize) {
        self.free_for_caches.fetch_add(n, Relaxed);
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

    /// Counts a sampled return of a buffer that held `len` bytes, for
    /// `SAMPLE` returns, in the class that fits it (or past the last).
    #[cold]
    pub(crate) fn sampled_length(&self, len: usize) {
        let bucket = self.class_for_get(len).unwrap_or(self.classes.len());
        self.returned[bucket].fetch_add(u64::from(SAMPLE), Relaxed);
    }

    /// A thread starts using the pool: `stats` joins the sum. Nothing is
    /// allocated or freed under the lock, so that an allocator that reads
    /// the pool's stats (a profiling one would) cannot deadlock on it.
    pub(crate) fn register(&self, stats: Arc<LocalStats>) {
        let mut spare: Vec<Arc<LocalStats>> = Vec::new();
        loop {
            let mut threads = self.lock_threads();
            if threads.len() < threads.capacity() {
                threads.push(stats);
                drop(threads);
                return;
            }
            if spare.capacity() > threads.len() {
                // Moved into the larger vector; the smaller one is freed
                // after the lock, with `spare`.
                spare.append(&mut threads);
                std::mem::swap(&mut *threads, &mut spare);
                threads.push(stats);
                drop(threads);
                return;
            }
            let want = threads.len().saturating_mul(2).max(4);
            drop(threads);
            // Allocated with the lock free; another thread may have grown
            // the vector meanwhile, so look again.
            spare = Vec::with_capacity(want);
        }
    }

    /// A thread leaves: its counts join the pool's. Its entry is dropped
    /// after the lock (nothing freed under it; see `register`).
    pub(crate) fn unregister(&self, stats: &Arc<LocalStats>) {
        let mut threads = self.lock_threads();
        let gone = threads
            .iter()
            .position(|t| Arc::ptr_eq(t, stats))
            .map(|at| threads.swap_remove(at));
        self.retired.absorb(&stats.counters);
        drop(threads);
        drop(gone);
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<Arc<LocalStats>>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
