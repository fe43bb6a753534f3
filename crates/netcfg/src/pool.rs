//! The `r2d2` feature: a blocking PostgreSQL pool (r2d2 and the `postgres`
//! crate) built from a [`DbPoolConfig`], and its health.

use std::fmt;
use std::time::{Duration, Instant};

use postgres::tls::{MakeTlsConnect, TlsConnect};
use postgres::{Client, Socket};
use r2d2::{ManageConnection, Pool};
use r2d2_postgres::PostgresConnectionManager;

use crate::{ConfigError, DbPoolConfig, Health, HealthCheck, PoolState};

impl From<r2d2::State> for PoolState {
    /// Connections in use are the open ones not idle.
    ///
    /// ```
    /// use prodkit_netcfg::PoolState;
    ///
    /// # fn show<M: r2d2::ManageConnection>(pool: &r2d2::Pool<M>) {
    /// let state = PoolState::from(pool.state());
    /// println!("{} in use, {} idle", state.in_use, state.idle);
    /// # }
    /// ```
    fn from(state: r2d2::State) -> PoolState {
        PoolState {
            in_use: u64::from(state.connections.saturating_sub(state.idle_connections)),
            idle: u64::from(state.idle_connections),
        }
    }
}

/// `n` as r2d2's `u32`, or the error naming `field`.
fn count(field: &'static str, n: u64) -> Result<u32, ConfigError> {
    u32::try_from(n).map_err(|_| {
        ConfigError::range(field, format!("({n}) is above r2d2's limit, {}", u32::MAX))
    })
}

/// r2d2's manager for the `postgres` crate, as `r2d2_postgres`'s but with
/// a deadline on the check of each connection taken from the pool. r2d2
/// checks each connection it hands out; `r2d2_postgres` checks with a
/// query that has no deadline, so against a server that hangs (stopped, or
/// a network that drops everything) `get` hangs with it,
/// `connection_timeout` or not. This one checks with the same query under
/// `health_check_timeout`: a connection that fails it (the server
/// restarted and closed it) is dropped and another taken; one that times
/// out is handed out all the same, since it is not known dead and
/// dropping it would wait for the server's answer (the health check
/// reports the hang).
///
/// A query on a hung server still waits: the `postgres` crate has no
/// client-side deadline (`statement_timeout` is the server's), and closing
/// a connection waits for its unanswered requests. The async path
/// (feature `postgres`, tokio timeouts) has neither limit.
///
/// ```no_run
/// use prodkit_netcfg::{DbPoolConfig, PgManager};
/// use r2d2_postgres::postgres::NoTls;
///
/// let pool: r2d2::Pool<PgManager<NoTls>> = DbPoolConfig::internal()
///     .postgres_pool(&"host=127.0.0.1 user=app".parse()?, NoTls)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PgManager<T> {
    inner: PostgresConnectionManager<T>,
    check_timeout: Duration,
}

impl<T> fmt::Debug for PgManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgManager")
            .field("check_timeout", &self.check_timeout)
            .finish_non_exhaustive()
    }
}

/// Why [`PgManager`] gave no connection (r2d2 reports it in its own error).
///
/// ```
/// use prodkit_netcfg::PgManagerError;
///
/// assert_eq!(PgManagerError::Closed.to_string(), "the connection is closed");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum PgManagerError {
    /// Connecting failed.
    Postgres(postgres::Error),
    /// A pooled connection was found closed when taken.
    Closed,
}

/// A `postgres` error with the server's code and message when there is one
/// (its own text is "db error" then).
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

impl fmt::Display for PgManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgManagerError::Postgres(e) => f.write_str(&describe(e)),
            PgManagerError::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for PgManagerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgManagerError::Postgres(e) => Some(e),
            PgManagerError::Closed => None,
        }
    }
}

impl<T> ManageConnection for PgManager<T>
where
    T: MakeTlsConnect<Socket> + Clone + 'static + Sync + Send,
    T::TlsConnect: Send,
    T::Stream: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    type Connection = Client;
    type Error = PgManagerError;

    fn connect(&self) -> Result<Client, PgManagerError> {
        self.inner.connect().map_err(PgManagerError::Postgres)
    }

    fn is_valid(&self, conn: &mut Client) -> Result<(), PgManagerError> {
        if conn.is_closed() {
            return Err(PgManagerError::Closed);
        }
        let start = Instant::now();
        match conn.is_valid(self.check_timeout) {
            Ok(()) => Ok(()),
            // Timed out: the server hangs, or is slow. The query stays
            // unanswered, and r2d2 would drop a refused connection here,
            // in the caller's thread, waiting for that answer: keep it.
            Err(_) if start.elapsed() >= self.check_timeout => Ok(()),
            Err(e) => Err(PgManagerError::Postgres(e)),
        }
    }

    fn has_broken(&self, conn: &mut Client) -> bool {
        conn.is_closed()
    }
}

impl DbPoolConfig {
    /// The `postgres` crate's configuration with the keep-alives, the TCP
    /// connect timeout and `statement_timeout` (a start-up option the
    /// server applies to every statement of the connection).
    ///
    /// ```
    /// use prodkit_netcfg::DbPoolConfig;
    ///
    /// let mut config: postgres::Config = "host=127.0.0.1 user=app".parse()?;
    /// DbPoolConfig::internet_facing().apply_postgres_sync(&mut config);
    /// assert_eq!(config.get_options(), Some("-c statement_timeout=5000"));
    /// # Ok::<(), postgres::Error>(())
    /// ```
    pub fn apply_postgres_sync(&self, config: &mut postgres::Config) {
        config.connect_timeout(self.connect_timeout);
        config.keepalives(true);
        config.keepalives_idle(self.tcp_keepalive);
        config.options(&self.start_up_options(config.get_options()));
    }

