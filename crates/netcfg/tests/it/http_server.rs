//! The `hyper` feature on loopback, real sockets: each limit of
//! `ServerConfig` closes the connection it should within [T, 3T], and the
//! same client against plain hyper (the library's defaults) is still
//! connected at 3T.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prodkit_netcfg::{ConnectionError, HttpServer, Limit, RequestBody, ServerConfig};

use crate::watchdog;

const T: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Every limit long except those the test sets.
fn config(set: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut cfg = ServerConfig::internal();
    cfg.first_byte_timeout = LONG;
    cfg.header_read_timeout = LONG;
    cfg.request_read_timeout = LONG;
    cfg.handler_timeout = LONG;
    cfg.response_write_timeout = LONG;
    cfg.idle_timeout = LONG;
    cfg.tls_handshake_timeout = LONG;
    set(&mut cfg);
    cfg.validate().unwrap();
    cfg
}

fn within(took: Duration, what: &str) {
    assert!(
        took >= T && took <= 3 * T,
        "{what} after {took:?}, not within [{T:?}, {:?}]",
        3 * T
    );
}

type Ended = mpsc::Receiver<(Result<(), ConnectionError>, Duration)>;

/// Serves the next connection accepted on a fresh listener with
/// `server`; the receiver gets how it ended and how long it lasted.
fn serve_one<S, B>(
    rt: &tokio::runtime::Runtime,
    server: HttpServer,
    service: S,
) -> (SocketAddr, Ended)
where
    S: hyper::service::Service<Request<RequestBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let start = Instant::now();
        let ended = server.serve_connection(stream, service).await;
        let _ = tx.send((ended, start.elapsed()));
    });
    (addr, rx)
}

/// The library's defaults: hyper's HTTP/1 builder, or hyper-util's auto
/// builder (what `axum::serve` runs), with no timer. The receiver gets
/// the time the connection ended.
fn serve_one_plain<S, B>(
    rt: &tokio::runtime::Runtime,
    auto: bool,
    service: S,
) -> (SocketAddr, mpsc::Receiver<Duration>)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let start = Instant::now();
        let io = TokioIo::new(stream);
        if auto {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await;
        } else {
            let _ = http1::Builder::new().serve_connection(io, service).await;
        }
        let _ = tx.send(start.elapsed());
    });
    (addr, rx)
}

/// Answers "hello" to a request with any body (hyper's or ours).
fn hello<R: hyper::body::Body + Send + 'static>() -> impl hyper::service::Service<
    Request<R>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(|_req: Request<R>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// Reads one response's head and body (with content-length); its status.
fn read_response(s: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "closed inside a head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    status
}

/// Reads until the server closes; when it did.
fn wait_close(s: &mut TcpStream) -> Instant {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return Instant::now(),
            Ok(_) => {}
        }
    }
}

fn expect_timeout(ended: &Ended, limit: Limit) -> Duration {
    let (result, took) = ended.recv_timeout(Duration::from_secs(20)).unwrap();
    match result {
        Err(ConnectionError::TimedOut { limit: l, .. }) if l == limit => took,
        other => panic!("expected {limit}, got {other:?}"),
    }
}

#[test]
fn a_silent_client_is_dropped_after_the_first_byte_timeout() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        // hyper-util's auto builder (axum::serve's) keeps it for ever.
        let (addr, plain) = serve_one_plain(&rt, true, hello());
        let _silent = connect(addr);
        assert!(
            plain.recv_timeout(3 * T).is_err(),
            "the plain server dropped a silent client"
        );

        let server = HttpServer::new(&config(|c| c.first_byte_timeout = T)).unwrap();
        let (addr, ended) = serve_one(&rt, server, hello());
        let mut silent = connect(addr);
        let start = Instant::now();
        within(
            wait_close(&mut silent) - start,
            "the silent client was dropped",
        );
        within(
            expect_timeout(&ended, Limit::FirstByte),
            "the server ended it",
        );
    });
}

