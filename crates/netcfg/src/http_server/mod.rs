//! The `hyper` feature: an HTTP/1 server with every limit of
//! [`ServerConfig`], on hyper and tokio.

mod io;
mod service;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Body;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_native_tls::TlsAcceptor;

pub use service::{RequestBody, ResponseBody};

use crate::{ConfigError, ServerConfig};

/// The limit that closed a connection, named as its [`ServerConfig`] field.
///
/// ```
/// use prodkit_netcfg::Limit;
///
/// assert_eq!(Limit::Header.to_string(), "header_read_timeout");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// `first_byte_timeout`: the client sent nothing.
    FirstByte,
    /// `header_read_timeout`: the head did not arrive in time (slowloris).
    Header,
    /// `request_read_timeout`: the body did not arrive in time.
    RequestRead,
    /// `response_write_timeout`: the client did not take the response.
    ResponseWrite,
    /// `idle_timeout`: a kept-alive connection sent no next request.
    Idle,
    /// `tls_handshake_timeout`: the TLS handshake did not end in time.
    TlsHandshake,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::FirstByte => "first_byte_timeout",
            Limit::Header => "header_read_timeout",
            Limit::RequestRead => "request_read_timeout",
            Limit::ResponseWrite => "response_write_timeout",
            Limit::Idle => "idle_timeout",
            Limit::TlsHandshake => "tls_handshake_timeout",
        })
    }
}

/// Why a connection ended other than by the client closing it.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::{ConnectionError, Limit};
///
/// let e = ConnectionError::TimedOut { limit: Limit::Idle, after: Duration::from_secs(60) };
/// assert_eq!(e.to_string(), "connection closed by idle_timeout (1m)");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionError {
    /// A limit of the [`ServerConfig`] closed it.
    TimedOut {
        /// The limit.
        limit: Limit,
        /// What it allows.
        after: Duration,
    },
    /// The TLS handshake failed.
    Tls(native_tls::Error),
    /// hyper ended it: a malformed request, a head over
    /// `max_header_bytes` (answered 431), a reset, a handler error.
    Http(hyper::Error),
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::TimedOut { limit, after } => {
                write!(f, "connection closed by {limit} ({})", crate::show(*after))
            }
            ConnectionError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            ConnectionError::Http(e) => write!(f, "connection failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectionError::TimedOut { .. } => None,
            ConnectionError::Tls(e) => Some(e),
            ConnectionError::Http(e) => Some(e),
        }
    }
}

impl ServerConfig {
    /// hyper's HTTP/1 builder with what hyper itself can enforce: keep-alive,
    /// `max_header_bytes` (431 above it), and `header_read_timeout` on
    /// tokio's timer.
    ///
    /// hyper alone runs its header timer also while a kept-alive connection
    /// waits for its next request, so idle connections close after
    /// `header_read_timeout`, not `idle_timeout`; it has no first-byte,
    /// body, handler or write deadline. [`HttpServer`] has each.
    ///
    /// ```
    /// use prodkit_netcfg::ServerConfig;
    ///
    /// let builder = ServerConfig::internet_facing().http1_builder();
    /// # let _ = builder;
    /// ```
    pub fn http1_builder(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(self.keep_alive)
            .max_header_size(usize::try_from(self.max_header_bytes).unwrap_or(usize::MAX));
        builder
    }
}

