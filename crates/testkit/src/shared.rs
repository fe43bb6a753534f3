//! One server per process, shared by its tests, and the skip rule of DESIGN.md.

use std::io::Write;
use std::sync::{Once, OnceLock};

use crate::server::{Durability, Options, PgServer, StartError};
use crate::sys;

static FAST: OnceLock<Result<PgServer, StartError>> = OnceLock::new();
static SERVER_DEFAULT: OnceLock<Result<PgServer, StartError>> = OnceLock::new();

fn slot(durability: Durability) -> &'static OnceLock<Result<PgServer, StartError>> {
    match durability {
        Durability::Fast => &FAST,
        Durability::ServerDefault => &SERVER_DEFAULT,
    }
}

/// The server this process shares between its tests, started on first use.
///
/// With `DATABASE_URL` set (and not empty) that server is used instead and
/// `durability` is not applied: its settings are its operator's. Otherwise a
/// private server with `durability` starts on the first call and stops, its folder
/// removed, when the process exits.
///
/// # Errors
/// The [`StartError`] of the one start attempt; later calls return the same error.
pub fn shared(durability: Durability) -> Result<&'static PgServer, &'static StartError> {
    slot(durability)
        .get_or_init(|| {
            if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
                return Ok(PgServer::external(url));
            }
            let server = PgServer::start(&Options {
                durability,
                ..Options::default()
            })?;
            stop_shared_at_exit();
            Ok(server)
        })
        .as_ref()
}

/// [`shared`], or `None` after printing one line saying that `what` was skipped
/// because no server binaries exist.
///
/// Use it at the top of a test: `let Some(pg) = shared_or_skip(Durability::Fast,
/// "batch::copy_sink") else { return };`. The line goes straight to stderr, past
/// the test harness's output capture, so that a skip is never silent.
///
/// # Panics
/// When binaries are missing and `PRODKIT_REQUIRE_PG=1` (as in CI), and when a
/// server was found but failed to start: both are failures, not skips.
pub fn shared_or_skip(durability: Durability, what: &str) -> Option<&'static PgServer> {
    match shared(durability) {
        Ok(server) => Some(server),
        Err(StartError::NotFound(e)) if !pg_required() => {
            let _ = writeln!(std::io::stderr(), "skipped: {what} needs PostgreSQL: {e}");
            None
        }
        Err(StartError::NotFound(e)) => {
            panic!("{what} needs PostgreSQL and PRODKIT_REQUIRE_PG=1 forbids skipping: {e}")
        }
        Err(e) => panic!("{what} needs PostgreSQL, and it failed to start: {e}"),
    }
}

/// Whether `PRODKIT_REQUIRE_PG` turns a missing server into a failure.
pub fn pg_required() -> bool {
    std::env::var("PRODKIT_REQUIRE_PG").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

fn stop_shared_at_exit() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // Without the hook the servers still die with the process (parent-death
        // signal); the hook makes that a clean shutdown that also removes the folders.
        let _ = sys::at_exit(stop_shared);
    });
}

extern "C" fn stop_shared() {
    for slot in [&FAST, &SERVER_DEFAULT] {
        if let Some(Ok(server)) = slot.get() {
            server.stop();
        }
    }
}
