//! Property test: whatever a sink does (succeed, refuse a row with or without
//! naming it, fail transiently, time out, fail for good, panic, lose the answer
//! to a COMMIT that did or did not commit), every row ends exactly once, and
//! every ticket tells the truth about the table:
//! - `Ok` rows are stored;
//! - refused rows (`NackReason::is_refused`) are not stored;
//! - a stored row is `Ok` or of unknown outcome, never refused;
//! - with a unique key (the sink refuses a row already stored, as 23505 does)
//!   no row is stored twice, and without one rows are stored at least once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prodkit_batch::{Failure, Sink, SinkError};
use proptest::prelude::*;

use crate::builder;

/// A sink that follows a script of codes, one per write, and records what it
/// committed. Code 13 commits and then reports an unknown outcome (the answer
/// to COMMIT was lost); 9 reports an unknown outcome without committing.
#[derive(Clone)]
struct Scripted {
    script: Arc<Vec<u8>>,
    writes: Arc<Mutex<usize>>,
    stored: Arc<Mutex<HashMap<u64, usize>>>,
    unique: bool,
}

impl Sink<u64> for Scripted {
    fn write(&mut self, rows: &[u64]) -> Result<(), SinkError> {
        let n = {
            let mut w = self.writes.lock();
            *w += 1;
            *w
        };
        let mut stored = self.stored.lock();
        if self.unique
            && let Some(i) = rows.iter().position(|r| stored.contains_key(r))
        {
            return Err(SinkError::new(Failure::Row, "duplicate key")
                .at_row(i)
                .with_code("23505")
                .already_stored());
        }
        let e = |f| SinkError::new(f, "scripted");
        let commit = |stored: &mut HashMap<u64, usize>| {
            for r in rows {
                *stored.entry(*r).or_default() += 1;
            }
        };
        match self.script[n % self.script.len()] {
            0..=5 => {
                commit(&mut stored);
                Ok(())
            }
            6 => Err(e(Failure::Row).at_row(rows[0] as usize % rows.len())),
            7 => Err(e(Failure::Row)),
            8 => Err(e(Failure::Transient)),
            9 => Err(e(Failure::UnknownOutcome)),
            10 => Err(e(Failure::TooLarge)),
            11 => Err(e(Failure::Permanent)),
            12 => panic!("scripted panic"),
            _ => {
                commit(&mut stored);
                Err(e(Failure::UnknownOutcome))
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_ticket_tells_the_truth_about_the_table(
        script in prop::collection::vec(0u8..14, 1..40),
        rows_per_thread in 1u64..120,
        max_rows in 1usize..16,
        flushers in 1usize..3,
        unique in any::<bool>(),
    ) {
        let sink = Scripted {
            script: Arc::new(script),
            writes: Arc::default(),
            stored: Arc::default(),
            unique,
        };
        let s2 = sink.clone();
        let batcher = builder()
            .max_rows(max_rows)
            .queue_rows(64.max(max_rows))
            .flushers(flushers)
            .build(move || Ok(s2.clone()))
            .unwrap();
        let results: Vec<(u64, Result<(), prodkit_batch::NackReason>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2u64)
                .map(|t| {
                    let batcher = &batcher;
                    s.spawn(move || {
                        (0..rows_per_thread)
                            .map(|i| (t << 32 | i, batcher.submit(t << 32 | i).unwrap()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let tickets: Vec<_> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
            batcher.shutdown(Duration::from_secs(60));
            tickets
                .into_iter()
                .map(|(row, ticket)| match ticket.wait() {
                    Ok(()) => (row, Ok(())),
                    Err(nack) => {
                        assert_eq!(nack.row, row, "the nack carries the submitted row");
                        (row, Err(nack.reason))
                    }
                })
                .collect()
        });
        let stored = sink.stored.lock().clone();
        let mut unknown = 0;
        for (row, outcome) in &results {
            let times = stored.get(row).copied().unwrap_or(0);
            match outcome {
                Ok(()) => prop_assert!(times >= 1, "row {} acknowledged but not stored", row),
                Err(reason) if reason.is_refused() => {
                    prop_assert_eq!(times, 0, "row {} refused ({}) but stored", row, reason);
                }
                Err(_) => unknown += 1,
            }
            if unique {
                prop_assert!(times <= 1, "row {} stored {} times with a unique key", row, times);
            }
        }
        let stats = batcher.stats();
        prop_assert_eq!(stats.submitted, 2 * rows_per_thread);
        prop_assert_eq!(stats.acked + stats.nacked, stats.submitted);
        prop_assert_eq!(stats.unknown, unknown);
        prop_assert_eq!(stats.acked as usize, results.iter().filter(|r| r.1.is_ok()).count());
        prop_assert_eq!(stats.queued_rows, 0);
    }
}
