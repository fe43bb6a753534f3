//! The `postgres` feature: a [`DbPoolConfig`] applied to tokio-postgres,
//! and a connect whose deadline covers the whole start-up.

use std::fmt;
use std::time::Duration;

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Connection, Socket};

use crate::DbPoolConfig;

/// A connection that could not be opened.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::PgConnectError;
///
/// let e = PgConnectError::TimedOut { after: Duration::from_secs(5) };
/// assert_eq!(e.to_string(), "connecting to PostgreSQL took longer than 5s (TCP, TLS and authentication together)");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum PgConnectError {
    /// The start-up (TCP, TLS and authentication) did not end within
    /// `connect_timeout`.
    TimedOut {
        /// The deadline.
        after: Duration,
    },
    /// tokio-postgres refused or failed the connection.
    Postgres(tokio_postgres::Error),
}

impl fmt::Display for PgConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgConnectError::TimedOut { after } => write!(
                f,
                "connecting to PostgreSQL took longer than {} (TCP, TLS and authentication together)",
                crate::show(*after)
            ),
            PgConnectError::Postgres(e) => write!(f, "connecting to PostgreSQL: {e}"),
        }
    }
}

impl std::error::Error for PgConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgConnectError::Postgres(e) => Some(e),
            PgConnectError::TimedOut { .. } => None,
        }
    }
}

impl DbPoolConfig {
    /// Applies the settings a connection carries to a tokio-postgres
    /// `Config`: the TCP `connect_timeout`, keep-alives after
    /// `tcp_keepalive`, and `statement_timeout` as a start-up option (added
    /// to the options already there). The start-up deadline is
    /// [`connect_postgres`](Self::connect_postgres)'s.
    ///
    /// ```
    /// use prodkit_netcfg::DbPoolConfig;
    ///
    /// let mut config: tokio_postgres::Config = "host=localhost user=app".parse()?;
    /// DbPoolConfig::internet_facing().apply_postgres(&mut config);
    /// assert_eq!(config.get_options(), Some("-c statement_timeout=5000"));
    /// assert!(config.get_keepalives());
    /// # Ok::<(), tokio_postgres::Error>(())
    /// ```
    pub fn apply_postgres(&self, config: &mut Config) {
        config.connect_timeout(self.connect_timeout);
        config.keepalives(true);
        config.keepalives_idle(self.tcp_keepalive);
        let options = self.start_up_options(config.get_options());
        config.options(options);
    }

    /// Opens a connection within `connect_timeout` for the whole start-up:
    /// TCP, TLS and authentication. (tokio-postgres's own
    /// `connect_timeout` bounds TCP alone: a server that accepts and then
    /// says nothing hangs its `connect` for ever.) Needs a tokio runtime
    /// with its timer.
    ///
    /// # Errors
    /// [`PgConnectError::TimedOut`] past the deadline,
    /// [`PgConnectError::Postgres`] when the server refuses.
    ///
    /// ```no_run
    /// use prodkit_netcfg::DbPoolConfig;
    ///
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let db = DbPoolConfig::internet_facing();
    /// let mut config: tokio_postgres::Config = "host=localhost user=app".parse()?;
    /// db.apply_postgres(&mut config);
    /// let (client, connection) = db.connect_postgres(&config, tokio_postgres::NoTls).await?;
    /// tokio::spawn(connection);
    /// client.simple_query("SELECT 1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_postgres<T>(
        &self,
        config: &Config,
        tls: T,
    ) -> Result<(Client, Connection<Socket, T::Stream>), PgConnectError>
    where
        T: MakeTlsConnect<Socket>,
    {
        match tokio::time::timeout(self.connect_timeout, config.connect(tls)).await {
            Ok(Ok(pair)) => Ok(pair),
            Ok(Err(e)) => Err(PgConnectError::Postgres(e)),
            Err(_) => Err(PgConnectError::TimedOut {
                after: self.connect_timeout,
            }),
        }
    }
}
