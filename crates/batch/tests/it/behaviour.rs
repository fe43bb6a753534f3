//! Batching, backpressure, close and configuration, with sinks that succeed.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::bounded;
use parking_lot::Mutex;
use prodkit_batch::{
    Batcher, BuildError, ConfigError, Failure, NackReason, RetryPolicy, SinkError, SubmitError,
    Ticket, TrySubmitError,
};

use crate::{Fake, builder, start};

#[test]
fn full_batches_are_written_and_the_rest_at_shutdown() {
    let sink = Fake::ok();
    let batcher = start(builder(), &sink);
    let tickets: Vec<_> = (0..25).map(|i| batcher.submit(i).unwrap()).collect();
    let mut tickets = tickets.into_iter();
    for t in tickets.by_ref().take(20) {
        assert!(t.wait().is_ok());
    }
    let stats = batcher.stats();
    assert_eq!(
        (stats.acked, stats.flushed_rows, stats.queued_rows),
        (20, 2, 5)
    );
    let stats = batcher.shutdown(Duration::from_secs(10)).stats;
    for t in tickets {
        assert!(t.wait().is_ok());
    }
    assert_eq!(sink.committed(), (0..25).collect::<Vec<_>>());
    assert_eq!(sink.batch_sizes(), vec![10, 10, 5]);
    assert_eq!(
        (stats.submitted, stats.acked, stats.nacked, stats.batches),
        (25, 25, 0, 3)
    );
    assert_eq!((stats.flushed_rows, stats.flushed_shutdown), (2, 1));
}

#[test]
fn a_lone_row_is_written_after_linger() {
    let sink = Fake::ok();
    // The real clock: the row's ticket resolves once 5 ms have passed.
    let batcher = start(builder().linger(Duration::from_millis(5)), &sink);
    batcher.submit(7).unwrap().wait().unwrap();
    assert_eq!(batcher.stats().flushed_linger, 1);
    assert_eq!(sink.committed(), vec![7]);
}

#[test]
fn with_no_linger_a_free_flusher_writes_at_once_and_a_busy_one_gathers_a_batch() {
    // The default linger: a lone row goes out at once.
    let sink = Fake::ok();
    let batcher = start(builder().linger(Duration::ZERO).max_rows(100), &sink);
    batcher.submit(1).unwrap().wait().unwrap();
    assert_eq!(sink.batch_sizes(), vec![1]);
    // While the only flusher is busy, the rows behind gather into one batch.
    let (entered, enter) = bounded::<()>(0);
    let (release, released) = bounded::<()>(0);
    let sink = Fake::new(move |rows, n| {
        if n == 1 {
            assert_eq!(rows, [10]);
            entered.send(()).unwrap();
            released.recv().unwrap();
        }
        Ok(())
    });
    let batcher = start(builder().linger(Duration::ZERO).max_rows(100), &sink);
    let first = batcher.submit(10).unwrap();
    enter.recv().unwrap();
    let rest: Vec<_> = (11..40).map(|i| batcher.submit(i).unwrap()).collect();
    release.send(()).unwrap();
    first.wait().unwrap();
    for t in rest {
        t.wait().unwrap();
    }
    assert_eq!(sink.batch_sizes(), vec![1, 29]);
    assert!(
        Batcher::<u64>::builder()
            .linger(Duration::ZERO)
            .max_rows(10)
            .build(|| Ok(Fake::ok()))
            .is_ok(),
        "zero is a valid linger"
    );
}

#[test]
fn batches_stop_at_max_bytes() {
    let sink = Fake::ok();
    let batcher = start(builder().max_bytes(100).row_size(|_| 40), &sink);
    let tickets: Vec<_> = (0..3).map(|i| batcher.submit(i).unwrap()).collect();
    let mut tickets = tickets.into_iter();
    // 120 bytes queued: a batch of the two rows that fit in 100 leaves.
    for t in tickets.by_ref().take(2) {
        t.wait().unwrap();
    }
    assert_eq!(batcher.stats().flushed_bytes, 1);
    assert_eq!(batcher.stats().queued_bytes, 40);
    batcher.shutdown(Duration::from_secs(10));
    assert!(tickets.all(|t| t.wait().is_ok()));
    assert_eq!(sink.batch_sizes(), vec![2, 1]);
}

