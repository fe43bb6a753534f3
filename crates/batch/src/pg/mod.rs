//! PostgreSQL sinks: binary COPY and multi-row `INSERT ... SELECT * FROM unnest`,
//! one long-lived connection per flusher, every failure classified by SQLSTATE.

mod array;
mod classify;

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::config::SslMode;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement};

use crate::error::{Failure, SinkError};
use crate::sink::Sink;
use array::Column;
pub use classify::failure_of;
use classify::{Encoding, Step, classify};

/// A row that a PostgreSQL sink can write: its column values, in the order of
/// the columns given to [`PgTarget::new`].
///
/// ```
/// use prodkit_batch::pg::PgRow;
/// use prodkit_batch::pg::postgres::types::ToSql;
///
/// struct Event { id: i64, payload: String }
///
/// impl PgRow for Event {
///     fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
///         out.push(&self.id);
///         out.push(&self.payload);
///     }
/// }
/// ```
pub trait PgRow: Send + 'static {
    /// Pushes this row's values onto `out`, one per column.
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>);
}

/// How rows reach the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// `COPY ... FROM STDIN (FORMAT binary)`: the fastest; an error names the
    /// failing row ("COPY t, line 501"), so a bad row is refused without
    /// bisecting. With a conflict key, rows are copied into a temporary table
    /// and moved with `INSERT ... ON CONFLICT DO NOTHING`.
    Copy,
    /// `INSERT INTO t (...) SELECT * FROM unnest($1::type[], ...)`, one statement
    /// per batch with one array per column; bad rows are found by bisecting.
    Insert,
}

/// Points in a write, for [`PgTarget::observe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// The transaction has begun.
    Begun,
    /// Half of the batch's rows have been sent.
    HalfSent,
    /// COMMIT is about to be sent.
    Committing,
}

type Observer = dyn Fn(Phase, i32) + Send + Sync;

/// Where a PostgreSQL sink writes: a connection string, a table and its columns,
/// a mode, an optional conflict key. [`PgTarget::open`] is what
/// [`Builder::build`](crate::Builder::build) calls once per flusher.
#[derive(Clone)]
pub struct PgTarget {
    config: postgres::Config,
    tls_connector: Option<native_tls::TlsConnector>,
    table: String,
    columns: Vec<String>,
    types: Vec<Type>,
    mode: Mode,
    conflict: Option<Vec<String>>,
    statement_timeout: Option<Duration>,
    observer: Option<Arc<Observer>>,
}

impl PgTarget {
    /// `url` is a PostgreSQL URL or key-value string; TLS (postgres-native-tls)
    /// is used when it says `sslmode=require` (see
    /// [`tls_connector`](PgTarget::tls_connector)). `table` may be
    /// schema-qualified; `columns` are the names and types the rows' values
    /// fill, in order.
    ///
    /// # Errors
    /// A [`Failure::Permanent`] error for a string that does not parse or an
    /// empty column list.
    pub fn new(url: &str, table: &str, columns: &[(&str, Type)]) -> Result<PgTarget, SinkError> {
        let config = postgres::Config::from_str(url).map_err(|e| {
            SinkError::new(Failure::Permanent, format!("bad connection string: {e}"))
        })?;
        if columns.is_empty() {
            return Err(SinkError::new(
                Failure::Permanent,
                "a target needs at least one column",
            ));
        }
        Ok(PgTarget {
            config,
            tls_connector: None,
            table: table.split('.').map(quote).collect::<Vec<_>>().join("."),
            columns: columns.iter().map(|(name, _)| quote(name)).collect(),
            types: columns.iter().map(|(_, ty)| ty.clone()).collect(),
            mode: Mode::Copy,
            conflict: None,
            statement_timeout: None,
            observer: None,
        })
    }

