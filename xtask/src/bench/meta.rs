//! What a run was measured on and under: the `meta` of `summary.json`.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};

/// The machine, the build and the conditions of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Meta {
    pub(crate) machine: String,
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) memory: String,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) commit: String,
    pub(crate) dirty: bool,
    pub(crate) date: String,
    pub(crate) quick: bool,
    pub(crate) command: String,
    pub(crate) postgres: String,
    /// `/proc/loadavg`'s 1-minute figure before and after the run.
    pub(crate) load_before: Option<f64>,
    pub(crate) load_after: Option<f64>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The 1-minute load average now.
pub(crate) fn load_average() -> Option<f64> {
    read("/proc/loadavg")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn output(root: &Path, program: &str, args: &[&str]) -> Option<String> {
    std::process::Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

impl Meta {
    /// Everything but the load after the run, which the caller adds.
    pub(crate) fn detect(
        root: &Path,
        command: &str,
        quick: bool,
        load_before: Option<f64>,
        uses_postgres: bool,
    ) -> Meta {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or_else(
                || "unknown".into(),
                |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0),
            );
        let dirty = output(
            root,
            "git",
            &["status", "--porcelain", "--untracked-files=no"],
        )
        .is_some_and(|s| !s.is_empty());
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        Meta {
            machine: output(root, "hostname", &[]).unwrap_or_else(|| "unknown".into()),
            cpu,
            cores,
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            rustc: output(root, "rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
            commit: output(root, "git", &["rev-parse", "--short=12", "HEAD"])
                .unwrap_or_else(|| "unknown".into()),
            dirty,
            date: utc_date(secs),
            quick,
            command: command.to_string(),
            postgres: if uses_postgres {
                postgres_version()
            } else {
                "not used".into()
            },
            load_before,
            load_after: None,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "machine": self.machine,
            "cpu": self.cpu,
            "cores": self.cores,
            "memory": self.memory,
            "kernel": self.kernel,
            "rustc": self.rustc,
            "commit": self.commit,
            "dirty": self.dirty,
            "date": self.date,
            "quick": self.quick,
            "command": self.command,
            "postgres": self.postgres,
            "load_before": self.load_before,
            "load_after": self.load_after,
        })
    }

    /// The meta of a `summary.json`; missing fields stay empty (an earlier
    /// format had none).
    pub(crate) fn from_json(v: &Value) -> Meta {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Meta {
            machine: s("machine"),
            cpu: s("cpu"),
            cores: v["cores"].as_u64().unwrap_or(0) as usize,
            memory: s("memory"),
            kernel: s("kernel"),
            rustc: s("rustc"),
            commit: s("commit"),
            dirty: v["dirty"].as_bool().unwrap_or(false),
            date: s("date"),
            quick: v["quick"].as_bool().unwrap_or(false),
            command: s("command"),
            postgres: s("postgres"),
            load_before: v["load_before"].as_f64(),
            load_after: v["load_after"].as_f64(),
        }
    }

    /// One line naming the machine, for a README: "AMD EPYC, 2 cores, 23.5 GiB, rustc 1.95.0".
    pub(crate) fn machine_line(&self) -> String {
        let rustc = self
            .rustc
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "{}, {} cores, {}, {rustc}",
            self.cpu, self.cores, self.memory
        )
    }
}

/// The PostgreSQL server the batch groups run against: the one testkit
/// starts (`postgres --version` of the binaries it finds), unless
/// `DATABASE_URL` names another.
fn postgres_version() -> String {
    if std::env::var_os("DATABASE_URL").is_some_and(|u| !u.is_empty()) {
        return "the server of DATABASE_URL (version not probed)".into();
    }
    prodkit_testkit::Discovery::from_env()
        .find()
        .ok()
        .and_then(|dir| {
            std::process::Command::new(dir.join("postgres"))
                .arg("--version")
                .output()
                .ok()
        })
        .filter(|o| o.status.success())
        .map_or_else(
            || "none found".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (Howard Hinnant's civil-from-days).
pub(crate) fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
