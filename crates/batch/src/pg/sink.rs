//! One flusher's connection to PostgreSQL: tokio-postgres on a small
//! single-threaded runtime the sink owns, so that every network wait of a write
//! can be abandoned at close's deadline.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use postgres::types::{ToSql, Type};
use tokio::runtime::Runtime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::{CancelToken, Client, NoTls, Statement};

use super::classify::{Encoding, Step, classify};
use super::{Mode, PgRow, PgTarget, Phase, array::Column};
use crate::error::{Failure, SinkError};
use crate::sink::{Deadline, Sink};

/// How often a write looks at close's deadline.
const DEADLINE_TICK: Duration = Duration::from_millis(20);
/// After the deadline: how long a cancel request may take, then how long the
/// write may take to end after it, before the connection is dropped.
const CANCEL_GRACE: Duration = Duration::from_millis(300);
const END_GRACE: Duration = Duration::from_millis(300);

/// One flusher's connection to PostgreSQL.
///
/// A write races close's deadline ([`Deadline`]) and its own limit
/// ([`PgTarget::write_timeout`], default 60 s): when either passes, the sink
/// sends a cancel request, gives the write a moment to end, and then drops the
/// connection. A write abandoned while COMMIT was in flight fails with
/// [`Failure::UnknownOutcome`] (its rows may be stored), any other with
/// [`Failure::Transient`] (retried on a new connection). Connecting (TCP, TLS,
/// startup, authentication) and the checks of `open` are limited by
/// `connect_timeout` as a whole. So no call waits without limit on a server
/// that stopped answering (a backend stopped with SIGSTOP, a network that
/// drops packets, a server that accepts and stays mute), and `close` returns
/// within about 0.7 s of its deadline.
///
/// ```no_run
/// use prodkit_batch::{Failure, Sink};
/// use prodkit_batch::pg::{PgSink, PgTarget};
/// use prodkit_batch::pg::postgres::types::Type;
/// # use prodkit_batch::pg::PgRow;
/// # use prodkit_batch::pg::postgres::types::ToSql;
/// # struct Event { id: i64, payload: String }
/// # impl PgRow for Event {
/// #     fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
/// #         out.push(&self.id);
/// #         out.push(&self.payload);
/// #     }
/// # }
///
/// // `events` has a primary key on `id`.
/// let columns = [("id", Type::INT8), ("payload", Type::TEXT)];
/// let target = PgTarget::new("postgresql://app@db.internal/app", "events", &columns)?;
/// let mut sink: PgSink<Event> = target.open()?;
/// sink.write(&[Event { id: 1, payload: "signed up".into() }])?; // committed
/// // A row that breaks a constraint fails as a row's failure, with its SQLSTATE.
/// let error = sink.write(&[Event { id: 1, payload: "again".into() }]).unwrap_err();
/// assert_eq!((error.failure, error.code.as_deref()), (Failure::Row, Some("23505")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PgSink<T> {
    target: PgTarget,
    runtime: Runtime,
    conn: Option<Conn>,
    copy_sql: String,
    insert_sql: String,
    _rows: PhantomData<fn(&T)>,
}

struct Conn {
    client: Client,
    /// The task that drives the connection; aborted when the sink drops it.
    task: tokio::task::JoinHandle<()>,
    cancel: CancelToken,
    pid: i32,
    insert: Option<Statement>,
    staged: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> PgSink<T> {
    pub(crate) fn open(target: PgTarget) -> Result<PgSink<T>, SinkError> {
        if target.write_timeout.is_zero() {
            return Err(SinkError::new(
                Failure::Permanent,
                "write_timeout is zero: every write would be abandoned",
            ));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| SinkError::new(Failure::Transient, format!("no runtime: {e}")))?;
        let mut sink = PgSink {
            copy_sql: target.copy_sql(),
            insert_sql: target.insert_sql(),
            target,
            runtime,
            conn: None,
            _rows: PhantomData,
        };
        sink.conn = Some(sink.connect(&Deadline::none())?);
        sink.check_columns()?;
        Ok(sink)
    }

    /// The backend process id of the current connection.
    ///
    /// ```no_run
    /// use prodkit_batch::pg::{PgSink, PgTarget};
    /// use prodkit_batch::pg::postgres::types::Type;
    /// # use prodkit_batch::pg::PgRow;
    /// # use prodkit_batch::pg::postgres::types::ToSql;
    /// # struct Event { id: i64, payload: String }
    /// # impl PgRow for Event {
    /// #     fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
    /// #         out.push(&self.id);
    /// #         out.push(&self.payload);
    /// #     }
    /// # }
    ///
    /// let columns = [("id", Type::INT8), ("payload", Type::TEXT)];
    /// let target = PgTarget::new("postgresql://app@db.internal/app", "events", &columns)?;
    /// let sink: PgSink<Event> = target.open()?;
    /// // The pid in pg_stat_activity, e.g. for pg_terminate_backend.
    /// let pid = sink.backend_pid().expect("connected after open");
    /// assert!(pid > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backend_pid(&self) -> Option<i32> {
        self.conn.as_ref().map(|c| c.pid)
    }