    /// The TLS connector, for a server whose certificate the system's roots do
    /// not vouch for: build one with your CA
    /// (`native_tls::TlsConnector::builder().add_root_certificate(..)`).
    ///
    /// With `sslmode=require` TLS is always used, through this connector or,
    /// without one, `native_tls::TlsConnector::new()` (the system's roots, the
    /// host name checked). With `sslmode=prefer`, rust-postgres's default when
    /// the URL names none, TLS is used only if a connector was given here and
    /// the server offers TLS; otherwise, and always with `sslmode=disable`, the
    /// connection is plain text.
    #[must_use]
    pub fn tls_connector(mut self, connector: native_tls::TlsConnector) -> PgTarget {
        self.tls_connector = Some(connector);
        self
    }

    /// The connector a connection uses, `None` for plain text.
    fn tls(&self) -> Result<Option<native_tls::TlsConnector>, SinkError> {
        match (self.config.get_ssl_mode(), &self.tls_connector) {
            (SslMode::Disable, _) => Ok(None),
            (SslMode::Require, None) => native_tls::TlsConnector::new()
                .map(Some)
                .map_err(|e| SinkError::new(Failure::Permanent, format!("TLS setup failed: {e}"))),
            (_, connector) => Ok(connector.clone()),
        }
    }

    /// How rows are written (default [`Mode::Copy`]).
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> PgTarget {
        self.mode = mode;
        self
    }

    /// Declares a unique key: a row whose key is already in the table counts as
    /// written (`ON CONFLICT (key) DO NOTHING`). Writing a batch again after a
    /// connection lost during COMMIT then stores each row once: exactly once
    /// instead of at least once.
    #[must_use]
    pub fn on_conflict_do_nothing(mut self, key: &[&str]) -> PgTarget {
        self.conflict = Some(key.iter().map(|k| quote(k)).collect());
        self
    }

    /// `SET statement_timeout` on each connection; a batch that runs longer
    /// fails with 57014 and is written again in halves.
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Duration) -> PgTarget {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Calls `f` with each [`Phase`] of each write and the connection's backend
    /// process id: for metrics, and for tests that cut connections at chosen
    /// points.
    #[must_use]
    pub fn observe(mut self, f: impl Fn(Phase, i32) + Send + Sync + 'static) -> PgTarget {
        self.observer = Some(Arc::new(f));
        self
    }

    /// Connects: a sink for one flusher.
    ///
    /// # Errors
    /// The connection's failure, classified (a refused login is permanent, an
    /// unreachable server transient).
    pub fn open<T: PgRow>(&self) -> Result<PgSink<T>, SinkError> {
        let mut sink = PgSink {
            target: self.clone(),
            conn: None,
            copy_sql: self.copy_sql(),
            insert_sql: self.insert_sql(),
            _rows: PhantomData,
        };
        sink.conn = Some(sink.connect()?);
        Ok(sink)
    }

    fn column_list(&self) -> String {
        self.columns.join(", ")
    }

    fn conflict_clause(&self) -> String {
        self.conflict.as_ref().map_or_else(String::new, |key| {
            format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "))
        })
    }

    fn copy_sql(&self) -> String {
        let into = if self.conflict.is_some() {
            STAGE.to_string()
        } else {
            self.table.clone()
        };
        format!(
            "COPY {into} ({}) FROM STDIN (FORMAT binary)",
            self.column_list()
        )
    }

    fn insert_sql(&self) -> String {
        let cols = self.column_list();
        match self.mode {
            Mode::Copy => format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {STAGE}{}",
                self.table,
                self.conflict_clause()
            ),
            Mode::Insert => {
                let arrays: Vec<String> = self
                    .types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| format!("${}::{}[]", i + 1, ty.name()))
                    .collect();
                format!(
                    "INSERT INTO {} ({cols}) SELECT * FROM unnest({}){}",
                    self.table,
                    arrays.join(", "),
                    self.conflict_clause()
                )
            }
        }
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field("mode", &self.mode)
            .field("conflict", &self.conflict)
            .field("sslmode", &self.config.get_ssl_mode())
            .field("tls_connector", &self.tls_connector.is_some())
            .finish_non_exhaustive()
    }
}

/// The per-connection staging table of COPY with a conflict key.
const STAGE: &str = "prodkit_batch_stage";

