//! The PostgreSQL sinks against a real server (prodkit-testkit): every mode, bad
//! rows, lost connections at each step of a write, a restart mid-batch, a server
//! down for seconds. After each: the rows in the table are exactly the rows whose
//! ticket said Ok, and no row is stored twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use prodkit_batch::pg::postgres::Client;
use prodkit_batch::pg::postgres::types::{ToSql, Type};
use prodkit_batch::pg::{Mode, PgRow, PgTarget, Phase};
use prodkit_batch::{
    Batcher, BuildError, Builder, Failure, NackReason, RetryPolicy, Ticket, TrySubmitError,
};
use prodkit_testkit::{Durability, Options, PgServer, shared_or_skip};

use crate::wire::Proxy;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ev {
    pub(crate) id: i64,
    pub(crate) body: String,
}

impl PgRow for Ev {
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        out.push(&self.id);
        out.push(&self.body);
    }
}

pub(crate) fn ev(id: i64) -> Ev {
    Ev {
        id,
        body: format!("event number {id:>8} with a payload of about sixty-four bytes"),
    }
}

pub(crate) const COLUMNS: &[(&str, Type)] = &[("id", Type::INT8), ("body", Type::TEXT)];

/// The test process's server, or `None` (and a skip line) without PostgreSQL.
pub(crate) fn shared() -> Option<&'static PgServer> {
    shared_or_skip(Durability::Fast, "prodkit-batch: PostgreSQL sinks")
}

/// The shared server and its loopback port, for the tests that put the wire
/// proxy in front of it; `None` (and a skip line) without PostgreSQL or when
/// `DATABASE_URL` names a server whose port we do not know.
pub(crate) fn shared_with_port() -> Option<(&'static PgServer, u16)> {
    let pg = shared()?;
    let Some(port) = pg.port() else {
        eprintln!("skipped: the wire-proxy tests need a private server (DATABASE_URL is set)");
        return None;
    };
    Some((pg, port))
}

/// A fresh table `name (id int8 primary key, body text)` whose every inserted
/// row takes `seconds` in a trigger.
fn slow_table(client: &mut Client, name: &str, seconds: f64) {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int8 PRIMARY KEY, body text); \
             CREATE OR REPLACE FUNCTION {name}_row() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NEW; END $$; \
             CREATE TRIGGER {name}_row BEFORE INSERT ON {name} \
             FOR EACH ROW EXECUTE FUNCTION {name}_row();"
        ))
        .unwrap();
}

/// A fresh table `name` with a primary key on id and a check on body.
pub(crate) fn table(client: &mut Client, name: &str) {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {name}; \
             CREATE TABLE {name} (id int8 CONSTRAINT {name}_pkey PRIMARY KEY, \
             body text NOT NULL CONSTRAINT {name}_body CHECK (body <> 'bad'))"
        ))
        .unwrap();
}