/// Sends `head` a byte every 50 ms until the server closes (or `stop`).
fn slowloris(mut s: TcpStream, stop: Duration) -> Option<Duration> {
    let start = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .chain(std::iter::repeat(&b'a'));
    for &b in head {
        if start.elapsed() > stop {
            return None;
        }
        if s.write_all(&[b]).is_err() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unreachable!()
}

#[test]
fn slowloris_is_dropped_after_the_header_timeout() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let (addr, plain) = serve_one_plain(&rt, false, hello());
        assert_eq!(
            slowloris(connect(addr), 3 * T),
            None,
            "the plain server dropped slowloris"
        );
        assert!(plain.recv_timeout(Duration::ZERO).is_err());

        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
        }))
        .unwrap();
        let (addr, ended) = serve_one(&rt, server, hello());
        // The write that fails comes a little after the close.
        let took = slowloris(connect(addr), Duration::from_secs(10)).expect("never dropped");
        assert!(took >= T, "dropped after {took:?}");
        within(expect_timeout(&ended, Limit::Header), "the server ended it");
    });
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let (addr, plain) = serve_one_plain(&rt, false, hello());
        let mut s = connect(addr);
        s.write_all(GET).unwrap();
        assert_eq!(read_response(&mut s), 200);
        assert!(
            plain.recv_timeout(3 * T).is_err(),
            "the plain server closed an idle connection"
        );

        // The header timeout (T / 3) is shorter: hyper's own would close
        // the idle connection then.
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T / 3;
            c.header_read_timeout = T / 3;
            c.idle_timeout = T;
        }))
        .unwrap();
        let (addr, ended) = serve_one(&rt, server, hello());
        let mut s = connect(addr);
        for _ in 0..3 {
            s.write_all(GET).unwrap();
            assert_eq!(read_response(&mut s), 200);
        }
        let idle = Instant::now();
        within(wait_close(&mut s) - idle, "the idle connection was closed");
        expect_timeout(&ended, Limit::Idle);
    });
}

#[test]
fn a_head_over_max_header_bytes_gets_431_and_the_server_keeps_serving() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(16 * 1024)
        );
        // Plain hyper takes a 16 KiB head.
        let (addr, _plain) = serve_one_plain(&rt, false, hello());
        let mut s = connect(addr);
        s.write_all(big.as_bytes()).unwrap();
        assert_eq!(read_response(&mut s), 200);

        let server = HttpServer::new(&config(|c| c.max_header_bytes = 8 * 1024)).unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = rt.spawn(async move {
            server
                .serve(listener, hello(), async {
                    let _ = stopped.await;
                })
                .await;
        });
        let mut s = connect(addr);
        s.write_all(big.as_bytes()).unwrap();
        assert_eq!(read_response(&mut s), 431);
        // 8 KiB itself passes, on a new connection.
        let fits = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Fits: {}\r\n\r\n",
            "a".repeat(8 * 1024 - 60)
        );
        let mut s = connect(addr);
        s.write_all(fits.as_bytes()).unwrap();
        assert_eq!(read_response(&mut s), 200);
        drop(s);
        stop.send(()).unwrap();
        rt.block_on(serving).unwrap();
    });
}

/// Reads the whole body; the time its read ended and the result, and a
/// 408 when it failed.
fn collect<R>(
    report: mpsc::Sender<(Instant, Result<usize, String>)>,
) -> impl hyper::service::Service<
    Request<R>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Send
+ 'static
where
    R: hyper::body::Body<Data = Bytes> + Send + 'static,
    R::Error: std::fmt::Display + Send,
{
    service_fn(move |req: Request<R>| {
        let report = report.clone();
        async move {
            let read = req.into_body().collect().await;
            let status = if read.is_ok() {
                StatusCode::OK
            } else {
                StatusCode::REQUEST_TIMEOUT
            };
            let _ = report.send((
                Instant::now(),
                read.map(|b| b.to_bytes().len()).map_err(|e| e.to_string()),
            ));
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        }
    })
}

/// A head announcing a large body, then a body byte every 50 ms; the
/// stream, still open.
fn slow_body(mut s: TcpStream, stop: Duration) -> TcpStream {
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < stop && s.write_all(b"a").is_ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

#[test]
fn a_slow_body_hits_the_request_read_deadline() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let (report, reports) = mpsc::channel();
        let (addr, _plain) = serve_one_plain(&rt, false, collect(report));
        let open = slow_body(connect(addr), 3 * T);
        assert!(
            reports.try_recv().is_err(),
            "the plain server's handler stopped reading"
        );
        drop(open);

        let (report, reports) = mpsc::channel();
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
            c.request_read_timeout = T;
        }))
        .unwrap();
        let (addr, ended) = serve_one(&rt, server, collect(report));
        let start = Instant::now();
        slow_body(connect(addr), Duration::from_secs(10));
        let (at, read) = reports.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(read.is_err(), "the body read ended without error: {read:?}");
        within(at - start, "the handler's body read failed");
        expect_timeout(&ended, Limit::RequestRead);
    });
}

fn large<R: hyper::body::Body + Send + 'static>(
    len: usize,
) -> impl hyper::service::Service<
    Request<R>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Send
