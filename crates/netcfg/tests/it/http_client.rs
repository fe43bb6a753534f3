//! The `reqwest` feature on loopback, real sockets: the connect deadline
//! against a full listen backlog and against a listener that never speaks
//! TLS, the total and response-head deadlines against a listener that
//! never answers; each within [T, 3T], and plain reqwest (no timeout by
//! default) still waiting at 3T.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prodkit_netcfg::{ClientConfig, SendError};
use tokio::io::AsyncReadExt;

use crate::watchdog;

const T: Duration = Duration::from_millis(300);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(set: impl FnOnce(&mut ClientConfig)) -> ClientConfig {
    let mut cfg = ClientConfig::internal();
    cfg.total_timeout = Duration::from_secs(30);
    cfg.connect_timeout = Duration::from_secs(10);
    cfg.tls_handshake_timeout = Duration::from_secs(10);
    cfg.response_header_timeout = Duration::from_secs(10);
    cfg.read_timeout = Duration::from_secs(10);
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

/// reqwest as it comes, but never through a proxy from the environment.
fn plain() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn ours(cfg: &ClientConfig) -> reqwest::Client {
    cfg.reqwest_builder().no_proxy().build().unwrap()
}

/// The plain client's call is still waiting at 3T.
async fn still_waiting(url: &str) {
    let call = tokio::time::timeout(3 * T, plain().get(url).send()).await;
    assert!(call.is_err(), "plain reqwest returned within 3T: {call:?}");
}

/// A listener that accepts every connection, reads what comes, and never
/// writes a byte.
async fn mute_listener() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn the_connect_deadline_fires_against_a_full_listen_backlog() {
    watchdog(Duration::from_secs(60), || {
        runtime().block_on(async {
            // A listener that never accepts, its backlog filled: further
            // SYNs are dropped and connect waits on retransmissions.
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let listener = socket.listen(0).unwrap();
            let addr = listener.local_addr().unwrap();
            let mut held = Vec::new();
            loop {
                match tokio::time::timeout(
                    Duration::from_millis(200),
                    tokio::net::TcpStream::connect(addr),
                )
                .await
                {
                    Ok(Ok(s)) => held.push(s),
                    Ok(Err(e)) => panic!("connect: {e}"),
                    Err(_full) => break,
                }
                assert!(held.len() < 64, "the backlog never filled");
            }
            let url = format!("http://{addr}/");
            still_waiting(&url).await;

            let cfg = config(|c| {
                c.connect_timeout = T / 2;
                c.tls_handshake_timeout = T / 2;
            });
            let start = Instant::now();
            let err = ours(&cfg).get(&url).send().await.unwrap_err();
            within(start.elapsed(), "the connect deadline fired");
            assert!(err.is_timeout() && err.is_connect(), "{err:?}");
            drop((listener, held));
        });
    });
}

#[test]
fn the_connect_deadline_fires_against_a_listener_that_never_speaks_tls() {
    watchdog(Duration::from_secs(60), || {
        runtime().block_on(async {
            let addr = mute_listener().await;
            let url = format!("https://{addr}/");
            still_waiting(&url).await;

            let cfg = config(|c| {
                c.connect_timeout = T / 2;
                c.tls_handshake_timeout = T / 2;
            });
            let start = Instant::now();
            let err = ours(&cfg).get(&url).send().await.unwrap_err();
            within(start.elapsed(), "the connect deadline fired");
            assert!(err.is_timeout(), "{err:?}");
        });
    });
}

#[test]
fn the_total_timeout_fires_against_a_listener_that_never_answers() {
    watchdog(Duration::from_secs(60), || {
        runtime().block_on(async {
            let addr = mute_listener().await;
            let url = format!("http://{addr}/");
            still_waiting(&url).await;

            let cfg = config(|c| {
                c.total_timeout = T;
                c.connect_timeout = T;
                c.tls_handshake_timeout = T;
                c.response_header_timeout = T;
                c.read_timeout = T;
            });
            let start = Instant::now();
            let err = ours(&cfg).get(&url).send().await.unwrap_err();
            within(start.elapsed(), "the total timeout fired");
            assert!(err.is_timeout(), "{err:?}");
        });
    });
}

#[test]
fn the_response_head_deadline_fires_against_a_listener_that_never_answers() {
    watchdog(Duration::from_secs(60), || {
        runtime().block_on(async {
            let addr = mute_listener().await;
            let url = format!("http://{addr}/");
            // The head must come within connect + TLS + header = T.
            let cfg = config(|c| {
                c.connect_timeout = Duration::from_millis(10);
                c.tls_handshake_timeout = Duration::from_millis(10);
                c.response_header_timeout = T - Duration::from_millis(20);
            });
            let start = Instant::now();
            let err = cfg.send(ours(&cfg).get(&url)).await.unwrap_err();
            within(start.elapsed(), "the response head deadline fired");
            assert!(
                matches!(err, SendError::HeadTimedOut { after } if after == T),
                "{err:?}"
            );
            assert!(err.is_timeout());
        });
    });
}

/// A server answering every request at once, keeping connections alive;
/// counts the connections it accepted.
async fn counting_server() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[test]
fn pooled_connections_are_reused_within_the_idle_timeout_and_not_after() {
    use std::sync::atomic::Ordering;
    watchdog(Duration::from_secs(60), || {
        runtime().block_on(async {
            let (addr, accepted) = counting_server().await;
            let url = format!("http://{addr}/");
            let cfg = config(|c| c.pool_idle_timeout = T);
            let client = ours(&cfg);
            for _ in 0..3 {
                assert!(
                    cfg.send(client.get(&url))
                        .await
                        .unwrap()
                        .status()
                        .is_success()
                );
            }
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                1,
                "calls in a row share a connection"
            );
            tokio::time::sleep(3 * T).await;
            assert!(
                cfg.send(client.get(&url))
                    .await
                    .unwrap()
                    .status()
                    .is_success()
            );
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                2,
                "an idle connection outlived pool_idle_timeout"
            );
        });
    });
}

#[test]
fn no_idle_connection_is_kept_when_the_per_host_cap_is_zero() {
    use std::sync::atomic::Ordering;
    watchdog(Duration::from_secs(60), || {
        runtime().block_on(async {
            let (addr, accepted) = counting_server().await;
            let url = format!("http://{addr}/");
            let cfg = config(|c| c.pool_max_idle_per_host = 0);
            let client = ours(&cfg);
            for _ in 0..3 {
                assert!(
                    cfg.send(client.get(&url))
                        .await
                        .unwrap()
                        .status()
                        .is_success()
                );
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 3);
        });
    });
}

#[test]
fn the_read_timeout_fires_when_a_body_stalls_long_before_the_total_timeout() {
    use tokio::io::AsyncWriteExt;
    watchdog(Duration::from_secs(60), || {
        runtime().block_on(async {
            // Answers with a head and part of the body, then stalls.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        let _ = socket.read(&mut buf).await;
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                            .await;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    });
                }
            });
            let url = format!("http://{addr}/");
            let response = plain().get(&url).send().await.unwrap();
            let body = tokio::time::timeout(3 * T, response.bytes()).await;
            assert!(body.is_err(), "plain reqwest's body read ended within 3T");

            let cfg = config(|c| c.read_timeout = T);
            let response = cfg.send(ours(&cfg).get(&url)).await.unwrap();
            let start = Instant::now();
            let err = response.bytes().await.unwrap_err();
            within(start.elapsed(), "the read timeout fired");
            assert!(err.is_timeout(), "{err:?}");
        });
    });
}
