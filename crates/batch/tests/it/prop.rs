//! Property test: whatever a sink does (succeed, refuse a row with or without
//! naming it, fail transiently, time out, fail for good, panic), every row ends
//! exactly once; what was acknowledged is exactly what was committed, once; what
//! was not comes back to its submitter unchanged.

use std::collections::HashSet;
use std::time::Duration;

use prodkit_batch::{Failure, SinkError};
use proptest::prelude::*;

use crate::{Fake, builder, start};

fn outcome(code: u8, rows: &[u64]) -> Result<(), SinkError> {
    let e = |f| SinkError::new(f, "scripted");
    match code {
        0..=5 => Ok(()),
        6 => Err(e(Failure::Row).at_row(rows[0] as usize % rows.len())),
        7 => Err(e(Failure::Row)),
        8 => Err(e(Failure::Transient)),
        9 => Err(e(Failure::UnknownOutcome)),
        10 => Err(e(Failure::TooLarge)),
        11 => Err(e(Failure::Permanent)),
        _ => panic!("scripted panic"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_row_ends_once_and_acks_match_commits(
        script in prop::collection::vec(0u8..13, 1..40),
        rows_per_thread in 1u64..120,
        max_rows in 1usize..16,
        flushers in 1usize..3,
    ) {
        let sink = Fake::new(move |rows, n| outcome(script[n % script.len()], rows));
        let batcher = start(builder().max_rows(max_rows).queue_rows(64.max(max_rows)).flushers(flushers), &sink);
        let results: Vec<(u64, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2u64)
                .map(|t| {
                    let batcher = &batcher;
                    s.spawn(move || {
                        let tickets: Vec<_> = (0..rows_per_thread)
                            .map(|i| (t << 32 | i, batcher.submit(t << 32 | i).unwrap()))
                            .collect();
                        tickets
                    })
                })
                .collect();
            let tickets: Vec<_> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
            batcher.close(Duration::from_secs(60));
            tickets
                .into_iter()
                .map(|(row, ticket)| match ticket.wait() {
                    Ok(()) => (row, true),
                    Err(nack) => {
                        assert_eq!(nack.row, row, "the nack carries the submitted row");
                        (row, false)
                    }
                })
                .collect()
        });
        let committed = sink.committed();
        let unique: HashSet<u64> = committed.iter().copied().collect();
        prop_assert_eq!(unique.len(), committed.len(), "a row was committed twice");
        let acked: HashSet<u64> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
        prop_assert_eq!(&acked, &unique, "acknowledged rows are exactly the committed rows");
        let stats = batcher.stats();
        prop_assert_eq!(stats.submitted, 2 * rows_per_thread);
        prop_assert_eq!(stats.acked as usize, acked.len());
        prop_assert_eq!(stats.acked + stats.nacked, stats.submitted);
        prop_assert_eq!(stats.queued_rows, 0);
    }
}
