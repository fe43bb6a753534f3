//! The `reqwest` feature: a [`ClientConfig`] applied to reqwest.

use std::fmt;
use std::time::Duration;

use crate::ClientConfig;

/// Why [`ClientConfig::send`] returned no response.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::SendError;
///
/// let e = SendError::HeadTimedOut { after: Duration::from_secs(7) };
/// assert_eq!(
///     e.to_string(),
///     "no response head within 7s (connect, TLS handshake and response_header_timeout)"
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The response's head did not arrive within the allowed time:
    /// connecting, the TLS handshake and `response_header_timeout`
    /// together.
    HeadTimedOut {
        /// The time allowed.
        after: Duration,
    },
    /// reqwest's error: a refused connection, a connect, read or total
    /// timeout (`is_timeout`), a bad URL.
    Reqwest(reqwest::Error),
}

impl SendError {
    /// Whether a deadline ended the call (ours or reqwest's).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::SendError;
    ///
    /// let e = SendError::HeadTimedOut { after: Duration::from_secs(5) };
    /// assert!(e.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        match self {
            SendError::HeadTimedOut { .. } => true,
            SendError::Reqwest(e) => e.is_timeout(),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::HeadTimedOut { after } => write!(
                f,
                "no response head within {} (connect, TLS handshake and response_header_timeout)",
                crate::show(*after)
            ),
            SendError::Reqwest(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::HeadTimedOut { .. } => None,
            SendError::Reqwest(e) => Some(e),
        }
    }
}

impl ClientConfig {
    /// reqwest's builder with this configuration:
    ///
    /// | field | reqwest |
    /// |---|---|
    /// | `connect_timeout` + `tls_handshake_timeout` | `connect_timeout` (reqwest has one deadline for TCP and TLS together) |
    /// | `total_timeout` | `timeout` |
    /// | `read_timeout` | `read_timeout` |
    /// | `pool_idle_timeout` | `pool_idle_timeout` |
    /// | `pool_max_idle_per_host` | `pool_max_idle_per_host` |
    /// | `tcp_keepalive` | `tcp_keepalive` |
    /// | `response_header_timeout` | none: [`send`](Self::send) enforces it |
    ///
    /// ```
    /// use prodkit_netcfg::ClientConfig;
    ///
    /// let cfg = ClientConfig::internal();
    /// cfg.validate()?;
    /// let client = cfg.reqwest_builder().build()?;
    /// # let _ = client;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reqwest_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .connect_timeout(self.connect_deadline())
            .timeout(self.total_timeout)
            .read_timeout(self.read_timeout)
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(
                usize::try_from(self.pool_max_idle_per_host).unwrap_or(usize::MAX),
            )
            .tcp_keepalive(self.tcp_keepalive)
    }

    /// Connecting and the TLS handshake together.
    fn connect_deadline(&self) -> Duration {
        self.connect_timeout
            .saturating_add(self.tls_handshake_timeout)
    }

    /// Sends `request` and waits for its response's head at most the
    /// connect deadline plus `response_header_timeout` (Go's
    /// `ResponseHeaderTimeout`, which reqwest lacks; Go counts it from the
    /// request written, this from the call, since reqwest does not say
    /// when it has connected). reqwest's `read_timeout` also runs until the
    /// head, so the shorter of the two fires. The body is then read under
    /// `read_timeout` and `total_timeout`.
    ///
    /// ```no_run
    /// use prodkit_netcfg::ClientConfig;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let cfg = ClientConfig::internal();
    /// let client = cfg.reqwest_builder().build()?;
    /// let response = cfg.send(client.get("http://127.0.0.1:8080/")).await?;
    /// println!("{}", response.text().await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        let allowed = self
            .connect_deadline()
            .saturating_add(self.response_header_timeout);
        match tokio::time::timeout(allowed, request.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(SendError::Reqwest(e)),
            Err(_elapsed) => Err(SendError::HeadTimedOut { after: allowed }),
        }
    }
}
