//! The shutdown coordinator: phases in order under load, overruns measured
//! on the real clock, failures and panics reported without stopping the
//! phases after them, async phases awaited without blocking the runtime.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prodkit_netcfg::{PhaseOutcome, Shutdown};

use crate::watchdog;

const T: Duration = Duration::from_millis(300);

#[test]
fn phases_run_one_after_another_in_order_under_load() {
    watchdog(Duration::from_secs(30), || {
        // Two threads keep both cores busy while the shutdown runs.
        let stop = Arc::new(AtomicBool::new(false));
        let load: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                })
            })
            .collect();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let names = [
            "readiness off",
            "stop accepting",
            "drain http",
            "stop workers",
            "flush writers",
            "close pools",
        ];
        let mut shutdown = Shutdown::new();
        for (i, name) in names.iter().enumerate() {
            let spans = spans.clone();
            shutdown = shutdown.phase(*name, Duration::from_secs(5), move |_| {
                let start = Instant::now();
                std::thread::sleep(Duration::from_millis(20));
                spans.lock().unwrap().push((i, start, Instant::now()));
                Ok::<(), std::io::Error>(())
            });
        }
        let report = shutdown.run();
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.join().unwrap();
        }
        assert!(report.is_clean(), "{report}");
        let reported: Vec<_> = report.phases().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(reported, names);
        let spans = spans.lock().unwrap();
        assert_eq!(
            spans.iter().map(|s| s.0).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5]
        );
        for pair in spans.windows(2) {
            assert!(
                pair[0].2 <= pair[1].1,
                "a phase started before the one before it ended"
            );
        }
    });
}

#[test]
fn an_overrunning_phase_is_reported_with_its_time_and_the_next_still_runs() {
    watchdog(Duration::from_secs(30), || {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let report = Shutdown::new()
            .phase("drain http", T, |deadline| {
                // Ignores its deadline and takes three times as long.
                std::thread::sleep(3 * T);
                assert!(deadline.expired());
                Ok::<(), std::io::Error>(())
            })
            .phase("close pools", T, move |deadline| {
                assert!(!deadline.expired(), "each phase has its own deadline");
                r.fetch_add(1, Ordering::SeqCst);
                Ok::<(), std::io::Error>(())
            })
            .run();
        let slow = &report.phases()[0];
        assert!(slow.overran());
        // The report reads quanta's calibrated TSC, the sleep the OS's
        // clock: they differ by up to a few parts in 100,000 (899.976 ms for
        // a 900 ms sleep was seen), hence 1 % below 3T.
        assert!(
            slow.elapsed >= 3 * T * 99 / 100 && slow.elapsed <= 9 * T,
            "{:?}",
            slow.elapsed
        );
        assert_eq!(report.overran().len(), 1);
        assert_eq!(report.overran()[0].name, "drain http");
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert!(
            report.to_string().contains("drain http: done in"),
            "{report}"
        );
        assert!(report.to_string().contains("overran"), "{report}");
    });
}

#[test]
fn failures_and_panics_are_reported_and_do_not_stop_later_phases() {
    watchdog(Duration::from_secs(30), || {
        let closed = Arc::new(AtomicBool::new(false));
        let c = closed.clone();
        let report = Shutdown::new()
            .phase("flush writers", T, |_| Err("disk full"))
            .phase("stop workers", T, |_| -> Result<(), std::io::Error> {
                panic!("worker stuck")
            })
            .phase_async("drain http", T, |_| async {
                if true {
                    panic!("drain failed");
                }
                Ok::<(), std::io::Error>(())
            })
            .phase("close pools", T, move |_| {
                c.store(true, Ordering::SeqCst);
                Ok::<(), std::io::Error>(())
            })
            .run();
        let outcomes: Vec<_> = report.phases().iter().map(|p| p.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            [
                PhaseOutcome::Failed("disk full".into()),
                PhaseOutcome::Panicked("worker stuck".into()),
                PhaseOutcome::Panicked("drain failed".into()),
                PhaseOutcome::Done,
            ]
        );
        assert!(closed.load(Ordering::SeqCst), "the pools still closed");
        assert!(!report.is_clean());
    });
}

#[test]
fn async_phases_are_awaited_without_blocking_the_runtime_thread() {
    watchdog(Duration::from_secs(30), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let beats = Arc::new(AtomicUsize::new(0));
            let b = beats.clone();
            let heartbeat = tokio::spawn(async move {
                loop {
                    b.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            let report = Shutdown::new()
                .phase_async("drain http", T, |deadline| async move {
                    tokio::time::sleep(deadline.remaining() / 2).await;
                    Ok::<(), std::io::Error>(())
                })
                .run_async()
                .await;
            heartbeat.abort();
            assert!(report.is_clean(), "{report}");
            // The runtime's only thread kept beating while the phase waited.
            assert!(
                beats.load(Ordering::Relaxed) >= 10,
                "{}",
                beats.load(Ordering::Relaxed)
            );
        });
        // The blocking runner drives a future woken from another thread.
        let report = Shutdown::new()
            .phase_async("wait for a signal", T, |_| Later::default())
            .run();
        assert!(report.is_clean(), "{report}");
        assert!(report.phases()[0].elapsed >= Duration::from_millis(50));
    });
}

/// A future ready 50 ms after its first poll, woken by a thread it starts
/// (and joins when ready): a leaf future written against std only.
#[derive(Default)]
struct Later {
    thread: Option<std::thread::JoinHandle<()>>,
    done: Arc<AtomicBool>,
}

impl std::future::Future for Later {
    type Output = Result<(), std::io::Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.done.load(Ordering::SeqCst) {
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
            return std::task::Poll::Ready(Ok(()));
        }
        if self.thread.is_none() {
            let (done, waker) = (self.done.clone(), cx.waker().clone());
            self.thread = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                done.store(true, Ordering::SeqCst);
                waker.wake();
            }));
        }
        std::task::Poll::Pending
    }
}

#[test]
fn a_phase_deadline_past_what_the_clock_holds_runs_as_no_deadline() {
    let report = watchdog(Duration::from_secs(30), || {
        Shutdown::new()
            .phase("forever", Duration::MAX, |d| {
                assert!(!d.expired());
                assert_eq!(d.remaining(), Duration::MAX);
                Ok::<(), std::io::Error>(())
            })
            .run()
    });
    assert!(report.is_clean(), "{report}");
}
