//! Tickets as futures: awaited on one runtime thread, no thread blocks; a
//! dropped future cancels nothing.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prodkit_batch::{Failure, NackReason, SinkError};

use crate::{Fake, builder, start, timed};

/// Runs `f` on a thread; fails the test if it has not returned within `limit`.
fn watchdog<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    timed(limit, f).0
}

/// Runs `fut` on a current-thread runtime beside a heartbeat task on the same
/// thread that sleeps 1 ms at a time: what `fut` returned, the beats, and how
/// long it took. A `fut` that blocked the thread would leave no beats.
fn with_heartbeat<F: Future>(fut: F) -> (F::Output, usize, Duration) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async move {
        let started = Instant::now();
        let beats = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicUsize::new(0));
        let heart = {
            let (beats, stop) = (Arc::clone(&beats), Arc::clone(&stop));
            tokio::spawn(async move {
                while stop.load(Ordering::Relaxed) == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    beats.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let out = fut.await;
        stop.store(1, Ordering::Relaxed);
        heart.await.unwrap();
        (out, beats.load(Ordering::Relaxed), started.elapsed())
    })
}

/// A sink whose writes wait while the returned gate is locked, then do what
/// `script` says with the rows.
fn gated(
    script: impl Fn(&[u64]) -> Result<(), SinkError> + Send + Sync + 'static,
) -> (Arc<Mutex<()>>, Fake) {
    let gate = Arc::new(Mutex::new(()));
    let sink = {
        let gate = Arc::clone(&gate);
        Fake::new(move |rows, _| {
            drop(gate.lock());
            script(rows)
        })
    };
    (gate, sink)
}

/// The heartbeat beat at least once per 4 ms (at most once per ms possible).
fn assert_kept_beating(beats: usize, elapsed: Duration) {
    let floor = elapsed.as_millis() as usize / 4;
    assert!(
        beats >= floor,
        "{beats} beats in {elapsed:?}: the thread was blocked"
    );
}

/// 10,000 tickets awaited by 10,000 tasks on a current-thread runtime while
/// the writer is slow (5 ms a batch): every outcome arrives, and a heartbeat
/// task on the same thread keeps ticking all along, which it could not if an
/// await blocked the thread.
#[test]
fn ten_thousand_tickets_await_on_one_runtime_thread() {
    let sink = Fake::new(|_, _| {
        std::thread::sleep(Duration::from_millis(5));
        Ok(())
    });
    let batcher = start(builder().max_rows(100).queue_rows(10_000), &sink);
    let tickets: Vec<_> = (0..10_000u64).map(|i| batcher.submit(i).unwrap()).collect();
    let (ok, beats, elapsed) = watchdog(Duration::from_secs(60), move || {
        with_heartbeat(async move {
            let tasks: Vec<_> = tickets
                .into_iter()
                .map(|t| tokio::spawn(async move { t.await.is_ok() }))
                .collect();
            let mut ok = 0;
            for task in tasks {
                ok += usize::from(task.await.unwrap());
            }
            ok
        })
    });
    assert_eq!(ok, 10_000);
    assert_eq!(sink.committed(), (0..10_000).collect::<Vec<_>>());
    // 100 writes of 5 ms: at least half a second, during which the heartbeat
    // (1 ms sleeps, so at most one beat per ms) kept beating.
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert_kept_beating(beats, elapsed);
    drop(batcher);
}

