//! PostgreSQL sinks: binary COPY and multi-row `INSERT ... SELECT * FROM unnest`,
//! one long-lived connection per flusher, every failure classified by SQLSTATE.

mod array;
mod classify;
mod sink;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::types::{ToSql, Type};
use tokio_postgres::config::SslMode;

use crate::error::{Failure, SinkError};
pub use classify::failure_of;
pub use sink::PgSink;

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
///
/// ```no_run
/// use prodkit_batch::Batcher;
/// use prodkit_batch::pg::postgres::types::Type;
/// use prodkit_batch::pg::{Mode, PgTarget};
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
/// fn writer(mode: Mode) -> Result<Batcher<Event>, Box<dyn std::error::Error>> {
///     let columns = [("id", Type::INT8), ("payload", Type::TEXT)];
///     let target = PgTarget::new("postgresql://app@db.internal/app", "events", &columns)?
///         .mode(mode);
///     Ok(Batcher::builder().build(move || target.open())?)
/// }
///
/// let copy = writer(Mode::Copy)?; // the default: a bad row costs one failed write
/// let insert = writer(Mode::Insert)?; // one unnest INSERT per batch: bad rows are bisected
/// for (id, batcher) in [(1, copy), (2, insert)] {
///     assert!(batcher.submit(Event { id, payload: "signed up".into() })?.wait().is_ok());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// ```no_run
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use prodkit_batch::Batcher;
/// use prodkit_batch::pg::postgres::types::Type;
/// use prodkit_batch::pg::{PgTarget, Phase};
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
/// // Count the COMMITs sent, for a metric.
/// let commits = Arc::new(AtomicU64::new(0));
/// let counter = Arc::clone(&commits);
/// let columns = [("id", Type::INT8), ("payload", Type::TEXT)];
/// let target = PgTarget::new("postgresql://app@db.internal/app", "events", &columns)?
///     .observe(move |phase, _backend_pid| {
///         if phase == Phase::Committing {
///             counter.fetch_add(1, Ordering::Relaxed);
///         }
///     });
/// let batcher = Batcher::builder().build(move || target.open())?;
/// batcher.submit(Event { id: 1, payload: "signed up".into() })?.wait()?;
/// assert_eq!(commits.load(Ordering::Relaxed), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// The transaction has begun.
    Begun,
    /// With [`Mode::Copy`], half of the batch's rows have been sent; with
    /// [`Mode::Insert`], every row is encoded and the one INSERT is about to be
    /// sent (none has been sent yet).
    HalfSent,
    /// COMMIT is about to be sent.
    Committing,
}

type Observer = dyn Fn(Phase, i32) + Send + Sync;

/// Where a PostgreSQL sink writes: a connection string, a table and its columns,
/// a mode, an optional conflict key. [`PgTarget::open`] is what
/// [`Builder::build`](crate::Builder::build) calls once per flusher.
///
/// Network timeouts are set by default where the connection string leaves them
/// out: `connect_timeout` 10 s, which the sink applies to connecting as a whole
/// (TCP, TLS, startup, authentication: a server that accepts and stays mute
/// cannot hang a connect), TCP keepalives after 30 s idle every 10 s, 3 probes
/// (a dead peer of an idle connection is noticed within a minute), and
/// `tcp_user_timeout` 30 s (data left unacknowledged that long drops the
/// connection). A connection string that names them (`connect_timeout=5`,
/// `keepalives_idle=60`, `tcp_user_timeout=10s`) wins. A backend that is alive
/// but stopped answers neither; [`write_timeout`](PgTarget::write_timeout)
/// (default 60 s) and close's deadline cover that case (see [`PgSink`]).
///
/// ```no_run
/// use std::time::Duration;
/// use prodkit_batch::Batcher;
/// use prodkit_batch::pg::postgres::types::{ToSql, Type};
/// use prodkit_batch::pg::{PgRow, PgTarget};
///
/// struct Event { id: i64, payload: String }
///
/// impl PgRow for Event {
///     fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
///         out.push(&self.id);
///         out.push(&self.payload);
///     }
/// }
///
/// let target = PgTarget::new(
///     "postgresql://app@db.internal/app?sslmode=require&connect_timeout=5",
///     "audit.events",
///     &[("id", Type::INT8), ("payload", Type::TEXT)],
/// )?
/// .on_conflict_do_nothing(&["id"])
/// .statement_timeout(Duration::from_secs(5));
/// // Two flushers: `open` is called twice, one connection each.
/// let batcher = Batcher::builder().flushers(2).build(move || target.open())?;
/// let ticket = batcher.submit(Event { id: 1, payload: "signed up".into() })?;
/// assert!(ticket.wait().is_ok()); // committed
/// assert_eq!(batcher.shutdown(Duration::from_secs(30)).acked, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PgTarget {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls_connector: Option<native_tls::TlsConnector>,
    pub(crate) table: String,
    /// The names as declared (unquoted), for messages.
    pub(crate) names: Vec<String>,
    pub(crate) columns: Vec<String>,
    pub(crate) types: Vec<Type>,
    pub(crate) mode: Mode,
    pub(crate) conflict: Option<Vec<String>>,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) write_timeout: Duration,
    pub(crate) observer: Option<Arc<Observer>>,
}

