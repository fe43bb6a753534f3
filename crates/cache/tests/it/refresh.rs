//! Refresh-ahead racing writes, failing, and meeting panicking callbacks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use prodkit_cache::quanta::Clock;
use prodkit_cache::{Cache, RemovalCause};

use crate::watchdog;

const LIMIT: Duration = Duration::from_secs(30);
const SEC: Duration = Duration::from_secs(1);

/// Polls `cond` until it holds; the watchdog around the test bounds it.
fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until every refresh started has ended (here every reload fails,
/// and a failure is counted once its claim is given back).
fn settled(cache: &Cache<u32, u32>) {
    until(|| {
        let s = cache.stats();
        s.refreshes == s.refreshes_failed
    });
}

#[test]
fn a_slow_refresh_never_overwrites_a_later_write() {
    watchdog(LIMIT, || {
        // The first reload is slow and returns an old value; meanwhile the
        // key is written, comes due again, and a second reload returns a
        // newer value. The slow one must not win.
        let (clock, mock) = Clock::mock();
        let calls = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let (entered_tx, release) = (Mutex::new(entered_tx), Mutex::new(release));
        let c = calls.clone();
        let cache: Cache<u32, u32> = Cache::builder(100)
            .clock(clock)
            .executor(2, 16)
            .refresh_after(2 * SEC)
            .loader(move |_: &u32| {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    entered_tx.lock().unwrap().send(()).unwrap();
                    release.lock().unwrap().recv().unwrap();
                    Ok::<_, std::io::Error>(1)
                } else {
                    Ok(30)
                }
            })
            .build()
            .unwrap();
        cache.insert(1, 0);
        mock.increment(3 * SEC);
        assert_eq!(cache.get(&1), Some(0));
        entered.recv().unwrap();
        cache.insert(1, 20);
        assert_eq!(cache.get(&1), Some(20));
        mock.increment(3 * SEC);
        assert_eq!(cache.get(&1), Some(20));
        until(|| cache.get(&1) == Some(30));
        release_tx.send(()).unwrap();
        until(|| cache.stats().loads_ok == 2);
        cache.insert(2, 2); // a write after the slow reload ended
        assert_eq!(cache.get(&1), Some(30), "the slow reload's value lost");
    });
}

#[test]
fn a_failed_refresh_keeps_the_entry_to_its_time_to_live() {
    watchdog(LIMIT, || {
        let (clock, mock) = Clock::mock();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let cache: Cache<u32, u32> = Cache::builder(100)
            .clock(clock)
            .time_to_live(10 * SEC)
            .time_to_idle(5 * SEC)
            .refresh_after(2 * SEC)
            .loader(move |_: &u32| {
                c.fetch_add(1, Ordering::SeqCst);
                Err::<u32, _>(std::io::Error::other("down"))
            })
            .build()
            .unwrap();
        cache.insert(1, 1);
        for t in 1..=12 {
            mock.increment(SEC);
            let got = cache.get(&1);
            if t < 10 {
                assert_eq!(got, Some(1), "t = {t}");
            } else {
                assert_eq!(got, None, "t = {t}: past the time to live");
            }
            settled(&cache);
        }
        assert!(cache.stats().refreshes_failed >= 2);
    });
}

#[test]
fn a_callback_panic_in_a_refresh_does_not_stop_later_refreshes() {
    watchdog(LIMIT, || {
        let (clock, mock) = Clock::mock();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let cache: Cache<u32, u32> = Cache::builder(100)
            .clock(clock)
            .weigher(|_, v: &u32| {
                assert_ne!(*v, 1, "weigher fails");
                1
            })
            .refresh_after(2 * SEC)
            .loader(move |_: &u32| {
                Ok::<_, std::io::Error>(c.fetch_add(1, Ordering::SeqCst) as u32 + 1)
            })
            .build()
            .unwrap();
        cache.insert(1, 0);
        mock.increment(3 * SEC);
        cache.get(&1);
        until(|| cache.stats().refreshes_failed == 1);
        assert_eq!(cache.get(&1), Some(0), "the old value stays");
        mock.increment(3 * SEC);
        cache.get(&1);
        until(|| cache.get(&1) == Some(2));
    });
}

