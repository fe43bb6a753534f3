//! The measurements of a run: read from criterion's output and the figure
//! programs' files, written to and read back from `summary.json`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::Result;

/// One result of `summary.json`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measurement {
    pub(crate) group: String,
    pub(crate) implementation: String,
    pub(crate) value: f64,
    pub(crate) unit: String,
    /// "lower" or "higher".
    pub(crate) better: String,
    /// The spread: criterion's confidence interval of the median, or the min
    /// and max of a figure program's repetitions.
    pub(crate) low: Option<f64>,
    pub(crate) high: Option<f64>,
    /// Criterion's samples, or a figure program's repetitions, when known.
    pub(crate) samples: Option<u64>,
}

impl Measurement {
    pub(crate) fn to_json(&self) -> Value {
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
        if let Some(samples) = self.samples {
            v["samples"] = json!(samples);
        }
        v
    }

    pub(crate) fn from_json(v: &Value) -> Option<Measurement> {
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
            samples: v["samples"].as_u64(),
        })
    }

    pub(crate) fn lower_is_better(&self) -> bool {
        self.better == "lower"
    }

    /// Whether the figure has a spread of some width (one repetition has
    /// none).
    pub(crate) fn has_spread(&self) -> bool {
        matches!((self.low, self.high), (Some(lo), Some(hi)) if hi > lo)
    }

    /// The spread, or the value alone when there is none.
    pub(crate) fn range(&self) -> (f64, f64) {
        (
            self.low.unwrap_or(self.value),
            self.high.unwrap_or(self.value),
        )
    }
}

/// `summary.json`: the run's metadata and its results.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    pub(crate) meta: Value,
    pub(crate) results: Vec<Measurement>,
}

impl Summary {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "meta": self.meta,
            "results": self.results.iter().map(Measurement::to_json).collect::<Vec<_>>(),
        })
    }

    /// A `summary.json`, also of the earlier format (a bare array of results,
    /// without metadata).
    pub(crate) fn from_json(v: &Value) -> Result<Summary> {
        let (meta, results) = match v {
            Value::Array(results) => (Value::Null, results),
            Value::Object(_) => (
                v["meta"].clone(),
                v["results"]
                    .as_array()
                    .ok_or("summary.json: no \"results\" array")?,
            ),
            _ => return Err("summary.json: neither an object nor an array".into()),
        };
        let results = results
            .iter()
            .map(|m| Measurement::from_json(m).ok_or(format!("summary.json: malformed result {m}")))
            .collect::<Result<_>>()?;
        Ok(Summary { meta, results })
    }

    /// Reads `path`, or `path/summary.json` when `path` is a folder.
    pub(crate) fn read(path: &Path) -> Result<Summary> {
        let file = if path.is_dir() {
            path.join("summary.json")
        } else {
            path.to_path_buf()
        };
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        Summary::from_json(&v).map_err(|e| format!("{}: {e}", file.display()))
    }
}

/// Criterion's medians under `dir`: every `new/estimates.json` beside a
/// `new/benchmark.json`, written at or after `since` when given.
pub(crate) fn collect_criterion(dir: &Path, since: Option<SystemTime>) -> Result<Vec<Measurement>> {
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
    // A group that times a batch of elements per iteration reports per element.
    let per = benchmark["throughput"]["Elements"]
        .as_u64()
        .filter(|&n| n > 1)
        .map_or(1.0, |n| n as f64);
    let unit = if per > 1.0 { "ns/op" } else { "ns" };
    let samples = std::fs::read_to_string(new_dir.join("sample.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|s| s["iters"].as_array().map(|a| a.len() as u64));
    let interval = &estimates["median"]["confidence_interval"];
    Ok(Some(Measurement {
        group,
        implementation,
        value: median / per,
        unit: unit.into(),
        better: "lower".into(),
        low: interval["lower_bound"].as_f64().map(|v| v / per),
        high: interval["upper_bound"].as_f64().map(|v| v / per),
        samples,
    }))
}

/// The measurements and notes of every `figures/*.json`; an invalid
/// measurement is left out with a note.
pub(crate) fn collect_figures(dir: &Path) -> Result<(Vec<Measurement>, Vec<String>)> {
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
            // One bad figure (NaN is written as null) must not cost the run's
            // other results: it is left out, and the report says so.
            match Measurement::from_json(m) {
                Some(m) if m.value.is_finite() => measurements.push(m),
                _ => notes.push(format!(
                    "left out an invalid figure of {}: {m}",
                    path.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                )),
            }
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
