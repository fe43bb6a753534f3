//! The `r2d2` feature: validation where r2d2 panics, `get` against a
//! server that accepts and stays mute (where the `postgres` crate's own
//! connect hangs), and on a real server the statement timeout and the
//! health check turning unhealthy at saturation and back.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prodkit_netcfg::{DbPoolConfig, HealthCheck, HealthState, Problem};
use prodkit_testkit::{Durability, shared_or_skip};
use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::NoTls;

use crate::watchdog;

const T: Duration = Duration::from_millis(300);

fn db(set: impl FnOnce(&mut DbPoolConfig)) -> DbPoolConfig {
    let mut db = DbPoolConfig::internal();
    set(&mut db);
    db.validate().unwrap();
    db
}

#[test]
fn zero_durations_that_make_r2d2_panic_are_errors_naming_the_field() {
    let plain = std::panic::catch_unwind(|| {
        r2d2::Pool::<PostgresConnectionManager<NoTls>>::builder().connection_timeout(Duration::ZERO)
    });
    assert!(plain.is_err(), "r2d2 took a zero connection_timeout");

    let mut cfg = DbPoolConfig::internal();
    cfg.connect_timeout = Duration::ZERO;
    let err = cfg
        .r2d2_builder::<PostgresConnectionManager<NoTls>>()
        .unwrap_err();
    assert_eq!(
        (err.field(), err.problem()),
        ("connect_timeout", Problem::Zero)
    );

    let mut cfg = DbPoolConfig::internal();
    cfg.max_open = u64::from(u32::MAX) + 1;
    let err = cfg
        .r2d2_builder::<PostgresConnectionManager<NoTls>>()
        .unwrap_err();
    assert_eq!((err.field(), err.problem()), ("max_open", Problem::Range));
}

