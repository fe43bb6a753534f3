//! Faults against a real server at its default durability: the postmaster
//! killed with SIGKILL mid-COPY and mid-COMMIT, backends stopped with SIGSTOP
//! during `close`, an outage during `close`, a trigger that raises, a role
//! that loses LOGIN, declarations that do not match the table.
//! After each, the table is compared with the tickets: no row stored whose
//! ticket says refused, none missing whose ticket says written.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prodkit_batch::pg::postgres::types::Type;
use prodkit_batch::pg::{Mode, PgTarget, Phase};
use prodkit_batch::{Batcher, BuildError, Failure, NackReason, RetryPolicy, Ticket};
use prodkit_testkit::{Durability, Options, PgServer};

use crate::pg::{COLUMNS, Ev, ev, ids, table};

/// A private server at the default durability (fsync on), or `None` and a
/// skip line without PostgreSQL.
fn durable_server(what: &str) -> Option<Arc<PgServer>> {
    let options = Options {
        durability: Durability::ServerDefault,
        ..Options::default()
    };
    match PgServer::start(&options) {
        Ok(pg) => Some(Arc::new(pg)),
        Err(prodkit_testkit::StartError::NotFound(e)) if !prodkit_testkit::pg_required() => {
            eprintln!("skipped: {what}: {e}");
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

pub(crate) fn retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10_000,
        max_elapsed: Duration::from_secs(120),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(200),
    }
}

/// What the tickets said, by row id.
#[derive(Debug, Default)]
pub(crate) struct Told {
    pub(crate) written: Vec<i64>,
    pub(crate) refused: Vec<(i64, NackReason)>,
    pub(crate) unknown: Vec<(i64, NackReason)>,
}

pub(crate) fn collect(tickets: Vec<(i64, Ticket<Ev>)>) -> Told {
    let mut told = Told::default();
    for (id, ticket) in tickets {
        match ticket.wait() {
            Ok(()) => told.written.push(id),
            Err(nack) if nack.reason.is_refused() => told.refused.push((id, nack.reason)),
            Err(nack) => told.unknown.push((id, nack.reason)),
        }
    }
    told
}

/// The table against the tickets: written rows stored once, refused rows not
/// stored; rows of unknown outcome may be either.
pub(crate) fn check_truth(pg: &PgServer, name: &str, told: &Told, what: &str) {
    let stored = ids(&mut pg.connect().unwrap(), name);
    let mut count: HashMap<i64, usize> = HashMap::new();
    for id in &stored {
        *count.entry(*id).or_default() += 1;
    }
    for id in &told.written {
        assert_eq!(
            count.get(id),
            Some(&1),
            "{what}: row {id} written but stored {:?} times",
            count.get(id)
        );
    }
    for (id, reason) in &told.refused {
        assert!(
            !count.contains_key(id),
            "{what}: row {id} refused ({reason}) but stored"
        );
    }
    for (id, reason) in &told.unknown {
        if let NackReason::Unknown(u) = reason
            && u.probably_written
        {
            assert!(
                count.contains_key(id),
                "{what}: row {id} 'probably written' but not stored"
            );
        }
    }
}

fn signal(pid: i32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

#[test]
fn the_postmaster_killed_mid_copy_and_mid_commit_leaves_every_ticket_truthful() {
    let Some(pg) = durable_server("prodkit-batch: kill -9 of the postmaster") else {
        return;
    };
    for (case, mode, keyed) in [
        (1, Mode::Copy, false),
        (2, Mode::Copy, true),
        (3, Mode::Insert, false),
    ] {
        let name = format!("c_kill_{case}");
        table(&mut pg.connect().unwrap(), &name);
        // The first kill as half a batch is sent, the second as COMMIT is about
        // to go, the third in whatever a write is doing 300 ms later.
        let kills = Arc::new(AtomicUsize::new(0));
        let crashing = Arc::new(AtomicBool::new(false));
        let killer: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>> = Arc::default();
        let crash = {
            let (pg, crashing, killer) =
                (Arc::clone(&pg), Arc::clone(&crashing), Arc::clone(&killer));
            move |delay: Duration| {
                if crashing.swap(true, Ordering::SeqCst) {
                    return;
                }
                let (pg, crashing) = (Arc::clone(&pg), Arc::clone(&crashing));
                killer.lock().push(std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    pg.crash_restart(Duration::from_millis(300)).unwrap();
                    crashing.store(false, Ordering::SeqCst);
                }));
            }
        };
        let mut target = PgTarget::new(&pg.url(), &name, COLUMNS)
            .unwrap()
            .mode(mode)
            .observe(move |phase, _| {
                let k = kills.load(Ordering::SeqCst);
                let fire = match (k, phase) {
                    (0, Phase::HalfSent) => Some(Duration::ZERO),
                    (1, Phase::Committing) => Some(Duration::ZERO),
                    (2, Phase::Begun) => Some(Duration::from_millis(300)),
                    _ => None,
                };
                if let Some(delay) = fire {
                    kills.fetch_add(1, Ordering::SeqCst);
                    crash(delay);
                }
            });
        if keyed {
            target = target.on_conflict_do_nothing(&["id"]);
        }
        let batcher = Batcher::builder()
            .max_rows(500)
            .linger(Duration::from_millis(5))
            .flushers(2)
            .retry(retries())
            .build(|| target.open())
            .unwrap();
        let tickets: Vec<(i64, Ticket<Ev>)> = std::thread::scope(|s| {
            let producers: Vec<_> = (0..4i64)
                .map(|p| {
                    let batcher = &batcher;
                    s.spawn(move || {
                        (0..5000i64)
                            .map(|i| {
                                let id = p * 1_000_000 + i;
                                (id, batcher.submit(ev(id)).unwrap())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            producers
                .into_iter()
                .flat_map(|p| p.join().unwrap())
                .collect()
        });
        let stats = batcher.shutdown(Duration::from_secs(120)).stats;
        for k in std::mem::take(&mut *killer.lock()) {
            k.join().unwrap();
        }
        let told = collect(tickets);
        let what = format!("{mode:?}, key {keyed}");
        check_truth(&pg, &name, &told, &what);
        assert!(
            stats.failed_writes >= 3,
            "{what}: the crashes were felt: {stats:?}"
        );
        assert!(
            told.refused.is_empty(),
            "{what}: nothing is refused by a crash: {:?}",
            &told.refused[..told.refused.len().min(3)]
        );
        if keyed {
            assert!(
                told.unknown.is_empty(),
                "{what}: the key settles unknown outcomes"
            );
        }
        assert_eq!(told.written.len() + told.unknown.len(), 20_000, "{what}");
    }
}

/// The batcher's backends, by application name.
fn backends(admin: &mut prodkit_batch::pg::postgres::Client, app: &str) -> Vec<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn shutdown_keeps_its_deadline_when_the_backends_are_stopped() {
    let Some(pg) = durable_server("prodkit-batch: SIGSTOP during close") else {
        return;
    };
    let name = "c_stopped";
    table(&mut pg.connect().unwrap(), name);
    let url = format!("{}?application_name=chaos_stopped", pg.url());
    let target = PgTarget::new(&url, name, COLUMNS).unwrap();
    let batcher = Batcher::builder()
        .max_rows(200)
        .linger(Duration::from_millis(5))
        .flushers(2)
        .retry(retries())
        .build(|| target.open())
        .unwrap();
    let mut admin = pg.connect().unwrap();
    let tickets: Vec<(i64, Ticket<Ev>)> = (0..2000)
        .map(|i| (i, batcher.submit(ev(i)).unwrap()))
        .collect();
    // Stop the backends while rows are still being written.
    let stopped = backends(&mut admin, "chaos_stopped");
    assert_eq!(stopped.len(), 2, "{stopped:?}");
    for &pid in &stopped {
        signal(pid, "-STOP");
    }
    let more: Vec<(i64, Ticket<Ev>)> = (2000..3000)
        .map(|i| (i, batcher.submit(ev(i)).unwrap()))
        .collect();
    // A safety net: if close waited for the stopped backends, it would hang;
    // continuing them after 15 s turns that into a failed assertion below.
    let net = {
        let stopped = stopped.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(15));
            for &pid in &stopped {
                let _ = Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            }
        })
    };
    let start = Instant::now();
    batcher.shutdown(Duration::from_secs(2));
    let took = start.elapsed();
    for &pid in &stopped {
        signal(pid, "-CONT");
    }
    drop(net);
    assert!(took < Duration::from_secs(3), "close(2 s) took {took:?}");
    let mut all = tickets;
    all.extend(more);
    let told = collect(all);
    // Let the continued backends notice their dropped connections and end.
    while !backends(&mut admin, "chaos_stopped").is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    check_truth(&pg, name, &told, "stopped backends");
    assert!(
        told.refused
            .iter()
            .all(|(_, r)| matches!(r, NackReason::Closed)),
        "{:?}",
        &told.refused[..told.refused.len().min(3)]
    );
    assert!(
        !told.refused.is_empty() || !told.unknown.is_empty(),
        "the stop was felt"
    );
}

#[test]
fn shutdown_keeps_writing_through_an_outage_until_its_deadline() {
    let Some(pg) = durable_server("prodkit-batch: an outage during close") else {
        return;
    };
    let name = "c_outage";
    table(&mut pg.connect().unwrap(), name);
    let target = PgTarget::new(&pg.url(), name, COLUMNS).unwrap();
    let batcher = Batcher::builder()
        .max_rows(200)
        .linger(Duration::from_millis(5))
        .build(|| target.open())
        .unwrap();
    let restart = {
        let pg = Arc::clone(&pg);
        std::thread::spawn(move || pg.restart(Duration::from_secs(2)).unwrap())
    };
    std::thread::sleep(Duration::from_millis(200));
    let tickets: Vec<(i64, Ticket<Ev>)> = (0..1000)
        .map(|i| (i, batcher.submit(ev(i)).unwrap()))
        .collect();
    let start = Instant::now();
    let stats = batcher.shutdown(Duration::from_secs(30)).stats;
    let took = start.elapsed();
    restart.join().unwrap();
    let told = collect(tickets);
    check_truth(&pg, name, &told, "outage during close");
    assert_eq!(
        told.written.len(),
        1000,
        "written once the server was back: {told:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Backing off, not spinning: 2 s of outage at up to 2 s apart.
    assert!(stats.failed_writes < 50, "{stats:?}");
}

#[test]
fn a_trigger_that_raises_refuses_only_its_row() {
    let Some(pg) = crate::pg::shared() else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    // A plain RAISE EXCEPTION (SQLSTATE P0001), what nearly every trigger
    // raises, in each mode, with and without a conflict key.
    for (mode, key) in [
        (Mode::Copy, false),
        (Mode::Copy, true),
        (Mode::Insert, false),
        (Mode::Insert, true),
    ] {
        let name = "c_trigger";
        table(&mut admin, name);
        admin
            .batch_execute(&format!(
                "CREATE OR REPLACE FUNCTION {name}_guard() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN IF NEW.body = 'poison' THEN RAISE EXCEPTION 'poison row %', NEW.id; \
                 END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER {name}_guard BEFORE INSERT ON {name} \
                 FOR EACH ROW EXECUTE FUNCTION {name}_guard();"
            ))
            .unwrap();
        let mut target = PgTarget::new(&pg.url(), name, COLUMNS).unwrap().mode(mode);
        if key {
            target = target.on_conflict_do_nothing(&["id"]);
        }
        let batcher = Batcher::builder()
            .max_rows(100)
            .linger(Duration::from_millis(5))
            .build(|| target.open())
            .unwrap();
        let tickets: Vec<(i64, Ticket<Ev>)> = (0..100)
            .map(|i| {
                let row = if i == 48 {
                    Ev {
                        id: i,
                        body: "poison".into(),
                    }
                } else {
                    ev(i)
                };
                (i, batcher.submit(row).unwrap())
            })
            .collect();
        let stats = batcher.shutdown(Duration::from_secs(30)).stats;
        let what = format!("trigger, {mode:?}, key {key}");
        let told = collect(tickets);
        check_truth(pg, name, &told, &what);
        let refused: Vec<i64> = told.refused.iter().map(|(id, _)| *id).collect();
        assert_eq!(refused, vec![48], "{what}");
        let error = told.refused[0].1.error().unwrap();
        assert_eq!(error.code.as_deref(), Some("P0001"), "{what}: {error}");
        assert_eq!(told.written.len(), 99, "{what}");
        if mode == Mode::Copy && !key {
            assert_eq!(stats.failed_writes, 1, "{what}: COPY named the row");
        } else {
            // The trigger fires in an INSERT (the statement, or the one from
            // the staging table): no line, the batch is bisected.
            assert!(
                stats.failed_writes <= 2 * 7 + 1,
                "{what}: bisection takes about log2(100) failed writes: {stats:?}"
            );
        }
    }
}

#[test]
fn a_role_that_loses_login_fails_the_batch_at_once() {
    let Some(pg) = durable_server("prodkit-batch: a role that loses LOGIN") else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    let name = "c_login";
    table(&mut admin, name);
    admin
        .batch_execute(&format!(
            "CREATE ROLE chaos_writer LOGIN; GRANT INSERT, SELECT ON {name} TO chaos_writer;"
        ))
        .unwrap();
    let url = pg.url().replacen("postgres@", "chaos_writer@", 1);
    assert_ne!(url, pg.url(), "the url names the user: {url}");
    let target = PgTarget::new(&url, name, COLUMNS).unwrap();
    let batcher = Batcher::builder()
        .max_rows(10)
        .linger(Duration::from_millis(5))
        .retry(retries())
        .build(|| target.open())
        .unwrap();
    assert_eq!(batcher.submit(ev(1)).unwrap().wait(), Ok(()));
    admin
        .batch_execute(
            "ALTER ROLE chaos_writer NOLOGIN; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'chaos_writer';",
        )
        .unwrap();
    let start = Instant::now();
    let ticket = batcher.submit(ev(2)).unwrap();
    let outcome = ticket.wait();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    match outcome.unwrap_err().reason {
        NackReason::Failed(e) => assert_eq!(e.code.as_deref(), Some("28000"), "{e}"),
        other => panic!("{other:?}"),
    }
    batcher.shutdown(Duration::from_secs(10));
    assert_eq!(ids(&mut admin, name), vec![1]);
}

#[test]
fn declarations_that_do_not_match_the_table_are_caught() {
    let Some(pg) = crate::pg::shared() else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    let name = "c_schema";
    table(&mut admin, name);
    // A declared type that is not the column's: build fails, naming it.
    let wrong =
        PgTarget::new(&pg.url(), name, &[("id", Type::INT4), ("body", Type::TEXT)]).unwrap();
    match Batcher::<Ev>::builder().build(|| wrong.open::<Ev>()) {
        Err(BuildError::Sink(e)) => {
            assert_eq!(
                (e.failure, e.code.as_deref(), e.column.as_deref()),
                (Failure::Permanent, Some("42804"), Some("id")),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A column that does not exist.
    let missing =
        PgTarget::new(&pg.url(), name, &[("id", Type::INT8), ("nope", Type::TEXT)]).unwrap();
    match Batcher::<Ev>::builder().build(|| missing.open::<Ev>()) {
        Err(BuildError::Sink(e)) => assert_eq!(e.code.as_deref(), Some("42703"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A conflict key that no unique index matches, or that names no column:
    // open fails, typed, in either mode; not every batch later.
    for mode in [Mode::Copy, Mode::Insert] {
        for (key, code) in [("body", "42P10"), ("nope", "42703")] {
            let keyed = PgTarget::new(&pg.url(), name, COLUMNS)
                .unwrap()
                .mode(mode)
                .on_conflict_do_nothing(&[key]);
            match keyed.open::<Ev>() {
                Err(e) => assert_eq!(
                    (e.failure, e.code.as_deref()),
                    (Failure::Permanent, Some(code)),
                    "{mode:?}, key {key}: {e}"
                ),
                Ok(_) => panic!("{mode:?}: key {key} accepted"),
            }
        }
        // The primary key is accepted, and the check inserted nothing.
        let keyed = PgTarget::new(&pg.url(), name, COLUMNS)
            .unwrap()
            .mode(mode)
            .on_conflict_do_nothing(&["id"]);
        keyed.open::<Ev>().unwrap();
    }
    assert!(ids(&mut admin, name).is_empty());
    // A zero write timeout is a mistake named at open.
    let zero = PgTarget::new(&pg.url(), name, COLUMNS)
        .unwrap()
        .write_timeout(Duration::ZERO);
    assert_eq!(
        zero.open::<Ev>().map(|_| ()).unwrap_err().failure,
        Failure::Permanent
    );
    // Rows whose values are not the declared type: one failed write per batch,
    // naming the column, not one per row.
    struct Narrow(i32, String);
    impl prodkit_batch::pg::PgRow for Narrow {
        fn values<'a>(
            &'a self,
            out: &mut Vec<&'a (dyn prodkit_batch::pg::postgres::types::ToSql + Sync)>,
        ) {
            out.push(&self.0);
            out.push(&self.1);
        }
    }
    for mode in [Mode::Copy, Mode::Insert] {
        let target = PgTarget::new(&pg.url(), name, COLUMNS).unwrap().mode(mode);
        let batcher = Batcher::builder()
            .max_rows(50)
            .linger(Duration::from_secs(60))
            .build(|| target.open())
            .unwrap();
        let tickets: Vec<_> = (0..200)
            .map(|i| batcher.submit(Narrow(i, "x".into())).unwrap())
            .collect();
        let stats = batcher.shutdown(Duration::from_secs(30)).stats;
        for t in tickets {
            match t.wait().unwrap_err().reason {
                NackReason::Failed(e) => {
                    assert_eq!(
                        (e.code.as_deref(), e.column.as_deref()),
                        (Some("42804"), Some("id")),
                        "{e}"
                    );
                }
                other => panic!("{mode:?}: {other:?}"),
            }
        }
        assert_eq!(stats.failed_writes, 4, "{mode:?}: one per batch of 50");
    }
}

#[test]
fn copy_with_a_key_names_poison_rows_by_line() {
    let Some(pg) = crate::pg::shared() else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    let name = "c_poison_keyed";
    table(&mut admin, name);
    let target = PgTarget::new(&pg.url(), name, COLUMNS)
        .unwrap()
        .on_conflict_do_nothing(&["id"]);
    let batcher = Batcher::builder()
        .max_rows(1000)
        .linger(Duration::from_millis(5))
        .build(|| target.open())
        .unwrap();
    // One row in a hundred breaks the table's CHECK (body <> 'bad').
    let tickets: Vec<(i64, Ticket<Ev>)> = (0..10_000)
        .map(|i| {
            let row = if i % 100 == 50 {
                Ev {
                    id: i,
                    body: "bad".into(),
                }
            } else {
                ev(i)
            };
            (i, batcher.submit(row).unwrap())
        })
        .collect();
    let stats = batcher.shutdown(Duration::from_secs(60)).stats;
    let told = collect(tickets);
    check_truth(pg, name, &told, "poison with a key");
    assert_eq!(told.refused.len(), 100);
    assert!(
        told.refused.iter().all(
            |(_, r)| matches!(r, NackReason::Rejected(e) if e.code.as_deref() == Some("23514"))
        )
    );
    // Each poison row costs one failed write (named by COPY's line), not a
    // bisection of its batch.
    assert_eq!(stats.failed_writes, 100, "{stats:?}");
}
