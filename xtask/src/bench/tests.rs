//! Fixture tests of the bench report: collection, the summary's shape, units,
//! the summary table, the charts and the page, the comparison with an
//! earlier run, the README table, the progress line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::data::{self, Measurement, Summary};
use super::meta::{Meta, utc_date};
use super::report::{self, Verdict, human, ratio};
use super::{Args, Progress, parse_args, parse_list, select, write_report};

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
        samples: None,
    }
}

fn spread(mut m: Measurement, low: f64, high: f64) -> Measurement {
    m.low = Some(low);
    m.high = Some(high);
    m
}

/// A folder of its own under the system's temporary folder, emptied.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prodkit-xtask-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn meta() -> Meta {
    Meta {
        machine: "box".into(),
        cpu: "AMD EPYC".into(),
        cores: 2,
        memory: "23.5 GiB".into(),
        kernel: "6.1".into(),
        rustc: "rustc 1.95.0 (abc 2026-04-14)".into(),
        commit: "0123456789ab".into(),
        dirty: false,
        date: "2026-12-02 20:00 UTC".into(),
        quick: true,
        command: "cargo xtask bench --quick".into(),
        postgres: "postgres (PostgreSQL) 15.8".into(),
        load_before: Some(0.5),
        load_after: Some(1.25),
    }
}

/// A run with a win, a tie, a loss, a floor, a percentile pair and a
/// variant of ours.
fn run() -> Vec<Measurement> {
    vec![
        spread(
            m("demo/wake", "prodkit", 250.0, "ns", "lower"),
            240.0,
            260.0,
        ),
        spread(m("demo/wake", "rayon", 500.0, "ns", "lower"), 480.0, 520.0),
        spread(
            m("demo/wake", "naive", 4000.0, "ns", "lower"),
            3900.0,
            4100.0,
        ),
        spread(m("demo/wake", "floor", 125.0, "ns", "lower"), 120.0, 130.0),
        spread(m("demo/tie", "prodkit", 100.0, "ns", "lower"), 90.0, 110.0),
        spread(m("demo/tie", "governor", 105.0, "ns", "lower"), 95.0, 115.0),
        spread(
            m("demo/lost", "prodkit", 2_168_934.0, "us", "lower"),
            2.0e6,
            2.2e6,
        ),
        spread(
            m("demo/lost", "peer", 1_000_000.0, "us", "lower"),
            0.9e6,
            1.1e6,
        ),
        m("demo/rows", "prodkit", 1_000_000.0, "rows/s", "higher"),
        m("demo/rows", "prodkit_insert", 400_000.0, "rows/s", "higher"),
        m("demo/rows", "naive", 10_000.0, "rows/s", "higher"),
        m("demo/latency/p50", "prodkit", 900.0, "ns", "lower"),
        m("demo/latency/p50", "rayon", 1800.0, "ns", "lower"),
        m("demo/latency/p99", "prodkit", 9000.0, "ns", "lower"),
        m("demo/latency/p99", "rayon", 4500.0, "ns", "lower"),
    ]
}

