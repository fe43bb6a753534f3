//! Integration tests of prodkit-testkit, against real servers. Process-level
//! behaviour (separate servers, SIGKILL, `DATABASE_URL`, the skip rule) is tested by
//! re-running this test binary as a child process in one of the modes below.

mod lifecycle;
mod processes;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use prodkit_testkit::{Discovery, Durability, PgServer, pg_required, shared_or_skip};

/// What a child in `serve` mode reports about the server it got.
#[derive(Debug, Clone)]
struct Served {
    pid: Option<u32>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    external: bool,
    /// `SHOW data_directory`, asked over a connection.
    server_data_dir: PathBuf,
    /// Whether the table named by `PRODKIT_TESTKIT_MARKER` exists there.
    marker: bool,
}

/// The entry point of child processes; inert in a normal run.
#[test]
#[ignore = "entry point of the child processes the other tests spawn"]
fn child_process() {
    let mode = std::env::var("PRODKIT_TESTKIT_CHILD").unwrap_or_default();
    match mode.as_str() {
        "serve" => serve(),
        "skip" => {
            let got = shared_or_skip(Durability::Fast, "testkit skip check");
            println!("returned={}", if got.is_some() { "some" } else { "none" });
        }
        other => panic!("unknown child mode {other:?}"),
    }
}

/// Reports the shared server, then holds it until stdin closes.
fn serve() {
    let Some(pg) = shared_or_skip(Durability::Fast, "testkit child") else {
        return;
    };
    let mut client = pg.connect().expect("child connects");
    let dir: String = client.query_one("SHOW data_directory", &[]).unwrap().get(0);
    let marker = std::env::var("PRODKIT_TESTKIT_MARKER").unwrap_or_else(|_| "none".into());
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&marker])
        .unwrap()
        .get(0);
    let opt = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    let line = [
        format!("pid={}", opt(pg.pid().map(|p| p.to_string()))),
        format!("port={}", opt(pg.port().map(|p| p.to_string()))),
        format!(
            "data_dir={}",
            opt(pg.data_dir().map(|d| d.display().to_string()))
        ),
        format!("external={}", pg.is_external()),
        format!("server_data_dir={dir}"),
        format!("marker={exists}"),
    ]
    .join("\t");
    let mut out = std::io::stdout().lock();
    writeln!(out, "served\t{line}").unwrap();
    out.flush().unwrap();
    drop(out);
    drop(client);
    // Hold the server until the parent closes our stdin (or kills us).
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// This test binary, to run as a child in `mode`, with a clean PostgreSQL environment.
fn child(mode: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_process",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("PRODKIT_TESTKIT_CHILD", mode)
    .env_remove("DATABASE_URL")
    .env_remove("PRODKIT_REQUIRE_PG")
    .env_remove("PRODKIT_PG_DIR");
    cmd
}

/// A child in `serve` mode, with its report.
struct Serving {
    child: Child,
    served: Served,
    /// The rest of the child's output, kept open so its last writes succeed.
    stdout: BufReader<ChildStdout>,
}

fn spawn_serving(mut cmd: Command) -> Serving {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let served = read_served(&mut stdout);
    Serving {
        child,
        served,
        stdout,
    }
}

fn read_served(stdout: &mut BufReader<ChildStdout>) -> Served {
    let mut line = String::new();
    while {
        line.clear();
        stdout.read_line(&mut line).unwrap() > 0
    } {
        // libtest may print "test child_process ... " on the same line first.
        let Some((_, rest)) = line.trim_end().split_once("served\t") else {
            continue;
        };
        let field = |key: &str| {
            rest.split('\t')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {key} in {rest:?}"))
                .to_string()
        };
        let some = |v: String| (v != "none").then_some(v);
        return Served {
            pid: some(field("pid")).map(|v| v.parse().unwrap()),
            port: some(field("port")).map(|v| v.parse().unwrap()),
            data_dir: some(field("data_dir")).map(PathBuf::from),
            external: field("external") == "true",
            server_data_dir: PathBuf::from(field("server_data_dir")),
            marker: field("marker") == "true",
        };
    }
    panic!("the child ended without reporting a server");
}

impl Serving {
    /// Closes the child's stdin, so it exits normally, and checks that it did.
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}\n{rest}");
    }
}

/// Whether server binaries exist here; otherwise prints the skip line (or fails
/// under `PRODKIT_REQUIRE_PG=1`) and returns `false`.
fn binaries_or_skip(what: &str) -> bool {
    match Discovery::from_env().find() {
        Ok(_) => true,
        Err(e) if pg_required() => panic!("{what}: {e}"),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "skipped: {what} needs PostgreSQL: {e}");
            false
        }
    }
}

/// A fresh, empty folder under the target folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("testkit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn entries(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private server of our own in `base`, or `None` after the skip line.
fn start_or_skip(options: prodkit_testkit::Options, what: &str) -> Option<PgServer> {
    binaries_or_skip(what)
        .then(|| PgServer::start(&options).unwrap_or_else(|e| panic!("{what}: {e}")))
}