+ 'static {
    let body = Bytes::from(vec![b'x'; len]);
    service_fn(move |_req: Request<R>| {
        let body = body.clone();
        async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
    })
}

#[test]
fn a_client_that_never_reads_a_large_response_hits_the_write_deadline() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        // More than the loopback socket buffers hold.
        let len = 64 << 20;
        let (addr, plain) = serve_one_plain(&rt, false, large(len));
        let mut s = connect(addr);
        s.write_all(GET).unwrap();
        assert!(
            plain.recv_timeout(3 * T).is_err(),
            "the plain server gave up writing"
        );
        drop(s);

        let server = HttpServer::new(&config(|c| c.response_write_timeout = T)).unwrap();
        let (addr, ended) = serve_one(&rt, server, large(len));
        let mut s = connect(addr);
        s.write_all(GET).unwrap();
        within(
            expect_timeout(&ended, Limit::ResponseWrite),
            "the server ended it",
        );
        drop(s);
    });
}

#[test]
fn a_slow_handler_gets_503_after_the_handler_timeout() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&config(|c| c.handler_timeout = T)).unwrap();
        let slow = service_fn(|_req: Request<RequestBody>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
        let (addr, _ended) = serve_one(&rt, server, slow);
        let mut s = connect(addr);
        let start = Instant::now();
        s.write_all(GET).unwrap();
        assert_eq!(read_response(&mut s), 503);
        within(start.elapsed(), "the 503 came");
        // The connection stays usable.
        s.write_all(GET).unwrap();
        assert_eq!(read_response(&mut s), 503);
    });
}

#[test]
fn a_tls_handshake_that_never_starts_is_dropped_after_the_tls_handshake_timeout() {
    watchdog(Duration::from_secs(60), || {
        let rt = runtime();
        let acceptor = crate::tls::acceptor();
        let server = HttpServer::new(&config(|c| c.tls_handshake_timeout = T))
            .unwrap()
            .tls(acceptor.into());
        let (addr, ended) = serve_one(&rt, server, hello());
        let mut silent = connect(addr);
        let start = Instant::now();
        within(wait_close(&mut silent) - start, "the handshake was dropped");
        within(
            expect_timeout(&ended, Limit::TlsHandshake),
            "the server ended it",
        );
    });
}

#[test]
fn connections_over_max_connections_wait_until_one_ends() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&config(|c| c.max_connections = 1)).unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = rt.spawn(async move {
            server
                .serve(listener, hello(), async {
                    let _ = stopped.await;
                })
                .await;
        });
        let mut first = connect(addr);
        first.write_all(GET).unwrap();
        assert_eq!(read_response(&mut first), 200);
        // The second waits in the backlog while the first is open.
        let mut second = connect(addr);
        second.write_all(GET).unwrap();
        second.set_read_timeout(Some(3 * T)).unwrap();
        let mut byte = [0u8; 1];
        let waited = second.read(&mut byte);
        assert!(
            matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "the second connection was served while the first was open: {waited:?}"
        );
        drop(first);
        second
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(read_response(&mut second), 200);
        drop(second);
        stop.send(()).unwrap();
        rt.block_on(serving).unwrap();
    });
}

#[test]
fn shutdown_lets_the_request_in_flight_finish_and_stops_accepting() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&ServerConfig::internal()).unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (started, start_seen) = mpsc::channel();
        let slow = service_fn(move |_req: Request<RequestBody>| {
            let started = started.clone();
            async move {
                let _ = started.send(());
                tokio::time::sleep(T).await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
            }
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = rt.spawn(async move {
            server
                .serve(listener, slow, async {
                    let _ = stopped.await;
                })
                .await;
        });
        let mut s = connect(addr);
        s.write_all(GET).unwrap();
        start_seen.recv_timeout(Duration::from_secs(10)).unwrap();
        stop.send(()).unwrap();
        assert_eq!(read_response(&mut s), 200);
        rt.block_on(serving).unwrap();
        assert!(
            TcpStream::connect(addr).is_err(),
            "still accepting after shutdown"
        );
    });
}