/// Counts wakes.
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polled by hand: pending until the outcome is set, then exactly one wake of
/// the last waker given, then ready; a new waker replaces the old one.
#[test]
fn a_ticket_wakes_the_last_waker_once_and_is_then_ready() {
    let (gate, sink) = gated(|_| Ok(()));
    let held = gate.lock();
    let batcher = start(builder().max_rows(1), &sink);
    let mut ticket = batcher.submit(1).unwrap().into_future();
    let (first, second) = (
        Arc::new(Count(AtomicUsize::new(0))),
        Arc::new(Count(AtomicUsize::new(0))),
    );
    let (w1, w2) = (
        Waker::from(Arc::clone(&first)),
        Waker::from(Arc::clone(&second)),
    );
    assert!(
        Pin::new(&mut ticket)
            .poll(&mut Context::from_waker(&w1))
            .is_pending()
    );
    assert!(
        Pin::new(&mut ticket)
            .poll(&mut Context::from_waker(&w2))
            .is_pending()
    );
    drop(held); // the write goes through
    let deadline = Instant::now() + Duration::from_secs(20);
    while second.0.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "never woken");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        first.0.load(Ordering::SeqCst),
        0,
        "the replaced waker is not woken"
    );
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    match Pin::new(&mut ticket).poll(&mut Context::from_waker(&w2)) {
        Poll::Ready(outcome) => assert!(outcome.is_ok()),
        Poll::Pending => panic!("woken but not ready"),
    }
    assert!(
        Pin::new(&mut ticket)
            .poll(&mut Context::from_waker(&w2))
            .is_pending(),
        "after Ready it stays pending"
    );
}

/// Dropping an awaited ticket cancels nothing: a row that succeeds is
/// written; a row that fails goes to the dead-letter callback.
#[test]
fn a_dropped_future_cancels_nothing() {
    let letters = Arc::new(Mutex::new(Vec::new()));
    let (gate, sink) = gated(|rows| {
        if rows.contains(&13) {
            Err(SinkError::new(Failure::Permanent, "scripted"))
        } else {
            Ok(())
        }
    });
    let held = gate.lock();
    let batcher = {
        let letters = Arc::clone(&letters);
        start(
            builder()
                .max_rows(1)
                .dead_letter(move |nack| letters.lock().push((nack.row, nack.reason))),
            &sink,
        )
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for row in [7u64, 13] {
        let ticket = batcher.submit(row).unwrap();
        // Awaited for a moment while the writer is held, then given up: the
        // future is dropped before the outcome is known.
        let gave_up = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(5), ticket)
                .await
                .is_err()
        });
        assert!(gave_up);
    }
    drop(held);
    batcher.shutdown(Duration::from_secs(10));
    assert_eq!(sink.committed(), vec![7]);
    let letters = letters.lock();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].0, 13);
    assert!(
        matches!(
            letters[0].1,
            NackReason::Rejected(_) | NackReason::Failed(_)
        ),
        "{:?}",
        letters[0].1
    );
}

/// `shutdown_async` writes what is queued without blocking the runtime's
/// thread: a heartbeat on the same thread keeps ticking while the slow writer
/// drains the queue; every row is acked and the flushers are joined (the
/// batcher's drop afterwards returns at once).
#[test]
fn shutdown_async_drains_without_blocking_the_runtime_thread() {
    let sink = Fake::new(|_, _| {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    });
    let (report, beats, elapsed, dropped_in) = watchdog(Duration::from_secs(60), move || {
        let batcher = start(builder().max_rows(10).flushers(1), &sink);
        let tickets: Vec<_> = (0..100u64).map(|i| batcher.submit(i).unwrap()).collect();
        let (report, beats, elapsed) =
            with_heartbeat(batcher.shutdown_async(Duration::from_secs(30)));
        assert!(tickets.into_iter().all(|t| t.wait().is_ok()));
        let t = Instant::now();
        drop(batcher);
        (report, beats, elapsed, t.elapsed())
    });
    assert_eq!(
        (report.acked, report.nacked, report.stats.batches),
        (100, 0, 10)
    );
    assert!(report.is_complete());
    // Ten writes of 20 ms: at least 200 ms of shutdown, with the heartbeat alive.
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert_kept_beating(beats, elapsed);
    assert!(
        dropped_in < Duration::from_millis(50),
        "drop after shutdown_async: {dropped_in:?}"
    );
}

