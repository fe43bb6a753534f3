//! A service with all three presets in use: an `HttpServer` answering
//! `/` and `/health`, a reqwest client calling it, a PostgreSQL pool when
//! `DATABASE_URL` is set, and the shutdown coordinator stopping them in
//! order.
//!
//! ```text
//! cargo run -p prodkit-netcfg --all-features --example service
//! DATABASE_URL=postgres://app@127.0.0.1/app cargo run -p prodkit-netcfg --all-features --example service
//! ```
#![allow(clippy::print_stdout, reason = "an example shows its results")]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prodkit_netcfg::{
    ClientConfig, DbPoolConfig, HealthCheck, HttpServer, PgManager, RequestBody, ServerConfig,
    Shutdown,
};
use r2d2_postgres::postgres::NoTls;

type Pool = r2d2::Pool<PgManager<NoTls>>;

/// `/health` judges the pool (when there is one); `/` answers.
async fn handle(
    req: Request<RequestBody>,
    db: Option<(Pool, HealthCheck)>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, text) = match (req.uri().path(), db) {
        ("/health", Some((pool, check))) => {
            // The pool blocks: off the runtime's threads.
            let health = tokio::task::spawn_blocking(move || check.check_postgres(&pool))
                .await
                .expect("the health check does not panic");
            let status = if health.is_healthy() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, health.to_string())
        }
        ("/health", None) => (StatusCode::OK, "healthy (no database)".to_owned()),
        _ => (StatusCode::OK, "hello".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server_cfg = ServerConfig::internet_facing().with_env("APP_SERVER")?;
    let client_cfg = ClientConfig::internal().with_env("APP_CLIENT")?;
    let db_cfg = DbPoolConfig::internet_facing().with_env("APP_DB")?;
    client_cfg.validate()?;
    client_cfg.validate_against(&server_cfg)?;
    db_cfg.validate_for(server_cfg.handler_timeout)?;

    let db = match std::env::var("DATABASE_URL") {
        Ok(url) => Some((
            db_cfg.postgres_pool(&url.parse()?, NoTls)?,
            HealthCheck::new(&db_cfg),
        )),
        Err(_) => None,
    };
    let pool = db.as_ref().map(|(pool, _)| pool.clone());

    let server = HttpServer::new(&server_cfg)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = hyper::service::service_fn(move |req| handle(req, db.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        server
            .serve(listener, service, async {
                let _ = stopped.await;
            })
            .await;
    });
    println!("serving on http://{addr}");

    let client = client_cfg.reqwest_builder().no_proxy().build()?;
    for path in ["/", "/health"] {
        let response = client_cfg
            .send(client.get(format!("http://{addr}{path}")))
            .await?;
        println!(
            "GET {path}: {} {}",
            response.status(),
            response.text().await?
        );
    }

    let serving = Arc::new(tokio::sync::Mutex::new(Some(serving)));
    let stop = Arc::new(std::sync::Mutex::new(Some(stop)));
    let report = Shutdown::new()
        .phase("stop accepting", Duration::from_millis(100), move |_| {
            if let Some(stop) = stop.lock().expect("not poisoned").take() {
                let _ = stop.send(());
            }
            Ok::<(), Infallible>(())
        })
        .phase_async(
            "drain http",
            Duration::from_secs(10),
            move |deadline| async move {
                let Some(serving) = serving.lock().await.take() else {
                    return Ok(());
                };
                tokio::time::timeout(deadline.remaining(), serving)
                    .await
                    .map(|_| ())
                    .map_err(|_| "connections still open at the deadline")
            },
        )
        .phase_async("close pools", Duration::from_secs(5), move |_| async move {
            // Closing a `postgres` connection blocks on its own runtime,
            // which panics on a runtime thread: off it.
            tokio::task::spawn_blocking(move || drop(pool))
                .await
                .map_err(|_| "closing the pool panicked")
        })
        .run_async()
        .await;
    println!("{report}");
    Ok(())
}