/// A double-quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One flusher's connection to PostgreSQL.
pub struct PgSink<T> {
    target: PgTarget,
    conn: Option<Conn>,
    copy_sql: String,
    insert_sql: String,
    _rows: PhantomData<fn(&T)>,
}

struct Conn {
    client: Client,
    pid: i32,
    insert: Option<Statement>,
    staged: bool,
}

impl<T> PgSink<T> {
    /// The backend process id of the current connection.
    pub fn backend_pid(&self) -> Option<i32> {
        self.conn.as_ref().map(|c| c.pid)
    }

    fn connect(&self) -> Result<Conn, SinkError> {
        let t = &self.target;
        let connected = match t.tls()? {
            Some(tls) => t
                .config
                .connect(postgres_native_tls::MakeTlsConnector::new(tls)),
            None => t.config.connect(NoTls),
        };
        let mut client =
            connected.map_err(|e| classify(&e, Step::Prepare, false, Encoding::Nothing))?;
        let setup = |client: &mut Client| -> Result<i32, postgres::Error> {
            if let Some(timeout) = t.statement_timeout {
                client.batch_execute(&format!(
                    "SET statement_timeout = {}",
                    timeout.as_millis().max(1)
                ))?;
            }
            client
                .query_one("SELECT pg_backend_pid()", &[])
                .map(|row| row.get(0))
        };
        let pid = setup(&mut client)
            .map_err(|e| classify(&e, Step::Prepare, false, Encoding::Nothing))?;
        Ok(Conn {
            client,
            pid,
            insert: None,
            staged: false,
        })
    }
}

impl<T: PgRow> PgSink<T> {
    fn write_batch(&mut self, rows: &[T]) -> Result<(), SinkError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(SinkError::new(Failure::Transient, "not connected"));
        };
        let t = &self.target;
        let pid = conn.pid;
        let prepare = |e: postgres::Error| classify(&e, Step::Prepare, false, Encoding::Nothing);
        if t.mode == Mode::Copy && t.conflict.is_some() && !conn.staged {
            conn.client
                .batch_execute(&format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
                    t.table
                ))
                .map_err(prepare)?;
            conn.staged = true;
        }
        if conn.insert.is_none() && (t.mode == Mode::Insert || t.conflict.is_some()) {
            conn.insert = Some(conn.client.prepare(&self.insert_sql).map_err(prepare)?);
        }
        let mut tx = conn.client.transaction().map_err(prepare)?;
        if let Some(observer) = &t.observer {
            observer(Phase::Begun, pid);
        }
        let ncols = t.columns.len();
        let half = rows.len() / 2;
        let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(ncols);
        match t.mode {
            Mode::Copy => {
                let copy = |e: postgres::Error, at| classify(&e, Step::Rows, true, at);
                let writer = tx
                    .copy_in(self.copy_sql.as_str())
                    .map_err(|e| copy(e, Encoding::Nothing))?;
                let mut writer = BinaryCopyInWriter::new(writer, &t.types);
                for (i, row) in rows.iter().enumerate() {
                    if i == half
                        && let Some(observer) = &t.observer
                    {
                        observer(Phase::HalfSent, pid);
                    }
                    values.clear();
                    row.values(&mut values);
                    check_arity(values.len(), ncols, i)?;
                    writer
                        .write(&values)
                        .map_err(|e| copy(e, Encoding::Row(i)))?;
                }
                writer.finish().map_err(|e| copy(e, Encoding::Nothing))?;
                if let Some(insert) = &conn.insert {
                    tx.execute(insert, &[])
                        .map_err(|e| classify(&e, Step::Rows, false, Encoding::Nothing))?;
                }
            }
            Mode::Insert => {
                let mut columns: Vec<Column<'_>> = (0..ncols)
                    .map(|_| Column(Vec::with_capacity(rows.len())))
                    .collect();
                for (i, row) in rows.iter().enumerate() {
                    values.clear();
                    row.values(&mut values);
                    check_arity(values.len(), ncols, i)?;
                    for (column, value) in columns.iter_mut().zip(values.drain(..)) {
                        column.0.push(value);
                    }
                }
                if let Some(observer) = &t.observer {
                    observer(Phase::HalfSent, pid);
                }
                let params: Vec<&(dyn ToSql + Sync)> =
                    columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
                let Some(insert) = &conn.insert else {
                    return Err(SinkError::new(Failure::Transient, "statement not prepared"));
                };
                tx.execute(insert, &params)
                    .map_err(|e| classify(&e, Step::Rows, false, Encoding::Batch))?;
            }
        }
        if let Some(observer) = &t.observer {
            observer(Phase::Committing, pid);
        }
        // Reached only when every statement of the transaction succeeded: COMMIT
        // is never sent into a failed transaction, where the server would answer
        // ROLLBACK and rust-postgres report success (rust-postgres #1334).
        tx.commit()
            .map_err(|e| classify(&e, Step::Commit, false, Encoding::Nothing))
    }
}

