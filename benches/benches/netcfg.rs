//! What `HttpServer`'s limits cost a request, on loopback, measured in
//! interleaved rounds: each round runs every implementation of a group once,
//! in a rotating order, for about 200 ms (50 ms with `--quick`), and the
//! figure is the median over 9 rounds (3 with `--quick`), with the min and
//! max as its spread. The servers run on a tokio runtime with one worker
//! thread; the client is a blocking socket on the bench thread (2 cores).
//!
//! - `netcfg/keepalive-get`: sequential `GET /` over one kept-alive
//!   connection, a 5-byte answer; microseconds per request (round trip).
//! - `netcfg/connection-get`: a new connection for each `GET /`
//!   (`Connection: close`): connect, request, answer, close.
//!
//! Implementations: `prodkit`: `HttpServer` with `ServerConfig::internal()`
//! (every limit armed); `hyper`: hyper's HTTP/1 builder with what hyper
//! enforces itself (`ServerConfig::http1_builder`: a timer, the header
//! timeout, the head limit); `hyper_auto`: hyper-util's auto builder, as
//! `axum::serve` runs it (no limit); `floor`: a tokio task that reads until
//! the end of the head and writes the same answer hyper writes, bytes
//! prepared: the sockets and the scheduler alone.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prodkit_benches::{Better, Figures};
use prodkit_netcfg::{HttpServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const IMPLS: [&str; 4] = ["prodkit", "hyper", "hyper_auto", "floor"];

async fn hello<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

/// Starts `name`'s server on `rt`; its address.
fn start(rt: &tokio::runtime::Runtime, name: &str) -> SocketAddr {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    match name {
        "prodkit" => {
            let server = HttpServer::new(&ServerConfig::internal()).unwrap();
            rt.spawn(async move {
                server
                    .serve(
                        listener,
                        service_fn(hello::<prodkit_netcfg::RequestBody>),
                        std::future::pending::<()>(),
                    )
                    .await;
            });
        }
        "hyper" | "hyper_auto" => {
            let auto = name == "hyper_auto";
            rt.spawn(async move {
                let builder = ServerConfig::internal().http1_builder();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let io = TokioIo::new(stream);
                    if auto {
                        tokio::spawn(async move {
                            let _ =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection(
                                        io,
                                        service_fn(hello::<hyper::body::Incoming>),
                                    )
                                    .await;
                        });
                    } else {
                        let conn = builder
                            .serve_connection(io, service_fn(hello::<hyper::body::Incoming>));
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                    }
                }
            });
        }
        "floor" => {
            rt.spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else { continue };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let answer: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: Thu, 03 Dec 2026 10:00:00 GMT\r\n\r\nhello";
                        let mut buf = vec![0u8; 4096];
                        let mut have = 0;
                        loop {
                            match stream.read(&mut buf[have..]).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => have += n,
                            }
                            while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                                // The client's only other header is Host.
                                let close = buf[..end].ends_with(b"Connection: close");
                                buf.copy_within(end + 4..have, 0);
                                have -= end + 4;
                                if stream.write_all(answer).await.is_err() || close {
                                    return;
                                }
                            }
                        }
                    });
                }
            });
        }
        other => unreachable!("{other}"),
    }
    addr
}

/// Reads one answer (head and a content-length body) from `s`.
fn read_answer(s: &mut TcpStream, buf: &mut [u8]) {
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..]).unwrap();
        assert!(n > 0, "the server closed");
        have += n;
        if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            // Every server here answers 5 bytes.
            if have >= end + 4 + 5 {
                return;
            }
        }
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

/// Runs requests for about `budget`; microseconds per request.
fn run(group: &str, addr: SocketAddr, kept: &mut Option<TcpStream>, budget: Duration) -> f64 {
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..64 {
            if group == "keepalive-get" {
                let s = kept.get_or_insert_with(|| {
                    let s = TcpStream::connect(addr).unwrap();
                    s.set_nodelay(true).unwrap();
                    s
                });
                s.write_all(GET).unwrap();
                read_answer(s, &mut buf);
            } else {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                s.write_all(GET_CLOSE).unwrap();
                read_answer(&mut s, &mut buf);
            }
            n += 1;
        }
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let quick = prodkit_benches::quick();
    let (rounds, budget) = if quick {
        (3, Duration::from_millis(50))
    } else {
        (9, Duration::from_millis(200))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addrs: Vec<SocketAddr> = IMPLS.iter().map(|name| start(&rt, name)).collect();
    let mut figures = Figures::new("netcfg");
    figures.samples(rounds);
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    for group in ["keepalive-get", "connection-get"] {
        let mut kept: Vec<Option<TcpStream>> = IMPLS.iter().map(|_| None).collect();
        let mut times: Vec<Vec<f64>> = IMPLS.iter().map(|_| Vec::new()).collect();
        let wanted: Vec<usize> = (0..IMPLS.len())
            .filter(|&i| {
                filter
                    .as_deref()
                    .is_none_or(|f| format!("netcfg/{group}/{}", IMPLS[i]).contains(f))
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        // Warm-up, then the rounds in a rotating order.
        for &i in &wanted {
            run(group, addrs[i], &mut kept[i], budget / 4);
        }
        for round in 0..rounds as usize {
            for k in 0..wanted.len() {
                let i = wanted[(round + k) % wanted.len()];
                figures.start(&format!("netcfg/{group}"), IMPLS[i]);
                times[i].push(run(group, addrs[i], &mut kept[i], budget));
            }
        }
        for &i in &wanted {
            let mut t = times[i].clone();
            t.sort_by(f64::total_cmp);
            let median = t[t.len() / 2];
            figures.record_spread(
                &format!("netcfg/{group}"),
                IMPLS[i],
                median,
                t[0],
                t[t.len() - 1],
                "us/request",
                Better::Lower,
            );
        }
    }
    figures.write().unwrap();
    drop(rt);
}
