//! A loopback TCP proxy in front of the test server that reads the PostgreSQL
//! wire protocol message by message. It records what crosses it (COMMITs sent,
//! transactions the server marked failed, COMMITs sent into a failed
//! transaction) and, when armed, lets one COMMIT through and then cuts the
//! connection before its answer reaches the client: the transaction is
//! committed and the client cannot know.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use parking_lot::Mutex;

/// What the proxy saw, over all its connections.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// `COMMIT` queries the clients sent.
    pub(crate) commits: AtomicUsize,
    /// Transactions the server reported failed (ReadyForQuery with status `E`).
    pub(crate) failed_transactions: AtomicUsize,
    /// `COMMIT` queries sent while the connection's transaction was failed: the
    /// server answers them with ROLLBACK, which rust-postgres reports as success.
    pub(crate) commits_into_failed: AtomicUsize,
    /// Connections cut after a COMMIT reached the server.
    pub(crate) cuts: AtomicUsize,
}

impl Seen {
    pub(crate) fn get(&self, counter: fn(&Seen) -> &AtomicUsize) -> usize {
        counter(self).load(Ordering::SeqCst)
    }
}

pub(crate) struct Proxy {
    pub(crate) port: u16,
    pub(crate) seen: Arc<Seen>,
    /// Set: the next COMMIT's answer is lost (once).
    pub(crate) armed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

/// The state one connection's two forwarders share.
#[derive(Default)]
struct Connection {
    /// The status byte of the server's last ReadyForQuery (`I`, `T` or `E`).
    status: AtomicU8,
    /// The armed cut's COMMIT went through this connection.
    commit_sent: AtomicBool,
}

impl Proxy {
    /// A proxy to `127.0.0.1:upstream`; `cut_one_commit` arms the cut.
    pub(crate) fn start(upstream: u16, cut_one_commit: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let armed = Arc::new(AtomicBool::new(cut_one_commit));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (seen2, armed2, stop2, threads2) = (
            Arc::clone(&seen),
            Arc::clone(&armed),
            Arc::clone(&stop),
            Arc::clone(&threads),
        );
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { return };
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                // Message by message: without NODELAY each would wait for an ACK.
                server.set_nodelay(true).unwrap();
                client.set_nodelay(true).unwrap();
                let conn = Arc::new(Connection::default());
                let up = {
                    let (from, to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let (seen, armed, conn) =
                        (Arc::clone(&seen2), Arc::clone(&armed2), Arc::clone(&conn));
                    std::thread::spawn(move || forward_client(from, to, &seen, &armed, &conn))
                };
                let down = {
                    let (seen, armed) = (Arc::clone(&seen2), Arc::clone(&armed2));
                    std::thread::spawn(move || forward_server(server, client, &seen, &armed, &conn))
                };
                threads2.lock().extend([up, down]);
            }
        });
        Proxy {
            port,
            seen,
            armed,
            stop,
            threads,
            acceptor: Some(acceptor),
        }
    }

    /// A URL through the proxy, as the test server's superuser.
    pub(crate) fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Proxy {
    /// Joins the proxy's threads: the acceptor (woken by one last connection)
    /// and the forwarders, which end when their connections close.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().unwrap();
        }
        for forwarder in std::mem::take(&mut *self.threads.lock()) {
            forwarder.join().unwrap();
        }
    }
}

/// One protocol message: a type byte (except the startup message), a length
/// that counts itself, a body.
fn read_message(from: &mut impl Read, typed: bool) -> Option<Vec<u8>> {
    let mut head = vec![0u8; if typed { 5 } else { 4 }];
    from.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes(head[head.len() - 4..].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len.checked_sub(4)?];
    from.read_exact(&mut body).ok()?;
    head.extend_from_slice(&body);
    Some(head)
}

fn is_commit_query(message: &[u8]) -> bool {
    message[0] == b'Q' && message[5..].starts_with(b"COMMIT")
}

fn forward_client(
    mut client: TcpStream,
    mut server: TcpStream,
    seen: &Seen,
    armed: &AtomicBool,
    conn: &Connection,
) {
    let Some(startup) = read_message(&mut client, false) else {
        return;
    };
    if server.write_all(&startup).is_err() {
        return;
    }
    while let Some(message) = read_message(&mut client, true) {
        if is_commit_query(&message) {
            seen.commits.fetch_add(1, Ordering::SeqCst);
            // The client sends a query only after it read the answer to the
            // previous one (at least its ErrorResponse), so `status` is the
            // transaction's state right now.
            if conn.status.load(Ordering::SeqCst) == b'E' {
                seen.commits_into_failed.fetch_add(1, Ordering::SeqCst);
            }
            if armed.load(Ordering::SeqCst) {
                conn.commit_sent.store(true, Ordering::SeqCst);
            }
        }
        if server.write_all(&message).is_err() {
            return;
        }
    }
    let _ = server.shutdown(Shutdown::Both);
}

fn forward_server(
    mut server: TcpStream,
    mut client: TcpStream,
    seen: &Seen,
    armed: &AtomicBool,
    conn: &Connection,
) {
    while let Some(message) = read_message(&mut server, true) {
        // An error inside a transaction block fails it. The client may act on
        // the ErrorResponse before the ReadyForQuery behind it crossed the
        // proxy, so the error itself marks the transaction failed.
        let status = match message[0] {
            b'E' if conn.status.load(Ordering::SeqCst) == b'T' => Some(b'E'),
            b'Z' if message.len() == 6 => Some(message[5]),
            _ => None,
        };
        if let Some(status) = status
            && conn.status.swap(status, Ordering::SeqCst) != b'E'
            && status == b'E'
        {
            seen.failed_transactions.fetch_add(1, Ordering::SeqCst);
        }
        if message[0] == b'C'
            && message[5..].starts_with(b"COMMIT")
            && conn.commit_sent.load(Ordering::SeqCst)
            && armed.swap(false, Ordering::SeqCst)
        {
            // The server has committed; the client never hears of it.
            seen.cuts.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            return;
        }
        if client.write_all(&message).is_err() {
            return;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}
