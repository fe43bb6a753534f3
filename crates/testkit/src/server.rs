//! One private PostgreSQL server: `initdb` into a fresh folder, start, stop, clean up.

use std::fmt;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::discover::{Discovery, NotFound};
use crate::sys;

/// How hard the server works to keep committed data across a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// `fsync=off`, `synchronous_commit=off`, `full_page_writes=off`: for tests,
    /// whose data is thrown away anyway.
    Fast,
    /// The server's defaults. Benchmarks that compare against single-row INSERTs
    /// must use this, or they would measure a server that does not flush.
    ServerDefault,
}

/// How to start a private server. [`Options::default`] reads the environment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Durability settings of the new server.
    pub durability: Durability,
    /// Folder of `initdb` and `postgres`; `None` searches as [`Discovery::from_env`] does.
    pub bin_dir: Option<PathBuf>,
    /// Folder that holds one sub-folder per server; `None` means `PRODKIT_PG_DIR`,
    /// else `target/prodkit-pg` of the running binary's cargo target folder.
    pub base_dir: Option<PathBuf>,
    /// How long `initdb` plus startup may take before [`StartError::Timeout`].
    pub startup_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            durability: Durability::Fast,
            bin_dir: None,
            base_dir: std::env::var_os("PRODKIT_PG_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            startup_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a server could not be started.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// No server binaries were found: the one case a test may skip.
    NotFound(NotFound),
    /// A file-system or process operation failed.
    Io {
        /// What was being done.
        action: String,
        /// The underlying error.
        source: io::Error,
    },
    /// `initdb` failed.
    Initdb {
        /// Its exit status.
        status: ExitStatus,
        /// The end of its output.
        log: String,
    },
    /// The server exited during startup.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// The server did not become ready within [`Options::startup_timeout`].
    Timeout {
        /// The time waited.
        waited: Duration,
        /// The end of its log.
        log: String,
    },
    /// Running as root, and neither a `postgres` nor a `nobody` user exists to run
    /// the server as (PostgreSQL refuses to run as root).
    NoServiceUser,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NotFound(e) => e.fmt(f),
            StartError::Io { action, source } => write!(f, "could not {action}: {source}"),
            StartError::Initdb { status, log } => write!(f, "initdb failed ({status}):\n{log}"),
            StartError::Exited { status, log } => {
                write!(f, "postgres exited during startup ({status}):\n{log}")
            }
            StartError::Timeout { waited, log } => {
                write!(f, "postgres was not ready after {waited:?}:\n{log}")
            }
            StartError::NoServiceUser => f.write_str(
                "running as root, and no `postgres` or `nobody` user exists to run the server as; \
                 create one, run as another user, or set DATABASE_URL",
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::NotFound(e) => Some(e),
            StartError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(action: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
    move |source| StartError::Io {
        action: action.into(),
        source,
    }
}

/// A PostgreSQL server for tests: a private one this process started, or the one
/// `DATABASE_URL` names.
///
/// A private server is stopped, and its folder removed, by [`PgServer::stop`] or on
/// drop. Should this process die without either (a panic with `panic = "abort"`, a
/// SIGKILL), the server receives SIGQUIT from the kernel and exits, and its folder
/// is removed by the next start in the same base folder.
#[derive(Debug)]
pub struct PgServer {
    target: Target,
    instance: Mutex<Option<Instance>>,
}

#[derive(Debug)]
enum Target {
    Private {
        port: u16,
        socket_dir: Option<PathBuf>,
        data_dir: PathBuf,
        pid: u32,
    },
    External {
        url: String,
    },
}

/// The superuser and database of a private server.
const USER: &str = "postgres";
const DBNAME: &str = "postgres";

impl PgServer {
    /// Starts a private server.
    ///
    /// # Errors
    /// [`StartError::NotFound`] when no binaries exist; any other variant is a
    /// real failure and carries the end of the server's log.
    pub fn start(options: &Options) -> Result<PgServer, StartError> {
        let bin_dir = match &options.bin_dir {
            Some(dir) => dir.clone(),
            None => Discovery::from_env().find().map_err(StartError::NotFound)?,
        };
        let deadline = Instant::now() + options.startup_timeout;
        let run_as = service_user()?;
        let base = base_dir(options.base_dir.as_deref(), run_as)?;
        fs::create_dir_all(&base).map_err(io_err(format!("create {}", base.display())))?;
        remove_stale(&base);

        let dir = base.join(instance_name());
        fs::create_dir(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        // From here on the folder is ours to remove on any failure.
        let mut cleanup = RemoveOnDrop(Some(dir.clone()));
        if let Some(user) = run_as {
            std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).map_err(io_err(
                format!("hand {} to uid {}", dir.display(), user.uid),
            ))?;
        }
        let data_dir = dir.join("data");
        initdb(&bin_dir, &dir, &data_dir, run_as)?;

        // A unix socket path must fit in sun_path (108 bytes); beyond that, TCP only.
        let socket_dir = (dir.join(".s.PGSQL.65535").as_os_str().len() < 100).then(|| dir.clone());
        let mut attempt = 0;
        let (port, child, keeper) = loop {
            attempt += 1;
            let port = free_port().map_err(io_err("find a free loopback port"))?;
            let cmd = postgres_command(
                &bin_dir,
                &dir,
                &data_dir,
                port,
                socket_dir.as_deref(),
                options.durability,
                run_as,
            )?;
            let (mut child, keeper) = spawn_kept(cmd).map_err(io_err("start postgres"))?;
            match wait_ready(&mut child, &data_dir, deadline) {
                Ok(()) => break (port, child, keeper),
                Err(e) => {
                    stop_child(&mut child);
                    keeper.release();
                    let log = log_tail(&dir.join("postgres.log"));
                    // Another process took the port between our probe and the bind.
                    if attempt < 5 && log.contains("Address already in use") {
                        let _ = fs::remove_file(data_dir.join("postmaster.pid"));
                        continue;
                    }
                    return Err(e.with_log(log));
                }
            }
        };
        let pid = child.id();
        cleanup.0 = None; // the instance owns the folder now
        Ok(PgServer {
            target: Target::Private {
                port,
                socket_dir: socket_dir.clone(),
                data_dir: data_dir.clone(),
                pid,
            },
            instance: Mutex::new(Some(Instance {
                dir,
                child,
                keeper,
                launch: Launch {
                    bin_dir,
                    data_dir,
                    port,
                    socket_dir,
                    durability: options.durability,
                    run_as,
                    startup_timeout: options.startup_timeout,
                },
            })),
        })
    }

    /// The server at `url`, not started or stopped by us.
    pub fn external(url: impl Into<String>) -> PgServer {
        PgServer {
            target: Target::External { url: url.into() },
            instance: Mutex::new(None),
        }
    }

    /// A connection URL (TCP on 127.0.0.1 for a private server), usable by `psql`.
    pub fn url(&self) -> String {
        match &self.target {
            Target::Private { port, .. } => {
                format!("postgresql://{USER}@127.0.0.1:{port}/{DBNAME}")
            }
            Target::External { url } => url.clone(),
        }
    }

    /// `true` for a server named by `DATABASE_URL`.
    pub fn is_external(&self) -> bool {
        matches!(self.target, Target::External { .. })
    }

    /// The loopback TCP port of a private server.
    pub fn port(&self) -> Option<u16> {
        match &self.target {
            Target::Private { port, .. } => Some(*port),
            Target::External { .. } => None,
        }
    }

    /// The folder holding the unix socket of a private server, when its path is short
    /// enough for one.
    pub fn socket_dir(&self) -> Option<&Path> {
        match &self.target {
            Target::Private { socket_dir, .. } => socket_dir.as_deref(),
            Target::External { .. } => None,
        }
    }

    /// The data folder of a private server.
    pub fn data_dir(&self) -> Option<&Path> {
        match &self.target {
            Target::Private { data_dir, .. } => Some(data_dir),
            Target::External { .. } => None,
        }
    }

    /// The process id of a private server's postmaster (a new one after
    /// [`PgServer::restart`]).
    pub fn pid(&self) -> Option<u32> {
        match &self.target {
            Target::Private { pid, .. } => Some(
                self.lock_instance()
                    .as_ref()
                    .map_or(*pid, |instance| instance.child.id()),
            ),
            Target::External { .. } => None,
        }
    }

    fn lock_instance(&self) -> std::sync::MutexGuard<'_, Option<Instance>> {
        match self.instance.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Stops a private server (fast shutdown: clients are disconnected), keeps
    /// it down for `down_for`, and starts it again on the same port and data.
    /// For tests of what clients do while their server restarts.
    ///
    /// # Errors
    /// The new start's failure, with the server's log; [`StartError::Io`] for
    /// an external or stopped server.
    pub fn restart(&self, down_for: Duration) -> Result<(), StartError> {
        self.restart_after(false, down_for)
    }

    /// Kills a private server's postmaster with SIGKILL (a crash: no shutdown,
    /// its backends end when they notice), keeps it down for `down_for`, and
    /// starts it again on the same port and data, which runs crash recovery.
    /// For tests of what clients see when the server dies mid-write.
    ///
    /// # Errors
    /// As [`PgServer::restart`].
    pub fn crash_restart(&self, down_for: Duration) -> Result<(), StartError> {
        self.restart_after(true, down_for)
    }

    fn restart_after(&self, kill: bool, down_for: Duration) -> Result<(), StartError> {
        let mut guard = self.lock_instance();
        let Some(instance) = guard.take() else {
            return Err(StartError::Io {
                action: "restart a server that is stopped or external".into(),
                source: io::Error::other("no running private server"),
            });
        };
        let Instance {
            dir,
            mut child,
            keeper,
            launch,
        } = instance;
        if kill {
            sys::signal(child.id(), sys::SIGKILL);
            let _ = child.wait();
        } else {
            stop_child(&mut child);
        }
        keeper.release();
        thread::sleep(down_for);
        let l = &launch;
        // After a crash the old backends hold the shared memory until they
        // notice their postmaster is gone; a start before that fails at once.
        let give_up = Instant::now() + l.startup_timeout;
        let (child, keeper) = loop {
            let cmd = postgres_command(
                &l.bin_dir,
                &dir,
                &l.data_dir,
                l.port,
                l.socket_dir.as_deref(),
                l.durability,
                l.run_as,
            )?;
            let (mut child, keeper) = spawn_kept(cmd).map_err(io_err("start postgres again"))?;
            match wait_ready(&mut child, &l.data_dir, give_up) {
                Ok(()) => break (child, keeper),
                Err(e) => {
                    stop_child(&mut child);
                    keeper.release();
                    if !kill || Instant::now() >= give_up {
                        let log = log_tail(&dir.join("postgres.log"));
                        let _ = fs::remove_dir_all(&dir);
                        return Err(e.with_log(log));
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
        };
        *guard = Some(Instance {
            dir,
            child,
            keeper,
            launch,
        });
        Ok(())
    }

    /// A new client connection: over the unix socket when there is one.
    ///
    /// # Errors
    /// The connection error; also after [`PgServer::stop`].
    #[cfg(feature = "client")]
    pub fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        self.config().connect(postgres::NoTls)
    }

    /// Connection settings for this server, to adjust before connecting.
    ///
    /// # Panics
    /// When `DATABASE_URL` is not a valid connection string.
    #[cfg(feature = "client")]
    pub fn config(&self) -> postgres::Config {
        match &self.target {
            Target::Private {
                port, socket_dir, ..
            } => {
                let mut config = postgres::Config::new();
                match socket_dir {
                    Some(dir) => config.host_path(dir),
                    None => config.host("127.0.0.1"),
                };
                config
                    .port(*port)
                    .user(USER)
                    .dbname(DBNAME)
                    .application_name("prodkit-testkit");
                config
            }
            Target::External { url } => match url.parse() {
                Ok(config) => config,
                Err(e) => panic!("DATABASE_URL is not a valid connection string: {e}"),
            },
        }
    }

    /// Stops a private server (fast shutdown) and removes its folder. Idempotent; a
    /// no-op for an external server.
    pub fn stop(&self) {
        let instance = self.lock_instance().take();
        if let Some(instance) = instance {
            instance.shutdown();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running postmaster, its keeper thread and its folder.
#[derive(Debug)]
struct Instance {
    dir: PathBuf,
    child: Child,
    keeper: Keeper,
    launch: Launch,
}

/// What starting the postmaster again needs.
#[derive(Debug, Clone)]
struct Launch {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    socket_dir: Option<PathBuf>,
    durability: Durability,
    run_as: Option<ServiceUser>,
    startup_timeout: Duration,
}

impl Instance {
    fn shutdown(mut self) {
        stop_child(&mut self.child);
        self.keeper.release();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Escalates from fast shutdown (SIGINT) to immediate (SIGQUIT) to SIGKILL, then reaps.
fn stop_child(child: &mut Child) {
    for (signal, patience) in [
        (sys::SIGINT, Duration::from_secs(30)),
        (sys::SIGQUIT, Duration::from_secs(5)),
        (sys::SIGKILL, Duration::from_secs(5)),
    ] {
        if exited_within(child, Duration::ZERO) {
            break;
        }
        // Not reaped yet (only `child` reaps), so the pid cannot have been reused.
        sys::signal(child.id(), signal);
        if exited_within(child, patience) {
            break;
        }
    }
    let _ = child.wait();
}

fn exited_within(child: &mut Child, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// The thread a server is spawned from. The kernel sends the parent-death signal
/// when the spawning *thread* ends, so this thread lives exactly as long as the
/// server: until it is reaped, or until the whole process dies.
#[derive(Debug)]
struct Keeper {
    release: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl Keeper {
    fn release(self) {
        drop(self.release);
        let _ = self.thread.join();
    }
}

fn spawn_kept(mut cmd: Command) -> io::Result<(Child, Keeper)> {
    let (child_tx, child_rx) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let thread = thread::Builder::new()
        .name("prodkit-pg-keeper".into())
        .spawn(move || {
            // SIGQUIT is PostgreSQL's immediate shutdown: it stops its own children too.
            sys::die_with_parent(&mut cmd, sys::SIGQUIT);
            let spawned = cmd.spawn();
            let ok = spawned.is_ok();
            let _ = child_tx.send(spawned);
            if ok {
                let _ = released.recv();
            }
        })?;
    match child_rx.recv() {
        Ok(Ok(child)) => Ok((child, Keeper { release, thread })),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other("keeper thread ended before spawning"))
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ServiceUser {
    uid: u32,
    gid: u32,
}

/// PostgreSQL refuses to run as root: pick the user to run it as.
fn service_user() -> Result<Option<ServiceUser>, StartError> {
    if sys::effective_uid() != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for wanted in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4
                && fields[0] == wanted
                && let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse())
                && uid != 0
            {
                return Ok(Some(ServiceUser { uid, gid }));
            }
        }
    }
    Err(StartError::NoServiceUser)
}

fn base_dir(explicit: Option<&Path>, run_as: Option<ServiceUser>) -> Result<PathBuf, StartError> {
    if let Some(dir) = explicit {
        let dir = std::path::absolute(dir).map_err(io_err(format!("resolve {}", dir.display())))?;
        return Ok(dir);
    }
    let preferred = cargo_target_dir().join("prodkit-pg");
    match run_as {
        // The service user must be able to reach its folder; a checkout under a
        // private home folder would not let it, so fall back to the temp folder.
        Some(user) if !reachable_by(&preferred, user) => {
            Ok(std::env::temp_dir().join(format!("prodkit-pg-{}", user.uid)))
        }
        _ => Ok(preferred),
    }
}

/// The cargo target folder of the running test, bench or xtask binary.
fn cargo_target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        return std::path::absolute(PathBuf::from(&dir)).unwrap_or_else(|_| PathBuf::from(dir));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file())
    {
        return dir.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// Whether every existing ancestor of `dir` can be traversed by `user`.
fn reachable_by(dir: &Path, user: ServiceUser) -> bool {
    dir.ancestors().filter_map(|d| d.metadata().ok()).all(|m| {
        let mode = m.mode();
        mode & 0o001 != 0 || (m.uid() == user.uid && mode & 0o100 != 0)
    })
}

/// `<pid>-<process start time>-<sequence>`: enough to tell later whether the owner
/// is still alive, even after its pid has been reused.
fn instance_name() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    let start = process_start_time(pid).unwrap_or(0);
    format!("{pid}-{start}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Field 22 of `/proc/<pid>/stat`: the start time in clock ticks since boot.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn owner_alive(pid: u32, start: u64) -> bool {
    process_start_time(pid) == Some(start)
}

/// Removes the folders of servers whose owning process is gone, stopping their
/// postmaster first should it still run.
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let mut parts = name.split('-');
        let (Some(Ok(pid)), Some(Ok(start))) = (
            parts.next().map(str::parse::<u32>),
            parts.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        if owner_alive(pid, start) {
            continue;
        }
        let dir = entry.path();
        stop_orphan(&dir.join("data"));
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Stops a postmaster still running on `data_dir` (identified by its working
/// folder, which PostgreSQL sets to the data folder).
fn stop_orphan(data_dir: &Path) {
    let Some(pid) = fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse::<u32>().ok())
    else {
        return;
    };
    let runs_here =
        |pid: u32| fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == data_dir);
    for signal in [sys::SIGQUIT, sys::SIGKILL] {
        if !runs_here(pid) {
            return;
        }
        sys::signal(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs_here(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn initdb(
    bin_dir: &Path,
    dir: &Path,
    data_dir: &Path,
    run_as: Option<ServiceUser>,
) -> Result<(), StartError> {
    let log_path = dir.join("initdb.log");
    let log = fs::File::create(&log_path).map_err(io_err("create initdb.log"))?;
    let mut cmd = Command::new(bin_dir.join("initdb"));
    cmd.arg("--pgdata")
        .arg(data_dir)
        .args([
            "--username",
            USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
        ])
        .arg("--no-sync")
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env_remove("PGDATA")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err("open initdb.log"))?)
        .stderr(log);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    // initdb is waited for on this thread, so this thread outlives it.
    sys::die_with_parent(&mut cmd, sys::SIGKILL);
    let status = cmd
        .status()
        .map_err(io_err(format!("run {}", bin_dir.join("initdb").display())))?;
    if status.success() {
        Ok(())
    } else {
        Err(StartError::Initdb {
            status,
            log: log_tail(&log_path),
        })
    }
}

fn postgres_command(
    bin_dir: &Path,
    dir: &Path,
    data_dir: &Path,
    port: u16,
    socket_dir: Option<&Path>,
    durability: Durability,
    run_as: Option<ServiceUser>,
) -> Result<Command, StartError> {
    let log = fs::File::create(dir.join("postgres.log")).map_err(io_err("create postgres.log"))?;
    if let Some(user) = run_as {
        std::os::unix::fs::chown(dir.join("postgres.log"), Some(user.uid), Some(user.gid))
            .map_err(io_err("hand postgres.log to the service user"))?;
    }
    let mut cmd = Command::new(bin_dir.join("postgres"));
    cmd.arg("-D").arg(data_dir).arg("-p").arg(port.to_string());
    let socket = socket_dir.map_or_else(String::new, |d| d.display().to_string());
    let mut settings = vec![
        "listen_addresses=127.0.0.1".to_string(),
        format!("unix_socket_directories={socket}"),
        "logging_collector=off".to_string(),
    ];
    if durability == Durability::Fast {
        settings.extend(
            [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ]
            .map(String::from),
        );
    }
    for setting in settings {
        cmd.arg("-c").arg(setting);
    }
    cmd.current_dir(dir)
        .env("LC_ALL", "C")
        .env_remove("PGDATA")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err("open postgres.log"))?)
        .stderr(log)
        // Its own process group: a Ctrl-C meant for the test run does not reach it
        // directly; it stops when its owner does.
        .process_group(0);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    Ok(cmd)
}

/// Why a started postmaster did not become ready.
enum NotReady {
    Exited(ExitStatus),
    Timeout(Duration),
}

impl NotReady {
    fn with_log(self, log: String) -> StartError {
        match self {
            NotReady::Exited(status) => StartError::Exited { status, log },
            NotReady::Timeout(waited) => StartError::Timeout { waited, log },
        }
    }
}

/// Waits until `postmaster.pid` says "ready" (its eighth line, PostgreSQL 10+).
fn wait_ready(child: &mut Child, data_dir: &Path, deadline: Instant) -> Result<(), NotReady> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(NotReady::Exited(status));
        }
        // The file must be this postmaster's: one killed with SIGKILL leaves
        // its own behind, saying "ready".
        let pid = child.id().to_string();
        let ready = fs::read_to_string(data_dir.join("postmaster.pid")).is_ok_and(|s| {
            s.lines().next().is_some_and(|l| l.trim() == pid)
                && s.lines().nth(7).is_some_and(|l| l.trim() == "ready")
        });
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotReady::Timeout(started.elapsed()));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The last lines of a log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Removes a half-made instance folder when startup fails.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}
