//! Support shared by prodkit's benchmark programs.
//!
//! Criterion measures times; [`Figures`] records the other figures (hit ratio,
//! rows/s, bytes per key, ...) in the shape of `target/bench-report/summary.json`, for
//! `cargo xtask bench` to merge into its report.
#![deny(unsafe_code)]

#[allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; each call forwards to System"
)]
pub mod alloc;
pub mod json_types;
pub mod naive;
pub mod pages;
pub mod rounds;
pub mod zipf;

use std::io;
use std::path::PathBuf;

/// Which direction of a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Times, bytes, allocations.
    Lower,
    /// Hit ratios, throughputs.
    Higher,
}

impl Better {
    fn as_str(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
        }
    }
}

/// Non-time figures of one benchmark program, written as
/// `<report dir>/figures/<program>.json`.
#[derive(Debug)]
pub struct Figures {
    program: String,
    measurements: Vec<serde_json::Value>,
    notes: Vec<String>,
    samples: Option<u64>,
}

impl Figures {
    /// Figures of the benchmark program `program` (its bench target name).
    pub fn new(program: &str) -> Figures {
        Figures {
            program: program.to_string(),
            measurements: Vec::new(),
            notes: Vec::new(),
            samples: None,
        }
    }

    /// Announces a measurement on stderr, in criterion's words, so that
    /// `cargo xtask bench` can show progress.
    pub fn start(&self, group: &str, implementation: &str) {
        eprintln!("Benchmarking {group}/{implementation}");
    }

    /// How many repetitions (or samples) the figures recorded from now on
    /// rest on; `summary.json` carries it as `samples`.
    pub fn samples(&mut self, n: u64) {
        self.samples = Some(n);
    }

    /// Records one figure.
    pub fn record(
        &mut self,
        group: &str,
        implementation: &str,
        value: f64,
        unit: &str,
        better: Better,
    ) {
        self.measurements.push(serde_json::json!({
            "group": group,
            "impl": implementation,
            "value": value,
            "unit": unit,
            "better": better.as_str(),
            "samples": self.samples,
        }));
    }

    /// Records one figure with its spread (the min and max of the repetitions
    /// it is the median of).
    #[allow(
        clippy::too_many_arguments,
        reason = "one figure's fields, in the report's order"
    )]
    pub fn record_spread(
        &mut self,
        group: &str,
        implementation: &str,
        value: f64,
        low: f64,
        high: f64,
        unit: &str,
        better: Better,
    ) {
        self.measurements.push(serde_json::json!({
            "group": group,
            "impl": implementation,
            "value": value,
            "low": low,
            "high": high,
            "unit": unit,
            "better": better.as_str(),
            "samples": self.samples,
        }));
    }

    /// Adds a sentence to the report, for example that a corpus was absent and
    /// generated data was used instead.
    pub fn note(&mut self, text: &str) {
        self.notes.push(format!("{}: {text}", self.program));
    }

    /// Writes the figures where `cargo xtask bench` collects them.
    ///
    /// # Errors
    /// When the report folder cannot be written.
    pub fn write(&self) -> io::Result<PathBuf> {
        let dir = report_dir().join("figures");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.program));
        let doc = serde_json::json!({ "measurements": self.measurements, "notes": self.notes });
        std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
        Ok(path)
    }
}

/// `PRODKIT_BENCH_REPORT_DIR` (set by `cargo xtask bench`), else
/// `target/bench-report` of this workspace.
pub fn report_dir() -> PathBuf {
    match std::env::var_os("PRODKIT_BENCH_REPORT_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-report"),
    }
}

/// The shared data folder (DESIGN.md's data rule): `$PRODKIT_DATA`, else
/// `../shared/data` beside the workspace.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("PRODKIT_DATA") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")),
    }
}

/// Whether `cargo xtask bench --quick` asked for short runs.
pub fn quick() -> bool {
    std::env::var("PRODKIT_BENCH_QUICK").is_ok_and(|v| v == "1")
}
