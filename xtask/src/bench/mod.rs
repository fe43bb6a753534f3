//! `cargo xtask bench [CRATE ...] [--quick] [--compare PATH]` runs the
//! comparison benchmarks of `benches/` and writes `target/bench-report/`:
//! `summary.json` (the run's metadata and results), `report.md` with a chart
//! per group in `charts/`, and `report.html`, one self-contained page. The
//! previous run's summary is kept in `previous/` and compared with.
//! `cargo xtask bench --readme CRATE` prints the table a crate's README quotes,
//! from the last report.
//!
//! Bench targets are named after the crate they measure: `pool` and `pool_*`
//! belong to `prodkit-pool`. Criterion targets leave their medians in
//! `<target>/criterion/**/new/estimates.json`; other figure programs write
//! `<report>/figures/<program>.json` (see `prodkit_benches::Figures`).

mod chart;
mod data;
mod html;
mod meta;
mod report;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::Result;
use data::Summary;

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

/// What the command line asks for.
#[derive(Debug, Default, PartialEq)]
struct Args {
    crates: Vec<String>,
    quick: bool,
    compare: Option<PathBuf>,
    readme: Option<String>,
    /// Write the report again from the last run's files, running nothing.
    rerender: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => out.quick = true,
            "--rerender" => out.rerender = true,
            "--compare" => {
                let path = it
                    .next()
                    .filter(|p| !p.starts_with("--"))
                    .ok_or("bench: --compare needs a path")?;
                out.compare = Some(PathBuf::from(path));
            }
            "--readme" => {
                let name = it
                    .next()
                    .filter(|n| !n.starts_with('-'))
                    .ok_or("bench: --readme needs a crate")?;
                out.readme = Some(name.strip_prefix("prodkit-").unwrap_or(name).to_string());
            }
            flag if flag.starts_with('-') => {
                return Err(format!("bench: unknown flag {flag}\n{}", crate::USAGE));
            }
            name => out
                .crates
                .push(name.strip_prefix("prodkit-").unwrap_or(name).to_string()),
        }
    }
    Ok(out)
}

pub(crate) fn run(args: &[String]) -> Result {
    let parsed = parse_args(args)?;
    let root = crate::root();
    let meta = crate::metadata(&root, &["--no-deps"])?;
    let target_dir = PathBuf::from(
        meta["target_directory"]
            .as_str()
            .ok_or("cargo metadata: no target_directory")?,
    );
    let report_dir = target_dir.join("bench-report");
    if let Some(krate) = &parsed.readme {
        let summary = Summary::read(&report_dir).map_err(|e| {
            format!(
                "bench --readme: no report to quote ({e}); run `cargo xtask bench {krate}` first"
            )
        })?;
        let prefix = format!("{krate}/");
        if !summary.results.iter().any(|m| m.group.starts_with(&prefix)) {
            let mut have: Vec<&str> = summary
                .results
                .iter()
                .filter_map(|m| m.group.split('/').next())
                .collect();
            have.dedup();
            return Err(format!(
                "bench --readme: the last report has no group of {krate} (it has: {}); run \
                 `cargo xtask bench {krate}` first",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ));
        }
        print!("{}", report::readme_table(&summary, krate));
        return Ok(());
    }
    if parsed.rerender {
        let summary = Summary::read(&report_dir).map_err(|e| {
            format!(
                "bench --rerender: no report to render again ({e}); run `cargo xtask bench` first"
            )
        })?;
        let (_, notes) = data::collect_figures(&report_dir.join("figures"))?;
        let previous = Summary::read(&report_dir.join("previous"))
            .ok()
            .map(|mut s| {
                s.meta["source"] = serde_json::json!("the previous run");
                s
            });
        let written = write_report(&report_dir, &summary, &notes, previous.as_ref(), false)?;
        println!("bench: wrote {}", written.join(", "));
        return Ok(());
    }
    let criterion_dir = target_dir.join("criterion");
    let all = bench_targets(&meta);
    let selected = select(&all, &parsed.crates);
    // An explicit comparison is read before this run can overwrite it.
    let compare_with = parsed.compare.as_deref().map(Summary::read).transpose()?;

    if selected.is_empty() {
        // Nothing to run: an error, and the last report stays as it is.
        return Err(format!(
            "bench: no bench target for {} (bench targets: {}); the last report is left as it was",
            if parsed.crates.is_empty() {
                "this workspace".to_string()
            } else {
                parsed.crates.join(", ")
            },
            if all.is_empty() {
                "none".to_string()
            } else {
                all.join(", ")
            }
        ));
    }

    // Stale figures of an earlier run must not leak into this report.
    let figures_dir = report_dir.join("figures");
    let _ = std::fs::remove_dir_all(&figures_dir);
    std::fs::create_dir_all(&figures_dir).map_err(|e| format!("{}: {e}", figures_dir.display()))?;

    // The command as a README quotes it: the crates and --quick, not the
    // comparison file.
    let command = format!(
        "cargo xtask bench{}{}",
        parsed
            .crates
            .iter()
            .map(|c| format!(" {c}"))
            .collect::<String>(),
        if parsed.quick { " --quick" } else { "" }
    );
    let started = SystemTime::now();
    let mut failures = Vec::new();
    let uses_postgres = selected
        .iter()
        .any(|t| t == "batch" || t.starts_with("batch_"));
    build(&selected)?;
    let ids = list(&selected, parsed.quick)?;
    // The load of the machine itself, not of the build.
    let load_before = meta::load_average();
    {
        println!(
            "bench: {} benchmark(s) in {} target(s): {}",
            ids.len(),
            selected.len(),
            selected.join(", ")
        );
        let mut progress = Progress::new(ids.len());
        for target in &selected {
            if let Err(e) = run_target(
                target,
                parsed.quick,
                &report_dir,
                &criterion_dir,
                &mut progress,
            ) {
                println!("bench: {e}");
                failures.push(e);
            }
        }
    }

    let since = started
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(started);
    let mut results = data::collect_criterion(&criterion_dir, Some(since))?;
    let (figures, notes) = data::collect_figures(&figures_dir)?;
    results.extend(figures);
    let mut run_meta =
        meta::Meta::detect(&root, &command, parsed.quick, load_before, uses_postgres);
    run_meta.load_after = meta::load_average();
    let summary = Summary {
        meta: run_meta.to_json(),
        results,
    };
    // The run compared with, and where it came from (for the report).
    let previous = match (compare_with, &parsed.compare) {
        (Some(s), Some(path)) => Some((s, path.display().to_string())),
        _ => Summary::read(&report_dir.join("summary.json"))
            .ok()
            .map(|s| (s, "the previous run".to_string())),
    }
    .map(|(mut s, source)| {
        s.meta["source"] = serde_json::json!(source);
        s
    });
    let written = write_report(&report_dir, &summary, &notes, previous.as_ref(), true)?;
    println!();
    println!(
        "{}",
        report::summary_table(&report::groups(&summary.results))
    );
    println!("bench: wrote {}", written.join(", "));
    match failures.as_slice() {
        [] => Ok(()),
        _ => Err(format!(
            "{} bench target(s) failed: {}",
            failures.len(),
            failures.join("; ")
        )),
    }
}

