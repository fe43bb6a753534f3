//! `cargo xtask ci | lint | bench | pg`: the workspace's own tooling.
#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

mod bench;
mod docs;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

type Result<T = ()> = std::result::Result<T, String>;

pub(crate) const USAGE: &str = "\
usage: cargo xtask <command>
  ci                     what CI runs: fmt, clippy, test, doc, loom, examples, miri, lint
  lint                   tidy checks of the workspace's layout and documentation rules
  bench [CRATE ...] [--quick] [--compare PATH]
                         run the comparison benchmarks, write target/bench-report/
                         (report.html, report.md, charts/, summary.json), compared
                         with the previous run or with the summary.json at PATH
  bench --readme CRATE   print the table a crate's README quotes, from the last report
  bench --rerender       write the last run's report again (after an xtask change)
  pg [--server-default]  start a private PostgreSQL server until Ctrl-C";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("lint") => lint(),
        Some("bench") => bench::run(&args[1..]),
        Some("pg") => pg(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo`, as the one running us (`$CARGO`).
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// `cargo metadata --format-version 1` of the workspace at `root`.
fn metadata(root: &Path, extra: &[&str]) -> Result<serde_json::Value> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["metadata", "--format-version", "1"])
        .args(extra);
    let out = cmd.output().map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata output: {e}"))
}

/// Runs `cmd`, failing on a non-zero exit.
fn run(mut cmd: Command) -> Result {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {status}"))
    }
}

fn ci() -> Result {
    let started = Instant::now();
    let steps: [(&str, &[&str]); 8] = [
        ("fmt", &["fmt", "--all", "--", "--check"]),
        (
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("test", &["test", "--workspace"]),
        // The umbrella's re-exports and the leaves' optional parts (tokio
        // futures, netcfg's adapters) exist only with features on.
        (
            "test features",
            &[
                "test",
                "--package",
                "prodkit",
                "--package",
                "prodkit-ratelimit",
                "--package",
                "prodkit-netcfg",
                "--package",
                "prodkit-bufpool",
                "--all-features",
            ],
        ),
        ("doc", &["doc", "--workspace", "--no-deps"]),
        (
            "loom",
            &[
                "test",
                "--package",
                "prodkit-ratelimit",
                "--test",
                "loom",
                "--release",
            ],
        ),
        // The cache's model is a unit test of its private read buffer.
        (
            "loom",
            &[
                "test",
                "--package",
                "prodkit-cache",
                "--lib",
                "--release",
                "--",
                "loom",
            ],
        ),
        // The pool's models are unit tests of its private engine and job state.
        (
            "loom",
            &[
                "test",
                "--package",
                "prodkit-pool",
                "--lib",
                "--release",
                "--",
                "loom",
            ],
        ),
    ];
    for (name, args) in steps {
        let step = Instant::now();
        println!("== xtask ci: {name}: cargo {}", args.join(" "));
        let mut cmd = cargo();
        cmd.args(args);
        match name {
            "doc" => {
                cmd.env("RUSTDOCFLAGS", "-D warnings");
            }
            // Lock-free code under loom: its own cfg, so its own target folder.
            "loom" => {
                cmd.env("RUSTFLAGS", "--cfg prodkit_loom")
                    .env("CARGO_TARGET_DIR", root().join("target/loom"));
            }
            _ => {}
        }
        run(cmd)?;
        println!("== xtask ci: {name} passed in {:.0?}", step.elapsed());
    }
    examples()?;
    miri()?;
    println!("== xtask ci: lint");
    lint()?;
    println!("== xtask ci: all passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Runs every example of the workspace's crates (`cargo run --example`), each
/// of which asserts what it shows: a README's promise that fails to run fails
/// CI.
fn examples() -> Result {
    let step = Instant::now();
    let meta = metadata(&root(), &["--no-deps"])?;
    let mut ran = 0;
    for package in meta["packages"].as_array().into_iter().flatten() {
        let Some(name) = package["name"].as_str() else {
            continue;
        };
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_example = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "example"));
            let Some(example) = target["name"].as_str().filter(|_| is_example) else {
                continue;
            };
            println!("== xtask ci: example: cargo run -p {name} --example {example}");
            let mut cmd = cargo();
            cmd.args(["run", "-q", "-p", name, "--example", example]);
            run(cmd)?;
            ran += 1;
        }
    }
    println!(
        "== xtask ci: examples: {ran} passed in {:.0?}",
        step.elapsed()
    );
    Ok(())
}

/// The unit tests named `miri_*` (the crates' unsafe code: the pool's inline
/// jobs, job state and scope) under miri, on the nightly toolchain. Installs the
/// component when missing; where that cannot be done (no nightly toolchain, no
/// network) it says so and goes on, since the stable toolchain cannot run miri.
fn miri() -> Result {
    let step = Instant::now();
    let has_miri = || {
        Command::new("rustup")
            .args(["run", "nightly", "cargo", "miri", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has_miri() {
        println!("== xtask ci: miri: installing the nightly miri component");
        let _ = Command::new("rustup")
            .args([
                "component",
                "add",
                "--toolchain",
                "nightly",
                "miri",
                "rust-src",
            ])
            .status();
    }
    if !has_miri() {
        println!(
            "== xtask ci: miri: skipped: no nightly toolchain with miri could be installed here"
        );
        return Ok(());
    }
    // Eight thread schedules, not one: a race that frees a job while
    // another thread's reference is still live shows under some seeds only
    // (one did, in the job state's `finish`).
    miri_test(
        &["-p", "prodkit-pool", "--lib", "miri"],
        Some("-Zmiri-permissive-provenance -Zmiri-many-seeds=0..8"),
    )?;
    // prodkit-bufpool's unsafe code: `PooledBuf`'s `BufMut`, and the
    // thread caches' fast path (the cell and the parked buffers).
    miri_test(
        &[
            "-p",
            "prodkit-bufpool",
            "--features",
            "bytes",
            "--test",
            "it",
            "--",
            "bufmut",
            "fastpath",
        ],
        None,
    )?;
    println!("== xtask ci: miri passed in {:.0?}", step.elapsed());
    Ok(())
}

/// `cargo miri test` with `args` on the nightly toolchain, in its own
/// target folder.
fn miri_test(args: &[&str], flags: Option<&str>) -> Result {
    println!(
        "== xtask ci: miri: rustup run nightly cargo miri test {}{}",
        args.join(" "),
        flags
            .map(|f| format!(" (MIRIFLAGS={f})"))
            .unwrap_or_default()
    );
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root())
        .args(["run", "nightly", "cargo", "miri", "test"])
        .args(args)
        .env("CARGO_TARGET_DIR", root().join("target/miri"))
        .env_remove("RUSTFLAGS");
    if let Some(flags) = flags {
        cmd.env("MIRIFLAGS", flags);
    }
    run(cmd)
}

fn lint() -> Result {
    let mut problems = tidy::check_all(&root())?;
    match docs::check_all(&root())? {
        Some(found) => problems.extend(found),
        None => println!(
            "lint: documentation checks skipped: they read rustdoc's JSON output, which needs \
             a nightly toolchain (rustup toolchain install nightly)"
        ),
    }
    if problems.is_empty() {
        println!("lint: the workspace follows its layout and documentation rules");
        return Ok(());
    }
    for p in &problems {
        println!("lint: {p}");
    }
    Err(format!("{} lint problem(s)", problems.len()))
}

/// Starts a private server and holds it until SIGINT or SIGTERM.
fn pg(args: &[String]) -> Result {
    use prodkit_testkit::{Durability, Options, PgServer};
    let durability = match args {
        [] => Durability::Fast,
        [flag] if flag == "--server-default" => Durability::ServerDefault,
        _ => return Err(USAGE.to_string()),
    };
    // Block the signals before any thread starts, so that every thread inherits the
    // mask and this one receives them with sigwait. Children get a clean mask.
    let signals = block_stop_signals();
    let server = PgServer::start(&Options {
        durability,
        ..Options::default()
    })
    .map_err(|e| e.to_string())?;
    println!(
        "PostgreSQL is running ({durability:?} durability, pid {}).",
        server.pid().unwrap_or(0)
    );
    println!("  url:    {}", server.url());
    if let Some(dir) = server.socket_dir() {
        println!("  socket: {}", dir.display());
    }
    println!(
        "  data:   {}",
        server
            .data_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
    println!("  try:    psql '{}'", server.url());
    println!(
        "  use it: DATABASE_URL='{}' cargo test --workspace",
        server.url()
    );
    println!("Press Ctrl-C to stop it.");
    let got = wait_for(&signals);
    println!("signal {got}: stopping the server");
    server.stop();
    println!("stopped; its folder is removed");
    Ok(())
}

fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned by this frame; the calls only write it
    // and this thread's signal mask.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    set
}

fn wait_for(set: &libc::sigset_t) -> libc::c_int {
    let mut sig = 0;
    // SAFETY: `set` is initialised and its signals are blocked in this thread; `sig`
    // is a valid out-pointer.
    unsafe {
        libc::sigwait(set, &mut sig);
    }
    sig
}
