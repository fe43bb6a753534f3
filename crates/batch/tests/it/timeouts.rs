//! No call waits without limit on a server that stopped answering: a server
//! that accepts connections and stays mute (connecting is bounded by
//! `connect_timeout` as a whole, not only its TCP part), and a backend stopped
//! with SIGSTOP mid-write (bounded by `write_timeout`, then written again on a
//! new connection).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prodkit_batch::pg::{PgSink, PgTarget};
use prodkit_batch::{Batcher, BuildError, Failure, RetryPolicy, SinkError, Ticket};

use crate::pg::{COLUMNS, Ev, ev, ids, table};
use crate::timed;

/// The mute server's connections and the threads that read them.
type Readers = Arc<Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

/// A loopback server that accepts connections, reads what they send and never
/// answers. Its threads are joined on drop.
struct Mute {
    port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    readers: Readers,
}

impl Mute {
    fn start() -> Mute {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Readers = Arc::default();
        let acceptor = {
            let (stop, readers) = (Arc::clone(&stop), Arc::clone(&readers));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut conn) = conn else { return };
                    let handle = conn.try_clone().unwrap();
                    let reader = std::thread::spawn(move || {
                        let mut buf = [0u8; 1024];
                        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                    });
                    readers.lock().push((handle, reader));
                }
            })
        };
        Mute {
            port,
            stop,
            acceptor: Some(acceptor),
            readers,
        }
    }

    fn url(&self, connect_timeout: u64) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?connect_timeout={connect_timeout}",
            self.port
        )
    }
}

impl Drop for Mute {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().unwrap();
        }
        for (conn, reader) in std::mem::take(&mut *self.readers.lock()) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
            reader.join().unwrap();
        }
    }
}

#[test]
fn a_mute_server_cannot_hang_open_or_build() {
    let mute = Mute::start();
    let target = PgTarget::new(&mute.url(1), "t", COLUMNS).unwrap();
    let open = target.clone();
    let (result, took) = timed(Duration::from_secs(15), move || {
        open.open::<Ev>().map(|_| ())
    });
    let error = result.expect_err("a mute server");
    assert_eq!(error.failure, Failure::Transient, "{error}");
    assert!(error.message.contains("connecting"), "{error}");
    assert!(took < Duration::from_secs(3), "open took {took:?}");

    // build retries a transient open within its retry budget, and stops there.
    let retry = RetryPolicy {
        max_attempts: 100,
        max_elapsed: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
    };
    let (result, took) = timed(Duration::from_secs(20), move || {
        Batcher::<Ev>::builder()
            .retry(retry)
            .build(|| target.open())
            .map(drop)
    });
    assert!(
        matches!(&result, Err(BuildError::Sink(e)) if e.failure == Failure::Transient),
        "{result:?}"
    );
    // Attempts start until 2 s have passed since the first failure (at 1 s),
    // each taking 1 s: the last ends before 4.5 s.
    assert!(took < Duration::from_millis(4500), "build took {took:?}");
}

fn signal(pid: i32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_write_to_a_stopped_backend_is_abandoned_at_write_timeout_and_written_again() {
    let Some(pg) = crate::pg::shared() else {
        return;
    };
    let name = "t_stopped_write";
    table(&mut pg.connect().unwrap(), name);
    let target = PgTarget::new(&pg.url(), name, COLUMNS)
        .unwrap()
        .write_timeout(Duration::from_secs(1));

    // The sink alone: a stopped backend, a write that ends at its limit.
    let mut sink: PgSink<Ev> = target.open().unwrap();
    let pid = sink.backend_pid().unwrap();
    assert!(signal(pid, "-STOP"));
    // A safety net that continues the backend, whatever happens below.
    let (done, wait) = mpsc::channel::<()>();
    let net = std::thread::spawn(move || {
        let _ = wait.recv_timeout(Duration::from_secs(20));
        signal(pid, "-CONT");
    });
    let rows: Vec<Ev> = (0..100).map(ev).collect();
    let (result, took) = timed(Duration::from_secs(15), move || {
        let r = prodkit_batch::Sink::write(&mut sink, &rows);
        (r, sink)
    });
    let (result, mut sink) = result;
    let error: SinkError = result.expect_err("the backend is stopped");
    assert_eq!(error.failure, Failure::Transient, "{error}");
    assert!(error.message.contains("took longer than"), "{error}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(2500),
        "the write ended after {took:?}"
    );
    // The next write, after a reconnect, goes to a new backend.
    prodkit_batch::Sink::reconnect(&mut sink).unwrap();
    assert_ne!(sink.backend_pid(), Some(pid));
    prodkit_batch::Sink::write(&mut sink, &(100..200).map(ev).collect::<Vec<_>>()).unwrap();
    drop(sink);

    done.send(()).unwrap();
    net.join().unwrap();

    // Through a batcher: its backend stopped, the write is abandoned at its
    // limit and retried on a new connection within the retry budget.
    let url = format!("{}?application_name=t_stopped_batcher", pg.url());
    let target = PgTarget::new(&url, name, COLUMNS)
        .unwrap()
        .write_timeout(Duration::from_secs(1));
    let batcher = Batcher::builder()
        .max_rows(100)
        .linger(Duration::from_millis(5))
        .build(|| target.open())
        .unwrap();
    let mut admin = pg.connect().unwrap();
    let pid: i32 = admin
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 't_stopped_batcher'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(signal(pid, "-STOP"));
    let (done, wait) = mpsc::channel::<()>();
    let net = std::thread::spawn(move || {
        let _ = wait.recv_timeout(Duration::from_secs(20));
        signal(pid, "-CONT");
    });
    let tickets: Vec<(i64, Ticket<Ev>)> = (200..300)
        .map(|i| (i, batcher.submit(ev(i)).unwrap()))
        .collect();
    let start = Instant::now();
    for (id, ticket) in tickets {
        match ticket.wait_timeout(Duration::from_secs(15)) {
            Ok(Ok(())) => {}
            Ok(Err(nack)) => panic!("row {id}: {}", nack.reason),
            Err(_) => panic!("row {id} still pending after 15 s"),
        }
    }
    let took = start.elapsed();
    done.send(()).unwrap();
    net.join().unwrap();
    let stats = batcher.shutdown(Duration::from_secs(10)).stats;
    assert!(stats.failed_writes >= 1, "{stats:?}");
    assert!(took < Duration::from_secs(5), "written after {took:?}");
    // The continued backend finds its connection dropped and rolls back.
    while admin
        .query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .unwrap()
        .is_some()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stored = ids(&mut admin, name);
    assert_eq!(
        stored,
        (100..300).collect::<Vec<_>>(),
        "the abandoned writes stored nothing; the others once each"
    );
}