/// Writes `summary.json`, `report.md`, `report.html` and `charts/*.svg`
/// under `dir`; a new run first keeps the summary found there in
/// `previous/`. Returns the paths written.
fn write_report(
    dir: &Path,
    summary: &Summary,
    notes: &[String],
    previous: Option<&Summary>,
    new_run: bool,
) -> Result<Vec<String>> {
    let io = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    let charts_dir = dir.join("charts");
    let _ = std::fs::remove_dir_all(&charts_dir);
    std::fs::create_dir_all(&charts_dir).map_err(|e| io(&charts_dir, e))?;
    let old = dir.join("summary.json");
    if new_run && old.exists() {
        let keep = dir.join("previous");
        std::fs::create_dir_all(&keep).map_err(|e| io(&keep, e))?;
        std::fs::copy(&old, keep.join("summary.json")).map_err(|e| io(&old, e))?;
    }
    let mut charts = BTreeMap::new();
    for group in report::groups(&summary.results) {
        let file = report::chart_file(group.name);
        let svg = chart::svg(&group).map_err(|e| format!("chart of {}: {e}", group.name))?;
        let path = charts_dir.join(&file);
        std::fs::write(&path, &svg).map_err(|e| io(&path, e))?;
        charts.insert(file, svg);
    }
    let markdown = report::markdown(summary, notes, previous);
    let text = serde_json::to_string_pretty(&summary.to_json()).map_err(|e| e.to_string())?;
    let html = html::page(&markdown, &charts);
    let mut written = Vec::new();
    for (name, body) in [
        ("summary.json", text.as_str()),
        ("report.md", markdown.as_str()),
        ("report.html", html.as_str()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|e| io(&path, e))?;
        written.push(path.display().to_string());
    }
    written.push(format!(
        "{} chart(s) in {}",
        charts.len(),
        charts_dir.display()
    ));
    Ok(written)
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
/// `quick` is passed on as a run would: a figure program lists the figures it
/// will measure, fewer under `--quick`.
fn list(targets: &[String], quick: bool) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for t in targets {
        let mut cmd = bench_cmd(std::slice::from_ref(t));
        cmd.env("PRODKIT_BENCH_QUICK", if quick { "1" } else { "0" });
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

/// Which benchmarks have started, to show "[k/N] id" once per id, with the
/// time so far and an estimate of what remains.
struct Progress {
    total: usize,
    seen: HashSet<String>,
    started: Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            seen: HashSet::new(),
            started: Instant::now(),
        }
    }

    /// Criterion (and `Figures::start`) announce each step on stderr as
    /// `Benchmarking <id>` or `Benchmarking <id>: <phase>`. Returns the progress line
    /// for a new id, `Some("")` for a repeat to hide, `None` for other output.
    fn on_line(&mut self, line: &str) -> Option<String> {
        self.on_line_at(line, self.started.elapsed())
    }

    fn on_line_at(&mut self, line: &str, elapsed: Duration) -> Option<String> {
        let rest = line.strip_prefix("Benchmarking ")?;
        let id = match rest.rfind(": ") {
            Some(i) => &rest[..i],
            None => rest,
        };
        if !self.seen.insert(id.to_string()) {
            return Some(String::new());
        }
        let done = self.seen.len() - 1;
        let total = self.total.max(self.seen.len());
        // What the finished benchmarks took on average, for the ones left.
        let left = match done {
            0 => "estimating".to_string(),
            _ => format!(
                "~{} left",
                clock(elapsed.mul_f64((total - done) as f64 / done as f64))
            ),
        };
        Some(format!(
            "[{}/{total} {} elapsed, {left}] {id}",
            self.seen.len(),
            clock(elapsed)
        ))
    }
}

/// `m:ss`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
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