#[test]
fn a_refreshed_value_too_heavy_to_hold_is_reported() {
    watchdog(LIMIT, || {
        let (clock, mock) = Clock::mock();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let cache: Cache<u32, u32> = Cache::builder(100)
            .clock(clock)
            .weigher(|_, v: &u32| *v)
            .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
            .refresh_after(2 * SEC)
            .loader(|_: &u32| Ok::<_, std::io::Error>(500))
            .build()
            .unwrap();
        cache.insert(1, 5);
        mock.increment(3 * SEC);
        assert_eq!(cache.get(&1), Some(5));
        until(|| log.lock().unwrap().len() == 2);
        let mut log = log.lock().unwrap().clone();
        log.sort_unstable_by_key(|e| e.1);
        assert_eq!(
            log,
            [(1, 5, RemovalCause::Replaced), (1, 500, RemovalCause::Size)]
        );
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.stats().rejected, 1);
    });
}

#[test]
fn a_caller_missing_a_key_never_waits_for_its_queued_refresh() {
    // One worker, busy with a prefetch whose loader needs key 2. Key 2's
    // refresh is queued behind that prefetch, and key 2 expires: the
    // loader's get_or_load(2) must load key 2 itself, not wait for the
    // queued refresh (which would wait for the loader: a deadlock).
    watchdog(LIMIT, || {
        let (clock, mock) = Clock::mock();
        let me = Arc::new(std::sync::OnceLock::<prodkit_cache::WeakCache<u32, u32>>::new());
        let (entered_tx, entered) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let (entered_tx, release) = (Mutex::new(entered_tx), Mutex::new(release));
        let weak = me.clone();
        let cache: Cache<u32, u32> = Cache::builder(100)
            .clock(clock)
            .time_to_live(15 * SEC)
            .refresh_after(10 * SEC)
            .executor(1, 16)
            .loader(move |k: &u32| {
                if *k != 1 {
                    return Ok::<_, std::io::Error>(k + 1000);
                }
                entered_tx.lock().unwrap().send(()).unwrap();
                release.lock().unwrap().recv().unwrap();
                let cache = weak
                    .get()
                    .and_then(prodkit_cache::WeakCache::upgrade)
                    .unwrap();
                let two = cache
                    .get_or_load(2, || Ok::<_, std::io::Error>(222))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok(100 + two)
            })
            .build()
            .unwrap();
        me.set(cache.downgrade()).unwrap();
        cache.insert(2, 2);
        assert_eq!(cache.prefetch([1]).unwrap().queued, 1);
        entered.recv().unwrap();
        mock.increment(11 * SEC);
        assert_eq!(cache.get(&2), Some(2), "claims key 2's refresh");
        mock.increment(5 * SEC); // key 2 expires, its refresh still queued
        release_tx.send(()).unwrap();
        until(|| cache.get(&1).is_some());
        assert_eq!(cache.get(&1), Some(322), "the loader loaded key 2 itself");
        // The superseded refresh neither overwrites nor blocks anything.
        until(|| cache.stats().refreshes as usize >= 1);
        assert_eq!(cache.get_or_load(2, || Ok::<_, ()>(9)), Ok(222));
        assert_eq!(
            cache.get(&2),
            Some(222),
            "the caller's value is the one cached"
        );
    });
}

#[test]
fn an_invalidation_that_spares_an_entry_leaves_its_refreshes_running() {
    // invalidate_if takes every caller's load under way as hit, but a
    // refresh has its entry, which the predicate sees: sparing the entry
    // spares the refresh, and later refreshes still come.
    watchdog(LIMIT, || {
        let (clock, mock) = Clock::mock();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let calls = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let (entered_tx, release) = (Mutex::new(entered_tx), Mutex::new(release));
        let c = calls.clone();
        let cache: Cache<u32, u32> = Cache::builder(100)
            .clock(clock)
            .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
            .refresh_after(2 * SEC)
            .loader(move |_: &u32| {
                let n = c.fetch_add(1, Ordering::SeqCst) as u32;
                if n == 0 {
                    entered_tx.lock().unwrap().send(()).unwrap();
                    release.lock().unwrap().recv().unwrap();
                }
                Ok::<_, std::io::Error>(100 + n)
            })
            .build()
            .unwrap();
        cache.insert(1, 1);
        cache.insert(2, 2);
        mock.increment(3 * SEC);
        cache.get(&1);
        entered.recv().unwrap();
        assert_eq!(cache.invalidate_if(|k, _| *k == 2), 1);
        release_tx.send(()).unwrap();
        until(|| cache.get(&1) == Some(100));
        assert_eq!(
            *log.lock().unwrap(),
            [
                (2, 2, RemovalCause::Explicit),
                (1, 1, RemovalCause::Replaced)
            ]
        );
        mock.increment(3 * SEC);
        cache.get(&1);
        until(|| cache.get(&1) == Some(101));
    });
}
