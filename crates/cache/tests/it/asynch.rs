//! `get_or_load_async` on a current-thread runtime: a heartbeat task on the
//! same thread proves that no waiter blocks it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prodkit_cache::Cache;

use crate::watchdog;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn a_thousand_waiting_tasks_share_one_load_without_blocking_the_thread() {
    watchdog(Duration::from_secs(30), || {
        runtime().block_on(async {
            let cache: Cache<u32, u32> = Cache::builder(100).build().unwrap();
            let calls = Arc::new(AtomicUsize::new(0));
            let beats = Arc::new(AtomicUsize::new(0));
            let b = beats.clone();
            let heartbeat = tokio::spawn(async move {
                loop {
                    b.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            let start = Instant::now();
            let tasks: Vec<_> = (0..1000)
                .map(|_| {
                    let (cache, calls) = (cache.clone(), calls.clone());
                    tokio::spawn(async move {
                        cache
                            .get_or_load_async(5, || async {
                                calls.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                Ok::<_, std::io::Error>(55)
                            })
                            .await
                            .unwrap()
                    })
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap(), 55);
            }
            let elapsed = start.elapsed();
            heartbeat.abort();
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            // The heartbeat kept beating while 999 tasks waited on one thread.
            let beats = beats.load(Ordering::Relaxed);
            assert!(
                beats >= 20,
                "{beats} heartbeats in {elapsed:?}: the thread was blocked"
            );
        });
    });
}

#[test]
fn an_error_reaches_every_waiting_task() {
    watchdog(Duration::from_secs(30), || {
        runtime().block_on(async {
            let cache: Cache<u32, u32> = Cache::builder(100).build().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let leader = {
                let cache = cache.clone();
                tokio::spawn(async move {
                    cache
                        .get_or_load_async(1, || async {
                            rx.await.unwrap();
                            Err::<u32, _>(std::io::Error::other("no"))
                        })
                        .await
                })
            };
            tokio::task::yield_now().await;
            let waiters: Vec<_> = (0..10)
                .map(|_| {
                    let cache = cache.clone();
                    tokio::spawn(async move {
                        cache
                            .get_or_load_async(1, || async { Ok::<_, std::io::Error>(1) })
                            .await
                    })
                })
                .collect();
            // Let every waiter reach the flight (current thread: they run now).
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            tx.send(()).unwrap();
            let err = leader.await.unwrap().unwrap_err();
            for w in waiters {
                let e = w.await.unwrap().unwrap_err();
                assert!(Arc::ptr_eq(&err, &e));
            }
            assert_eq!(cache.stats().loads_failed, 1);
        });
    });
}

#[test]
fn a_dropped_leader_hands_the_load_to_a_waiter() {
    watchdog(Duration::from_secs(30), || {
        runtime().block_on(async {
            let cache: Cache<u32, u32> = Cache::builder(100).build().unwrap();
            let leader = {
                let cache = cache.clone();
                tokio::spawn(async move {
                    cache
                        .get_or_load_async(1, std::future::pending::<Result<u32, ()>>)
                        .await
                })
            };
            tokio::task::yield_now().await;
            let waiter = {
                let cache = cache.clone();
                tokio::spawn(async move {
                    cache
                        .get_or_load_async(1, || async { Ok::<_, ()>(2) })
                        .await
                })
            };
            tokio::task::yield_now().await;
            leader.abort();
            assert_eq!(waiter.await.unwrap(), Ok(2));
            assert_eq!(cache.get(&1), Some(2));
            let s = cache.stats();
            assert_eq!((s.loads_ok, s.loads_failed), (1, 1));
        });
    });
}

#[test]
fn an_async_loader_that_loads_its_own_key_panics_instead_of_waiting_for_itself() {
    watchdog(Duration::from_secs(30), || {
        runtime().block_on(async {
            let cache: Cache<u32, u32> = Cache::builder(100).build().unwrap();
            let inner = cache.clone();
            let task = tokio::spawn(async move {
                let inner2 = inner.clone();
                inner
                    .get_or_load_async(1, || async move {
                        inner2
                            .get_or_load_async(1, || async { Ok::<_, ()>(1) })
                            .await
                            .map(|v| v + 1)
                    })
                    .await
            });
            let panic = task.await.unwrap_err().into_panic();
            let msg = panic.downcast_ref::<&str>().copied().unwrap_or_default();
            assert!(msg.contains("would wait for itself"), "{msg}");
            // Loads of other keys from inside a loader are fine.
            let c = cache.clone();
            let v = cache
                .get_or_load_async(1, || async move {
                    c.get_or_load_async(2, || async { Ok::<_, ()>(20) })
                        .await
                        .map(|v| v + 1)
                })
                .await;
            assert_eq!(v.unwrap(), 21);
        });
    });
}
