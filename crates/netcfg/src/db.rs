//! The PostgreSQL connection pool's sizes, lifetimes and deadlines.

use std::time::Duration;

use crate::ConfigError;
use crate::layer::{loading, settings};

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

settings! {
    /// A database connection pool: sizes, lifetimes, the start-up and
    /// statement deadlines, and the health rule. Start from a profile,
    /// layer a file and the environment over it, then
    /// [`validate`](Self::validate) (and [`validate_for`](Self::validate_for)
    /// the request deadline the statements run under).
    ///
    /// Each field's default is given per profile as internet-facing (a
    /// service answering requests) / internal / streaming (reports, exports),
    /// with its anchor.
    ///
    /// ```
    /// use prodkit_netcfg::DbPoolConfig;
    ///
    /// let cfg = DbPoolConfig::internal().with_toml("max_open = 40\nmax_idle = 20")?;
    /// cfg.validate()?;
    /// assert_eq!((cfg.max_open, cfg.max_idle), (40, 20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct DbPoolConfig {
        /// Connections open at most: 25 / 25 / 8. Go's `SetMaxOpenConns`
        /// (the seed: 25; Go's default is no limit).
        pub max_open: u64,
        /// Idle connections kept: 10 / 10 / 2. Go's `SetMaxIdleConns` (the
        /// seed: 10); at most `max_open`.
        pub max_idle: u64,
        /// A connection is closed after this much life: 5m / 30m / 30m. Go's
        /// `SetConnMaxLifetime` (the seed: 5m), so that connections move to
        /// new servers after a failover.
        pub max_lifetime: Duration,
        /// An idle connection is closed after this: 1m / 10m / 5m. Go's
        /// `SetConnMaxIdleTime` (the seed: 1m); at most `max_lifetime`.
        pub max_idle_time: Duration,
        /// Opening a connection, TCP, TLS and authentication together:
        /// 5s / 5s / 10s. tokio-postgres's `connect_timeout` covers TCP only:
        /// a server that accepts and stays mute hangs `connect` without this.
        pub connect_timeout: Duration,
        /// The server cancels a statement after this (`statement_timeout`):
        /// 5s / 30s / 30m. It must end before the request it serves (see
        /// [`validate_for`](Self::validate_for)).
        pub statement_timeout: Duration,
        /// A health ping must answer within this: 1s / 1s / 2s.
        pub health_check_timeout: Duration,
        /// The pool is saturated, and the health check says so, when this
        /// percentage of `max_open` is in use (not idle): 90 / 90 / 100.
        pub saturation_percent: u64,
        /// TCP keep-alive probes on database connections after this much
        /// silence: 30s (PostgreSQL's server side waits for the operating
        /// system's 2 hours by default).
        pub tcp_keepalive: Duration,
    }
}

loading!(DbPoolConfig, internal, "max_open", "40", "MAX_OPEN");

