//! A COMMIT whose outcome the client cannot know, on a table with a unique key
//! and no declared conflict key: the retry's unique key violation tells
//! whether the lost COMMIT stored the batch. Each test compares the table with
//! the tickets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use prodkit_batch::pg::{Mode, PgTarget, Phase};
use prodkit_batch::{Batcher, NackReason, Ticket};

use crate::chaos::{check_truth, collect, retries};
use crate::pg::{COLUMNS, Ev, ev, table};
use crate::wire::Proxy;

#[test]
fn a_lost_commit_without_a_key_on_a_unique_table_is_never_reported_refused() {
    let Some((pg, port)) = crate::pg::shared_with_port() else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    for mode in [Mode::Copy, Mode::Insert] {
        let name = format!("c_lost_{mode:?}").to_lowercase();
        table(&mut admin, &name);
        let proxy = Proxy::start(port, true);
        let target = PgTarget::new(&proxy.url(), &name, COLUMNS)
            .unwrap()
            .mode(mode);
        let batcher = Batcher::builder()
            .max_rows(300)
            .linger(Duration::from_millis(5))
            .retry(retries())
            .build(|| target.open())
            .unwrap();
        let tickets: Vec<(i64, Ticket<Ev>)> = (0..1200)
            .map(|i| (i, batcher.submit(ev(i)).unwrap()))
            .collect();
        let stats = batcher.shutdown(Duration::from_secs(60)).stats;
        let told = collect(tickets);
        let what = format!("{mode:?}");
        check_truth(pg, &name, &told, &what);
        assert!(
            told.refused.is_empty(),
            "{what}: {:?}",
            &told.refused[..told.refused.len().min(3)]
        );
        assert_eq!(
            told.unknown.len(),
            300,
            "{what}: the batch whose COMMIT answer was lost"
        );
        assert!(
            told.unknown
                .iter()
                .all(|(_, r)| matches!(r, NackReason::Unknown(u) if u.probably_written))
        );
        assert_eq!(stats.unknown, 300);
        // One failure for the lost answer, one for the retry that found the
        // rows stored, and for INSERT (which names no row) one for the first
        // row written alone: no row re-sent one by one.
        let probes = usize::from(mode == Mode::Insert) as u64;
        assert_eq!(stats.failed_writes, 2 + probes, "{what}: {stats:?}");
    }
}

/// COMMIT never reaches the server (the backend is terminated just before it
/// is sent), and before the retry another session stores one of the batch's
/// keys. The retry's violation names that row, not the first: the lost COMMIT
/// stored nothing, so the other rows are written and only the row whose key
/// another session holds is unknown (probably written: a row with its key is
/// stored).
#[test]
fn a_lost_commit_that_stored_nothing_is_told_apart_by_the_first_row() {
    let Some(pg) = crate::pg::shared() else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    for mode in [Mode::Copy, Mode::Insert] {
        let name = format!("l_uncommitted_{mode:?}").to_lowercase();
        table(&mut admin, &name);
        let other = Mutex::new(pg.connect().unwrap());
        let fired = AtomicBool::new(false);
        let insert = format!("INSERT INTO {name} VALUES (50, 'another session')");
        let target = PgTarget::new(&pg.url(), &name, COLUMNS)
            .unwrap()
            .mode(mode)
            .observe(move |phase, pid| {
                if phase != Phase::Committing || fired.swap(true, Ordering::SeqCst) {
                    return;
                }
                // The observer runs in the sink's runtime: the synchronous
                // client runs on a thread of its own.
                std::thread::scope(|s| {
                    s.spawn(|| {
                        let mut other = other.lock();
                        let ended: bool = other
                            .query_one("SELECT pg_terminate_backend($1, 5000)", &[&pid])
                            .unwrap()
                            .get(0);
                        assert!(ended, "backend {pid} ended");
                        other.batch_execute(&insert).unwrap();
                    })
                    .join()
                    .unwrap();
                });
            });
        let batcher = Batcher::builder()
            .max_rows(100)
            .linger(Duration::from_millis(5))
            .retry(retries())
            .build(|| target.open())
            .unwrap();
        let tickets: Vec<(i64, Ticket<Ev>)> = (0..100)
            .map(|i| (i, batcher.submit(ev(i)).unwrap()))
            .collect();
        let stats = batcher.shutdown(Duration::from_secs(60)).stats;
        let told = collect(tickets);
        let what = format!("{mode:?}");
        check_truth(pg, &name, &told, &what);
        assert!(told.refused.is_empty(), "{what}: {:?}", told.refused);
        let unknown: Vec<i64> = told.unknown.iter().map(|(id, _)| *id).collect();
        assert_eq!(unknown, vec![50], "{what}");
        assert!(
            matches!(&told.unknown[0].1, NackReason::Unknown(u) if u.probably_written),
            "{what}: {:?}",
            told.unknown[0].1
        );
        assert_eq!(told.written.len(), 99, "{what}");
        let body: String = admin
            .query_one(&format!("SELECT body FROM {name} WHERE id = 50"), &[])
            .unwrap()
            .get(0);
        assert_eq!(body, "another session", "{what}");
        assert_eq!(stats.unknown, 1, "{what}: {stats:?}");
    }
}