#[test]
fn a_client_reading_a_large_response_slowly_is_not_cut_by_the_idle_timeout() {
    watchdog(Duration::from_secs(60), || {
        let rt = runtime();
        // The handler hands over the whole body at once; writing it takes
        // longer than the idle timeout, since the client reads slowly.
        let len = 16 << 20;
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
            c.idle_timeout = T;
        }))
        .unwrap();
        let (addr, ended) = serve_one(&rt, server, large(len));
        let mut s = connect(addr);
        s.write_all(GET).unwrap();
        let start = Instant::now();
        let mut got = 0usize;
        // At most 128 KiB each 10 ms: over a second in all.
        let mut buf = vec![0u8; 128 << 10];
        while got < len {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The head is counted in `got`: at least the body came.
        assert!(
            got >= len,
            "cut after {got} of {len} bytes, at {:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() > 3 * T,
            "the response went too fast to show anything"
        );
        // Idle began when the last bytes entered the socket buffers, which
        // the client drains later: the close comes at most T after the end.
        let end = Instant::now();
        assert!(
            wait_close(&mut s) - end <= T,
            "the idle connection stayed open"
        );
        expect_timeout(&ended, Limit::Idle);
    });
}

#[test]
fn a_pipelined_request_gets_its_own_read_deadline() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
            c.request_read_timeout = T;
        }))
        .unwrap();
        // GET takes 2T; POST reads its body.
        let service = service_fn(|req: Request<RequestBody>| async move {
            let status = if req.method() == hyper::Method::GET {
                tokio::time::sleep(2 * T).await;
                StatusCode::OK
            } else if req.into_body().collect().await.is_ok() {
                StatusCode::OK
            } else {
                StatusCode::REQUEST_TIMEOUT
            };
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        });
        let (addr, _ended) = serve_one(&rt, server, service);
        let mut s = connect(addr);
        // Both heads at once; the POST's body at 2.5T, within T of the
        // POST's start (after the GET's answer at 2T), not of the GET's.
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
            .unwrap();
        std::thread::sleep(2 * T + T / 2);
        s.write_all(b"hello").unwrap();
        assert_eq!(read_response(&mut s), 200);
        assert_eq!(
            read_response(&mut s),
            200,
            "the pipelined POST was held to the GET's deadline"
        );
    });
}

#[test]
fn a_handler_slower_than_the_request_read_timeout_still_answers_a_request_without_body() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
            c.request_read_timeout = T;
            c.handler_timeout = 10 * T;
        }))
        .unwrap();
        let slow = service_fn(|_req: Request<RequestBody>| async {
            tokio::time::sleep(2 * T).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"late"))))
        });
        let (addr, _ended) = serve_one(&rt, server, slow);
        let mut s = connect(addr);
        s.write_all(GET).unwrap();
        assert_eq!(read_response(&mut s), 200);
        // And after reading a whole body, too.
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap();
        assert_eq!(read_response(&mut s), 200);
    });
}

#[test]
fn a_body_still_unread_when_the_handler_answers_keeps_its_read_deadline() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
            c.request_read_timeout = T;
        }))
        .unwrap();
        // An echo: answers at once, streaming the request body back.
        let echo = service_fn(|req: Request<RequestBody>| async move {
            Ok::<_, Infallible>(Response::new(req.into_body()))
        });
        let (addr, ended) = serve_one(&rt, server, echo);
        let mut s = connect(addr);
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < 10 * T && s.write_all(b"1\r\na\r\n").is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
        within(
            expect_timeout(&ended, Limit::RequestRead),
            "the server ended it",
        );
    });
}

/// A response body: `chunks` chunks, one every 50 ms, then (if `stall`)
/// pending for ever instead of ending.
struct Trickle {
    chunks: usize,
    stall: bool,
    tick: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        use std::future::Future;
        if self.chunks == 0 {
            return if self.stall {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(None)
            };
        }
        std::task::ready!(self.tick.as_mut().poll(cx));
        let next = tokio::time::Instant::now() + Duration::from_millis(50);
        self.tick.as_mut().reset(next);
        self.chunks -= 1;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
            b"chunk\n",
        )))))
    }
}

fn trickle(
    chunks: usize,
    stall: bool,
) -> impl hyper::service::Service<
    Request<RequestBody>,
    Response = Response<Trickle>,
    Error = Infallible,
    Future = impl Send,
> + Send
+ 'static {
    service_fn(move |_req: Request<RequestBody>| async move {
        Ok::<_, Infallible>(Response::new(Trickle {
            chunks,
            stall,
            tick: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }))
    })
}

#[test]
fn a_response_stream_that_stalls_or_runs_past_the_write_deadline_is_cut() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let cfg = config(|c| c.response_write_timeout = T);
        for (what, chunks, stall) in [("a stalled stream", 1, true), ("a long stream", 60, false)] {
            let (addr, ended) =
                serve_one(&rt, HttpServer::new(&cfg).unwrap(), trickle(chunks, stall));
            let mut s = connect(addr);
            let start = Instant::now();
            s.write_all(GET).unwrap();
            within(wait_close(&mut s) - start, what);
            within(expect_timeout(&ended, Limit::ResponseWrite), what);
        }
        // A stream that ends in time is whole.
        let (addr, ended) = serve_one(&rt, HttpServer::new(&cfg).unwrap(), trickle(3, false));
        let mut s = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert_eq!(all.matches("chunk\n").count(), 3, "{all}");
        assert!(
            ended
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
                .0
                .is_ok()
        );
    });
}