    /// Connects, giving up at `deadline`.
    fn connect(&self, deadline: &Deadline) -> Result<Conn, SinkError> {
        let t = &self.target;
        let tls = t.tls()?;
        let prepare =
            |e: tokio_postgres::Error| classify(&e, Step::Prepare, false, Encoding::Nothing);
        let connecting = async {
            let (client, connection) = match tls.clone() {
                Some(tls) => {
                    let (client, connection) = t
                        .config
                        .connect(postgres_native_tls::MakeTlsConnector::new(tls))
                        .await
                        .map_err(prepare)?;
                    let task = tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    (client, task)
                }
                None => {
                    let (client, connection) = t.config.connect(NoTls).await.map_err(prepare)?;
                    let task = tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    (client, task)
                }
            };
            if let Some(timeout) = t.statement_timeout {
                client
                    .batch_execute(&format!(
                        "SET statement_timeout = {}",
                        timeout.as_millis().max(1)
                    ))
                    .await
                    .map_err(prepare)?;
            }
            let pid: i32 = client
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .map_err(prepare)?
                .get(0);
            Ok(Conn {
                cancel: client.cancel_token(),
                client,
                task: connection,
                pid,
                insert: None,
                staged: false,
            })
        };
        self.runtime
            .block_on(until(connecting, deadline, t.connect_limit(), None))
            .unwrap_or_else(|why| {
                Err(SinkError::new(
                    Failure::Transient,
                    why.what("connecting (TCP, TLS, startup, authentication)"),
                ))
            })
    }

    /// The declared columns against the table: each exists with its type.
    fn check_columns(&mut self) -> Result<(), SinkError> {
        let t = &self.target;
        let Some(conn) = self.conn.as_ref() else {
            return Err(SinkError::new(Failure::Transient, "not connected"));
        };
        let prepare =
            |e: tokio_postgres::Error| classify(&e, Step::Prepare, false, Encoding::Nothing);
        let checks = async {
            let statement = conn
                .client
                .prepare(&t.describe_sql())
                .await
                .map_err(prepare)?;
            if let Some(sql) = t.conflict_check_sql() {
                // Plans, does not run, the statement: a key that no unique
                // index or constraint matches fails here (42P10), not at every
                // write.
                conn.client.batch_execute(&sql).await.map_err(prepare)?;
            }
            Ok::<_, SinkError>(statement)
        };
        let statement = self
            .runtime
            .block_on(until(checks, &Deadline::none(), t.connect_limit(), None))
            .unwrap_or_else(|why| {
                Err(SinkError::new(
                    Failure::Transient,
                    why.what("checking the declared columns"),
                ))
            })?;
        for ((name, declared), actual) in t.names.iter().zip(&t.types).zip(statement.params()) {
            if !compatible(declared, actual) {
                return Err(SinkError::new(
                    Failure::Permanent,
                    format!(
                        "column {name} of {} is {actual}, declared {declared}",
                        t.table
                    ),
                )
                .with_code("42804")
                .with_column(name.clone()));
            }
        }
        Ok(())
    }
}

/// Whether values declared `declared` can be written into a column of type
/// `actual`: the same type, or two of the text types, which share a binary
/// format.
fn compatible(declared: &Type, actual: &Type) -> bool {
    let text = |t: &Type| [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(t);
    declared == actual || (text(declared) && text(actual))
}

/// Why [`until`] gave up a piece of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abandoned {
    /// Close's deadline passed.
    Deadline,
    /// The work took longer than its limit.
    Limit(Duration),
}

impl Abandoned {
    fn what(self, work: &str) -> String {
        match self {
            Abandoned::Deadline => format!("{work} was abandoned at close's deadline"),
            Abandoned::Limit(limit) => {
                format!("{work} took longer than {limit:?} and was abandoned")
            }
        }
    }
}