impl DbPoolConfig {
    /// For a service answering requests: short statements, the seed's pool
    /// sizes and lifetimes.
    ///
    /// ```
    /// use prodkit_netcfg::DbPoolConfig;
    ///
    /// DbPoolConfig::internet_facing().validate()?;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn internet_facing() -> DbPoolConfig {
        DbPoolConfig {
            max_open: 25,
            max_idle: 10,
            max_lifetime: secs(300),
            max_idle_time: secs(60),
            connect_timeout: secs(5),
            statement_timeout: secs(5),
            health_check_timeout: secs(1),
            saturation_percent: 90,
            tcp_keepalive: secs(30),
        }
    }

    /// For internal services and workers: longer statements and lives.
    ///
    /// ```
    /// use prodkit_netcfg::DbPoolConfig;
    ///
    /// DbPoolConfig::internal().validate()?;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn internal() -> DbPoolConfig {
        DbPoolConfig {
            max_open: 25,
            max_idle: 10,
            max_lifetime: secs(1800),
            max_idle_time: secs(600),
            connect_timeout: secs(5),
            statement_timeout: secs(30),
            health_check_timeout: secs(1),
            saturation_percent: 90,
            tcp_keepalive: secs(30),
        }
    }

    /// For reports and exports: few connections, long statements.
    ///
    /// ```
    /// use prodkit_netcfg::DbPoolConfig;
    ///
    /// DbPoolConfig::streaming().validate()?;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn streaming() -> DbPoolConfig {
        DbPoolConfig {
            max_open: 8,
            max_idle: 2,
            max_lifetime: secs(1800),
            max_idle_time: secs(300),
            connect_timeout: secs(10),
            statement_timeout: secs(1800),
            health_check_timeout: secs(2),
            saturation_percent: 100,
            tcp_keepalive: secs(30),
        }
    }

    /// Checks every field and their order; the first problem found names
    /// its field. (r2d2 panics on a zero duration; here it is an error at
    /// start-up.)
    ///
    /// # Errors
    /// [`ConfigError`]: a zero duration or pool size; `max_idle` above
    /// `max_open`; `max_idle_time` above `max_lifetime`; the health ping
    /// allowed longer than connecting; a saturation outside 1-100 %.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::DbPoolConfig;
    ///
    /// let mut cfg = DbPoolConfig::internal();
    /// cfg.max_lifetime = Duration::ZERO;
    /// assert_eq!(cfg.validate().unwrap_err().to_string(), "max_lifetime is zero: give a positive value");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::positive(&[
            ("max_lifetime", self.max_lifetime),
            ("max_idle_time", self.max_idle_time),
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
            ("health_check_timeout", self.health_check_timeout),
            ("tcp_keepalive", self.tcp_keepalive),
        ])?;
        if self.max_open == 0 {
            return Err(ConfigError::zero("max_open"));
        }
        if self.max_idle > self.max_open {
            return Err(ConfigError::order(
                "max_idle",
                format!(
                    "({}) is above max_open ({}): idle connections are open connections",
                    self.max_idle, self.max_open
                ),
            ));
        }
        crate::not_above(
            ("max_idle_time", self.max_idle_time),
            ("max_lifetime", self.max_lifetime),
            "a connection's idle time is part of its life",
        )?;
        crate::not_above(
            ("health_check_timeout", self.health_check_timeout),
            ("connect_timeout", self.connect_timeout),
            "a ping on an open connection cannot need longer than opening one",
        )?;
        if !(1..=100).contains(&self.saturation_percent) {
            return Err(ConfigError::range(
                "saturation_percent",
                format!("({}) is outside 1-100", self.saturation_percent),
            ));
        }
        crate::in_range(
            "statement_timeout",
            self.statement_timeout,
            Duration::from_millis(1),
            Duration::from_millis(i32::MAX as u64),
            "PostgreSQL takes whole milliseconds up to 2,147,483,647 (below 1 ms would mean no limit, above it refuses every connection)",
        )?;
        crate::keepalive("tcp_keepalive", self.tcp_keepalive)?;
        Ok(())
    }

    /// Checks the statement deadline against the request deadline the
    /// statements run under: a statement must be cancelled before the
    /// request it serves gives up, or it goes on holding a connection (and
    /// locks) for nobody.
    ///
    /// # Errors
    /// [`ConfigError`] naming `statement_timeout` when it is not below
    /// `request_deadline`.
    ///
    /// ```
    /// use prodkit_netcfg::{DbPoolConfig, ServerConfig};
    ///
    /// let server = ServerConfig::internet_facing();
    /// DbPoolConfig::internet_facing().validate_for(server.handler_timeout)?;
    /// let err = DbPoolConfig::internal().validate_for(server.handler_timeout).unwrap_err();
    /// assert_eq!(err.field(), "statement_timeout");
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn validate_for(&self, request_deadline: Duration) -> Result<(), ConfigError> {
        if self.statement_timeout >= request_deadline {
            return Err(ConfigError::order(
                "statement_timeout",
                format!(
                    "({}) is not below the request deadline ({}): a statement would outlive its request",
                    crate::show(self.statement_timeout),
                    crate::show(request_deadline)
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(any(feature = "postgres", feature = "r2d2"))]
impl DbPoolConfig {
    /// `existing` start-up options with `statement_timeout` added.
    pub(crate) fn start_up_options(&self, existing: Option<&str>) -> String {
        // Whole milliseconds, rounded up: a fraction never turns into 0,
        // which PostgreSQL reads as no limit.
        let statement = format!(
            "-c statement_timeout={}",
            self.statement_timeout.as_nanos().div_ceil(1_000_000)
        );
        match existing {
            Some(o) if !o.is_empty() => format!("{o} {statement}"),
            _ => statement,
        }
    }
}
