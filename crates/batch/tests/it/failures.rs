//! What each class of failure does to a batch, and that every row ends exactly
//! once with the row handed back when it was not written.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prodkit_batch::{Failure, Nack, NackReason, RetryPolicy, SinkError};

use crate::{Fake, builder, start};

fn fail(failure: Failure) -> SinkError {
    SinkError::new(failure, "scripted")
}

/// Submits `rows`, closes, and returns the committed rows and the nacks.
fn run(
    sink: &Fake,
    b: prodkit_batch::Builder<u64>,
    rows: std::ops::Range<u64>,
) -> (Vec<u64>, Vec<Nack<u64>>) {
    let batcher = start(b, sink);
    let tickets: Vec<_> = rows.map(|i| batcher.submit(i).unwrap()).collect();
    // A deadline far away, also on the mock clock of the time-budget test.
    batcher.shutdown(Duration::from_secs(3600));
    let nacks = tickets.into_iter().filter_map(|t| t.wait().err()).collect();
    (sink.committed(), nacks)
}

#[test]
fn a_named_bad_row_is_refused_and_the_rest_written() {
    let sink = Fake::new(|rows, _| match rows.iter().position(|&r| r == 13) {
        Some(i) => Err(fail(Failure::Row)
            .at_row(i)
            .with_code("23505")
            .with_constraint("t_pkey")),
        None => Ok(()),
    });
    let (committed, nacks) = run(&sink, builder(), 0..30);
    assert_eq!(committed, (0..30).filter(|&r| r != 13).collect::<Vec<_>>());
    assert_eq!(nacks.len(), 1);
    assert_eq!(nacks[0].row, 13);
    match &nacks[0].reason {
        NackReason::Rejected(e) => {
            assert_eq!(
                (e.code.as_deref(), e.constraint.as_deref(), e.row),
                (Some("23505"), Some("t_pkey"), Some(3))
            );
        }
        other => panic!("{other:?}"),
    }
    // The batch 10..20 was written twice: once failing, once without row 13.
    assert_eq!(sink.batch_sizes(), vec![10, 10, 9, 10]);
}

#[test]
fn unnamed_bad_rows_are_found_by_bisection() {
    let bad = [3u64, 7, 8, 29];
    let sink = Fake::new(move |rows, _| {
        if rows.iter().any(|r| bad.contains(r)) {
            Err(fail(Failure::Row))
        } else {
            Ok(())
        }
    });
    let (committed, nacks) = run(&sink, builder(), 0..30);
    assert_eq!(
        committed,
        (0..30).filter(|r| !bad.contains(r)).collect::<Vec<_>>()
    );
    let mut refused: Vec<u64> = nacks.iter().map(|n| n.row).collect();
    refused.sort_unstable();
    assert_eq!(refused, bad);
    assert!(
        nacks
            .iter()
            .all(|n| matches!(n.reason, NackReason::Rejected(_)))
    );
}

#[test]
fn transient_failures_are_retried_after_a_reconnect() {
    let sink = Fake::new(|_, n| {
        if n <= 3 {
            Err(fail(Failure::Transient))
        } else {
            Ok(())
        }
    });
    let batcher = start(builder(), &sink);
    let tickets: Vec<_> = (0..10).map(|i| batcher.submit(i).unwrap()).collect();
    assert!(tickets.into_iter().all(|t| t.wait().is_ok()));
    let stats = batcher.shutdown(Duration::from_secs(5)).stats;
    assert_eq!(*sink.reconnects.lock(), 3);
    assert_eq!(
        (
            stats.acked,
            stats.retried,
            stats.failed_writes,
            stats.batches
        ),
        (10, 30, 3, 1)
    );
    assert!(stats.last_error.unwrap().contains("(transient"));
}