/// Runs `work` until it ends, `deadline` passes or `limit` elapses; then sends
/// a cancel request (when given one), gives the work a moment to end, and
/// gives up on it if it did not.
async fn until<F, R>(
    work: F,
    deadline: &Deadline,
    limit: Duration,
    cancel: Option<(&CancelToken, Option<native_tls::TlsConnector>)>,
) -> Result<R, Abandoned>
where
    F: std::future::Future<Output = R>,
{
    let mut work = std::pin::pin!(work);
    // A limit too long for an `Instant` (Duration::MAX) never passes.
    let end = tokio::time::Instant::now().checked_add(limit);
    let why = loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            () = tokio::time::sleep(DEADLINE_TICK) => {
                if deadline.passed() {
                    break Abandoned::Deadline;
                }
                if end.is_some_and(|end| tokio::time::Instant::now() >= end) {
                    break Abandoned::Limit(limit);
                }
            }
        }
    };
    if let Some((token, tls)) = cancel {
        let cancelled = async {
            match tls {
                Some(tls) => {
                    token
                        .cancel_query(postgres_native_tls::MakeTlsConnector::new(tls))
                        .await
                }
                None => token.cancel_query(NoTls).await,
            }
        };
        let _ = tokio::time::timeout(CANCEL_GRACE, cancelled).await;
    }
    tokio::time::timeout(END_GRACE, work).await.map_err(|_| why)
}

impl<T: PgRow> PgSink<T> {
    /// One write; `phase` says how far it got, for a write abandoned midway.
    async fn write_batch(
        conn: &mut Conn,
        target: &PgTarget,
        copy_sql: &str,
        insert_sql: &str,
        rows: &[T],
        phase: &Cell<Step>,
    ) -> Result<(), SinkError> {
        let pid = conn.pid;
        let prepare =
            |e: tokio_postgres::Error| classify(&e, Step::Prepare, false, Encoding::Nothing);
        if target.mode == Mode::Copy && target.conflict.is_some() && !conn.staged {
            conn.client
                .batch_execute(&target.stage_sql())
                .await
                .map_err(prepare)?;
            conn.staged = true;
        }
        if conn.insert.is_none() && (target.mode == Mode::Insert || target.conflict.is_some()) {
            conn.insert = Some(conn.client.prepare(insert_sql).await.map_err(prepare)?);
        }
        let insert = conn.insert.clone();
        let tx = conn.client.transaction().await.map_err(prepare)?;
        phase.set(Step::Rows);
        if let Some(observer) = &target.observer {
            observer(Phase::Begun, pid);
        }
        let ncols = target.columns.len();
        let half = rows.len() / 2;
        let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(ncols);
        match target.mode {
            Mode::Copy => {
                let copy = |e: tokio_postgres::Error, at| classify(&e, Step::Rows, true, at);
                let sink = tx
                    .copy_in(copy_sql)
                    .await
                    .map_err(|e| copy(e, Encoding::Nothing))?;
                let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &target.types));
                for (i, row) in rows.iter().enumerate() {
                    if i == half
                        && let Some(observer) = &target.observer
                    {
                        observer(Phase::HalfSent, pid);
                    }
                    values.clear();
                    row.values(&mut values);
                    check_arity(values.len(), ncols)?;
                    if let Err(e) = writer.as_mut().write(&values).await {
                        return Err(declared_mismatch(target, rows)
                            .unwrap_or_else(|| copy(e, Encoding::Row(i))));
                    }
                }
                writer
                    .as_mut()
                    .finish()
                    .await
                    .map_err(|e| copy(e, Encoding::Nothing))?;
                if let Some(insert) = &insert {
                    tx.execute(insert, &[])
                        .await
                        .map_err(|e| classify(&e, Step::Rows, false, Encoding::Nothing))?;
                }
            }
            Mode::Insert => {
                let mut columns: Vec<Column<'_>> = (0..ncols)
                    .map(|_| Column(Vec::with_capacity(rows.len())))
                    .collect();
                for row in rows {
                    values.clear();
                    row.values(&mut values);
                    check_arity(values.len(), ncols)?;
                    for (column, value) in columns.iter_mut().zip(values.drain(..)) {
                        column.0.push(value);
                    }
                }
                if let Some(observer) = &target.observer {
                    observer(Phase::HalfSent, pid);
                }
                let params: Vec<&(dyn ToSql + Sync)> =
                    columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
                let Some(insert) = &insert else {
                    return Err(SinkError::new(Failure::Transient, "statement not prepared"));
                };
                if let Err(e) = tx.execute(insert, &params).await {
                    // An encoding failure: look for values that do not fit.
                    let declared = (e.as_db_error().is_none() && !e.is_closed())
                        .then(|| declared_mismatch(target, rows))
                        .flatten();
                    return Err(declared
                        .unwrap_or_else(|| classify(&e, Step::Rows, false, Encoding::Batch)));
                }
            }
        }
        if let Some(observer) = &target.observer {
            observer(Phase::Committing, pid);
        }
        phase.set(Step::Commit);
        // Reached only when every statement of the transaction succeeded: COMMIT
        // is never sent into a failed transaction, where the server would answer
        // ROLLBACK and rust-postgres report success (rust-postgres #1334).
        tx.commit()
            .await
            .map_err(|e| classify(&e, Step::Commit, false, Encoding::Nothing))
    }
}

