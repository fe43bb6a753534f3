//! `cargo xtask bench [CRATE ...] [--quick]`: runs the comparison benchmarks of
//! `benches/` and writes `target/bench-report/summary.json` and `report.md`.
//!
//! Bench targets are named after the crate they measure: `pool` and `pool_*`
//! belong to `prodkit-pool`. Criterion targets leave their medians in
//! `<target>/criterion/**/new/estimates.json`; other figure programs write
//! `<report>/figures/<program>.json` (see `prodkit_benches::Figures`).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::Result;

const BENCH_PACKAGE: &str = "prodkit-benches";

/// Criterion settings of `--quick`: short, but still its minimum of 10 samples.
const QUICK_ARGS: &[&str] = &[
    "--warm-up-time",
    "0.5",
    "--measurement-time",
    "1",
    "--sample-size",
    "10",
];

pub(crate) fn run(args: &[String]) -> Result {
    let mut quick = false;
    let mut crates = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            flag if flag.starts_with('-') => return Err(format!("bench: unknown flag {flag}")),
            name => crates.push(name.strip_prefix("prodkit-").unwrap_or(name).to_string()),
        }
    }
    let root = crate::root();
    let meta = crate::metadata(&root, &["--no-deps"])?;
    let target_dir = PathBuf::from(
        meta["target_directory"]
            .as_str()
            .ok_or("cargo metadata: no target_directory")?,
    );
    let report_dir = target_dir.join("bench-report");
    let criterion_dir = target_dir.join("criterion");
    let all = bench_targets(&meta);
    let selected = select(&all, &crates);

    // Stale figures of an earlier run must not leak into this report.
    let figures_dir = report_dir.join("figures");
    let _ = std::fs::remove_dir_all(&figures_dir);
    std::fs::create_dir_all(&figures_dir).map_err(|e| format!("{}: {e}", figures_dir.display()))?;

    let command = format!(
        "cargo xtask bench{}",
        args.iter().map(|a| format!(" {a}")).collect::<String>()
    );
    let started = SystemTime::now();
    let mut failures = Vec::new();
    if selected.is_empty() {
        match crates.is_empty() {
            true => println!("bench: no benchmark group exists yet"),
            false => println!(
                "bench: no benchmark group exists yet for {} (bench targets: {})",
                crates.join(", "),
                if all.is_empty() {
                    "none".to_string()
                } else {
                    all.join(", ")
                }
            ),
        }
    } else {
        build(&selected)?;
        let ids = list(&selected)?;
        println!(
            "bench: {} benchmark(s) in {} target(s): {}",
            ids.len(),
            selected.len(),
            selected.join(", ")
        );
        let mut progress = Progress {
            total: ids.len(),
            seen: HashSet::new(),
        };
        for target in &selected {
            if let Err(e) = run_target(target, quick, &report_dir, &criterion_dir, &mut progress) {
                println!("bench: {e}");
                failures.push(e);
            }
        }
    }

    let since = started
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(started);
    let mut measurements = collect_criterion(&criterion_dir, Some(since))?;
    let (figures, notes) = collect_figures(&figures_dir)?;
    measurements.extend(figures);
    let machine = Machine::detect(&root);
    let report = render_report(&measurements, &notes, &machine, &command, quick);
    write_reports(&report_dir, &measurements, &report)?;
    println!("\n{report}");
    println!(
        "bench: wrote {} and {}",
        report_dir.join("summary.json").display(),
        report_dir.join("report.md").display()
    );
    match failures.as_slice() {
        [] => Ok(()),
        _ => Err(format!(
            "{} bench target(s) failed: {}",
            failures.len(),
            failures.join("; ")
        )),
    }
}

/// The bench targets of the benches package, sorted.
fn bench_targets(meta: &Value) -> Vec<String> {
    let mut names: Vec<String> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == BENCH_PACKAGE)
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The targets of the named crates (`pool` selects `pool` and `pool_*`), or all.
fn select(all: &[String], crates: &[String]) -> Vec<String> {
    all.iter()
        .filter(|t| {
            crates.is_empty()
                || crates.iter().any(|c| {
                    *t == c
                        || t.strip_prefix(c.as_str())
                            .is_some_and(|r| r.starts_with('_'))
                })
        })
        .cloned()
        .collect()
}