#[test]
fn the_next_head_started_during_a_response_gets_the_header_timeout_not_idle_plus_header() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
            c.idle_timeout = 10 * T;
        }))
        .unwrap();
        let slow = service_fn(|_req: Request<RequestBody>| async {
            tokio::time::sleep(T / 2).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
        });
        let (addr, ended) = serve_one(&rt, server, slow);
        let mut s = connect(addr);
        // A request, and while it is answered the first byte of the next,
        // then nothing.
        s.write_all(GET).unwrap();
        std::thread::sleep(T / 4);
        s.write_all(b"G").unwrap();
        let start = Instant::now();
        assert_eq!(read_response(&mut s), 200);
        within(wait_close(&mut s) - start, "the half-sent head was dropped");
        expect_timeout(&ended, Limit::Header);
    });
}

#[test]
fn an_expect_100_continue_body_is_not_late_while_the_handler_has_not_asked_for_it() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
            c.request_read_timeout = T;
        }))
        .unwrap();
        // Checks something for 2T before it asks for the body.
        let (report, reports) = mpsc::channel();
        let service = service_fn(move |req: Request<RequestBody>| {
            let report = report.clone();
            async move {
                tokio::time::sleep(2 * T).await;
                let read = req.into_body().collect().await.map(|b| b.to_bytes().len());
                let _ = report.send(read.map_err(|e| e.to_string()));
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        });
        let (addr, _ended) = serve_one(&rt, server, service);
        let mut s = connect(addr);
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
        let mut cont = [0u8; 25];
        s.read_exact(&mut cont).unwrap();
        assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"hello").unwrap();
        assert_eq!(read_response(&mut s), 200);
        assert_eq!(
            reports.recv_timeout(Duration::from_secs(10)).unwrap(),
            Ok(5)
        );
    });
}

#[test]
fn a_body_read_by_a_task_after_the_answer_keeps_the_body_deadline() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
            c.request_read_timeout = T;
            c.idle_timeout = 10 * T;
        }))
        .unwrap();
        // "202 Accepted", the body read in the background.
        let service = service_fn(|req: Request<RequestBody>| async move {
            tokio::spawn(async move {
                let _ = req.into_body().collect().await;
            });
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::ACCEPTED;
            Ok::<_, Infallible>(response)
        });
        let (addr, ended) = serve_one(&rt, server, service);
        let mut s = connect(addr);
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            .unwrap();
        let start = Instant::now();
        assert_eq!(read_response(&mut s), 202);
        // The body never comes: cut by its own deadline, not the idle one.
        within(wait_close(&mut s) - start, "the stalled body was cut");
        expect_timeout(&ended, Limit::RequestRead);
    });
}

#[test]
fn a_handler_pausing_between_reads_of_a_fast_large_body_is_not_charged_to_the_client() {
    watchdog(Duration::from_secs(30), || {
        let rt = runtime();
        let server = HttpServer::new(&config(|c| {
            c.first_byte_timeout = T;
            c.header_read_timeout = T;
            c.request_read_timeout = T;
        }))
        .unwrap();
        // Reads a frame, works for 2T, reads the rest.
        let service = service_fn(|req: Request<RequestBody>| async move {
            let mut body = req.into_body();
            let mut n = 0;
            if let Some(Ok(frame)) = body.frame().await {
                n += frame.data_ref().map_or(0, Bytes::len);
            }
            tokio::time::sleep(2 * T).await;
            let rest = body.collect().await.map(|b| b.to_bytes().len());
            let status = match rest {
                Ok(rest) if n + rest == 1 << 20 => StatusCode::OK,
                _ => StatusCode::REQUEST_TIMEOUT,
            };
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        });
        let (addr, _ended) = serve_one(&rt, server, service);
        let s = connect(addr);
        let mut request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            1 << 20
        )
        .into_bytes();
        request.extend(std::iter::repeat_n(b'x', 1 << 20));
        let mut writer = s.try_clone().unwrap();
        let sending = std::thread::spawn(move || writer.write_all(&request));
        let mut s = s;
        assert_eq!(read_response(&mut s), 200);
        sending.join().unwrap().unwrap();
    });
}