#[test]
fn a_full_queue_pushes_back_and_hands_the_row_back() {
    // The sink blocks until the gate opens, after telling the test it is writing.
    let (entered_tx, entered) = bounded::<()>(16);
    let gate = Arc::new(Mutex::new(()));
    let closed_gate = gate.lock();
    let sink = Fake::new({
        let gate = Arc::clone(&gate);
        move |_, _| {
            entered_tx.send(()).unwrap();
            drop(gate.lock());
            Ok(())
        }
    });
    let batcher = start(builder().max_rows(2).queue_rows(4), &sink);
    let mut tickets = vec![batcher.submit(0).unwrap(), batcher.submit(1).unwrap()];
    entered.recv().unwrap();
    // Rows 0 and 1 are in the blocked write; the queue holds 4 more.
    for i in 2..6 {
        tickets.push(batcher.try_submit(i).unwrap());
    }
    match batcher.try_submit(6) {
        Err(TrySubmitError::Full(row)) => assert_eq!(row, 6),
        other => panic!("expected Full(6), got {other:?}"),
    }
    match batcher.submit_timeout(7, Duration::from_millis(20)) {
        Err(SubmitError::Timeout(row)) => assert_eq!(row, 7),
        other => panic!("expected Timeout(7), got {other:?}"),
    }
    let full = batcher.try_submit(8).unwrap_err();
    assert!(full.is_full() && full.kind() == prodkit_batch::SubmitErrorKind::Full);
    let timeout = batcher
        .submit_timeout(9, Duration::from_millis(1))
        .unwrap_err();
    assert!(timeout.is_timeout());
    assert_eq!(timeout.kind(), prodkit_batch::SubmitErrorKind::Timeout);
    assert_eq!(batcher.stats().queued_rows, 4);
    drop(closed_gate);
    for t in tickets {
        t.wait().unwrap();
    }
    batcher.shutdown(Duration::from_secs(10));
    assert_eq!(sink.committed(), (0..6).collect::<Vec<_>>());
}

#[test]
fn a_row_larger_than_the_queue_is_refused_at_once() {
    let batcher = start(
        builder()
            .max_bytes(100)
            .queue_bytes(100)
            .row_size(|&r| r as usize),
        &Fake::ok(),
    );
    assert!(matches!(
        batcher.submit(101),
        Err(SubmitError::TooLarge(101))
    ));
    assert!(matches!(
        batcher.try_submit(500),
        Err(TrySubmitError::TooLarge(500))
    ));
    assert!(batcher.submit(100).is_ok());
    // The kinds, without the row: an error of any row type that is Send,
    // Sync and 'static.
    fn error_of_any_row<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let e = batcher.submit(101).unwrap_err();
    assert!(e.is_too_large() && !e.is_closed() && !e.is_timeout());
    let kind = prodkit_batch::SubmitErrorKind::from(e);
    error_of_any_row(&kind);
    assert_eq!(kind, prodkit_batch::SubmitErrorKind::TooLarge);
    let e = batcher.try_submit(500).unwrap_err();
    assert!(e.is_too_large() && !e.is_full());
    assert_eq!(e.kind(), prodkit_batch::SubmitErrorKind::TooLarge);
}