/// How long one write may take before it is abandoned, by default.
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// `connect_timeout` where the connection string names none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// tokio-postgres's keepalive idle time when nobody sets one: two hours.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

impl PgTarget {
    /// `url` is a PostgreSQL URL or key-value string; TLS (postgres-native-tls)
    /// is used when it says `sslmode=require` (see
    /// [`tls_connector`](PgTarget::tls_connector)). `table` may be
    /// schema-qualified; `columns` are the names and types the rows' values
    /// fill, in order.
    ///
    /// Names are quoted by the crate, exactly as given: `Events` is the
    /// table `"Events"`, not `events`, and a name that is already quoted
    /// (`"\"Events\""`) is a different name. A schema-qualified table is split at
    /// its dots (`audit.events`), each part quoted.
    ///
    /// # Errors
    /// A [`Failure::Permanent`] error for a string that does not parse or an
    /// empty column list.
    ///
    /// ```no_run
    /// use prodkit_batch::{Batcher, Failure};
    /// use prodkit_batch::pg::PgTarget;
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
    /// let target = PgTarget::new(
    ///     "host=db.internal user=app dbname=app",
    ///     "audit.Events", // the table "audit"."Events"
    ///     &[("id", Type::INT8), ("payload", Type::TEXT)],
    /// )?;
    /// let no_columns = PgTarget::new("host=db.internal user=app dbname=app", "audit.Events", &[]);
    /// assert_eq!(no_columns.unwrap_err().failure, Failure::Permanent);
    ///
    /// let batcher = Batcher::builder().build(move || target.open())?;
    /// assert!(batcher.submit(Event { id: 1, payload: "signed up".into() })?.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(url: &str, table: &str, columns: &[(&str, Type)]) -> Result<PgTarget, SinkError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            SinkError::new(Failure::Permanent, format!("bad connection string: {e}"))
        })?;
        if columns.is_empty() {
            return Err(SinkError::new(
                Failure::Permanent,
                "a target needs at least one column",
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_keepalives() && config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
            config
                .keepalives_idle(Duration::from_secs(30))
                .keepalives_interval(Duration::from_secs(10))
                .keepalives_retries(3);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(30));
        }
        Ok(PgTarget {
            config,
            tls_connector: None,
            table: table.split('.').map(quote).collect::<Vec<_>>().join("."),
            names: columns
                .iter()
                .map(|(name, _)| (*name).to_string())
                .collect(),
            columns: columns.iter().map(|(name, _)| quote(name)).collect(),
            types: columns.iter().map(|(_, ty)| ty.clone()).collect(),
            mode: Mode::Copy,
            conflict: None,
            statement_timeout: None,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
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
    ///
    /// ```no_run
    /// use prodkit_batch::Batcher;
    /// use prodkit_batch::pg::PgTarget;
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
    /// // The server's certificate is signed by our own CA.
    /// let ca = native_tls::Certificate::from_pem(&std::fs::read("/etc/app/db-ca.pem")?)?;
    /// let connector = native_tls::TlsConnector::builder().add_root_certificate(ca).build()?;
    /// let target = PgTarget::new(
    ///     "postgresql://app@db.internal/app?sslmode=require",
    ///     "events",
    ///     &[("id", Type::INT8), ("payload", Type::TEXT)],
    /// )?
    /// .tls_connector(connector);
    /// let batcher = Batcher::builder().build(move || target.open())?;
    /// assert!(batcher.submit(Event { id: 1, payload: "signed up".into() })?.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn tls_connector(mut self, connector: native_tls::TlsConnector) -> PgTarget {
        self.tls_connector = Some(connector);
        self
    }

    /// The connector a connection uses, `None` for plain text.
    pub(crate) fn tls(&self) -> Result<Option<native_tls::TlsConnector>, SinkError> {
        match (self.config.get_ssl_mode(), &self.tls_connector) {
            (SslMode::Disable, _) => Ok(None),
            (SslMode::Require, None) => native_tls::TlsConnector::new()
                .map(Some)
                .map_err(|e| SinkError::new(Failure::Permanent, format!("TLS setup failed: {e}"))),
            (_, connector) => Ok(connector.clone()),
        }
    }

    /// How rows are written (default [`Mode::Copy`]).
    ///
    /// ```no_run
    /// use prodkit_batch::Batcher;
    /// use prodkit_batch::pg::{Mode, PgTarget};
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
    /// let target = PgTarget::new("postgresql://app@db.internal/app", "events", &columns)?
    ///     .mode(Mode::Insert);
    /// let batcher = Batcher::builder().build(move || target.open())?;
    /// assert!(batcher.submit(Event { id: 1, payload: "signed up".into() })?.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> PgTarget {
        self.mode = mode;
        self
    }

    /// Declares a unique key: a row whose key is already in the table counts as
    /// written (`ON CONFLICT (key) DO NOTHING`). Writing a batch again after a
    /// connection lost during COMMIT then stores each row once, and the retry
    /// settles the outcome: exactly once instead of at least once, and no ticket
    /// left unknown by a lost COMMIT. [`open`](PgTarget::open) checks that a
    /// unique index or constraint of the table matches the key.
    ///
    /// ```no_run
    /// use prodkit_batch::Batcher;
    /// use prodkit_batch::pg::PgTarget;
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
    /// let target = PgTarget::new("postgresql://app@db.internal/app", "events", &columns)?
    ///     .on_conflict_do_nothing(&["id"]);
    /// let batcher = Batcher::builder().build(move || target.open())?;
    /// let first = batcher.submit(Event { id: 1, payload: "signed up".into() })?;
    /// let again = batcher.submit(Event { id: 1, payload: "sent twice".into() })?;
    /// // Both count as written; the table keeps one row with id 1, the first stored.
    /// assert!(first.wait().is_ok() && again.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn on_conflict_do_nothing(mut self, key: &[&str]) -> PgTarget {
        self.conflict = Some(key.iter().map(|k| quote(k)).collect());
        self
    }

    /// `SET statement_timeout` on each connection; a batch that runs longer
    /// fails with 57014 and is written again in halves.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use prodkit_batch::Batcher;
    /// use prodkit_batch::pg::PgTarget;
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
    /// let target = PgTarget::new("postgresql://app@db.internal/app", "events", &columns)?
    ///     .statement_timeout(Duration::from_secs(2));
    /// let batcher = Batcher::builder().max_rows(10_000).build(move || target.open())?;
    /// // A batch that runs past 2 s is canceled and written again in halves.
    /// assert!(batcher.submit(Event { id: 1, payload: "signed up".into() })?.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Duration) -> PgTarget {
        self.statement_timeout = Some(timeout);
        self
    }

    /// How long one write (its transaction, COMMIT included) may take before it
    /// is abandoned (default 60 s): the sink sends a cancel request and drops
    /// the connection; the write fails [`Failure::Transient`], or
    /// [`Failure::UnknownOutcome`] if COMMIT was in flight, and is retried
    /// within the retry budget. It is what bounds a write to a backend that is
    /// alive but stopped, which neither TCP keepalives nor `tcp_user_timeout`
    /// notice. A zero timeout is refused by [`open`](PgTarget::open).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, Failure};
    /// use prodkit_batch::pg::PgTarget;
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
    /// let zero = target.clone().write_timeout(Duration::ZERO);
    /// assert_eq!(zero.open::<Event>().unwrap_err().failure, Failure::Permanent);
    ///
    /// // A write still running after 10 s is abandoned and retried on a new connection.
    /// let target = target.write_timeout(Duration::from_secs(10));
    /// let batcher = Batcher::builder().build(move || target.open())?;
    /// assert!(batcher.submit(Event { id: 1, payload: "signed up".into() })?.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> PgTarget {
        self.write_timeout = timeout;
        self
    }

    /// The limit on connecting as a whole (TCP, TLS, startup, authentication)
    /// and on the checks of `open`: `connect_timeout`.
    pub(crate) fn connect_limit(&self) -> Duration {
        self.config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// `EXPLAIN` of an insert with the conflict key: planning it infers the
    /// unique index the key names, and fails (42P10, or 42703 for a column
    /// that does not exist) when there is none. Nothing is inserted.
    pub(crate) fn conflict_check_sql(&self) -> Option<String> {
        let key = self.conflict.as_ref()?;
        Some(format!(
            "EXPLAIN INSERT INTO {} DEFAULT VALUES ON CONFLICT ({}) DO NOTHING",
            self.table,
            key.join(", ")
        ))
    }

    /// Calls `f` with each [`Phase`] of each write and the connection's backend
    /// process id: for metrics, and for tests that cut connections at chosen
    /// points. `f` runs inside the sink's tokio runtime: it must not itself
    /// block on a runtime (the synchronous `postgres` client does); do such
    /// work on a thread of its own and wait for it.
    ///
    /// ```no_run
    /// use std::sync::{Arc, Mutex};
    /// use prodkit_batch::Batcher;
    /// use prodkit_batch::pg::{PgTarget, Phase};
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
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let columns = [("id", Type::INT8), ("payload", Type::TEXT)];
    /// let target = PgTarget::new("postgresql://app@db.internal/app", "events", &columns)?
    ///     .observe(move |phase, backend_pid| log.lock().unwrap().push((phase, backend_pid)));
    /// let batcher = Batcher::builder().build(move || target.open())?;
    /// batcher.submit(Event { id: 1, payload: "signed up".into() })?.wait()?;
    /// let phases: Vec<Phase> = seen.lock().unwrap().iter().map(|&(phase, _)| phase).collect();
    /// assert_eq!(phases, [Phase::Begun, Phase::HalfSent, Phase::Committing]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn observe(mut self, f: impl Fn(Phase, i32) + Send + Sync + 'static) -> PgTarget {
        self.observer = Some(Arc::new(f));
        self
    }

    /// Connects, and checks the declared columns against the table: each must
    /// exist and have the declared type (the server describes a prepared
    /// `INSERT`'s parameters). A sink for one flusher.
    ///
    /// # Errors
    /// The connection's failure, classified (a refused login is permanent, an
    /// unreachable server transient); a missing table or column (42P01, 42703,
    /// permanent); a declared type that is not the column's (42804, permanent,
    /// with [`SinkError::column`] naming it); a conflict key that no unique
    /// index or constraint of the table matches (42P10, or 42703 for a column
    /// that does not exist; permanent); a zero `write_timeout` (permanent); a
    /// server that does not finish connecting or answer the checks within
    /// `connect_timeout` (transient).
    ///
    /// ```no_run
    /// use prodkit_batch::{Batcher, Sink};
    /// use prodkit_batch::pg::PgTarget;
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
    /// // A sink on its own: one connection, one transaction per write.
    /// let mut sink = target.open()?;
    /// sink.write(&[Event { id: 1, payload: "signed up".into() }])?;
    ///
    /// // What a batcher does: one sink per flusher.
    /// let batcher = Batcher::builder().flushers(2).build(move || target.open())?;
    /// assert!(batcher.submit(Event { id: 2, payload: "logged in".into() })?.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open<T: PgRow>(&self) -> Result<PgSink<T>, SinkError> {
        PgSink::open(self.clone())
    }

    fn column_list(&self) -> String {
        self.columns.join(", ")
    }

    fn conflict_clause(&self) -> String {
        self.conflict.as_ref().map_or_else(String::new, |key| {
            format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "))
        })
    }

    pub(crate) fn copy_sql(&self) -> String {
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

    /// The per-connection staging table of COPY with a conflict key. It keeps
    /// the target's CHECK and NOT NULL constraints, so that COPY names a row
    /// that breaks them instead of the final insert failing with no line.
    pub(crate) fn stage_sql(&self) -> String {
        format!(
            "CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) ON COMMIT DELETE ROWS",
            self.table
        )
    }

    pub(crate) fn insert_sql(&self) -> String {
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

    /// An `INSERT` with one parameter per column, prepared (never run) to learn
    /// the columns' types.
    pub(crate) fn describe_sql(&self) -> String {
        let params: Vec<String> = (1..=self.columns.len()).map(|i| format!("${i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table,
            self.column_list(),
            params.join(", ")
        )
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

/// The `postgres` crate, re-exported for its types (`ToSql`, `Type`).
pub use postgres;

/// The `native-tls` crate, re-exported for the connector that
/// [`PgTarget::tls_connector`] takes (the same version the sink links).
pub use native_tls;

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