/// An HTTP/1 server enforcing every limit of a [`ServerConfig`]:
///
/// | limit | from | to |
/// |---|---|---|
/// | `first_byte_timeout` | accept (or TLS handshake) | a request's first byte |
/// | `header_read_timeout` | a request's first byte | its head complete |
/// | `request_read_timeout` | the handler waiting for body bytes | that waiting, in all |
/// | `handler_timeout` | the head complete | the handler's answer (else 503) |
/// | `response_write_timeout` | the handler's answer | the response written (also a stream that stalls) |
/// | `idle_timeout` | a response written (flushed to the socket) | the next request's first byte |
/// | `tls_handshake_timeout` | accept | the handshake done |
/// | `max_header_bytes` | | 431 above it |
/// | `max_connections` | | more wait in the listen backlog |
///
/// A read deadline is checked where the connection waits for the client:
/// a read with no byte ready. The body's limit is a budget of the
/// handler's waiting for it, so a client is never late because of the
/// handler's pauses. The response's deadline is total: a client that does not
/// read, and a response stream that stalls or runs past it, are both cut.
/// A connection a limit closes ends with [`ConnectionError::TimedOut`]
/// naming it; a handler reading the body sees the read fail.
///
/// ```no_run
/// use std::convert::Infallible;
/// use http_body_util::Full;
/// use hyper::body::Bytes;
/// use hyper::{Request, Response};
/// use prodkit_netcfg::{HttpServer, RequestBody, ServerConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = HttpServer::new(&ServerConfig::internet_facing())?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let hello = hyper::service::service_fn(|_req: Request<RequestBody>| async {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
/// });
/// let shutdown = std::future::pending::<()>(); // tokio::signal::ctrl_c(), say
/// server.serve(listener, hello, shutdown).await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpServer {
    config: ServerConfig,
    tls: Option<TlsAcceptor>,
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl HttpServer {
    /// A server with `config`'s limits, once it is valid.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::{HttpServer, ServerConfig};
    ///
    /// let mut cfg = ServerConfig::internal();
    /// cfg.idle_timeout = Duration::ZERO;
    /// assert!(HttpServer::new(&cfg).is_err());
    /// ```
    pub fn new(config: &ServerConfig) -> Result<HttpServer, ConfigError> {
        config.validate()?;
        Ok(HttpServer {
            config: config.clone(),
            tls: None,
        })
    }

    /// Serves TLS with `acceptor`, its handshake under
    /// `tls_handshake_timeout`.
    ///
    /// ```no_run
    /// use prodkit_netcfg::{HttpServer, ServerConfig};
    ///
    /// # fn run(pkcs12: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// let identity = native_tls::Identity::from_pkcs12(pkcs12, "password")?;
    /// let acceptor = native_tls::TlsAcceptor::new(identity)?;
    /// let server = HttpServer::new(&ServerConfig::internet_facing())?.tls(acceptor.into());
    /// # let _ = server;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(mut self, acceptor: TlsAcceptor) -> HttpServer {
        self.tls = Some(acceptor);
        self
    }

    /// The configuration served.
    ///
    /// ```
    /// use prodkit_netcfg::{HttpServer, ServerConfig};
    ///
    /// let server = HttpServer::new(&ServerConfig::internal())?;
    /// assert_eq!(server.config(), &ServerConfig::internal());
    /// # Ok::<(), prodkit_netcfg::ConfigError>(())
    /// ```
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    fn builder(&self) -> http1::Builder {
        let mut builder = self.config.http1_builder();
        // The head's deadline is enforced on the stream instead: hyper's
        // would also cut kept-alive connections after the header timeout.
        builder.header_read_timeout(None);
        builder
    }

    /// Serves one accepted connection until it ends; `Ok` when the client
    /// closed it (or keep-alive is off and the response is out).
    ///
    /// ```no_run
    /// use std::convert::Infallible;
    /// use http_body_util::Empty;
    /// use hyper::body::Bytes;
    /// use hyper::{Request, Response};
    /// use prodkit_netcfg::{HttpServer, RequestBody, ServerConfig};
    ///
    /// # async fn run(stream: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
    /// let server = HttpServer::new(&ServerConfig::internal())?;
    /// let empty = hyper::service::service_fn(|_req: Request<RequestBody>| async {
    ///     Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    /// });
    /// server.serve_connection(stream, empty).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve_connection<I, S, B>(&self, io: I, service: S) -> Result<(), ConnectionError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<RequestBody>, Response = Response<B>>,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + Unpin + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.connection(io, service, None).await
    }

    /// Accepts connections on `listener` and serves each on its own task,
    /// at most `max_connections` at once, until `shutdown` completes; then
    /// stops accepting, lets each connection finish its request in flight,
    /// and returns once all have ended. Dropping the future (a shutdown
    /// deadline) ends them at once. Connections ending on a limit are
    /// logged at debug level with `tracing`.
    ///
    /// ```no_run
    /// use std::convert::Infallible;
    /// use http_body_util::Full;
    /// use hyper::body::Bytes;
    /// use hyper::{Request, Response};
    /// use prodkit_netcfg::{HttpServer, RequestBody, ServerConfig};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = HttpServer::new(&ServerConfig::internal())?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// let ok = hyper::service::service_fn(|_req: Request<RequestBody>| async {
    ///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
    /// });
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let serving = tokio::spawn(async move {
    ///     server.serve(listener, ok, async { let _ = stopped.await; }).await
    /// });
    /// // ... at shutdown: stop accepting, let requests in flight finish.
    /// let _ = stop.send(());
    /// serving.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve<S, B, F>(&self, listener: TcpListener, service: S, shutdown: F)
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + Unpin + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        F: Future,
    {
        let permits = usize::try_from(self.config.max_connections)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        let slots = Arc::new(Semaphore::new(permits));
        let graceful = GracefulShutdown::new();
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            // Reap finished connections so that the set stays as small as
            // the connections open.
            while tasks.try_join_next().is_some() {}
            let accepted = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                accepted = accept(&listener, &slots) => accepted,
            };
            let Some((stream, slot)) = accepted else {
                continue;
            };
            let server = self.clone();
            let service = service.clone();
            let watcher = graceful.watcher();
            tasks.spawn(async move {
                let _slot = slot;
                if let Err(e) = server.connection(stream, service, Some(watcher)).await {
                    tracing::debug!(error = %e, "connection ended");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
        while tasks.join_next().await.is_some() {}
    }

    async fn connection<I, S, B>(
        &self,
        io: I,
        service: S,
        watcher: Option<hyper_util::server::graceful::Watcher>,
    ) -> Result<(), ConnectionError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<RequestBody>, Response = Response<B>>,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + Unpin + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match &self.tls {
            None => self.http(io, service, watcher).await,
            Some(acceptor) => {
                let limit = self.config.tls_handshake_timeout;
                match tokio::time::timeout(limit, acceptor.accept(io)).await {
                    Err(_elapsed) => Err(ConnectionError::TimedOut {
                        limit: Limit::TlsHandshake,
                        after: limit,
                    }),
                    Ok(Err(e)) => Err(ConnectionError::Tls(e)),
                    Ok(Ok(tls)) => self.http(tls, service, watcher).await,
                }
            }
        }
    }

    async fn http<I, S, B>(
        &self,
        io: I,
        service: S,
        watcher: Option<hyper_util::server::graceful::Watcher>,
    ) -> Result<(), ConnectionError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<RequestBody>, Response = Response<B>>,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + Unpin + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let shared = io::Shared::new(&self.config);
        let guarded = io::Guarded::new(io, Arc::clone(&shared));
        let guard = service::Guard {
            inner: service,
            shared: Arc::clone(&shared),
            handler_timeout: self.config.handler_timeout,
        };
        let conn = self
            .builder()
            .serve_connection(TokioIo::new(guarded), guard);
        let ended = match watcher {
            Some(w) => w.watch(conn).await,
            None => conn.await,
        };
        match (ended, shared.expired()) {
            (_, Some(limit)) => Err(ConnectionError::TimedOut {
                limit,
                after: shared.allowed(limit),
            }),
            (Ok(()), None) => Ok(()),
            (Err(e), None) => Err(ConnectionError::Http(e)),
        }
    }
}

/// The next connection, once a slot is free (`None` on an accept error,
/// after a pause: running out of descriptors must not spin).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit)> {
    // The semaphore is never closed.
    let slot = Arc::clone(slots).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, _peer)) => {
            // Small responses go out at once.
            let _ = stream.set_nodelay(true);
            Some((stream, slot))
        }
        Err(e) => {
            tracing::debug!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}