#[test]
fn after_shutdown_rows_come_back() {
    let batcher = start(builder(), &Fake::ok());
    let ticket = batcher.submit(1).unwrap();
    batcher.shutdown(Duration::from_secs(5));
    assert!(ticket.wait().is_ok());
    assert!(matches!(batcher.submit(2), Err(SubmitError::Closed(2))));
    assert!(matches!(
        batcher.try_submit(3),
        Err(TrySubmitError::Closed(3))
    ));
    assert!(matches!(
        batcher.submit_detached(4),
        Err(SubmitError::Closed(4))
    ));
    let e = batcher.submit(5).unwrap_err();
    assert!(e.is_closed());
    assert_eq!(e.kind().to_string(), "the batcher is closed");
    assert_eq!(e.into_inner(), 5);
    assert!(batcher.try_submit(6).unwrap_err().is_closed());
    // A second shutdown returns at once.
    assert_eq!(batcher.shutdown(Duration::ZERO).acked, 1);
}

#[test]
fn shutdown_refuses_what_it_cannot_write_by_its_deadline() {
    // Every write fails transiently, with a budget far longer than the deadline.
    let sink = Fake::new(|_, _| {
        Err(prodkit_batch::SinkError::new(
            prodkit_batch::Failure::Transient,
            "down",
        ))
    });
    let retry = prodkit_batch::RetryPolicy {
        max_attempts: u32::MAX,
        max_elapsed: Duration::from_secs(3600),
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    };
    let batcher = start(builder().max_rows(5).retry(retry), &sink);
    let tickets: Vec<_> = (0..12).map(|i| batcher.submit(i).unwrap()).collect();
    let report = batcher.shutdown(Duration::from_millis(50));
    for (i, t) in tickets.into_iter().enumerate() {
        let nack = t.wait().unwrap_err();
        assert_eq!(nack.row, i as u64, "the row comes back");
        assert_eq!(nack.reason, NackReason::Closed);
    }
    assert_eq!((report.acked, report.nacked), (0, 12));
    // The report says the deadline cut them, and so does a later call.
    assert_eq!(report.cut_by_deadline, 12);
    assert!(!report.is_complete());
    assert_eq!(batcher.shutdown(Duration::ZERO), report);
    assert!(sink.committed().is_empty());
}

#[test]
fn dropping_the_batcher_writes_what_is_queued() {
    let sink = Fake::ok();
    let ticket = {
        let batcher = start(builder(), &sink);
        batcher.submit(42).unwrap()
    };
    assert!(ticket.wait().is_ok());
    assert_eq!(sink.committed(), vec![42]);
}

#[test]
fn several_flushers_share_the_queue() {
    let sink = Fake::ok();
    let batcher = start(builder().flushers(3).max_rows(7), &sink);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let batcher = &batcher;
            s.spawn(move || {
                for i in 0..500 {
                    batcher.submit_detached(t * 1000 + i).unwrap();
                }
            });
        }
    });
    let stats = batcher.shutdown(Duration::from_secs(10)).stats;
    assert_eq!((stats.submitted, stats.acked), (2000, 2000));
    let expected: Vec<u64> = (0..4)
        .flat_map(|t| (0..500).map(move |i| t * 1000 + i))
        .collect();
    let mut expected = expected;
    expected.sort_unstable();
    assert_eq!(sink.committed(), expected);
    assert!(sink.batch_sizes().iter().all(|&n| n <= 7));
}

