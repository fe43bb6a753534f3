//! The HTTP server's limits and timeouts.

use std::time::Duration;

use crate::ConfigError;
use crate::layer::{loading, settings};

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

settings! {
    /// An HTTP server's limits and timeouts. Start from a profile, layer a
    /// file and the environment over it, then [`validate`](Self::validate).
    ///
    /// Each field's default is given per profile as internet-facing /
    /// internal / streaming, with its anchor.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::ServerConfig;
    ///
    /// let cfg = ServerConfig::internet_facing()
    ///     .with_toml("idle_timeout = \"30s\"")?;
    /// cfg.validate()?;
    /// assert_eq!(cfg.idle_timeout, Duration::from_secs(30));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct ServerConfig {
        /// A connection that sends no byte of a request within this is
        /// closed: 5s / 10s / 10s. Go and hyper-util have no such limit (a
        /// silent client holds its connection until the header timeout, or
        /// for ever); nginx closes it after `client_header_timeout`, 60s.
        pub first_byte_timeout: Duration,
        /// The request line and headers must arrive within this of the
        /// first byte: 10s / 10s / 10s. Go's `ReadHeaderTimeout` (the seed:
        /// 10s), hyper's `header_read_timeout` (30s by default in hyper 1,
        /// none in `axum::serve`): slowloris holds a connection this long.
        pub header_read_timeout: Duration,
        /// The time a handler waits for the request's body, in all: 30s /
        /// 60s / 1h. Only waiting counts: not the head (it has its own
        /// limit), not the handler's own pauses, not the time before it
        /// asks for the body (`Expect: 100-continue`). Go's `ReadTimeout`
        /// (the seed: 15s) counts from the first byte instead; nginx's
        /// `client_body_timeout` is 60s between reads.
        pub request_read_timeout: Duration,
        /// The handler's deadline to produce a response: 20s / 30s / 1h.
        /// A database statement run for a request must end before it (see
        /// [`DbPoolConfig::validate_for`](crate::DbPoolConfig::validate_for)).
        pub handler_timeout: Duration,
        /// The response must be written within this once started: 30s /
        /// 60s / 1h. Go's `WriteTimeout` (the seed: 15s); nginx's
        /// `send_timeout`, 60s between writes. A client that stops reading
        /// holds a connection and its buffers this long.
        pub response_write_timeout: Duration,
        /// A kept-alive connection with no request is closed after this:
        /// 60s / 90s / 60s. Go's `IdleTimeout` (the seed: 60s and 120s);
        /// nginx's `keepalive_timeout`, 75s. Clients must give up idle
        /// connections before this (see
        /// [`ClientConfig::validate_against`](crate::ClientConfig::validate_against)).
        pub idle_timeout: Duration,
        /// A TLS handshake must end within this: 10s / 10s / 10s. Go's
        /// `TLSHandshakeTimeout` (10s).
        pub tls_handshake_timeout: Duration,
        /// The largest request head (line and headers) accepted; a larger
        /// one gets 431: 16 KiB / 64 KiB / 64 KiB. Go's `MaxHeaderBytes` is
        /// 1 MiB (the seed too); nginx allows 1 KiB plus 4 x 8 KiB, and
        /// Cloudflare 32 KiB in all.
        pub max_header_bytes: u64,
        /// Connections served at once; more wait in the listen backlog:
        /// 10,000 / 4,096 / 1,024. nginx's `worker_connections` is 512 a
        /// worker.
        pub max_connections: u64,
        /// Whether connections are kept alive between requests: true.
        pub keep_alive: bool,
    }
}

loading!(
    ServerConfig,
    internet_facing,
    "idle_timeout",
    "\\\"30s\\\"",
    "MAX_CONNECTIONS"
);

impl ServerConfig {
    /// For a server the internet reaches: short limits against slow and
    /// silent clients, small heads.
    ///
    /// ```
    /// use prodkit_netcfg::ServerConfig;
    ///
    /// let cfg = ServerConfig::internet_facing();
    /// assert_eq!(cfg.max_header_bytes, 16 * 1024);
    /// cfg.validate()?;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn internet_facing() -> ServerConfig {
        ServerConfig {
            first_byte_timeout: secs(5),
            header_read_timeout: secs(10),
            request_read_timeout: secs(30),
            handler_timeout: secs(20),
            response_write_timeout: secs(30),
            idle_timeout: secs(60),
            tls_handshake_timeout: secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: 10_000,
            keep_alive: true,
        }
    }

    /// For a server behind a load balancer or inside a cluster: clients
    /// are known, heads larger (tracing headers, tokens).
    ///
    /// ```
    /// use prodkit_netcfg::ServerConfig;
    ///
    /// ServerConfig::internal().validate()?;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn internal() -> ServerConfig {
        ServerConfig {
            first_byte_timeout: secs(10),
            header_read_timeout: secs(10),
            request_read_timeout: secs(60),
            handler_timeout: secs(30),
            response_write_timeout: secs(60),
            idle_timeout: secs(90),
            tls_handshake_timeout: secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 4_096,
            keep_alive: true,
        }
    }

    /// For long uploads, downloads and server-sent streams: the head is
    /// still bounded, the body and the response get an hour.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::ServerConfig;
    ///
    /// let cfg = ServerConfig::streaming();
    /// assert_eq!(cfg.response_write_timeout, Duration::from_secs(3600));
    /// cfg.validate()?;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn streaming() -> ServerConfig {
        ServerConfig {
            first_byte_timeout: secs(10),
            header_read_timeout: secs(10),
            request_read_timeout: secs(3600),
            handler_timeout: secs(3600),
            response_write_timeout: secs(3600),
            idle_timeout: secs(60),
            tls_handshake_timeout: secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 1_024,
            keep_alive: true,
        }
    }

    /// Checks every field and their order; the first problem found names
    /// its field.
    ///
    /// # Errors
    /// [`ConfigError`]: a zero duration or count; the first byte's or the
    /// head's timeout above the request's; a head limit below 1 KiB.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::ServerConfig;
    ///
    /// let mut cfg = ServerConfig::internet_facing();
    /// cfg.header_read_timeout = Duration::from_secs(60);
    /// assert_eq!(cfg.validate().unwrap_err().to_string(),
    ///     "header_read_timeout (1m) is above request_read_timeout (30s): a body gets at least the time its head gets");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::positive(&[
            ("first_byte_timeout", self.first_byte_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("request_read_timeout", self.request_read_timeout),
            ("handler_timeout", self.handler_timeout),
            ("response_write_timeout", self.response_write_timeout),
            ("idle_timeout", self.idle_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
        ])?;
        for (field, n) in [
            ("max_header_bytes", self.max_header_bytes),
            ("max_connections", self.max_connections),
        ] {
            if n == 0 {
                return Err(ConfigError::zero(field));
            }
        }
        crate::not_above(
            ("first_byte_timeout", self.first_byte_timeout),
            ("header_read_timeout", self.header_read_timeout),
            "the first byte is part of the head",
        )?;
        crate::not_above(
            ("header_read_timeout", self.header_read_timeout),
            ("request_read_timeout", self.request_read_timeout),
            "a body gets at least the time its head gets",
        )?;
        if self.max_header_bytes < 1024 {
            return Err(ConfigError::range(
                "max_header_bytes",
                format!(
                    "({}) is below 1024: a request line and a few headers do not fit",
                    self.max_header_bytes
                ),
            ));
        }
        Ok(())
    }
}