/// The declared column that a value of `values` cannot be sent as (a Rust
/// `i64` for a column declared `INT4`).
fn wrong_column(target: &PgTarget, values: &[&(dyn ToSql + Sync)]) -> Option<usize> {
    let mut scratch = bytes::BytesMut::new();
    values.iter().zip(&target.types).position(|(value, ty)| {
        scratch.clear();
        value
            .to_sql_checked(ty, &mut scratch)
            .is_err_and(|e| e.is::<postgres::types::WrongType>())
    })
}

/// After an encoding failure: the rows whose values do not fit their declared
/// types. When every row of the batch fails the same column, the declaration is
/// wrong, not the rows: the batch fails for good, naming the column, instead of
/// every row being refused one write at a time. Otherwise the first such row is
/// refused, the column named.
fn declared_mismatch<T: PgRow>(target: &PgTarget, rows: &[T]) -> Option<SinkError> {
    let mismatch = |row: &T| {
        let mut values: Vec<&(dyn ToSql + Sync)> = Vec::new();
        row.values(&mut values);
        wrong_column(target, &values)
    };
    let (at, column) = rows
        .iter()
        .enumerate()
        .find_map(|(i, row)| mismatch(row).map(|c| (i, c)))?;
    let (name, ty) = (&target.names[column], &target.types[column]);
    let every_row = rows.len() > 1 && rows.iter().all(|row| mismatch(row) == Some(column));
    let error = if every_row {
        SinkError::new(
            Failure::Permanent,
            format!("column {name} is declared {ty}, and no row's value can be sent as one"),
        )
    } else {
        SinkError::new(
            Failure::Row,
            format!("the row's value for column {name} cannot be sent as {ty}"),
        )
        .at_row(at)
    };
    Some(error.with_code("42804").with_column(name.clone()))
}

fn check_arity(got: usize, want: usize) -> Result<(), SinkError> {
    if got == want {
        return Ok(());
    }
    // The same `PgRow` gives every row: a mistake of the declaration, which no
    // retry and no other row can fix.
    Err(SinkError::new(
        Failure::Permanent,
        format!("a row gave {got} values for {want} declared columns"),
    ))
}

impl<T: PgRow> Sink<T> for PgSink<T> {
    fn write(&mut self, rows: &[T]) -> Result<(), SinkError> {
        self.write_until(rows, &Deadline::none())
    }

    fn write_until(&mut self, rows: &[T], deadline: &Deadline) -> Result<(), SinkError> {
        let tls = self.target.tls()?;
        let Some(conn) = self.conn.as_mut() else {
            return Err(SinkError::new(Failure::Transient, "not connected"));
        };
        let cancel = conn.cancel.clone();
        let phase = Cell::new(Step::Prepare);
        let work = Self::write_batch(
            conn,
            &self.target,
            &self.copy_sql,
            &self.insert_sql,
            rows,
            &phase,
        );
        let ended = self.runtime.block_on(until(
            work,
            deadline,
            self.target.write_timeout,
            Some((&cancel, tls)),
        ));
        let result = ended.unwrap_or_else(|why| {
            // Abandoned: drop the connection (the next write reconnects), and
            // say what is known of the outcome.
            let failure = if phase.get() == Step::Commit {
                Failure::UnknownOutcome
            } else {
                Failure::Transient
            };
            Err(SinkError::new(
                failure,
                format!("{}; the connection is dropped", why.what("the write")),
            ))
        });
        if let Err(e) = &result
            && matches!(e.failure, Failure::Transient | Failure::UnknownOutcome)
        {
            // The connection is suspect: reconnect() opens a new one.
            self.conn = None;
        }
        result
    }

    fn reconnect(&mut self) -> Result<(), SinkError> {
        self.reconnect_until(&Deadline::none())
    }

    fn reconnect_until(&mut self, deadline: &Deadline) -> Result<(), SinkError> {
        self.conn = None;
        self.conn = Some(self.connect(deadline)?);
        Ok(())
    }
}

impl<T> fmt::Debug for PgSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSink")
            .field("target", &self.target)
            .field("backend_pid", &self.backend_pid())
            .finish()
    }
}