/// A `shutdown_async` given up half way has still shut down the batcher: new rows
/// are refused, queued ones are written, and the drop joins the flushers.
#[test]
fn a_dropped_shutdown_async_has_shut_the_batcher_down() {
    let sink = Fake::new(|_, _| {
        std::thread::sleep(Duration::from_millis(10));
        Ok(())
    });
    let sink2 = sink.clone();
    watchdog(Duration::from_secs(60), move || {
        let batcher = start(builder().max_rows(5).flushers(1), &sink2);
        let tickets: Vec<_> = (0..50u64).map(|i| batcher.submit(i).unwrap()).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let finished = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_millis(5),
                batcher.shutdown_async(Duration::from_secs(30)),
            )
            .await
            .is_ok()
        });
        assert!(!finished, "ten writes of 10 ms cannot end in 5 ms");
        assert!(matches!(
            batcher.submit(99),
            Err(prodkit_batch::SubmitError::Closed(99))
        ));
        drop(batcher);
        assert!(tickets.into_iter().all(|t| t.wait().is_ok()));
    });
    assert_eq!(sink.committed(), (0..50).collect::<Vec<_>>());
}

/// Two tasks awaiting `shutdown_async` at once are both woken.
#[test]
fn two_tasks_awaiting_shutdown_async_both_finish() {
    let (gate, sink) = gated(|_| Ok(()));
    let held = gate.lock();
    let batcher = Arc::new(start(builder().max_rows(1), &sink));
    let ticket = batcher.submit(1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let both = rt.block_on(async {
        let first = tokio::spawn({
            let b = Arc::clone(&batcher);
            async move { b.shutdown_async(Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = tokio::spawn({
            let b = Arc::clone(&batcher);
            async move { b.shutdown_async(Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(held);
        tokio::time::timeout(Duration::from_secs(10), async {
            (first.await.unwrap(), second.await.unwrap())
        })
        .await
    });
    let (a, b) = both.expect("a task awaiting shutdown_async was never woken");
    assert_eq!((a.acked, b.acked), (1, 1));
    assert!(ticket.wait().is_ok());
}

/// A queue held full: one row in a write that waits until `open` is set, one
/// queued.
fn full() -> (Arc<AtomicBool>, Fake, Arc<prodkit_batch::Batcher<u64>>) {
    let open = Arc::new(AtomicBool::new(false));
    let sink = {
        let open = Arc::clone(&open);
        Fake::new(move |_, _| {
            while !open.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
    };
    let batcher = Arc::new(start(builder().max_rows(1).queue_rows(1), &sink));
    batcher.submit_detached(1).unwrap();
    let b = Arc::clone(&batcher);
    watchdog(Duration::from_secs(10), move || {
        while b.stats().queued_rows > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    batcher.submit_detached(2).unwrap();
    (open, sink, batcher)
}

/// `submit_async` into a full queue waits for room without blocking the
/// runtime's thread: a heartbeat on the same thread keeps ticking until a
/// flusher takes a batch and wakes it; the row is then queued and written.
#[test]
fn submit_async_waits_for_room_without_blocking_the_runtime_thread() {
    let (open, sink, batcher) = full();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        open.store(true, Ordering::Release);
    });
    let b = Arc::clone(&batcher);
    let (outcome, beats, elapsed) = watchdog(Duration::from_secs(30), move || {
        with_heartbeat(async move {
            let ticket = b.submit_async(3).await.expect("queued once there is room");
            ticket.await
        })
    });
    opener.join().unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(
        elapsed >= Duration::from_millis(90),
        "it waited for room: {elapsed:?}"
    );
    assert_kept_beating(beats, elapsed);
    batcher.shutdown(Duration::from_secs(10));
    assert_eq!(sink.committed(), vec![1, 2, 3]);
}

/// A shutdown wakes a `submit_async` waiting for room, and the row comes back;
/// `cancel` hands back the row of one that is still waiting.
#[test]
fn shutdown_wakes_a_waiting_submit_async_and_cancel_hands_the_row_back() {
    let (open, _sink, batcher) = full();
    let mut waiting = batcher.submit_async(4);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut waiting).poll(&mut cx).is_pending());
    assert_eq!(waiting.cancel(), Some(4));

    let b = Arc::clone(&batcher);
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // The deadline passes while the write is held: the queued row is cut.
        b.shutdown(Duration::from_millis(10))
    });
    let b = Arc::clone(&batcher);
    let (outcome, beats, elapsed) = watchdog(Duration::from_secs(30), move || {
        with_heartbeat(async move { b.submit_async(5).await })
    });
    match outcome {
        Err(prodkit_batch::SubmitError::Closed(row)) => assert_eq!(row, 5),
        other => panic!("expected Closed(5), got {other:?}"),
    }
    assert_kept_beating(beats, elapsed);
    open.store(true, Ordering::Release);
    let report = closer.join().unwrap();
    assert_eq!(report.stats.submitted, 2, "rows 4 and 5 were never queued");
}

/// 200 tasks on one runtime thread push through a queue of 4 rows: every row
/// is written, none is lost or left waiting (each flusher batch wakes the
/// waiting tasks, which race for the room again).
#[test]
fn many_tasks_submit_async_through_a_small_queue() {
    let sink = Fake::new(|_, _| {
        std::thread::sleep(Duration::from_millis(1));
        Ok(())
    });
    let batcher = Arc::new(start(builder().max_rows(4).queue_rows(4), &sink));
    let b = Arc::clone(&batcher);
    let (written, beats, elapsed) = watchdog(Duration::from_secs(60), move || {
        with_heartbeat(async move {
            let tasks: Vec<_> = (0..200u64)
                .map(|row| {
                    let b = Arc::clone(&b);
                    tokio::spawn(async move { b.submit_async(row).await.unwrap().await })
                })
                .collect();
            let mut written = 0;
            for t in tasks {
                if t.await.unwrap().is_ok() {
                    written += 1;
                }
            }
            written
        })
    });
    assert_eq!(written, 200);
    assert_kept_beating(beats, elapsed);
    batcher.shutdown(Duration::from_secs(10));
    assert_eq!(sink.committed(), (0..200).collect::<Vec<_>>());
}

/// A batch of one row wakes one waiting task, the oldest, not every one; a
/// woken task that gives up without queueing passes its wake on.
#[test]
fn a_batch_wakes_as_many_waiting_tasks_as_it_frees_rows_and_a_dropped_one_passes_it_on() {
    let (open, _sink, batcher) = full();
    let counters: Vec<Arc<Count>> = (0..3)
        .map(|_| Arc::new(Count(AtomicUsize::new(0))))
        .collect();
    let mut futures: Vec<_> = (10..13).map(|row| batcher.submit_async(row)).collect();
    for (f, c) in futures.iter_mut().zip(&counters) {
        let waker = Waker::from(Arc::clone(c));
        assert!(
            Pin::new(f)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
    }
    let wakes = || {
        counters
            .iter()
            .map(|c| c.0.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    };
    // The flusher finishes row 1 and takes row 2: one row of room, one wake.
    open.store(true, Ordering::Release);
    let start = Instant::now();
    while wakes() == [0, 0, 0] {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no task was woken"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(wakes(), [1, 0, 0], "the oldest only");
    let mut futures = futures.into_iter();
    // The woken task gives up: its wake goes to the next oldest...
    drop(futures.next());
    assert_eq!(wakes(), [1, 1, 0]);
    // ...which gives up too, and the last one is woken.
    assert_eq!(futures.next().unwrap().cancel(), Some(11));
    assert_eq!(wakes(), [1, 1, 1]);
    batcher.shutdown(Duration::from_secs(10));
}