fn check_arity(got: usize, want: usize, row: usize) -> Result<(), SinkError> {
    if got == want {
        return Ok(());
    }
    Err(SinkError::new(
        Failure::Row,
        format!("the row gave {got} values for {want} columns"),
    )
    .at_row(row))
}

impl<T: PgRow> Sink<T> for PgSink<T> {
    fn write(&mut self, rows: &[T]) -> Result<(), SinkError> {
        let result = self.write_batch(rows);
        if let Err(e) = &result
            && matches!(e.failure, Failure::Transient | Failure::UnknownOutcome)
        {
            // The connection is suspect: reconnect() opens a new one.
            self.conn = None;
        }
        result
    }

    fn reconnect(&mut self) -> Result<(), SinkError> {
        self.conn = None;
        self.conn = Some(self.connect()?);
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

/// The `postgres` crate, re-exported for its types (`ToSql`, `Type`).
pub use postgres;

#[cfg(test)]
mod tests {
    use super::*;

    fn target(mode: Mode) -> PgTarget {
        PgTarget::new(
            "postgresql://u@h/db",
            "app.events",
            &[("id", Type::INT8), ("body", Type::TEXT)],
        )
        .unwrap()
        .mode(mode)
    }

    #[test]
    fn statements() {
        let copy = target(Mode::Copy);
        assert_eq!(
            copy.copy_sql(),
            r#"COPY "app"."events" ("id", "body") FROM STDIN (FORMAT binary)"#
        );
        let keyed = target(Mode::Copy).on_conflict_do_nothing(&["id"]);
        assert_eq!(
            keyed.copy_sql(),
            r#"COPY prodkit_batch_stage ("id", "body") FROM STDIN (FORMAT binary)"#
        );
        assert_eq!(
            keyed.insert_sql(),
            r#"INSERT INTO "app"."events" ("id", "body") SELECT "id", "body" FROM prodkit_batch_stage ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(
            target(Mode::Insert)
                .on_conflict_do_nothing(&["id"])
                .insert_sql(),
            r#"INSERT INTO "app"."events" ("id", "body") SELECT * FROM unnest($1::int8[], $2::text[]) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
    }

    #[test]
    fn bad_targets() {
        assert!(PgTarget::new("postgresql://u@h/db", "t", &[]).is_err());
        assert!(PgTarget::new("not a url = = =", "t", &[("a", Type::INT8)]).is_err());
        let tls = PgTarget::new(
            "postgresql://u@h/db?sslmode=require",
            "t",
            &[("a", Type::INT8)],
        )
        .unwrap();
        assert!(tls.tls().unwrap().is_some());
        let plain = PgTarget::new("postgresql://u@h/db", "t", &[("a", Type::INT8)]).unwrap();
        assert!(plain.tls().unwrap().is_none(), "prefer without a connector");
        let given = plain.tls_connector(native_tls::TlsConnector::new().unwrap());
        assert!(given.tls().unwrap().is_some(), "prefer with a connector");
        let off = PgTarget::new(
            "postgresql://u@h/db?sslmode=disable",
            "t",
            &[("a", Type::INT8)],
        )
        .unwrap()
        .tls_connector(native_tls::TlsConnector::new().unwrap());
        assert!(off.tls().unwrap().is_none(), "disable wins");
    }
}