pub(crate) fn ids(client: &mut Client, name: &str) -> Vec<i64> {
    client
        .query(&format!("SELECT id FROM {name} ORDER BY id"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1000,
        max_elapsed: Duration::from_secs(60),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(200),
    }
}

fn builder() -> Builder<Ev> {
    Batcher::builder()
        .max_rows(500)
        .linger(Duration::from_millis(5))
        .retry(fast_retries())
}

/// Submits `rows`, closes, and splits the outcomes.
fn run(
    batcher: &Batcher<Ev>,
    rows: impl IntoIterator<Item = Ev>,
) -> (Vec<i64>, Vec<(i64, NackReason)>) {
    let tickets: Vec<(i64, Ticket<Ev>)> = rows
        .into_iter()
        .map(|r| (r.id, batcher.submit(r).unwrap()))
        .collect();
    batcher.shutdown(Duration::from_secs(120));
    let (mut acked, mut nacked) = (Vec::new(), Vec::new());
    for (id, ticket) in tickets {
        match ticket.wait() {
            Ok(()) => acked.push(id),
            Err(nack) => {
                assert_eq!(nack.row.id, id, "the row comes back");
                nacked.push((id, nack.reason));
            }
        }
    }
    acked.sort_unstable();
    (acked, nacked)
}

#[test]
fn both_modes_write_every_row() {
    let Some(pg) = shared() else { return };
    let mut admin = pg.connect().unwrap();
    for (mode, name) in [(Mode::Copy, "b_all_copy"), (Mode::Insert, "b_all_insert")] {
        table(&mut admin, name);
        let target = PgTarget::new(&pg.url(), name, COLUMNS).unwrap().mode(mode);
        let batcher = builder().flushers(2).build(|| target.open()).unwrap();
        let (acked, nacked) = run(&batcher, (0..2000).map(ev));
        assert!(nacked.is_empty(), "{mode:?}: {nacked:?}");
        assert_eq!(acked, (0..2000).collect::<Vec<_>>());
        assert_eq!(
            ids(&mut admin, name),
            acked,
            "{mode:?}: the table holds exactly the acked rows"
        );
    }
}

#[test]
fn one_duplicate_in_a_thousand_is_the_only_row_refused() {
    let Some(pg) = shared() else { return };
    let mut admin = pg.connect().unwrap();
    for (mode, name) in [(Mode::Copy, "b_dup_copy"), (Mode::Insert, "b_dup_insert")] {
        table(&mut admin, name);
        admin
            .execute(
                &format!("INSERT INTO {name} VALUES (500, 'already there')"),
                &[],
            )
            .unwrap();
        let target = PgTarget::new(&pg.url(), name, COLUMNS).unwrap().mode(mode);
        let batcher = builder().max_rows(1000).build(|| target.open()).unwrap();
        let (acked, nacked) = run(&batcher, (0..1000).map(ev));
        assert_eq!(acked.len(), 999, "{mode:?}");
        assert_eq!(nacked.len(), 1);
        let (id, reason) = &nacked[0];
        assert_eq!(*id, 500);
        match reason {
            NackReason::Rejected(e) => {
                assert_eq!(e.code.as_deref(), Some("23505"));
                assert_eq!(
                    e.constraint.as_deref(),
                    Some(format!("{name}_pkey").as_str())
                );
                assert_eq!(e.failure, Failure::Row);
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        let mut stored = ids(&mut admin, name);
        stored.retain(|&i| i != 500);
        assert_eq!(
            stored, acked,
            "{mode:?}: the acked rows are stored, nothing more"
        );
        let failed = batcher.stats().failed_writes;
        if mode == Mode::Copy {
            // COPY names the line: one failed write, then the 999 at once.
            assert_eq!(failed, 1);
        } else {
            // INSERT cannot: bisection, about log2(1000) failed writes.
            assert!((2..=20).contains(&failed), "{failed}");
        }
    }
}

#[test]
fn bad_values_and_a_missing_table() {
    let Some(pg) = shared() else { return };
    let mut admin = pg.connect().unwrap();
    for (mode, name) in [
        (Mode::Copy, "b_check_copy"),
        (Mode::Insert, "b_check_insert"),
    ] {
        table(&mut admin, name);
        let target = PgTarget::new(&pg.url(), name, COLUMNS).unwrap().mode(mode);
        let batcher = builder().build(|| target.open()).unwrap();
        let rows = (0..100).map(|i| {
            if i % 30 == 7 {
                Ev {
                    id: i,
                    body: "bad".into(),
                }
            } else {
                ev(i)
            }
        });
        let (acked, nacked) = run(&batcher, rows);
        let refused: Vec<i64> = nacked.iter().map(|(id, _)| *id).collect();
        assert_eq!(refused, vec![7, 37, 67, 97], "{mode:?}");
        assert!(nacked.iter().all(
            |(_, r)| matches!(r, NackReason::Rejected(e) if e.code.as_deref() == Some("23514"))
        ));
        assert_eq!(ids(&mut admin, name), acked);
    }
    // A missing table is found when the sink opens: build fails, typed.
    let missing = PgTarget::new(&pg.url(), "b_no_such_table", COLUMNS).unwrap();
    match builder().build(|| missing.open()) {
        Err(BuildError::Sink(e)) => {
            assert_eq!(
                (e.failure, e.code.as_deref()),
                (Failure::Permanent, Some("42P01"))
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Cuts the writer's connection with `pg_terminate_backend` the first time a
/// write reaches `at`.
fn cut_at(pg: &PgServer, at: Phase) -> impl Fn(Phase, i32) + Send + Sync + 'static {
    let admin = Mutex::new(pg.connect().unwrap());
    let done = AtomicBool::new(false);
    move |phase, pid| {
        if phase == at && !done.swap(true, Ordering::SeqCst) {
            // The observer runs in the sink's runtime: the synchronous client
            // blocks on a runtime of its own, so it runs on a thread of its own.
            let ok: bool = std::thread::scope(|s| {
                s.spawn(|| {
                    admin
                        .lock()
                        .query_one("SELECT pg_terminate_backend($1, 5000)", &[&pid])
                        .unwrap()
                        .get(0)
                })
                .join()
                .unwrap()
            });
            assert!(ok, "terminated backend {pid}");
        }
    }
}

#[test]
fn a_connection_cut_at_any_step_loses_nothing_and_stores_nothing_twice() {
    let Some(pg) = shared() else { return };
    let mut admin = pg.connect().unwrap();
    let mut case = 0;
    for mode in [Mode::Copy, Mode::Insert] {
        for keyed in [false, true] {
            for at in [Phase::Begun, Phase::HalfSent, Phase::Committing] {
                case += 1;
                let name = format!("b_cut_{case}");
                table(&mut admin, &name);
                let mut target = PgTarget::new(&pg.url(), &name, COLUMNS)
                    .unwrap()
                    .mode(mode)
                    .observe(cut_at(pg, at));
                if keyed {
                    target = target.on_conflict_do_nothing(&["id"]);
                }
                let batcher = builder().build(|| target.open()).unwrap();
                let (acked, nacked) = run(&batcher, (0..1200).map(ev));
                let what = format!("{mode:?}, key {keyed}, cut at {at:?}");
                assert!(nacked.is_empty(), "{what}: {nacked:?}");
                assert_eq!(acked.len(), 1200, "{what}");
                assert_eq!(
                    ids(&mut admin, &name),
                    acked,
                    "{what}: stored = acked, once each"
                );
                let stats = batcher.stats();
                assert!(
                    stats.failed_writes >= 1 && stats.retried >= 1,
                    "{what}: {stats:?}"
                );
            }
        }
    }
}

fn private_server(what: &str) -> Option<PgServer> {
    match PgServer::start(&Options::default()) {
        Ok(pg) => Some(pg),
        Err(prodkit_testkit::StartError::NotFound(e)) if !prodkit_testkit::pg_required() => {
            eprintln!("skipped: {what}: {e}");
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn a_server_restart_mid_batch_and_an_outage_of_seconds_lose_nothing() {
    let Some(pg) = private_server("prodkit-batch: restart and outage") else {
        return;
    };
    let pg = Arc::new(pg);
    for (name, down_for) in [
        ("b_restart", Duration::ZERO),
        ("b_outage", Duration::from_secs(3)),
    ] {
        table(&mut pg.connect().unwrap(), name);
        let restarter: Arc<Mutex<Option<std::thread::JoinHandle<()>>>> = Arc::default();
        let fired = AtomicBool::new(false);
        let target = PgTarget::new(&pg.url(), name, COLUMNS).unwrap().observe({
            let (pg, restarter) = (Arc::clone(&pg), Arc::clone(&restarter));
            move |phase, _| {
                if phase == Phase::HalfSent && !fired.swap(true, Ordering::SeqCst) {
                    let pg = Arc::clone(&pg);
                    *restarter.lock() =
                        Some(std::thread::spawn(move || pg.restart(down_for).unwrap()));
                }
            }
        });
        // A small queue: while the server is down, submitters are pushed back.
        let batcher = builder()
            .max_rows(200)
            .queue_rows(400)
            .build(|| target.open())
            .unwrap();
        // try_submit first: a full queue hands the row back, then submit waits.
        let mut pushed_back = 0;
        let tickets: Vec<Ticket<Ev>> = (0..5000)
            .map(|i| match batcher.try_submit(ev(i)) {
                Ok(ticket) => ticket,
                Err(TrySubmitError::Full(row)) => {
                    assert_eq!(row, ev(i), "the row comes back");
                    assert!(batcher.stats().queued_rows <= 400, "the queue is bounded");
                    pushed_back += 1;
                    batcher.submit(row).unwrap()
                }
                Err(e) => panic!("{name}: {e:?}"),
            })
            .collect();
        batcher.shutdown(Duration::from_secs(120));
        let (mut acked, mut nacked) = (Vec::new(), Vec::new());
        for (i, ticket) in (0..).zip(tickets) {
            match ticket.wait() {
                Ok(()) => acked.push(i),
                Err(nack) => nacked.push((i, nack.reason)),
            }
        }
        assert!(pushed_back > 0, "{name}: the submitter was pushed back");
        if let Some(restart) = restarter.lock().take() {
            restart.join().unwrap();
        }
        assert!(nacked.is_empty(), "{name}: {nacked:?}");
        assert_eq!(acked.len(), 5000);
        let mut admin = pg.connect().unwrap();
        assert_eq!(
            ids(&mut admin, name),
            acked,
            "{name}: stored = acked, once each"
        );
        assert!(
            batcher.stats().failed_writes >= 1,
            "{name}: the restart was felt"
        );
    }
}

#[test]
fn a_commit_whose_answer_is_lost_is_stored_once_with_a_key_and_at_least_once_without() {
    let Some((pg, port)) = shared_with_port() else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    for (case, mode, keyed) in [
        (1, Mode::Copy, true),
        (2, Mode::Insert, true),
        (3, Mode::Copy, false),
    ] {
        let name = format!("b_lost_commit_{case}");
        if keyed {
            table(&mut admin, &name);
        } else {
            // No unique key at all: nothing can stop the second copy.
            admin
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int8, body text)"
                ))
                .unwrap();
        }
        let proxy = Proxy::start(port, true);
        let mut target = PgTarget::new(&proxy.url(), &name, COLUMNS)
            .unwrap()
            .mode(mode);
        if keyed {
            target = target.on_conflict_do_nothing(&["id"]);
        }
        let batcher = builder().build(|| target.open()).unwrap();
        let (acked, nacked) = run(&batcher, (0..1200).map(ev));
        let what = format!("{mode:?}, key {keyed}");
        assert_eq!(
            proxy.seen.get(|s| &s.cuts),
            1,
            "{what}: one COMMIT answer was lost"
        );
        assert!(!proxy.armed.load(Ordering::SeqCst));
        assert!(nacked.is_empty(), "{what}: {nacked:?}");
        assert_eq!(acked, (0..1200).collect::<Vec<_>>());
        let stored = ids(&mut admin, &name);
        if keyed {
            assert_eq!(stored, acked, "{what}: exactly once");
        } else {
            let mut distinct = stored.clone();
            distinct.dedup();
            assert_eq!(distinct, acked, "{what}: every row stored");
            assert!(
                stored.len() > 1200,
                "{what}: the lost commit's batch was stored twice"
            );
        }
        assert!(batcher.stats().last_error.is_some());
    }
}

#[test]
fn a_statement_timeout_halves_the_batch_and_a_deferred_constraint_is_bisected() {
    let Some(pg) = shared() else { return };
    let mut admin = pg.connect().unwrap();
    // Each row takes 2 ms in a trigger; statements may take 60 ms: batches of 200
    // time out (57014) and are halved until they fit.
    slow_table(&mut admin, "b_slow", 0.002);
    let target = PgTarget::new(&pg.url(), "b_slow", COLUMNS)
        .unwrap()
        .statement_timeout(Duration::from_millis(60));
    let batcher = builder().max_rows(200).build(|| target.open()).unwrap();
    let (acked, nacked) = run(&batcher, (0..400).map(ev));
    assert!(nacked.is_empty(), "{nacked:?}");
    assert_eq!(ids(&mut admin, "b_slow"), acked);
    assert_eq!(acked.len(), 400);
    let stats = batcher.stats();
    assert!(stats.failed_writes >= 2, "{stats:?}");
    assert!(stats.last_error.is_some_and(|e| e.contains("57014")));

    // A deferred unique constraint fails at COMMIT, naming no line: bisection.
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS b_deferred; CREATE TABLE b_deferred (id int8, body text, \
             CONSTRAINT b_deferred_id UNIQUE (id) DEFERRABLE INITIALLY DEFERRED); \
             INSERT INTO b_deferred VALUES (123, 'already there')",
        )
        .unwrap();
    let target = PgTarget::new(&pg.url(), "b_deferred", COLUMNS).unwrap();
    let batcher = builder().build(|| target.open()).unwrap();
    let (acked, nacked) = run(&batcher, (0..500).map(ev));
    assert_eq!(nacked.len(), 1);
    assert_eq!(nacked[0].0, 123);
    assert!(
        matches!(&nacked[0].1, NackReason::Rejected(e) if e.code.as_deref() == Some("23505") && e.row.is_none())
    );
    let mut stored = ids(&mut admin, "b_deferred");
    stored.retain(|&i| i != 123);
    assert_eq!(stored, acked);
    assert_eq!(acked.len(), 499);
}

/// A row whose body may be a value of the wrong type for the text column: it
/// cannot be encoded, and only the client can tell.
#[derive(Debug)]
struct Loose {
    id: i64,
    body: Result<String, i32>,
}

impl PgRow for Loose {
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        out.push(&self.id);
        match &self.body {
            Ok(text) => out.push(text),
            Err(number) => out.push(number),
        }
    }
}

#[test]
fn a_value_that_cannot_be_encoded_refuses_only_its_row() {
    let Some(pg) = shared() else { return };
    let mut admin = pg.connect().unwrap();
    for (mode, name) in [(Mode::Copy, "b_enc_copy"), (Mode::Insert, "b_enc_insert")] {
        table(&mut admin, name);
        // The backends that ran writes: one, if no failure was taken for a
        // broken connection.
        let backends: Arc<Mutex<Vec<i32>>> = Arc::default();
        let target = PgTarget::new(&pg.url(), name, COLUMNS)
            .unwrap()
            .mode(mode)
            .observe({
                let backends = Arc::clone(&backends);
                move |phase, pid| {
                    if phase == Phase::Begun {
                        backends.lock().push(pid);
                    }
                }
            });
        let batcher = Batcher::builder()
            .max_rows(300)
            .linger(Duration::from_millis(5))
            .retry(fast_retries())
            .build(|| target.open())
            .unwrap();
        let bad = [100, 250];
        let tickets: Vec<_> = (0..300)
            .map(|id| {
                let body = if bad.contains(&id) {
                    Err(7)
                } else {
                    Ok(ev(id).body)
                };
                batcher.submit(Loose { id, body }).unwrap()
            })
            .collect();
        batcher.shutdown(Duration::from_secs(60));
        let mut refused = Vec::new();
        for ticket in tickets {
            if let Err(nack) = ticket.wait() {
                match &nack.reason {
                    NackReason::Rejected(e) => {
                        assert_eq!(e.failure, Failure::Row, "{mode:?}: {e}");
                        assert_eq!(
                            (e.code.as_deref(), e.column.as_deref()),
                            (Some("42804"), Some("body")),
                            "{mode:?}: the client refused it, naming the column: {e}"
                        );
                    }
                    other => panic!("{mode:?}: {other:?}"),
                }
                refused.push(nack.row.id);
            }
        }
        assert_eq!(refused, bad, "{mode:?}");
        let acked: Vec<i64> = (0..300).filter(|id| !bad.contains(id)).collect();
        assert_eq!(ids(&mut admin, name), acked, "{mode:?}");
        let backends = backends.lock();
        assert!(backends.len() >= 3, "{mode:?}: {backends:?}");
        assert!(
            backends.iter().all(|&pid| pid == backends[0]),
            "{mode:?}: an encoding error is no reason to reconnect: {backends:?}"
        );
        if mode == Mode::Copy {
            // The row is known: two failed writes, then the 298 at once.
            assert_eq!(batcher.stats().failed_writes, 2);
        }
    }
}

/// rust-postgres #1334: COMMIT sent into a failed transaction is answered with
/// ROLLBACK, and `Transaction::commit` reports success. The proxy sees it.
#[test]
fn commit_into_a_failed_transaction_reports_success_in_rust_postgres() {
    let Some((pg, port)) = shared_with_port() else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    table(&mut admin, "b_hazard");
    let proxy = Proxy::start(port, false);
    let mut client = Client::connect(&proxy.url(), postgres::NoTls).unwrap();
    let mut tx = client.transaction().unwrap();
    tx.execute("INSERT INTO b_hazard VALUES (1, 'fine')", &[])
        .unwrap();
    assert!(
        tx.execute("INSERT INTO b_hazard VALUES (1, 'duplicate')", &[])
            .is_err()
    );
    let committed = tx.commit();
    assert_eq!(proxy.seen.get(|s| &s.failed_transactions), 1);
    assert_eq!(
        proxy.seen.get(|s| &s.commits_into_failed),
        1,
        "the proxy sees a COMMIT sent into a failed transaction"
    );
    assert!(
        committed.is_ok(),
        "rust-postgres #1334 is fixed: commit() now reports the rollback ({committed:?})"
    );
    assert!(
        ids(&mut admin, "b_hazard").is_empty(),
        "nothing was committed"
    );
    drop(client);
}

/// Every kind of row failure, through the proxy: the sinks roll back each
/// failed transaction and never send COMMIT into one.
#[test]
fn the_sinks_never_send_commit_into_a_failed_transaction() {
    let Some((pg, port)) = shared_with_port() else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    for (mode, keyed, name) in [
        (Mode::Copy, false, "b_wire_copy"),
        (Mode::Copy, true, "b_wire_copy_key"),
        (Mode::Insert, false, "b_wire_insert"),
    ] {
        // A duplicate of a stored key (23505), a check violation (23514) and a
        // row the database refuses only at COMMIT (a deferred constraint).
        admin
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {name}; \
                 CREATE TABLE {name} (id int8 PRIMARY KEY, body text CHECK (body <> 'bad'), \
                 tag int8, CONSTRAINT {name}_tag UNIQUE (tag) DEFERRABLE INITIALLY DEFERRED); \
                 INSERT INTO {name} VALUES (10, 'stored', 10), (2000, 'stored', 900)"
            ))
            .unwrap();
        let proxy = Proxy::start(port, false);
        let columns = &[
            ("id", Type::INT8),
            ("body", Type::TEXT),
            ("tag", Type::INT8),
        ];
        let mut target = PgTarget::new(&proxy.url(), name, columns)
            .unwrap()
            .mode(mode);
        if keyed {
            // The duplicate now counts as written; the other two still fail.
            target = target.on_conflict_do_nothing(&["id"]);
        }
        struct Tagged(Ev, i64);
        impl PgRow for Tagged {
            fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
                self.0.values(out);
                out.push(&self.1);
            }
        }
        let batcher = Batcher::builder()
            .max_rows(1000)
            .linger(Duration::from_millis(5))
            .retry(fast_retries())
            .build(|| target.open())
            .unwrap();
        let tickets: Vec<_> = (0..1000)
            .map(|id| {
                let mut row = Tagged(ev(id), id);
                if id == 500 {
                    row.0.body = "bad".into();
                }
                if id == 900 {
                    row.1 = 900; // the tag of row 2000: refused at COMMIT
                }
                (id, batcher.submit(row).unwrap())
            })
            .collect();
        batcher.shutdown(Duration::from_secs(60));
        let mut refused = Vec::new();
        for (id, ticket) in tickets {
            if let Err(nack) = ticket.wait() {
                match nack.reason {
                    NackReason::Rejected(e) => refused.push((id, e.code.unwrap_or_default())),
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
        let mut want = vec![
            (10, "23505".to_string()),
            (500, "23514".into()),
            (900, "23505".into()),
        ];
        if keyed {
            want.remove(0);
        }
        assert_eq!(refused, want, "{name}");
        let mut stored = ids(&mut admin, name);
        stored.retain(|id| ![10, 2000].contains(id));
        let acked: Vec<i64> = (0..1000)
            .filter(|id| ![10, 500, 900].contains(id))
            .collect();
        assert_eq!(stored, acked, "{name}");
        drop(batcher);
        let seen = &proxy.seen;
        assert!(
            seen.get(|s| &s.failed_transactions) >= want.len() - 1,
            "{name}: the failures were seen on the wire: {seen:?}"
        );
        assert!(seen.get(|s| &s.commits) >= 2, "{name}: {seen:?}");
        assert_eq!(
            seen.get(|s| &s.commits_into_failed),
            0,
            "{name}: COMMIT was sent into a failed transaction: {seen:?}"
        );
    }
}

/// A private server with TLS on: a self-signed certificate for 127.0.0.1 made
/// by `openssl`, which comes with Debian's PostgreSQL. Returns the server and
/// the certificate (PEM).
fn tls_server(what: &str) -> Option<(PgServer, Vec<u8>)> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let pg = private_server(what)?;
    let data = pg.data_dir().unwrap().to_path_buf();
    let (crt, key) = (data.join("server.crt"), data.join("server.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stderr(std::process::Stdio::null())
        .status();
    match made {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("{what}: openssl failed: {status}"),
        Err(e) => {
            eprintln!("skipped: {what}: needs openssl to make a certificate: {e}");
            return None;
        }
    }
    // The server (perhaps another user than us) must own its key, mode 0600.
    let owner = std::fs::metadata(&data).unwrap();
    for file in [&crt, &key] {
        std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut admin = pg.connect().unwrap();
    admin.batch_execute("ALTER SYSTEM SET ssl = on").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    // The reload is asynchronous: new connections see it once it is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ssl: String = pg
            .connect()
            .unwrap()
            .query_one("SHOW ssl", &[])
            .unwrap()
            .get(0);
        if ssl == "on" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: ssl stayed off: {}",
            std::fs::read_to_string(data.join("../postgres.log")).unwrap_or_default()
        );
        std::thread::yield_now();
    }
    let pem = std::fs::read(&crt).unwrap();
    Some((pg, pem))
}

#[test]
fn sslmode_require_encrypts_and_checks_the_servers_certificate() {
    let Some((pg, pem)) = tls_server("prodkit-batch: TLS") else {
        return;
    };
    let mut admin = pg.connect().unwrap();
    table(&mut admin, "b_tls");
    let url = format!("{}?sslmode=require", pg.url());

    // The system's roots do not vouch for a self-signed certificate.
    let untrusted = PgTarget::new(&url, "b_tls", COLUMNS)
        .unwrap()
        .open::<Ev>()
        .unwrap_err();
    assert!(
        untrusted.message.to_lowercase().contains("certificate"),
        "{untrusted}"
    );

    // With the server's certificate as a root: every row over TLS.
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let backends: Arc<Mutex<Vec<i32>>> = Arc::default();
    let observe = |backends: &Arc<Mutex<Vec<i32>>>| {
        let backends = Arc::clone(backends);
        move |phase, pid| {
            if phase == Phase::Begun {
                backends.lock().push(pid);
            }
        }
    };
    let target = PgTarget::new(&url, "b_tls", COLUMNS)
        .unwrap()
        .tls_connector(connector.clone())
        .observe(observe(&backends));
    let batcher = builder().build(|| target.open()).unwrap();
    let ssl_of = |admin: &mut Client, pid: i32| -> bool {
        admin
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", &[&pid])
            .unwrap()
            .get(0)
    };
    let tickets: Vec<_> = (0..300).map(|i| batcher.submit(ev(i)).unwrap()).collect();
    for ticket in tickets {
        ticket.wait().unwrap();
    }
    let pid = backends.lock()[0];
    assert!(
        ssl_of(&mut admin, pid),
        "the writer's connection is encrypted"
    );
    batcher.shutdown(Duration::from_secs(30));
    assert_eq!(ids(&mut admin, "b_tls"), (0..300).collect::<Vec<_>>());

    // sslmode=disable wins over a connector: plain text, as pg_stat_ssl shows.
    let plain = PgTarget::new(&format!("{}?sslmode=disable", pg.url()), "b_tls", COLUMNS)
        .unwrap()
        .tls_connector(connector);
    let sink = plain.open::<Ev>().unwrap();
    assert!(!ssl_of(&mut admin, sink.backend_pid().unwrap()));
}

#[test]
fn shutdown_with_rows_pending_writes_what_it_can_and_hands_back_the_rest() {
    let Some(pg) = shared() else { return };
    let mut admin = pg.connect().unwrap();
    // 1 ms a row in a trigger: a batch of 100 takes about 100 ms, all 3000 rows
    // about 3 s; close gives them 300 ms.
    slow_table(&mut admin, "b_close", 0.001);
    let target = PgTarget::new(&pg.url(), "b_close", COLUMNS).unwrap();
    let batcher = builder()
        .max_rows(100)
        .queue_rows(5000)
        .build(|| target.open())
        .unwrap();
    let tickets: Vec<_> = (0..3000).map(|i| batcher.submit(ev(i)).unwrap()).collect();
    let stats = batcher.shutdown(Duration::from_millis(300)).stats;
    let (mut acked, mut closed) = (Vec::new(), Vec::new());
    for (i, ticket) in (0..).zip(tickets) {
        match ticket.wait() {
            Ok(()) => acked.push(i),
            Err(nack) => {
                assert_eq!(nack.reason, NackReason::Closed, "row {i}");
                assert_eq!(nack.row, ev(i), "the row comes back");
                closed.push(i);
            }
        }
    }
    assert!(!acked.is_empty() && !closed.is_empty(), "{stats:?}");
    assert_eq!(acked.len() + closed.len(), 3000);
    assert_eq!(
        (stats.acked, stats.nacked),
        (acked.len() as u64, closed.len() as u64)
    );
    assert_eq!(ids(&mut admin, "b_close"), acked, "stored = acked");
    // Closed: a row submitted now comes straight back.
    match batcher.submit(ev(9999)) {
        Err(prodkit_batch::SubmitError::Closed(row)) => assert_eq!(row, ev(9999)),
        other => panic!("{other:?}"),
    }
}