    /// r2d2's builder with this configuration, once it is valid (r2d2
    /// panics on zero durations and sizes, and on `min_idle` above
    /// `max_size`; here they are errors):
    ///
    /// | field | r2d2 |
    /// |---|---|
    /// | `max_open` | `max_size` |
    /// | `max_idle` | `min_idle`: r2d2 keeps this many open and closes idle ones above it after `idle_timeout` (Go closes idle ones above it at once and keeps no minimum) |
    /// | `max_lifetime` | `max_lifetime` |
    /// | `max_idle_time` | `idle_timeout` |
    /// | `connect_timeout` | `connection_timeout`: how long `get` waits, for a free connection or a new one |
    ///
    /// ```
    /// use prodkit_netcfg::DbPoolConfig;
    /// use r2d2_postgres::{postgres::NoTls, PostgresConnectionManager};
    ///
    /// let builder = DbPoolConfig::internal()
    ///     .r2d2_builder::<PostgresConnectionManager<NoTls>>()?;
    /// # let _ = builder;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn r2d2_builder<M: ManageConnection>(&self) -> Result<r2d2::Builder<M>, ConfigError> {
        self.validate()?;
        Ok(Pool::builder()
            .max_size(count("max_open", self.max_open)?)
            .min_idle(Some(count("max_idle", self.max_idle)?))
            .max_lifetime(Some(self.max_lifetime))
            .idle_timeout(Some(self.max_idle_time))
            .connection_timeout(self.connect_timeout))
    }

    /// A pool of `config`'s server with this configuration (applied with
    /// [`apply_postgres_sync`](Self::apply_postgres_sync)), each connection
    /// checked when taken, under `health_check_timeout` (see [`PgManager`]).
    /// It opens its
    /// connections in the background: a server that is down makes `get`
    /// fail after `connect_timeout`, not this call.
    ///
    /// The `postgres` crate offers no deadline over a connection's whole
    /// start-up: against a server that accepts and stays mute, `get`
    /// fails after `connect_timeout`, but the r2d2 thread opening the
    /// connection waits until the TCP connection ends. The async path,
    /// [`connect_postgres`](Self::connect_postgres) (feature `postgres`),
    /// has the full deadline.
    ///
    /// In an async service, use the pool inside `spawn_blocking` and drop
    /// its last handle there too: the `postgres` crate blocks on its own
    /// runtime to run a query and to close a connection, and panics when
    /// that happens on a tokio runtime thread.
    ///
    /// ```no_run
    /// use prodkit_netcfg::{DbPoolConfig, HealthCheck};
    /// use r2d2_postgres::postgres::NoTls;
    ///
    /// let db = DbPoolConfig::internet_facing();
    /// let pool = db.postgres_pool(&"host=127.0.0.1 user=app".parse()?, NoTls)?;
    /// let mut conn = pool.get()?;
    /// conn.simple_query("SELECT 1")?;
    /// println!("{}", HealthCheck::new(&db).check_postgres(&pool));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn postgres_pool<T>(
        &self,
        config: &postgres::Config,
        tls: T,
    ) -> Result<Pool<PgManager<T>>, ConfigError>
    where
        T: MakeTlsConnect<Socket> + Clone + 'static + Sync + Send,
        T::TlsConnect: Send,
        T::Stream: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let mut config = config.clone();
        self.apply_postgres_sync(&mut config);
        let manager = PgManager {
            inner: PostgresConnectionManager::new(config, tls),
            check_timeout: self.health_check_timeout.min(crate::LONGEST),
        };
        Ok(self.r2d2_builder()?.build_unchecked(manager))
    }
}

impl HealthCheck {
    /// Judges `pool`: saturated when too many connections are in use
    /// (without a ping), else a ping (`get` and `is_valid`, each under
    /// `health_check_timeout`).
    ///
    /// ```no_run
    /// use prodkit_netcfg::{DbPoolConfig, HealthCheck};
    /// use r2d2_postgres::postgres::NoTls;
    ///
    /// let db = DbPoolConfig::internal();
    /// let pool = db.postgres_pool(&"host=127.0.0.1 user=app".parse()?, NoTls)?;
    /// let health = HealthCheck::new(&db).check_postgres(&pool);
    /// if !health.is_healthy() {
    ///     eprintln!("not ready: {health}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_postgres<T>(&self, pool: &Pool<PgManager<T>>) -> Health
    where
        T: MakeTlsConnect<Socket> + Clone + 'static + Sync + Send,
        T::TlsConnect: Send,
        T::Stream: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        self.check(PoolState::from(pool.state()), |timeout| {
            // An unvalidated configuration may hold a timeout r2d2 would
            // overflow the clock with.
            let timeout = timeout.min(crate::LONGEST);
            let mut conn = pool.get_timeout(timeout).map_err(|e| e.to_string())?;
            conn.is_valid(timeout).map_err(|e| describe(&e))
        })
    }
}
