//! Handles awaited as futures: on one runtime thread, no thread blocks; the
//! last waker is woken once; a dropped future cancels nothing.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use prodkit_pool::{JobError, Overload};

use crate::{pool, watchdog};

/// Runs `fut` on a current-thread runtime beside a heartbeat task on the same
/// thread that sleeps 1 ms at a time, and checks that the heartbeat kept
/// beating (at least one beat per 4 ms): a `fut` that blocked the thread
/// would leave it none. Returns what `fut` returned and how long it took.
fn without_blocking<F: Future>(fut: F) -> (F::Output, Duration) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (out, beats, elapsed) = rt.block_on(async move {
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
    });
    let floor = elapsed.as_millis() as usize / 4;
    assert!(
        beats >= floor,
        "{beats} beats in {elapsed:?}: the thread was blocked"
    );
    (out, elapsed)
}

/// 10,000 jobs of 50 us on 2 workers, their handles awaited by 10,000 tasks
/// on one current-thread runtime: every result arrives, and a heartbeat task
/// on the same thread keeps ticking while the pool works.
#[test]
fn ten_thousand_handles_await_on_one_runtime_thread() {
    let _w = watchdog();
    let p = pool(2, 10_000, Overload::Block);
    let handles: Vec<_> = (0..10_000u64)
        .map(|i| {
            p.submit(move || {
                std::thread::sleep(Duration::from_micros(50));
                i * 2
            })
            .unwrap()
        })
        .collect();
    let (sum, elapsed) = without_blocking(async move {
        let tasks: Vec<_> = handles
            .into_iter()
            .map(|h| tokio::spawn(async move { h.await.unwrap() }))
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, (0..10_000u64).map(|i| i * 2).sum::<u64>());
    // 10,000 x 50 us on 2 workers: at least 250 ms, during which the
    // heartbeat kept beating (checked by `without_blocking`).
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
}

struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polled by hand: pending while the job runs, then exactly one wake of the
/// last waker given (the replaced one is not woken), then ready.
#[test]
fn a_handle_wakes_the_last_waker_once_and_is_then_ready() {
    let _w = watchdog();
    let p = pool(1, 4, Overload::Block);
    let (go, gate) = mpsc::channel::<()>();
    let mut fut = p
        .submit(move || {
            gate.recv().unwrap();
            7
        })
        .unwrap()
        .into_future();
    let (first, second) = (
        Arc::new(Count(AtomicUsize::new(0))),
        Arc::new(Count(AtomicUsize::new(0))),
    );
    let (w1, w2) = (
        Waker::from(Arc::clone(&first)),
        Waker::from(Arc::clone(&second)),
    );
    assert!(
        Pin::new(&mut fut)
            .poll(&mut Context::from_waker(&w1))
            .is_pending()
    );
    assert!(
        Pin::new(&mut fut)
            .poll(&mut Context::from_waker(&w2))
            .is_pending()
    );
    go.send(()).unwrap();
    while second.0.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        first.0.load(Ordering::SeqCst),
        0,
        "the replaced waker is not woken"
    );
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    match Pin::new(&mut fut).poll(&mut Context::from_waker(&w2)) {
        Poll::Ready(v) => assert_eq!(v, Ok(7)),
        Poll::Pending => panic!("woken but not ready"),
    }
    assert!(
        Pin::new(&mut fut)
            .poll(&mut Context::from_waker(&w2))
            .is_pending(),
        "after Ready it stays pending"
    );
}

/// Dropping an awaited handle cancels nothing: the job runs. Cancelling
/// through the future resolves it `Cancelled`, waking the task.
#[test]
fn a_dropped_future_detaches_and_cancel_wakes() {
    let _w = watchdog();
    let p = pool(1, 4, Overload::Block);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (go, gate) = mpsc::channel::<()>();
    let blocker = p.submit(move || gate.recv().unwrap()).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&ran);
    let handle = p
        .submit(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let gave_up = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(5), handle)
            .await
            .is_err()
    });
    assert!(gave_up, "the worker is held: the job cannot have run");
    // A queued job cancelled through its future: the awaiting task wakes with
    // `Cancelled`.
    let queued = p.submit(|| 1).unwrap().into_future();
    assert!(queued.cancel());
    assert_eq!(rt.block_on(queued), Err(JobError::Cancelled));
    go.send(()).unwrap();
    blocker.join().unwrap();
    p.shutdown(Duration::from_secs(10));
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the dropped future's job ran"
    );
}

/// `shutdown_async` waits for the queued jobs without blocking the runtime's
/// thread: a heartbeat on the same thread keeps ticking while 2 workers run
/// 40 jobs of 10 ms; the report is complete and the pool's drop then returns
/// at once.
#[test]
fn shutdown_async_drains_without_blocking_the_runtime_thread() {
    let _w = watchdog();
    let p = pool(2, 64, Overload::Block);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..40 {
        let ran = Arc::clone(&ran);
        p.execute(move || {
            std::thread::sleep(Duration::from_millis(10));
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let (report, elapsed) = without_blocking(p.shutdown_async());
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(ran.load(Ordering::SeqCst), 40);
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    let t = Instant::now();
    drop(p);
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
}

/// A `shutdown_async` given up half way has still closed the pool: new jobs
/// are refused, queued ones run, and the drop joins the workers.
#[test]
fn a_dropped_shutdown_async_has_closed_the_pool() {
    let _w = watchdog();
    let p = pool(1, 64, Overload::Block);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let ran = Arc::clone(&ran);
        p.execute(move || {
            std::thread::sleep(Duration::from_millis(5));
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let finished = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(5), p.shutdown_async())
            .await
            .is_ok()
    });
    assert!(
        !finished,
        "20 jobs of 5 ms on one worker cannot end in 5 ms"
    );
    assert!(p.submit(|| ()).is_err(), "closed");
    drop(p);
    assert_eq!(ran.load(Ordering::SeqCst), 20);
}

/// Two tasks awaiting `shutdown_async` at once are both woken: each keeps
/// its own waker (with one slot, the earlier task would wait forever).
#[test]
fn two_tasks_awaiting_shutdown_async_both_finish() {
    let _w = watchdog();
    let p = Arc::new(pool(1, 4, Overload::Block));
    let (go, gate) = mpsc::channel::<()>();
    p.execute(move || gate.recv().unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let both = rt.block_on(async {
        let first = tokio::spawn({
            let p = Arc::clone(&p);
            async move { p.shutdown_async().await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = tokio::spawn({
            let p = Arc::clone(&p);
            async move { p.shutdown_async().await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        go.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            (first.await.unwrap(), second.await.unwrap())
        })
        .await
    });
    let (a, b) = both.expect("a task awaiting shutdown_async was never woken");
    assert!(a.is_complete() && b.is_complete(), "{a:?} {b:?}");
}