#[test]
fn get_fails_after_connect_timeout_against_a_server_that_accepts_and_stays_mute() {
    watchdog(Duration::from_secs(60), || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (held_tx, held) = mpsc::channel();
        let mute = std::thread::spawn(move || {
            for socket in listener.incoming() {
                match socket {
                    // A connection from `stop` below ends the listener.
                    Ok(s) => {
                        if held_tx.send(s).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let config: postgres::Config = format!("host=127.0.0.1 port={port} user=app dbname=app")
            .parse()
            .unwrap();

        // The postgres crate alone, with its connect_timeout (T): still
        // waiting at 3T (it covers TCP only).
        let mut plain = config.clone();
        plain.connect_timeout(T);
        let (done_tx, done) = mpsc::channel();
        let waiting = std::thread::spawn(move || {
            let _ = done_tx.send(plain.connect(NoTls).is_ok());
        });
        assert!(
            done.recv_timeout(3 * T).is_err(),
            "the postgres crate's connect returned within 3T"
        );

        // The pool: `get` fails within [T, 3T].
        let pool = db(|d| {
            d.connect_timeout = T;
            d.health_check_timeout = T;
            d.max_idle = 0;
        })
        .postgres_pool(&config, NoTls)
        .unwrap();
        let start = Instant::now();
        let got = pool.get();
        let took = start.elapsed();
        assert!(got.is_err(), "a connection from a mute server");
        assert!(took >= T && took <= 3 * T, "get failed after {took:?}");

        // Closing the held sockets ends the waiting connects.
        drop(held);
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
        assert_eq!(done.recv_timeout(Duration::from_secs(10)), Ok(false));
        waiting.join().unwrap();
        mute.join().unwrap();
        drop(pool);
    });
}

#[test]
fn on_a_real_server_the_statement_timeout_applies_and_health_follows_saturation() {
    let Some(pg) = shared_or_skip(Durability::Fast, "netcfg::pool") else {
        return;
    };
    let config: postgres::Config = pg.url().parse().unwrap();
    watchdog(Duration::from_secs(60), move || {
        let cfg = db(|d| {
            d.max_open = 2;
            d.max_idle = 1;
            d.saturation_percent = 100;
            d.statement_timeout = T;
            d.connect_timeout = Duration::from_secs(5);
        });
        let pool = cfg.postgres_pool(&config, NoTls).unwrap();
        let check = HealthCheck::new(&cfg);

        let mut first = pool.get().unwrap();
        let shown = first.query_one("SHOW statement_timeout", &[]).unwrap();
        assert_eq!(shown.get::<_, String>(0), "300ms");
        let start = Instant::now();
        let err = first.simple_query("SELECT pg_sleep(5)").unwrap_err();
        let took = start.elapsed();
        assert_eq!(
            err.code(),
            Some(&postgres::error::SqlState::QUERY_CANCELED),
            "{err}"
        );
        assert!(took >= T && took <= 3 * T, "cancelled after {took:?}");

        // One of two in use: healthy, pinged.
        let health = check.check_postgres(&pool);
        assert_eq!(health.state, HealthState::Healthy, "{health}");
        assert!(health.ping.is_some());
        assert_eq!(health.pool.in_use, 1);

        // Both in use: saturated, not pinged.
        let second = pool.get().unwrap();
        let health = check.check_postgres(&pool);
        assert_eq!(health.state, HealthState::Saturated, "{health}");
        assert_eq!((health.pool.in_use, health.ping), (2, None));

        // And back.
        drop((first, second));
        let health = check.check_postgres(&pool);
        assert_eq!(health.state, HealthState::Healthy, "{health}");
        assert_eq!(health.pool.in_use, 0);
    });
}

/// A TCP proxy to `target` that can stop passing bytes while keeping its
/// connections open (a stopped server, a network dropping everything).
struct Proxy {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(target: std::net::SocketAddr) -> Proxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (Arc::clone(&frozen), Arc::clone(&stop));
        let acceptor = std::thread::spawn(move || {
            let mut pipes = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = std::net::TcpStream::connect(target).unwrap();
                        for (mut from, mut to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let (f, s) = (Arc::clone(&f), Arc::clone(&s));
                            from.set_read_timeout(Some(Duration::from_millis(20)))
                                .unwrap();
                            pipes.push(std::thread::spawn(move || {
                                use std::io::{Read, Write};
                                let mut buf = [0u8; 8192];
                                while !s.load(Ordering::SeqCst) {
                                    if f.load(Ordering::SeqCst) {
                                        std::thread::sleep(Duration::from_millis(10));
                                        continue;
                                    }
                                    match from.read(&mut buf) {
                                        Ok(0) => return,
                                        Ok(n) => {
                                            // Bytes read just as it froze are held too.
                                            while f.load(Ordering::SeqCst)
                                                && !s.load(Ordering::SeqCst)
                                            {
                                                std::thread::sleep(Duration::from_millis(10));
                                            }
                                            if to.write_all(&buf[..n]).is_err() {
                                                return;
                                            }
                                        }
                                        Err(e)
                                            if matches!(
                                                e.kind(),
                                                std::io::ErrorKind::WouldBlock
                                                    | std::io::ErrorKind::TimedOut
                                            ) => {}
                                        Err(_) => return,
                                    }
                                }
                            }));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for p in pipes {
                p.join().unwrap();
            }
        });
        Proxy {
            port,
            frozen,
            stop,
            threads: vec![acceptor],
        }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn the_health_check_and_get_stay_bounded_when_the_server_hangs() {
    let Some(pg) = shared_or_skip(Durability::Fast, "netcfg::pool") else {
        return;
    };
    let real: postgres::Config = pg.url().parse().unwrap();
    let target = match (real.get_hosts().first(), real.get_ports().first()) {
        (Some(postgres::config::Host::Tcp(host)), Some(&port)) => format!("{host}:{port}")
            .parse::<std::net::SocketAddr>()
            .unwrap(),
        _ => return, // a server reached over a unix socket: no TCP to hang
    };
    watchdog(Duration::from_secs(60), move || {
        let proxy = Proxy::start(target);
        // The same server, through the proxy.
        let mut config = postgres::Config::new();
        config.host("127.0.0.1").port(proxy.port);
        if let Some(user) = real.get_user() {
            config.user(user);
        }
        if let Some(dbname) = real.get_dbname() {
            config.dbname(dbname);
        }
        if let Some(password) = real.get_password() {
            config.password(password);
        }
        let cfg = db(|d| {
            d.max_open = 2;
            d.max_idle = 1;
            d.connect_timeout = T;
            d.health_check_timeout = T;
        });
        let ours = cfg.postgres_pool(&config, NoTls).unwrap();
        let check = HealthCheck::new(&cfg);
        assert_eq!(check.check_postgres(&ours).state, HealthState::Healthy);

        // r2d2_postgres's own manager, with the same sizes: one idle
        // connection, checked with a query that has no deadline.
        let plain = cfg
            .r2d2_builder::<PostgresConnectionManager<NoTls>>()
            .unwrap()
            .build(PostgresConnectionManager::new(config.clone(), NoTls))
            .unwrap();
        drop(plain.get().unwrap());

        proxy.freeze(true);
        let (tx, plain_got) = mpsc::channel();
        let plain_state = {
            let p = plain.clone();
            move || p.state()
        };
        let plain_get = std::thread::spawn(move || {
            let got = plain.get_timeout(T).is_ok();
            let _ = tx.send(got);
            plain
        });
        let early = plain_got.recv_timeout(3 * T);
        assert!(
            early.is_err(),
            "r2d2_postgres's get returned within 3T against a hung server: {early:?} {:?}",
            plain_state()
        );

        let start = Instant::now();
        let health = check.check_postgres(&ours);
        let took = start.elapsed();
        assert!(!health.is_healthy(), "{health}");
        assert!(took <= 3 * T, "the health check took {took:?}");
        // `get` waits at most its check's deadline (T) on the hung server,
        // then hands the connection out: it is not known dead (a query on
        // it would wait, as on any hung server).
        let start = Instant::now();
        drop(ours.get());
        assert!(start.elapsed() <= 3 * T, "get took {:?}", start.elapsed());

        // Thawed, the stuck check ends and the pool is healthy again.
        proxy.freeze(false);
        plain_got.recv_timeout(Duration::from_secs(10)).unwrap();
        let plain = plain_get.join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check.check_postgres(&ours).is_healthy() {
            assert!(Instant::now() < deadline, "never healthy again");
            std::thread::sleep(Duration::from_millis(50));
        }
        // r2d2's pools close their connections on their own threads.
        drop((ours, plain));
        drop(proxy);
    });
}

#[test]
fn after_a_server_restart_get_hands_out_working_connections_and_health_recovers() {
    use prodkit_testkit::{Options, PgServer, StartError};
    let pg = match PgServer::start(&Options::default()) {
        Ok(pg) => pg,
        Err(StartError::NotFound(e)) if !prodkit_testkit::pg_required() => {
            eprintln!("skipped: netcfg::pool restart needs PostgreSQL: {e}");
            return;
        }
        Err(e) => panic!("PostgreSQL failed to start: {e}"),
    };
    let config: postgres::Config = pg.url().parse().unwrap();
    watchdog(Duration::from_secs(120), move || {
        let cfg = db(|d| {
            d.max_open = 4;
            d.max_idle = 2;
            d.connect_timeout = Duration::from_secs(5);
            d.health_check_timeout = Duration::from_secs(1);
        });
        let pool = cfg.postgres_pool(&config, NoTls).unwrap();
        {
            let mut a = pool.get().unwrap();
            let mut b = pool.get().unwrap();
            a.simple_query("SELECT 1").unwrap();
            b.simple_query("SELECT 1").unwrap();
        }
        // Every pooled connection is closed by the server.
        pg.restart(Duration::from_millis(200)).unwrap();
        let health = HealthCheck::new(&cfg).check_postgres(&pool);
        assert!(health.is_healthy(), "{health}");
        for i in 0..4 {
            let mut conn = pool.get().unwrap();
            conn.simple_query("SELECT 1")
                .unwrap_or_else(|e| panic!("checkout {i} after the restart: {e}"));
        }
        // r2d2 closes connections on its own threads, and the server goes
        // with `pg`.
        drop(pool);
        drop(pg);
    });
}