#[test]
fn criterion_medians_are_collected_from_new_only() {
    let got = data::collect_criterion(&fixtures(), None).unwrap();
    assert!(
        got.iter()
            .all(|m| m.low.is_some_and(|l| l <= m.value) && m.high.is_some_and(|h| h >= m.value)),
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
fn a_group_that_times_a_batch_reports_per_operation_with_its_samples() {
    let dir = scratch("throughput");
    let new = dir.join("demo_batch/prodkit/new");
    std::fs::create_dir_all(&new).unwrap();
    let benchmark = json!({"group_id": "demo/batch", "function_id": "prodkit",
        "value_str": null, "throughput": {"Elements": 1000}});
    let estimates = json!({"median": {"point_estimate": 309_510.0,
        "confidence_interval": {"lower_bound": 300_000.0, "upper_bound": 320_000.0}}});
    let sample = json!({"iters": [1.0, 2.0, 3.0], "times": [1.0, 2.0, 3.0]});
    std::fs::write(new.join("benchmark.json"), benchmark.to_string()).unwrap();
    std::fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
    std::fs::write(new.join("sample.json"), sample.to_string()).unwrap();
    let got = data::collect_criterion(&dir, None).unwrap();
    assert_eq!(got.len(), 1);
    let got = &got[0];
    assert_eq!((got.value, got.unit.as_str()), (309.51, "ns/op"));
    assert_eq!(
        (got.low, got.high, got.samples),
        (Some(300.0), Some(320.0), Some(3))
    );
    assert_eq!(human(got.value, &got.unit), "310 ns/op");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn results_older_than_the_run_are_left_out() {
    let future = SystemTime::now() + Duration::from_secs(3600);
    assert!(
        data::collect_criterion(&fixtures(), Some(future))
            .unwrap()
            .is_empty()
    );
    assert!(
        data::collect_criterion(&fixtures().join("missing"), None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn figures_are_merged_and_invalid_ones_left_out_with_a_note() {
    let dir = scratch("figures");
    let doc = json!({
        "measurements": [m("cache/hit-ratio", "prodkit", 0.42, "ratio", "higher").to_json()],
        "notes": ["cache: generated trace"],
    });
    std::fs::write(dir.join("cache.json"), doc.to_string()).unwrap();
    let (got, notes) = data::collect_figures(&dir).unwrap();
    assert_eq!(
        got,
        vec![m("cache/hit-ratio", "prodkit", 0.42, "ratio", "higher")]
    );
    assert_eq!(notes, vec!["cache: generated trace".to_string()]);
    std::fs::write(
        dir.join("bad.json"),
        r#"{"measurements":[{"group":"g","impl":"x","value":1,"unit":"ns","better":"up"},
            {"group":"g","impl":"nan","value":null,"unit":"ns","better":"lower"},
            {"group":"g","impl":"ok","value":2,"unit":"ns","better":"lower"}]}"#,
    )
    .unwrap();
    // The bad ones are left out with a note each; the rest of the run stays.
    let (got, notes) = data::collect_figures(&dir).unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().any(|m| m.implementation == "ok"));
    let left_out = notes
        .iter()
        .filter(|n| n.contains("left out an invalid figure of bad.json"))
        .count();
    assert_eq!(left_out, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ratios_say_how_many_times_better_ours_is_and_spreads_decide_ties() {
    let p = m("g", "prodkit", 100.0, "ns", "lower");
    assert_eq!(ratio(&p, &m("g", "peer", 250.0, "ns", "lower")), Some(2.5));
    assert_eq!(ratio(&p, &m("g", "peer", 50.0, "ns", "lower")), Some(0.5));
    let h = m("g", "prodkit", 0.9, "ratio", "higher");
    assert_eq!(
        ratio(&h, &m("g", "peer", 0.6, "ratio", "higher")),
        Some(0.9 / 0.6)
    );
    assert_eq!(
        ratio(&h, &m("g", "peer", 0.0, "ratio", "higher")),
        None,
        "division by zero"
    );
    assert_eq!(
        ratio(&h, &m("g", "peer", 0.6, "ns", "higher")),
        None,
        "different units"
    );
    let ours = spread(p.clone(), 90.0, 110.0);
    assert_eq!(
        Verdict::of(
            &ours,
            &spread(m("g", "a", 105.0, "ns", "lower"), 100.0, 120.0)
        ),
        Some(Verdict::Tie)
    );
    assert_eq!(
        Verdict::of(
            &ours,
            &spread(m("g", "a", 150.0, "ns", "lower"), 140.0, 160.0)
        ),
        Some(Verdict::Win)
    );
    assert_eq!(
        Verdict::of(&ours, &m("g", "a", 50.0, "ns", "lower")),
        Some(Verdict::Loss)
    );
}

#[test]
fn figures_are_shown_in_units_people_read() {
    assert_eq!(human(2_168_934.0, "us"), "2.17 s");
    assert_eq!(human(309_510_145.0, "ns"), "310 ms");
    assert_eq!(human(7.698, "ns"), "7.70 ns");
    assert_eq!(human(1500.0, "ns"), "1.50 µs");
    assert_eq!(human(1_000_049.0, "admits/s"), "1.00 M admits/s");
    assert_eq!(human(10_547.0, "rows/s"), "10.5 k rows/s");
    assert_eq!(human(69.5, "%"), "69.5 %");
    assert_eq!(human(22.6, "B/key"), "22.6 B/key");
}

#[test]
fn the_summary_flags_wins_ties_and_losses_at_the_top() {
    let summary = Summary {
        meta: meta().to_json(),
        results: run(),
    };
    let md = report::markdown(&summary, &["x: a note".into()], None);
    let first_group = md.find("\n## demo/").unwrap();
    let top = &md[..first_group];
    assert!(top.contains("(**quick**: short measurements, rough figures)"));
    assert!(top.contains("AMD EPYC, 2 cores, 23.5 GiB, rustc 1.95.0"));
    assert!(
        top.contains(
            "| demo/wake | prodkit 250 ns | rayon 500 ns | 2.00× win | 16.00× win | 50 % |"
        )
    );
    assert!(top.contains("| demo/tie | prodkit 100 ns | governor 105 ns | 1.05× tie |  |  |"));
    assert!(top.contains("| demo/lost | prodkit 2.17 s | peer 1.00 s | 0.46× **LOSS** |  |  |"));
    assert!(
        top.contains(
            "| demo/rows | prodkit 1.00 M rows/s | none |  | 100.00× win (no spread) |  |"
        )
    );
    assert!(top.contains(
        "Against the best peer: 2 win(s), 1 tie(s), 2 loss(es): demo/latency/p99, demo/lost. \
         2 of these rest on figures without a spread"
    ));
    assert!(top.contains("| PostgreSQL | postgres (PostgreSQL) 15.8 |"));
    assert!(top.contains("| load average (1 min) | 0.50 before, 1.25 after |"));
    assert!(md.contains("- x: a note"));
}

#[test]
fn group_tables_compare_ours_with_the_others_not_with_each_other() {
    let summary = Summary {
        meta: meta().to_json(),
        results: run(),
    };
    let md = report::markdown(&summary, &[], None);
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| *l != "## demo/rows")
        .skip(2)
        .take(6)
        .collect();
    assert_eq!(
        table,
        vec![
            "![demo/rows](charts/demo_rows.svg)",
            "",
            "| impl | value | spread | samples | ratio | of floor |",
            "|---|---:|---:|---:|---:|---:|",
            "| **prodkit** (defaults) | 1.00 M rows/s |  |  |  |  |",
            "| **prodkit_insert** | 400 k rows/s |  |  |  |  |",
        ]
    );
    let wake: Vec<&str> = md.lines().skip_while(|l| *l != "## demo/wake").collect();
    assert!(wake.contains(&"| **prodkit** (defaults) | 250 ns | 240 ns – 260 ns |  |  | 50 % |"));
    // Another setting of ours is compared with the best peer, not with our defaults.
    let mut with_variant = run();
    with_variant.push(spread(
        m("demo/wake", "prodkit_spin", 200.0, "ns", "lower"),
        190.0,
        210.0,
    ));
    let md2 = report::markdown(
        &Summary {
            meta: meta().to_json(),
            results: with_variant,
        },
        &[],
        None,
    );
    assert!(md2.contains(
        "| **prodkit_spin** | 200 ns | 190 ns – 210 ns |  | 2.50× win vs rayon | 62 % |"
    ));
    assert!(
        md2.contains("| rayon | 500 ns | 480 ns – 520 ns |  | 2.00× win |  |"),
        "our defaults against the peer"
    );
    assert!(wake.contains(&"| rayon | 500 ns | 480 ns – 520 ns |  | 2.00× win |  |"));
    assert!(wake.contains(&"| floor | 125 ns | 120 ns – 130 ns |  |  |  |"));
}

#[test]
fn latency_percentiles_are_columns_of_one_table() {
    let summary = Summary {
        meta: meta().to_json(),
        results: run(),
    };
    let md = report::markdown(&summary, &[], None);
    assert!(
        !md.contains("## demo/latency/p50"),
        "one section for the family"
    );
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| *l != "## demo/latency")
        .skip(4)
        .take(4)
        .collect();
    assert_eq!(
        table,
        vec![
            "| impl | p50 | ratio | p99 | ratio |",
            "|---|---:|---:|---:|---:|",
            "| **prodkit** | 900 ns |  | 9.00 µs |  |",
            "| rayon | 1.80 µs | 2.00× win (no spread) | 4.50 µs | 0.50× **loss** (no spread) |",
        ]
    );
}

#[test]
fn a_change_beyond_both_spreads_is_flagged() {
    let before = Summary {
        meta: json!({"date": "2026-12-01 10:00 UTC", "cpu": "Intel Xeon", "commit": "abc",
            "quick": true, "source": "old/summary.json"}),
        results: vec![
            spread(
                m("demo/wake", "prodkit", 500.0, "ns", "lower"),
                480.0,
                520.0,
            ),
            spread(m("demo/wake", "rayon", 490.0, "ns", "lower"), 470.0, 510.0),
        ],
    };
    let summary = Summary {
        meta: meta().to_json(),
        results: run(),
    };
    let md = report::markdown(&summary, &[], Some(&before));
    assert!(md.contains(
        "| compared with | old/summary.json: a quick run of 2026-12-01 10:00 UTC (Intel Xeon, commit abc) |"
    ));
    let wake: Vec<&str> = md.lines().skip_while(|l| *l != "## demo/wake").collect();
    assert!(wake.contains(&"| impl | value | spread | samples | ratio | of floor | change |"));
    assert!(
        wake.contains(
            &"| **prodkit** (defaults) | 250 ns | 240 ns – 260 ns |  |  | 50 % | **-50.0 %** (better) |"
        ),
        "beyond both spreads: bold"
    );
    assert!(
        wake.contains(&"| rayon | 500 ns | 480 ns – 520 ns |  | 2.00× win |  | +2.0 % |"),
        "within the spreads: plain"
    );
    assert!(wake.contains(&"| naive | 4.00 µs | 3.90 µs – 4.10 µs |  | 16.00× win |  | new |"));
}

#[test]
fn the_report_is_written_with_a_chart_per_group_and_a_page_that_stands_alone() {
    let dir = scratch("report");
    std::fs::write(dir.join("summary.json"), "[]").unwrap();
    let summary = Summary {
        meta: meta().to_json(),
        results: run(),
    };
    let written = write_report(&dir, &summary, &[], None, true).unwrap();
    assert_eq!(written.len(), 4, "{written:?}");
    // summary.json is an object: the run's meta and its results.
    let back = Summary::read(&dir).unwrap();
    assert_eq!(back, summary);
    assert_eq!(back.meta["quick"], true);
    assert_eq!(back.meta["postgres"], "postgres (PostgreSQL) 15.8");
    // The earlier run's summary is kept for the next comparison.
    assert_eq!(
        std::fs::read_to_string(dir.join("previous/summary.json")).unwrap(),
        "[]"
    );
    // One chart per group, each an SVG with a bar per implementation, ours
    // highlighted, the floor a line.
    let charts: HashSet<String> = std::fs::read_dir(dir.join("charts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: HashSet<String> = [
        "demo_wake.svg",
        "demo_tie.svg",
        "demo_lost.svg",
        "demo_rows.svg",
        "demo_latency_p50.svg",
        "demo_latency_p99.svg",
    ]
    .map(String::from)
    .into();
    assert_eq!(charts, expected);
    let wake = std::fs::read_to_string(dir.join("charts/demo_wake.svg")).unwrap();
    assert!(wake.starts_with("<svg"));
    for name in ["prodkit", "rayon", "naive", "floor 125 ns", "250 ns"] {
        assert!(wake.contains(name), "{name} missing from the chart");
    }
    assert!(wake.contains("#1F6FD1"), "ours highlighted");
    // The floor: a dashed line (several segments) and its label, in its colour.
    assert!(
        wake.matches("#2CA02C").count() >= 3,
        "the floor's line and label"
    );
    // The page inlines every chart and references no other file.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 6);
    assert!(!html.contains("src=\""), "self-contained");
    assert!(html.contains("<table>"));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("![demo/wake](charts/demo_wake.svg)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_summary_of_the_earlier_format_is_still_read() {
    let legacy = json!([m("g", "prodkit", 1.0, "ns", "lower").to_json()]);
    let s = Summary::from_json(&legacy).unwrap();
    assert_eq!(s.results, vec![m("g", "prodkit", 1.0, "ns", "lower")]);
    assert!(s.meta.is_null());
    assert!(Summary::from_json(&json!({"meta": {}})).is_err());
}

#[test]
fn the_readme_table_names_the_machine_and_quotes_one_crate() {
    let mut results = run();
    results.push(m("other/x", "prodkit", 1.0, "ns", "lower"));
    let summary = Summary {
        meta: meta().to_json(),
        results,
    };
    let table = report::readme_table(&summary, "demo");
    assert!(table.starts_with(
        "Measured by `cargo xtask bench --quick` (quick) on AMD EPYC, 2 cores, 23.5 GiB, rustc 1.95.0, commit 0123456789ab, 2026-12-02 20:00 UTC:"
    ));
    assert!(
        table
            .contains("| wake | 250 ns | rayon 500 ns | 2.00× win | 4.00 µs | 16.00× win | 50 % |")
    );
    assert!(table.contains("| lost | 2.17 s | peer 1.00 s | 0.46× **LOSS** |"));
    assert!(!table.contains("other/x") && !table.contains("| x |"));
}

#[test]
fn arguments_are_parsed() {
    let args = |a: &[&str]| parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        args(&["prodkit-pool", "--quick", "--compare", "old.json"]).unwrap(),
        Args {
            crates: vec!["pool".into()],
            quick: true,
            compare: Some("old.json".into()),
            readme: None,
            rerender: false,
        }
    );
    assert_eq!(
        args(&["--readme", "ratelimit"]).unwrap().readme.as_deref(),
        Some("ratelimit")
    );
    assert!(args(&["--compare"]).is_err());
    assert!(args(&["--fast"]).is_err());
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
fn progress_counts_each_benchmark_once_with_the_time_left() {
    let ids = parse_list("demo/wake/prodkit: benchmark\nnoise\ndemo/wake/naive: benchmark\n");
    assert_eq!(ids, vec!["demo/wake/prodkit", "demo/wake/naive"]);
    let mut p = Progress::new(ids.len() + 1);
    assert_eq!(
        p.on_line_at("Benchmarking demo/wake/prodkit", Duration::ZERO)
            .as_deref(),
        Some("[1/3 0:00 elapsed, estimating] demo/wake/prodkit")
    );
    assert_eq!(
        p.on_line_at(
            "Benchmarking demo/wake/prodkit: Warming up",
            Duration::from_secs(5)
        )
        .as_deref(),
        Some("")
    );
    assert_eq!(
        p.on_line_at(
            "Benchmarking demo/wake/naive: Analyzing",
            Duration::from_secs(40)
        )
        .as_deref(),
        Some("[2/3 0:40 elapsed, ~1:20 left] demo/wake/naive")
    );
    assert_eq!(p.on_line("Gnuplot not found"), None);
}

#[test]
fn dates_are_civil_utc() {
    assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
    assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
    assert_eq!(utc_date(1_795_484_100), "2026-11-24 01:35 UTC");
}

#[test]
fn changes_without_spreads_from_zero_and_of_percentiles_are_shown() {
    let before = Summary {
        meta: json!({}),
        results: vec![
            m("demo/rows", "prodkit", 500_000.0, "rows/s", "higher"),
            m("demo/rows", "naive", 0.0, "rows/s", "higher"),
            m("demo/latency/p50", "prodkit", 1000.0, "ns", "lower"),
            m("demo/latency/p99", "prodkit", 9100.0, "ns", "lower"),
        ],
    };
    let summary = Summary {
        meta: meta().to_json(),
        results: run(),
    };
    let md = report::markdown(&summary, &[], Some(&before));
    let rows: Vec<&str> = md.lines().skip_while(|l| *l != "## demo/rows").collect();
    // Doubled with no spread on either side: 2 % or more counts; higher is better.
    assert!(rows.contains(
        &"| **prodkit** (defaults) | 1.00 M rows/s |  |  |  |  | **+100.0 %** (better) |"
    ));
    assert!(
        rows.contains(&"| naive | 10.0 k rows/s |  |  | 100.00× win (no spread) |  | from 0 |")
    );
    let latency: Vec<&str> = md.lines().skip_while(|l| *l != "## demo/latency").collect();
    assert!(latency.contains(&"| impl | p50 | ratio | change | p99 | ratio | change |"));
    assert!(
        latency
            .contains(&"| **prodkit** | 900 ns |  | **-10.0 %** (better) | 9.00 µs |  | -1.1 % |")
    );
}

#[test]
fn a_figure_beyond_the_floor_is_called_noise() {
    let results = vec![
        spread(m("demo/k", "prodkit", 45.5, "ns", "lower"), 40.0, 50.0),
        spread(m("demo/k", "floor", 62.7, "ns", "lower"), 26.5, 77.9),
    ];
    let g = &report::groups(&results)[0];
    assert!(report::summary_table(std::slice::from_ref(g)).contains("| 138 % (above: noise) |"));
}