fn bench_cmd(targets: &[String]) -> std::process::Command {
    let mut cmd = crate::cargo();
    cmd.args(["bench", "--package", BENCH_PACKAGE]);
    for t in targets {
        cmd.args(["--bench", t]);
    }
    cmd
}

fn build(targets: &[String]) -> Result {
    println!("bench: building {}", targets.join(", "));
    let mut cmd = bench_cmd(targets);
    cmd.arg("--no-run");
    crate::run(cmd)
}

/// Every benchmark id of `targets`, from their `--list` output (`<id>: benchmark`).
fn list(targets: &[String]) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for t in targets {
        let mut cmd = bench_cmd(std::slice::from_ref(t));
        cmd.args(["--", "--list"]).stderr(Stdio::null());
        let out = cmd
            .output()
            .map_err(|e| format!("could not list {t}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "listing the benchmarks of {t} failed: {}",
                out.status
            ));
        }
        ids.extend(parse_list(&String::from_utf8_lossy(&out.stdout)));
    }
    Ok(ids)
}

fn parse_list(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_suffix(": benchmark"))
        .map(str::to_string)
        .collect()
}

/// Which benchmarks have started, to show "[k/N] id" once per id.
struct Progress {
    total: usize,
    seen: HashSet<String>,
}

impl Progress {
    /// Criterion (and `Figures::start`) announce each step on stderr as
    /// `Benchmarking <id>` or `Benchmarking <id>: <phase>`. Returns the progress line
    /// for a new id, `Some("")` for a repeat to hide, `None` for other output.
    fn on_line(&mut self, line: &str) -> Option<String> {
        let rest = line.strip_prefix("Benchmarking ")?;
        let id = match rest.rfind(": ") {
            Some(i) => &rest[..i],
            None => rest,
        };
        if !self.seen.insert(id.to_string()) {
            return Some(String::new());
        }
        Some(format!(
            "[{}/{}] {id}",
            self.seen.len(),
            self.total.max(self.seen.len())
        ))
    }
}

fn run_target(
    target: &str,
    quick: bool,
    report_dir: &Path,
    criterion_dir: &Path,
    progress: &mut Progress,
) -> Result {
    println!("bench: running {target}");
    let mut cmd = bench_cmd(&[target.to_string()]);
    cmd.env("PRODKIT_BENCH_REPORT_DIR", report_dir)
        .env("PRODKIT_BENCH_QUICK", if quick { "1" } else { "0" })
        .env("CRITERION_HOME", criterion_dir)
        .stderr(Stdio::piped());
    if quick {
        cmd.arg("--").args(QUICK_ARGS);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not run {target}: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        match progress.on_line(&line) {
            Some(p) if p.is_empty() => {}
            Some(p) => println!("{p}"),
            None => eprintln!("{line}"),
        }
    }
    let status = child.wait().map_err(|e| format!("{target}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{target} failed: {status}"))
    }
}

/// One line of `summary.json`.
#[derive(Debug, Clone, PartialEq)]
struct Measurement {
    group: String,
    implementation: String,
    value: f64,
    unit: String,
    /// "lower" or "higher".
    better: String,
    /// The spread: criterion's confidence interval of the median, or the min
    /// and max of a figure program's repetitions.
    low: Option<f64>,
    high: Option<f64>,
}

impl Measurement {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "group": self.group,
            "impl": self.implementation,
            "value": self.value,
            "unit": self.unit,
            "better": self.better,
        });
        if let (Some(low), Some(high)) = (self.low, self.high) {
            v["low"] = json!(low);
            v["high"] = json!(high);
        }
        v
    }

    fn from_json(v: &Value) -> Option<Measurement> {
        let better = v["better"].as_str()?;
        if better != "lower" && better != "higher" {
            return None;
        }
        Some(Measurement {
            group: v["group"].as_str()?.to_string(),
            implementation: v["impl"].as_str()?.to_string(),
            value: v["value"].as_f64()?,
            unit: v["unit"].as_str()?.to_string(),
            better: better.to_string(),
            low: v["low"].as_f64(),
            high: v["high"].as_f64(),
        })
    }
}