#[test]
fn configuration_errors() {
    let bad = |b: prodkit_batch::Builder<u64>| match b.build(|| Ok(Fake::ok())) {
        Err(BuildError::Config(e)) => e,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(
        bad(Batcher::builder().max_rows(0)),
        ConfigError::Zero("max_rows")
    );
    assert_eq!(
        bad(Batcher::builder().flushers(0)),
        ConfigError::Zero("flushers")
    );
    assert_eq!(
        bad(Batcher::builder().max_rows(10).queue_rows(5)),
        ConfigError::BatchAboveQueue {
            max_rows: 10,
            queue_rows: 5
        }
    );
    assert_eq!(
        bad(Batcher::builder().max_bytes(1 << 20).queue_bytes(1 << 19)),
        ConfigError::BatchBytesAboveQueue {
            max_bytes: 1 << 20,
            queue_bytes: 1 << 19
        }
    );
    assert_eq!(
        bad(Batcher::builder().flushers(65)),
        ConfigError::TooManyFlushers(65)
    );
    let opening = Batcher::<u64>::builder().build(|| -> Result<Fake, _> {
        Err(prodkit_batch::SinkError::new(
            prodkit_batch::Failure::Permanent,
            "password authentication failed",
        ))
    });
    assert!(matches!(opening, Err(BuildError::Sink(_))));
    // Context in the message, the cause as the source; the sink's error
    // reads as a sentence, its class and details in parentheses.
    let e = opening.unwrap_err();
    assert_eq!(e.to_string(), "opening a sink failed");
    let cause = std::error::Error::source(&e).map(ToString::to_string);
    assert_eq!(
        cause.as_deref(),
        Some("password authentication failed (permanent)")
    );
    let full = prodkit_batch::SinkError::new(prodkit_batch::Failure::Row, "duplicate key")
        .with_code("23505")
        .at_row(3)
        .with_column("id")
        .with_constraint("t_pkey");
    assert_eq!(
        full.to_string(),
        "duplicate key (one row is bad, SQLSTATE 23505, row 3, column id, constraint t_pkey)"
    );
    let bare = prodkit_batch::SinkError::new(prodkit_batch::Failure::Transient, "");
    assert_eq!(bare.to_string(), "sink failure (transient)");
    assert_eq!(
        ConfigError::Zero("queue_rows").to_string(),
        "queue_rows is zero: give at least 1"
    );
}

/// `Duration::MAX` means "no limit", never an overflow: a submit into a full
/// queue with it waits for room, and a retry back-off of `Duration::MAX` is
/// cut short by the shutdown's deadline, which refuses the row.
#[test]
fn the_longest_durations_mean_no_limit_not_a_panic() {
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock();
    let sink = {
        let gate = Arc::clone(&gate);
        Fake::new(move |_, _| {
            drop(gate.lock());
            Ok(())
        })
    };
    let b = builder()
        .max_rows(1)
        .queue_rows(1)
        .submit_timeout(Duration::MAX);
    let batcher = Arc::new(start(b, &sink));
    batcher.submit_detached(1).unwrap();
    // The flusher takes row 1 and blocks in the sink; row 2 fills the queue.
    let (_, _) = crate::timed(Duration::from_secs(10), {
        let batcher = Arc::clone(&batcher);
        move || {
            while batcher.stats().queued_rows > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    batcher.submit_detached(2).unwrap();
    let waiter = {
        let batcher = Arc::clone(&batcher);
        std::thread::spawn(move || batcher.submit(3).map(Ticket::wait))
    };
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !waiter.is_finished(),
        "a full queue made room out of nothing"
    );
    drop(held);
    let (outcome, _) = crate::timed(Duration::from_secs(10), move || waiter.join());
    assert!(
        matches!(outcome, Ok(Ok(Ok(())))),
        "the waiting submit failed or panicked"
    );

    let sink = Fake::new(|_, _| Err(SinkError::new(Failure::Transient, "down")));
    let forever = RetryPolicy {
        max_attempts: u32::MAX,
        max_elapsed: Duration::MAX,
        initial_backoff: Duration::MAX,
        max_backoff: Duration::MAX,
    };
    let batcher = start(builder().max_rows(1).retry(forever), &sink);
    let ticket = batcher.submit(1).unwrap();
    let ((report, outcome), _) = crate::timed(Duration::from_secs(10), move || {
        let report = batcher.shutdown(Duration::from_millis(50));
        (report, ticket.wait())
    });
    assert_eq!(outcome.unwrap_err().reason, NackReason::Closed);
    assert_eq!((report.nacked, report.cut_by_deadline), (1, 1));
}
