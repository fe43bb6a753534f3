//! The `postgres` feature on loopback: the start-up deadline against a mute
//! listener (where tokio-postgres's own `connect_timeout` hangs), and the
//! statement timeout applied by a real server.

use std::time::{Duration, Instant};

use prodkit_netcfg::{DbPoolConfig, PgConnectError};
use prodkit_testkit::{Durability, shared_or_skip};

use crate::watchdog;

const T: Duration = Duration::from_millis(300);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn db(connect: Duration, statement: Duration) -> DbPoolConfig {
    let mut db = DbPoolConfig::internal();
    db.connect_timeout = connect;
    db.health_check_timeout = connect;
    db.statement_timeout = statement;
    db.validate().unwrap();
    db
}

#[test]
fn the_start_up_deadline_fires_against_a_listener_that_accepts_and_says_nothing() {
    watchdog(Duration::from_secs(30), || {
        runtime().block_on(async {
            // Accepts every connection and never answers the start-up.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let mute = tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    held.push(socket);
                }
            });
            let mut config: tokio_postgres::Config =
                format!("host=127.0.0.1 port={port} user=app dbname=app")
                    .parse()
                    .unwrap();
            let db = db(T, T / 2);
            db.apply_postgres(&mut config);

            // The library alone: its connect_timeout (T) covers TCP only, so
            // the connection is still waiting at 3T.
            let plain = tokio::time::timeout(3 * T, config.connect(tokio_postgres::NoTls)).await;
            assert!(plain.is_err(), "tokio-postgres alone returned within 3T");

            // With the preset: refused within [T, 3T].
            let start = Instant::now();
            let result = db.connect_postgres(&config, tokio_postgres::NoTls).await;
            let took = start.elapsed();
            assert!(
                matches!(result, Err(PgConnectError::TimedOut { .. })),
                "{:?}",
                result.err()
            );
            assert!(took >= T && took <= 3 * T, "{took:?}");
            mute.abort();
        });
    });
}

#[test]
fn a_real_server_applies_the_statement_timeout() {
    let Some(pg) = shared_or_skip(Durability::Fast, "netcfg::postgres") else {
        return;
    };
    let url = pg.url();
    watchdog(Duration::from_secs(60), move || {
        runtime().block_on(async {
            let mut config: tokio_postgres::Config = url.parse().unwrap();
            let db = db(Duration::from_secs(5), T);
            db.apply_postgres(&mut config);
            let (client, connection) = db
                .connect_postgres(&config, tokio_postgres::NoTls)
                .await
                .unwrap();
            let conn = tokio::spawn(connection);
            let shown = client
                .query_one("SHOW statement_timeout", &[])
                .await
                .unwrap();
            assert_eq!(shown.get::<_, String>(0), "300ms");
            // A statement longer than the timeout is cancelled by the server
            // within [T, 3T].
            let start = Instant::now();
            let err = client.simple_query("SELECT pg_sleep(5)").await.unwrap_err();
            let took = start.elapsed();
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
                "{err}"
            );
            assert!(took >= T && took <= 3 * T, "{took:?}");
            drop(client);
            let _ = conn.await;
        });
    });
}