/// Criterion's medians under `dir`: every `new/estimates.json` beside a
/// `new/benchmark.json`, written at or after `since` when given.
fn collect_criterion(dir: &Path, since: Option<SystemTime>) -> Result<Vec<Measurement>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "new") {
                if let Some(m) = read_criterion_result(&path, since)? {
                    found.push(m);
                }
            } else {
                stack.push(path);
            }
        }
    }
    found.sort_by(|a, b| (&a.group, &a.implementation).cmp(&(&b.group, &b.implementation)));
    Ok(found)
}

fn read_criterion_result(new_dir: &Path, since: Option<SystemTime>) -> Result<Option<Measurement>> {
    let estimates_path = new_dir.join("estimates.json");
    let benchmark_path = new_dir.join("benchmark.json");
    let (Ok(estimates), Ok(benchmark)) = (
        std::fs::read_to_string(&estimates_path),
        std::fs::read_to_string(&benchmark_path),
    ) else {
        return Ok(None);
    };
    if let Some(since) = since {
        let modified = std::fs::metadata(&estimates_path).and_then(|m| m.modified());
        if modified.map_or(true, |t| t < since) {
            return Ok(None);
        }
    }
    let parse = |path: &Path, text: &str| -> Result<Value> {
        serde_json::from_str(text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let estimates = parse(&estimates_path, &estimates)?;
    let benchmark = parse(&benchmark_path, &benchmark)?;
    let median = estimates["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| format!("{}: no median.point_estimate", estimates_path.display()))?;
    let group_id = benchmark["group_id"].as_str().unwrap_or_default();
    let function = benchmark["function_id"].as_str();
    let value = benchmark["value_str"].as_str();
    // The implementation is the function id (`prodkit`, `moka`, ...); a parameter
    // becomes part of the group, so each group compares like with like.
    let (group, implementation) = match (function, value) {
        (Some(f), Some(v)) => (format!("{group_id}/{v}"), f.to_string()),
        (Some(f), None) => (group_id.to_string(), f.to_string()),
        (None, Some(v)) => (group_id.to_string(), v.to_string()),
        (None, None) => match group_id.rsplit_once('/') {
            Some((g, i)) => (g.to_string(), i.to_string()),
            None => (group_id.to_string(), group_id.to_string()),
        },
    };
    let interval = &estimates["median"]["confidence_interval"];
    Ok(Some(Measurement {
        group,
        implementation,
        value: median,
        unit: "ns".into(),
        better: "lower".into(),
        low: interval["lower_bound"].as_f64(),
        high: interval["upper_bound"].as_f64(),
    }))
}

/// The measurements and notes of every `figures/*.json`.
fn collect_figures(dir: &Path) -> Result<(Vec<Measurement>, Vec<String>)> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let (mut measurements, mut notes) = (Vec::new(), Vec::new());
    for path in files {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for m in doc["measurements"].as_array().into_iter().flatten() {
            let m = Measurement::from_json(m)
                .ok_or_else(|| format!("{}: malformed measurement {m}", path.display()))?;
            measurements.push(m);
        }
        notes.extend(
            doc["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string)),
        );
    }
    Ok((measurements, notes))
}

/// How many times better `prodkit` is than `other`: peer/prodkit when lower is
/// better, prodkit/peer when higher is. `None` when the two cannot be compared.
fn ratio(prodkit: &Measurement, other: &Measurement) -> Option<f64> {
    if prodkit.unit != other.unit || prodkit.better != other.better {
        return None;
    }
    let (num, den) = match prodkit.better.as_str() {
        "lower" => (other.value, prodkit.value),
        _ => (prodkit.value, other.value),
    };
    (den > 0.0 && num.is_finite() && den.is_finite()).then(|| num / den)
}

/// Whether `implementation` is one of ours: `prodkit`, or a variant of it
/// named `prodkit_<variant>` (`prodkit_copy`, `prodkit_detached`).
fn is_ours(implementation: &str) -> bool {
    implementation == "prodkit" || implementation.starts_with("prodkit_")
}

/// Measurements grouped by group, in order, each group in the order: ours
/// first, then the others, each part from best to worst.
fn by_group(measurements: &[Measurement]) -> BTreeMap<&str, Vec<&Measurement>> {
    let mut groups: BTreeMap<&str, Vec<&Measurement>> = BTreeMap::new();
    for m in measurements {
        groups.entry(&m.group).or_default().push(m);
    }
    for rows in groups.values_mut() {
        rows.sort_by(|a, b| {
            let key = |m: &Measurement| {
                if m.better == "lower" {
                    m.value
                } else {
                    -m.value
                }
            };
            (!is_ours(&a.implementation))
                .cmp(&!is_ours(&b.implementation))
                .then(key(a).total_cmp(&key(b)))
                .then(a.implementation.cmp(&b.implementation))
        });
    }
    groups
}

fn format_value(v: f64) -> String {
    match v.abs() {
        x if x >= 1000.0 => format!("{v:.0}"),
        x if x >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.3}"),
    }
}

/// The machine a report was measured on.
#[derive(Debug, Default)]
struct Machine {
    cpu: String,
    cores: usize,
    memory: String,
    kernel: String,
    rustc: String,
    commit: String,
    date: String,
}

impl Machine {
    fn detect(root: &Path) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
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
        let output = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .current_dir(root)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"]);
        let mut commit = output("git", &["rev-parse", "--short=12", "HEAD"]);
        if !dirty.is_empty() && dirty != "unknown" {
            commit.push_str(" (with uncommitted changes)");
        }
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            rustc: output("rustc", &["--version"]),
            commit,
            date: utc_date(secs),
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (Howard Hinnant's civil-from-days).
fn utc_date(secs: u64) -> String {
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

fn render_report(
    measurements: &[Measurement],
    notes: &[String],
    machine: &Machine,
    command: &str,
    quick: bool,
) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# prodkit benchmark report\n");
    let _ = writeln!(
        w,
        "Produced by `{command}`{}.\n",
        if quick {
            " (quick: short measurements, rough figures)"
        } else {
            ""
        }
    );
    let _ = writeln!(w, "| machine | |\n|---|---|");
    let _ = writeln!(
        w,
        "| cpu | {} ({} cores available) |",
        machine.cpu, machine.cores
    );
    let _ = writeln!(w, "| memory | {} |", machine.memory);
    let _ = writeln!(w, "| kernel | {} |", machine.kernel);
    let _ = writeln!(w, "| rustc | {} |", machine.rustc);
    let _ = writeln!(w, "| commit | {} |", machine.commit);
    let _ = writeln!(w, "| date | {} |\n", machine.date);
    let _ = writeln!(
        w,
        "Times are criterion medians. Ratio: how many times better `prodkit` is than each other \
         implementation in the same run (other/prodkit when lower is better, prodkit/other when \
         higher is better; above 1 means prodkit wins). A group with several variants of ours \
         (`prodkit_copy`, `prodkit_insert`) has a ratio column for each.\n"
    );
    let groups = by_group(measurements);
    if groups.is_empty() {
        let _ = writeln!(w, "No benchmark group exists yet.");
    }
    for (group, rows) in &groups {
        // Ratio columns by name, so that every group of a program has the same.
        let mut ours: Vec<&Measurement> = rows
            .iter()
            .copied()
            .filter(|m| is_ours(&m.implementation))
            .collect();
        ours.sort_by(|a, b| a.implementation.cmp(&b.implementation));
        let _ = writeln!(w, "## {group}\n");
        let mut header = String::from("| impl | value | unit | better |");
        let mut rule = String::from("|---|---:|---|---|");
        if ours.len() <= 1 {
            header.push_str(" ratio |");
            rule.push_str("---:|");
        } else {
            for o in &ours {
                let _ = write!(header, " ratio of {} |", o.implementation);
                rule.push_str("---:|");
            }
        }
        let _ = writeln!(w, "{header}\n{rule}");
        for m in rows {
            // No prodkit row: one empty ratio cell.
            let mut cells = if ours.is_empty() {
                "  |".to_string()
            } else {
                String::new()
            };
            for o in &ours {
                let r = if o.implementation == m.implementation {
                    String::new()
                } else {
                    ratio(o, m).map_or("n/a".into(), |r| format!("{r:.2}x"))
                };
                let _ = write!(cells, " {r} |");
            }
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} |{cells}",
                m.implementation,
                format_value(m.value),
                m.unit,
                m.better
            );
        }
        let _ = writeln!(w);
    }
    if !notes.is_empty() {
        let _ = writeln!(w, "## Notes\n");
        for n in notes {
            let _ = writeln!(w, "- {n}");
        }
    }
    out
}

fn write_reports(dir: &Path, measurements: &[Measurement], report: &str) -> Result {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let summary = Value::Array(measurements.iter().map(Measurement::to_json).collect());
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    for (name, body) in [("summary.json", text.as_str()), ("report.md", report)] {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/criterion")
    }

    fn m(group: &str, implementation: &str, value: f64, unit: &str, better: &str) -> Measurement {
        Measurement {
            group: group.into(),
            implementation: implementation.into(),
            value,
            unit: unit.into(),
            better: better.into(),
            low: None,
            high: None,
        }
    }

    #[test]
    fn criterion_medians_are_collected_from_new_only() {
        let got = collect_criterion(&fixtures(), None).unwrap();
        assert!(
            got.iter().all(
                |m| m.low.is_some_and(|l| l <= m.value) && m.high.is_some_and(|h| h >= m.value)
            ),
            "the median's confidence interval is the spread: {got:?}"
        );
        let got: Vec<_> = got
            .into_iter()
            .map(|m| Measurement {
                low: None,
                high: None,
                ..m
            })
            .collect();
        assert_eq!(
            got,
            vec![
                m("demo/parsed/64", "prodkit", 120.5, "ns", "lower"),
                m("demo/parsed/64", "serde_json", 301.25, "ns", "lower"),
                m("demo/wake", "naive", 4000.0, "ns", "lower"),
                m("demo/wake", "prodkit", 250.0, "ns", "lower"),
            ],
            "base/ and change/ folders are ignored, parameters join the group"
        );
    }

    #[test]
    fn results_older_than_the_run_are_left_out() {
        let future = SystemTime::now() + Duration::from_secs(3600);
        assert!(
            collect_criterion(&fixtures(), Some(future))
                .unwrap()
                .is_empty()
        );
        assert!(
            collect_criterion(&fixtures().join("missing"), None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn ratios_say_how_many_times_better_prodkit_is() {
        let p = m("g", "prodkit", 100.0, "ns", "lower");
        assert_eq!(ratio(&p, &m("g", "peer", 250.0, "ns", "lower")), Some(2.5));
        assert_eq!(ratio(&p, &m("g", "peer", 50.0, "ns", "lower")), Some(0.5));
        let p = m("g", "prodkit", 0.9, "ratio", "higher");
        assert_eq!(
            ratio(&p, &m("g", "peer", 0.6, "ratio", "higher")),
            Some(0.9 / 0.6)
        );
        assert_eq!(
            ratio(&p, &m("g", "peer", 0.0, "ratio", "higher")),
            None,
            "division by zero"
        );
        assert_eq!(
            ratio(&p, &m("g", "peer", 0.6, "ns", "higher")),
            None,
            "different units"
        );
    }

    #[test]
    fn figures_are_merged_and_malformed_ones_rejected() {
        let dir =
            std::env::temp_dir().join(format!("prodkit-xtask-figures-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let doc = json!({
            "measurements": [m("cache/hit-ratio", "prodkit", 0.42, "ratio", "higher").to_json()],
            "notes": ["cache: generated trace"],
        });
        std::fs::write(dir.join("cache.json"), doc.to_string()).unwrap();
        let (got, notes) = collect_figures(&dir).unwrap();
        assert_eq!(
            got,
            vec![m("cache/hit-ratio", "prodkit", 0.42, "ratio", "higher")]
        );
        assert_eq!(notes, vec!["cache: generated trace".to_string()]);

        std::fs::write(
            dir.join("bad.json"),
            r#"{"measurements":[{"group":"g","impl":"x","value":1,"unit":"ns","better":"up"}]}"#,
        )
        .unwrap();
        assert!(collect_figures(&dir).unwrap_err().contains("malformed"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn report_has_a_table_per_group_with_ratios() {
        let ms = vec![
            m("demo/wake", "naive", 4000.0, "ns", "lower"),
            m("demo/wake", "prodkit", 250.0, "ns", "lower"),
            m("demo/wake", "rayon", 500.0, "ns", "lower"),
            m("other/only-peers", "moka", 10.0, "ns", "lower"),
        ];
        let report = render_report(
            &ms,
            &["x: a note".into()],
            &Machine::default(),
            "cargo xtask bench",
            false,
        );
        let table: Vec<&str> = report
            .lines()
            .skip_while(|l| *l != "## demo/wake")
            .skip(4)
            .take(3)
            .collect();
        assert_eq!(
            table,
            vec![
                "| prodkit | 250.0 | ns | lower |  |",
                "| rayon | 500.0 | ns | lower | 2.00x |",
                "| naive | 4000 | ns | lower | 16.00x |",
            ]
        );
        assert!(report.contains("## other/only-peers"));
        assert!(
            report.contains("| moka | 10.0 | ns | lower |  |"),
            "no ratio without a prodkit row"
        );
        assert!(report.contains("- x: a note"));

        let variants = vec![
            m("db/rows", "raw", 500.0, "rows/s", "higher"),
            m("db/rows", "prodkit_insert", 400.0, "rows/s", "higher"),
            m("db/rows", "prodkit_copy", 200.0, "rows/s", "higher"),
        ];
        let report = render_report(&variants, &[], &Machine::default(), "x", false);
        let table: Vec<&str> = report
            .lines()
            .skip_while(|l| *l != "## db/rows")
            .skip(2)
            .take(5)
            .collect();
        assert_eq!(
            table,
            vec![
                "| impl | value | unit | better | ratio of prodkit_copy | ratio of prodkit_insert |",
                "|---|---:|---|---|---:|---:|",
                "| prodkit_insert | 400.0 | rows/s | higher | 0.50x |  |",
                "| prodkit_copy | 200.0 | rows/s | higher |  | 2.00x |",
                "| raw | 500.0 | rows/s | higher | 0.40x | 0.80x |",
            ]
        );
        let empty = render_report(&[], &[], &Machine::default(), "cargo xtask bench", true);
        assert!(empty.contains("No benchmark group exists yet."));
    }

    #[test]
    fn targets_are_selected_by_crate_prefix() {
        let all: Vec<String> = ["pool", "pool_latency", "poolside", "ratelimit"]
            .map(String::from)
            .to_vec();
        assert_eq!(select(&all, &["pool".into()]), vec!["pool", "pool_latency"]);
        assert_eq!(select(&all, &[]), all);
        assert!(select(&all, &["cache".into()]).is_empty());
    }

    #[test]
    fn progress_counts_each_benchmark_once() {
        let ids = parse_list("demo/wake/prodkit: benchmark\nnoise\ndemo/wake/naive: benchmark\n");
        assert_eq!(ids, vec!["demo/wake/prodkit", "demo/wake/naive"]);
        let mut p = Progress {
            total: ids.len(),
            seen: HashSet::new(),
        };
        assert_eq!(
            p.on_line("Benchmarking demo/wake/prodkit").as_deref(),
            Some("[1/2] demo/wake/prodkit")
        );
        assert_eq!(
            p.on_line("Benchmarking demo/wake/prodkit: Warming up for 3.0000 s")
                .as_deref(),
            Some("")
        );
        assert_eq!(
            p.on_line("Benchmarking demo/wake/naive: Analyzing")
                .as_deref(),
            Some("[2/2] demo/wake/naive")
        );
        assert_eq!(p.on_line("Gnuplot not found"), None);
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_795_484_100), "2026-11-24 01:35 UTC");
    }
}