#[test]
fn the_retry_budget_ends_retries_and_hands_every_row_back() {
    let sink = Fake::new(|_, _| Err(fail(Failure::Transient).with_code("08006")));
    let (committed, nacks) = run(&sink, builder(), 0..10);
    assert!(committed.is_empty());
    assert_eq!(
        nacks.iter().map(|n| n.row).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(nacks.iter().all(|n| matches!(&n.reason, NackReason::RetriesExhausted(e) if e.code.as_deref() == Some("08006"))));
    assert!(nacks.iter().all(|n| n.reason.is_refused()));
    // max_attempts 5: five writes of the one batch.
    assert_eq!(sink.batch_sizes(), vec![10; 5]);
}

#[test]
fn an_unknown_outcome_is_never_reported_as_refused() {
    // The first write's COMMIT outcome is unknown; every later write fails
    // transiently until the budget is used up: the rows may be stored.
    let sink = Fake::new(|_, n| {
        Err(fail(if n == 1 {
            Failure::UnknownOutcome
        } else {
            Failure::Transient
        })
        .with_code(if n == 1 { "57P01" } else { "08006" }))
    });
    let (committed, nacks) = run(&sink, builder(), 0..10);
    assert!(committed.is_empty());
    assert_eq!(nacks.len(), 10);
    for n in &nacks {
        match &n.reason {
            NackReason::Unknown(u) => {
                assert_eq!(u.cause.code.as_deref(), Some("57P01"));
                assert_eq!(
                    u.last.as_ref().and_then(|e| e.code.as_deref()),
                    Some("08006")
                );
                assert!(!u.probably_written);
            }
            other => panic!("{other:?}"),
        }
        assert!(!n.reason.is_refused());
    }
}

#[test]
fn a_retry_that_finds_the_rows_stored_settles_the_batch_as_probably_written() {
    // The unknown write did commit; without a conflict key the retry hits the
    // unique key on its first row. The whole batch is "unknown, probably
    // written" after that one retry: no row is refused, none re-sent again.
    let sink = Fake::new(|rows, n| match n {
        1 => Err(fail(Failure::UnknownOutcome)),
        _ => Err(fail(Failure::Row)
            .at_row(0)
            .with_code("23505")
            .already_stored()
            .with_constraint(format!("pk {}", rows[0]))),
    });
    let (committed, nacks) = run(&sink, builder().max_rows(10), 0..10);
    assert!(committed.is_empty());
    assert_eq!(nacks.len(), 10);
    assert!(
        nacks
            .iter()
            .all(|n| matches!(&n.reason, NackReason::Unknown(u) if u.probably_written)),
        "{nacks:?}"
    );
    assert_eq!(
        sink.batch_sizes(),
        vec![10, 10],
        "one retry, not one per row"
    );
    // Without an unknown outcome before it, the same error refuses the row.
    let sink = Fake::new(|rows, _| match rows.iter().position(|&r| r == 4) {
        Some(i) => Err(fail(Failure::Row)
            .at_row(i)
            .with_code("23505")
            .already_stored()),
        None => Ok(()),
    });
    let (committed, nacks) = run(&sink, builder(), 0..10);
    assert_eq!(committed.len(), 9);
    assert!(matches!(&nacks[0].reason, NackReason::Rejected(_)));
}

#[test]
fn a_reconnect_refused_for_good_fails_the_batch_at_once() {
    #[derive(Clone)]
    struct LostLogin(Arc<Mutex<u32>>);
    impl prodkit_batch::Sink<u64> for LostLogin {
        fn write(&mut self, _: &[u64]) -> Result<(), SinkError> {
            *self.0.lock() += 1;
            Err(SinkError::new(Failure::Transient, "connection lost"))
        }
        fn reconnect(&mut self) -> Result<(), SinkError> {
            Err(SinkError::new(Failure::Permanent, "role cannot log in").with_code("28000"))
        }
    }
    let writes = Arc::new(Mutex::new(0));
    let sink = LostLogin(Arc::clone(&writes));
    let batcher = builder().build(move || Ok(sink.clone())).unwrap();
    let tickets: Vec<_> = (0..10).map(|i| batcher.submit(i).unwrap()).collect();
    batcher.shutdown(Duration::from_secs(60));
    for t in tickets {
        match t.wait().unwrap_err().reason {
            NackReason::Failed(e) => assert_eq!(e.code.as_deref(), Some("28000")),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(*writes.lock(), 1, "no write after the refused login");
}

#[test]
fn the_retry_budget_is_also_a_time_budget() {
    let (clock, time) = prodkit_batch::quanta::Clock::mock();
    let sink = Fake::new(move |_, _| {
        // Each write "takes" 20 s on the mock clock.
        time.increment(Duration::from_secs(20));
        Err(fail(Failure::Transient))
    });
    let retry = RetryPolicy {
        max_attempts: 100,
        max_elapsed: Duration::from_secs(45),
        ..builder_retry()
    };
    let (_, nacks) = run(&sink, builder().retry(retry).clock(clock), 0..10);
    assert_eq!(nacks.len(), 10);
    assert!(
        nacks
            .iter()
            .all(|n| matches!(n.reason, NackReason::RetriesExhausted(_)))
    );
    // Failures at 20 s, 40 s (elapsed 20 s since the first), 60 s (40 s), 80 s (60 s: over).
    assert_eq!(sink.batch_sizes().len(), 4);
}

fn builder_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        max_elapsed: Duration::from_secs(60),
        initial_backoff: Duration::from_micros(100),
        max_backoff: Duration::from_millis(1),
    }
}

#[test]
fn a_permanent_failure_refuses_the_batch_without_retry() {
    let sink = Fake::new(|rows, _| {
        if rows.contains(&0) {
            Err(fail(Failure::Permanent).with_code("42P01"))
        } else {
            Ok(())
        }
    });
    let (committed, nacks) = run(&sink, builder(), 0..20);
    assert_eq!(committed, (10..20).collect::<Vec<_>>());
    assert_eq!(nacks.len(), 10);
    assert!(
        nacks.iter().all(
            |n| matches!(&n.reason, NackReason::Failed(e) if e.code.as_deref() == Some("42P01"))
        )
    );
    assert_eq!(sink.batch_sizes(), vec![10, 10]);
}

#[test]
fn too_large_batches_are_written_in_halves() {
    let sink = Fake::new(|rows, _| {
        if rows.len() > 3 {
            Err(fail(Failure::TooLarge).with_code("57014"))
        } else {
            Ok(())
        }
    });
    let (committed, nacks) = run(&sink, builder(), 0..10);
    assert!(nacks.is_empty());
    assert_eq!(committed, (0..10).collect::<Vec<_>>());
    let sizes = sink.batch_sizes();
    assert_eq!(sizes.iter().filter(|&&n| n <= 3).sum::<usize>(), 10);
}

#[test]
fn a_sink_that_panics_in_a_write_leaves_its_batch_unknown_and_the_flusher_goes_on() {
    // The sink may panic after its COMMIT: "not stored" could be a lie.
    let sink = Fake::new(|rows, _| {
        assert!(!rows.contains(&5), "row five is poison");
        Ok(())
    });
    let (committed, nacks) = run(&sink, builder(), 0..20);
    assert_eq!(committed, (10..20).collect::<Vec<_>>());
    assert_eq!(nacks.len(), 10);
    for nack in &nacks {
        assert!(!nack.reason.is_refused(), "{}", nack.reason);
        match &nack.reason {
            NackReason::Unknown(u) => {
                assert!(
                    u.cause.message.contains("row five is poison"),
                    "{}",
                    u.cause
                );
                assert!(!u.probably_written);
            }
            other => panic!("{other:?}"),
        }
    }
    // Written once: the batch is not sent again after the panic.
    assert_eq!(sink.batch_sizes(), [10, 10]);
}

#[test]
fn detached_rows_that_fail_reach_the_dead_letter_callback() {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let sink = Fake::new(|rows, _| match rows.iter().position(|&r| r % 4 == 0) {
        Some(i) => Err(fail(Failure::Row).at_row(i)),
        None => Ok(()),
    });
    let b = builder().dead_letter({
        let dead = Arc::clone(&dead);
        move |nack: Nack<u64>| dead.lock().push(nack.row)
    });
    let batcher = start(b, &sink);
    for i in 0..20 {
        batcher.submit_detached(i).unwrap();
    }
    let stats = batcher.shutdown(Duration::from_secs(5)).stats;
    let mut dead = dead.lock().clone();
    dead.sort_unstable();
    assert_eq!(dead, vec![0, 4, 8, 12, 16]);
    assert_eq!((stats.acked, stats.nacked), (15, 5));
    assert_eq!(sink.committed().len(), 15);
}
