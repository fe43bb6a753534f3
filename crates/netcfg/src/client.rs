//! The HTTP client's timeouts and connection pool.

use std::time::Duration;

use crate::layer::{loading, settings};
use crate::{ConfigError, ServerConfig};

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

settings! {
    /// An HTTP client's timeouts and connection pool. Start from a profile,
    /// layer a file and the environment over it, then
    /// [`validate`](Self::validate) (and
    /// [`validate_against`](Self::validate_against) the servers it calls,
    /// where their settings are known).
    ///
    /// Each field's default is given per profile as internet-facing (calls
    /// to services on the internet) / internal / streaming, with its anchor.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::ClientConfig;
    ///
    /// let cfg = ClientConfig::internal().with_toml("total_timeout = \"5s\"")?;
    /// cfg.validate()?;
    /// assert_eq!(cfg.total_timeout, Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct ClientConfig {
        /// TCP connect: 5s / 2s / 5s. Go's dialer `Timeout` (the seed: 30s);
        /// reqwest has none by default. A full listen backlog or a dropped
        /// SYN holds a call this long.
        pub connect_timeout: Duration,
        /// The TLS handshake after connecting: 10s / 5s / 10s. Go's
        /// `TLSHandshakeTimeout` (10s). A listener that accepts and never
        /// speaks TLS holds a call this long.
        pub tls_handshake_timeout: Duration,
        /// From the request sent to the response's head: 10s / 5s / 30s.
        /// Go's `ResponseHeaderTimeout` (none by default); reqwest has none.
        pub response_header_timeout: Duration,
        /// The whole call, body included: 30s / 10s / 1h. Go's
        /// `Client.Timeout` (the seed: 30s); reqwest has none by default.
        pub total_timeout: Duration,
        /// Between two reads of the response: 15s / 5s / 60s. reqwest's
        /// `read_timeout`, which also runs from the send to the response's
        /// head: with reqwest the head comes within the shorter of this and
        /// the connect, TLS and head deadlines together.
        pub read_timeout: Duration,
        /// An idle pooled connection is closed after this: 50s / 50s /
        /// 50s. Go's `IdleConnTimeout` (the seed: 90s); reqwest's default
        /// is 90s. It must stay below the idle timeout of the servers
        /// called (60s in the server profiles here, 75s in nginx, 60s in
        /// Go's), or the client reuses a connection the server is closing.
        pub pool_idle_timeout: Duration,
        /// Idle connections kept per host: 32 / 64 / 8. Go's
        /// `MaxIdleConnsPerHost` (the seed: 30; Go's default 2). Zero
        /// keeps none (no pooling).
        pub pool_max_idle_per_host: u64,
        /// TCP keep-alive probes after this much silence: 30s. Go's dialer
        /// `KeepAlive` (the seed: 30s; Go's default 15s).
        pub tcp_keepalive: Duration,
    }
}

loading!(
    ClientConfig,
    internal,
    "total_timeout",
    "\\\"5s\\\"",
    "POOL_MAX_IDLE_PER_HOST"
);

impl ClientConfig {
    /// For calls to services on the internet.
    ///
    /// ```
    /// use prodkit_netcfg::ClientConfig;
    ///
    /// ClientConfig::internet_facing().validate()?;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn internet_facing() -> ClientConfig {
        ClientConfig {
            connect_timeout: secs(5),
            tls_handshake_timeout: secs(10),
            response_header_timeout: secs(10),
            total_timeout: secs(30),
            read_timeout: secs(15),
            pool_idle_timeout: secs(50),
            pool_max_idle_per_host: 32,
            tcp_keepalive: secs(30),
        }
    }

    /// For calls inside a cluster: short limits, so that a stuck
    /// dependency fails a call fast.
    ///
    /// ```
    /// use prodkit_netcfg::ClientConfig;
    ///
    /// ClientConfig::internal().validate()?;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn internal() -> ClientConfig {
        ClientConfig {
            connect_timeout: secs(2),
            tls_handshake_timeout: secs(5),
            response_header_timeout: secs(5),
            total_timeout: secs(10),
            read_timeout: secs(5),
            pool_idle_timeout: secs(50),
            pool_max_idle_per_host: 64,
            tcp_keepalive: secs(30),
        }
    }

    /// For long downloads and streams: the call may take an hour, but
    /// connecting and the first byte may not.
    ///
    /// ```
    /// use prodkit_netcfg::ClientConfig;
    ///
    /// ClientConfig::streaming().validate()?;
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn streaming() -> ClientConfig {
        ClientConfig {
            connect_timeout: secs(5),
            tls_handshake_timeout: secs(10),
            response_header_timeout: secs(30),
            total_timeout: secs(3600),
            read_timeout: secs(60),
            pool_idle_timeout: secs(50),
            pool_max_idle_per_host: 8,
            tcp_keepalive: secs(30),
        }
    }

    /// Checks every field and their order; the first problem found names
    /// its field.
    ///
    /// # Errors
    /// [`ConfigError`]: a zero duration or count; connecting, the
    /// handshake or the response head allowed longer than the whole call.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::ClientConfig;
    ///
    /// let mut cfg = ClientConfig::internal();
    /// cfg.connect_timeout = Duration::from_secs(30);
    /// assert_eq!(cfg.validate().unwrap_err().field(), "connect_timeout");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::positive(&[
            ("connect_timeout", self.connect_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
            ("response_header_timeout", self.response_header_timeout),
            ("total_timeout", self.total_timeout),
            ("read_timeout", self.read_timeout),
            ("pool_idle_timeout", self.pool_idle_timeout),
            ("tcp_keepalive", self.tcp_keepalive),
        ])?;
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
            ("response_header_timeout", self.response_header_timeout),
            ("read_timeout", self.read_timeout),
        ] {
            crate::not_above(
                (field, d),
                ("total_timeout", self.total_timeout),
                "the whole call ends first",
            )?;
        }
        crate::keepalive("tcp_keepalive", self.tcp_keepalive)?;
        Ok(())
    }

    /// Checks this client against a server it calls: the client must drop
    /// an idle pooled connection before the server closes it, or a request
    /// sent as the server closes fails (the stale-connection race).
    ///
    /// # Errors
    /// [`ConfigError`] naming `pool_idle_timeout` when it is not below the
    /// server's `idle_timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::{ClientConfig, ServerConfig};
    ///
    /// let server = ServerConfig::internet_facing();
    /// ClientConfig::internal().validate_against(&server)?;
    /// let mut client = ClientConfig::internal();
    /// client.pool_idle_timeout = Duration::from_secs(90); // Go's default
    /// assert_eq!(client.validate_against(&server).unwrap_err().field(), "pool_idle_timeout");
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn validate_against(&self, server: &ServerConfig) -> Result<(), ConfigError> {
        if self.pool_idle_timeout >= server.idle_timeout {
            return Err(ConfigError::order(
                "pool_idle_timeout",
                format!(
                    "({}) is not below the server's idle_timeout ({}): the client would reuse connections the server is closing",
                    crate::show(self.pool_idle_timeout),
                    crate::show(server.idle_timeout)
                ),
            ));
        }
        Ok(())
    }
}
