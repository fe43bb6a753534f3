//! Behaviour across processes: each test runs this binary as a child.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use prodkit_testkit::{Durability, Options, PgServer, shared_or_skip};

use crate::{Scratch, binaries_or_skip, child, spawn_serving};

fn tcp_client(port: u16) -> postgres::Client {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .connect(postgres::NoTls)
        .unwrap()
}

#[test]
fn two_processes_get_separate_servers() {
    if !binaries_or_skip("testkit two processes") {
        return;
    }
    let base = Scratch::new("two");
    let spawn = || {
        let mut cmd = child("serve");
        cmd.env("PRODKIT_PG_DIR", &base.0)
            .env("PRODKIT_TESTKIT_MARKER", "only_in_a");
        spawn_serving(cmd)
    };
    let a = spawn();
    let b = spawn();
    let (sa, sb) = (a.served.clone(), b.served.clone());
    assert!(!sa.external && !sb.external);
    assert_ne!(sa.pid, sb.pid);
    assert_ne!(sa.port, sb.port);
    assert_ne!(sa.data_dir, sb.data_dir);
    assert_eq!(base.entries().len(), 2, "one folder per process");

    // Both run at once, and they are different clusters.
    tcp_client(sa.port.unwrap())
        .batch_execute("CREATE TABLE only_in_a (v int)")
        .unwrap();
    let in_b: bool = tcp_client(sb.port.unwrap())
        .query_one("SELECT to_regclass('only_in_a') IS NOT NULL", &[])
        .unwrap()
        .get(0);
    assert!(!in_b, "a table made in A's server is not in B's");

    a.finish();
    b.finish();
    // A normal exit stops the server and removes its folder before the process ends.
    for served in [&sa, &sb] {
        assert!(
            !alive(served.pid.unwrap()),
            "postmaster {:?} still alive",
            served.pid
        );
        assert!(!served.data_dir.as_ref().unwrap().exists());
    }
    assert!(base.entries().is_empty());
}

#[test]
fn sigkilled_owner_leaves_no_postgres_process_and_its_folder_is_reclaimed() {
    if !binaries_or_skip("testkit SIGKILL") {
        return;
    }
    let base = Scratch::new("sigkill");
    let mut cmd = child("serve");
    cmd.env("PRODKIT_PG_DIR", &base.0);
    let mut serving = spawn_serving(cmd);
    let postmaster = serving.served.pid.unwrap();
    let data_dir = serving.served.data_dir.clone().unwrap();
    let mut server_processes = children_of(postmaster);
    server_processes.push(postmaster);
    assert!(
        server_processes.len() > 1,
        "postmaster and its auxiliary processes run"
    );

    serving.child.kill().unwrap(); // SIGKILL: no destructor, no atexit hook runs
    serving.child.wait().unwrap();

    for &pid in &server_processes {
        assert!(
            wait_exit(pid, Duration::from_secs(30)),
            "server process {pid} outlived its owner"
        );
    }
    let left: Vec<u32> = all_pids()
        .into_iter()
        .filter(|&p| alive(p))
        .filter(|&p| {
            std::fs::read_link(format!("/proc/{p}/cwd")).is_ok_and(|cwd| cwd == data_dir)
                || parent_of(p).is_some_and(|pp| server_processes.contains(&pp))
        })
        .collect();
    assert!(left.is_empty(), "postgres processes left behind: {left:?}");

    // The dead owner's folder stays until the next start in the same base folder.
    let instance = data_dir.parent().unwrap().to_path_buf();
    assert!(instance.exists());
    let next = PgServer::start(&Options {
        base_dir: Some(base.0.clone()),
        ..Options::default()
    })
    .unwrap();
    assert!(
        !instance.exists(),
        "the next start removes a dead owner's folder"
    );
    assert_eq!(
        base.entries(),
        vec![next.data_dir().unwrap().parent().unwrap().to_path_buf()]
    );
    next.stop();
}

#[test]
fn database_url_is_honoured() {
    let Some(pg) = shared_or_skip(Durability::Fast, "testkit DATABASE_URL") else {
        return;
    };
    let mut client = pg.connect().unwrap();
    let marker = format!("url_marker_{}", std::process::id());
    client
        .batch_execute(&format!("CREATE TABLE IF NOT EXISTS {marker} (v int)"))
        .unwrap();
    let our_dir: String = client.query_one("SHOW data_directory", &[]).unwrap().get(0);

    let empty_base = Scratch::new("url");
    let mut cmd = child("serve");
    cmd.env("DATABASE_URL", pg.url())
        .env("PRODKIT_PG_DIR", &empty_base.0)
        .env("PRODKIT_TESTKIT_MARKER", &marker);
    let serving = spawn_serving(cmd);
    let served = serving.served.clone();
    serving.finish();
    client
        .batch_execute(&format!("DROP TABLE {marker}"))
        .unwrap();

    assert!(served.external, "the child used DATABASE_URL");
    assert_eq!(served.pid, None, "and started no server");
    assert_eq!(
        served.server_data_dir,
        Path::new(&our_dir),
        "it reached our server"
    );
    assert!(served.marker, "and saw the table we made there");
    assert!(
        empty_base.entries().is_empty(),
        "no instance folder was made"
    );
}

/// Runs a `skip`-mode child with an empty `PRODKIT_PG_BIN`; returns (success, stdout, stderr).
fn skip_child(require: bool) -> (bool, String, String) {
    let empty = Scratch::new(if require { "nobin-req" } else { "nobin" });
    let mut cmd = child("skip");
    cmd.env("PRODKIT_PG_BIN", &empty.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if require {
        cmd.env("PRODKIT_REQUIRE_PG", "1");
    }
    let mut c = cmd.spawn().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (c.wait().unwrap().success(), out, err)
}

#[test]
fn missing_binaries_skip_with_one_line() {
    let (ok, out, err) = skip_child(false);
    assert!(ok, "a skip passes:\n{out}\n{err}");
    assert!(out.contains("returned=none"), "{out}");
    let skips: Vec<&str> = err.lines().filter(|l| l.starts_with("skipped:")).collect();
    assert_eq!(skips.len(), 1, "exactly one skip line: {err}");
    assert!(
        skips[0].contains("needs PostgreSQL") && skips[0].contains("apt-get install postgresql")
    );
}

#[test]
fn missing_binaries_fail_under_require_pg() {
    let (ok, out, err) = skip_child(true);
    assert!(
        !ok,
        "PRODKIT_REQUIRE_PG=1 turns the skip into a failure:\n{out}"
    );
    assert!(
        err.contains("PRODKIT_REQUIRE_PG=1 forbids skipping"),
        "{err}"
    );
    assert!(!out.contains("returned="), "{out}");
}

// --- process inspection through /proc -------------------------------------------

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The state letter and parent pid of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = s[s.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

fn parent_of(pid: u32) -> Option<u32> {
    stat(pid).map(|(_, ppid)| ppid)
}

/// Running, as opposed to gone or a zombie waiting for a reaper.
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
}

fn children_of(pid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| parent_of(p) == Some(pid))
        .collect()
}

/// Waits for `pid` (not our child) to exit, woken by the kernel through a pidfd.
fn wait_exit(pid: u32, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return !alive(pid); // already gone (ESRCH)
    }
    let fd = fd as libc::c_int;
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    while alive(pid) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // SAFETY: `pfd` is a valid pollfd for the duration of the call, count 1.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as libc::c_int) };
    }
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    !alive(pid)
}
