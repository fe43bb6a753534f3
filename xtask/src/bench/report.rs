//! The report's reading of the measurements: per group, ours against the best
//! peer, the seed's design and the floor; the markdown of `report.md`; the
//! table `--readme` prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::data::{Measurement, Summary};
use super::meta::Meta;

/// Whether `implementation` is one of ours: `prodkit`, or a variant of it
/// named `prodkit_<variant>` (`prodkit_insert`, `prodkit_detached`).
pub(crate) fn is_ours(implementation: &str) -> bool {
    implementation == "prodkit" || implementation.starts_with("prodkit_")
}

/// Whether `implementation` is a physical limit: `floor`, or `floor-<kind>`.
pub(crate) fn is_floor(implementation: &str) -> bool {
    implementation == "floor" || implementation.starts_with("floor-")
}

/// The seed's design, translated.
pub(crate) fn is_naive(implementation: &str) -> bool {
    implementation == "naive"
}

fn is_peer(implementation: &str) -> bool {
    !is_ours(implementation) && !is_floor(implementation) && !is_naive(implementation)
}

/// How many times better `ours` is than `other`: other/ours when lower is
/// better, ours/other when higher is. `None` when the two cannot be compared.
pub(crate) fn ratio(ours: &Measurement, other: &Measurement) -> Option<f64> {
    if ours.unit != other.unit || ours.better != other.better {
        return None;
    }
    let (num, den) = if ours.lower_is_better() {
        (other.value, ours.value)
    } else {
        (ours.value, other.value)
    };
    (den > 0.0 && num.is_finite() && den.is_finite()).then(|| num / den)
}

/// Ours against one other implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Win,
    /// The two spreads overlap (without spreads: within 2 %): the run cannot
    /// tell them apart.
    Tie,
    Loss,
    /// Apart by more than 2 %, but a figure without a spread (a single run,
    /// a percentile) cannot say whether that is more than noise.
    WinNoSpread,
    LossNoSpread,
}

impl Verdict {
    /// A tie when the spreads overlap; without a spread on either side,
    /// when the two are within 2 % of each other.
    pub(crate) fn of(ours: &Measurement, other: &Measurement) -> Option<Verdict> {
        let r = ratio(ours, other)?;
        let (lo, hi) = ours.range();
        let (olo, ohi) = other.range();
        // A spread of zero width (one repetition) is no spread.
        let no_spread = !(ours.has_spread() || other.has_spread());
        Some(if no_spread {
            if (r - 1.0).abs() < 0.02 {
                Verdict::Tie
            } else if r > 1.0 {
                Verdict::WinNoSpread
            } else {
                Verdict::LossNoSpread
            }
        } else if lo <= ohi && olo <= hi {
            Verdict::Tie
        } else if r > 1.0 {
            Verdict::Win
        } else {
            Verdict::Loss
        })
    }

    pub(crate) fn mark(self) -> &'static str {
        match self {
            Verdict::Win => "win",
            Verdict::Tie => "tie",
            Verdict::Loss => "**LOSS**",
            Verdict::WinNoSpread => "win (no spread)",
            Verdict::LossNoSpread => "**loss** (no spread)",
        }
    }
}

/// The ratio cell of `m`'s row: on another implementation's row, how many
/// times better our headline is than it; on a row of ours that is not the
/// headline, how many times better that setting is than the best peer.
fn ratio_cell(g: &Group<'_>, m: &Measurement) -> String {
    let compare = versus;
    if is_floor(&m.implementation) {
        return String::new();
    }
    if is_ours(&m.implementation) {
        let headline = g.ours.is_some_and(|o| std::ptr::eq(o, m));
        return match g.best_peer {
            Some(peer) if !headline => format!("{} vs {}", compare(m, peer), peer.implementation),
            _ => String::new(),
        };
    }
    g.ours.map_or(String::new(), |ours| compare(ours, m))
}

/// One group, read: its rows best first and the implementations that matter.
#[derive(Debug)]
pub(crate) struct Group<'a> {
    pub(crate) name: &'a str,
    pub(crate) rows: Vec<&'a Measurement>,
    /// `prodkit` (our defaults) when the group has it, else our best variant.
    pub(crate) ours: Option<&'a Measurement>,
    pub(crate) best_peer: Option<&'a Measurement>,
    pub(crate) naive: Option<&'a Measurement>,
    /// `floor` when the group has it, else its best `floor-*`.
    pub(crate) floor: Option<&'a Measurement>,
}

/// Best first: the lowest value when lower is better.
fn best_first(a: &Measurement, b: &Measurement) -> std::cmp::Ordering {
    let key = |m: &Measurement| {
        if m.lower_is_better() {
            m.value
        } else {
            -m.value
        }
    };
    key(a)
        .total_cmp(&key(b))
        .then(a.implementation.cmp(&b.implementation))
}

pub(crate) fn groups(measurements: &[Measurement]) -> Vec<Group<'_>> {
    let mut by: BTreeMap<&str, Vec<&Measurement>> = BTreeMap::new();
    for m in measurements {
        by.entry(&m.group).or_default().push(m);
    }
    by.into_iter()
        .map(|(name, mut rows)| {
            rows.sort_by(|a, b| best_first(a, b));
            let first = |f: fn(&str) -> bool| rows.iter().copied().find(|m| f(&m.implementation));
            let named = |n: &str| rows.iter().copied().find(|m| m.implementation == n);
            Group {
                name,
                ours: named("prodkit").or_else(|| first(is_ours)),
                best_peer: first(is_peer),
                naive: first(is_naive),
                floor: named("floor").or_else(|| first(is_floor)),
                rows,
            }
        })
        .collect()
}

/// "NN %" of the floor; above 100 % ours measured faster than the physical
/// limit, which only noise (or a wrong floor) can do, and the cell says so.
fn floor_cell(ours: &Measurement, floor: &Measurement) -> String {
    match percent_of_floor(ours, floor) {
        Some(p) if p > 100.5 => format!("{p:.0} % (above: noise)"),
        Some(p) => format!("{p:.0} %"),
        None => String::new(),
    }
}

/// How close ours is to the floor, in percent (100 % is at the floor).
pub(crate) fn percent_of_floor(ours: &Measurement, floor: &Measurement) -> Option<f64> {
    // Reaching the floor is ratio 1; a floor ten times faster is 10 %.
    ratio(ours, floor).map(|r| 100.0 * r)
}

/// A value in a unit people read: 2.17 s, 812.3 ns, 1.00 M rows/s.
pub(crate) fn human(value: f64, unit: &str) -> String {
    // Times: "ns" or "us", with an optional "/op"-like suffix.
    let time = unit
        .strip_prefix("ns")
        .map(|rest| (value, rest))
        .or_else(|| unit.strip_prefix("us").map(|rest| (value * 1e3, rest)));
    if let Some((ns, per)) = time {
        let a = ns.abs();
        return if a < 1e3 {
            format!("{} ns{per}", digits(ns))
        } else if a < 1e6 {
            format!("{} µs{per}", digits(ns / 1e3))
        } else if a < 1e9 {
            format!("{} ms{per}", digits(ns / 1e6))
        } else {
            format!("{} s{per}", digits(ns / 1e9))
        };
    }
    if let Some(what) = unit.strip_suffix("/s") {
        let a = value.abs();
        let (v, prefix) = if a >= 1e9 {
            (value / 1e9, "G")
        } else if a >= 1e6 {
            (value / 1e6, "M")
        } else if a >= 1e3 {
            (value / 1e3, "k")
        } else {
            (value, "")
        };
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix} ")
        };
        return format!("{} {prefix}{what}/s", digits(v));
    }
    match unit {
        "%" => format!("{} %", digits(value)),
        "ratio" => format!("{value:.3}"),
        _ => format!("{} {unit}", digits(value)),
    }
}

/// Three significant digits, no exponent: 812, 81.2, 8.12, 0.812.
fn digits(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn times(r: f64) -> String {
    format!("{r:.2}×")
}

/// "N× mark": how many times better `ours` is than `other`, and the verdict.
fn versus(ours: &Measurement, other: &Measurement) -> String {
    let verdict = Verdict::of(ours, other).map_or("", Verdict::mark);
    ratio(ours, other).map_or("n/a".into(), |r| format!("{} {verdict}", times(r)))
}

/// A file name for a group's chart: `ratelimit/direct-1-thread` ->
/// `ratelimit_direct-1-thread.svg`.
pub(crate) fn chart_file(group: &str) -> String {
    let safe: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.svg")
}

/// The percentile of a group named `<base>/p50`, `<base>/p99`, ...
fn percentile(group: &str) -> Option<(&str, &str)> {
    let (base, p) = group.rsplit_once('/')?;
    (p.len() >= 2 && p.starts_with('p') && p[1..].chars().all(|c| c.is_ascii_digit()))
        .then_some((base, p))
}

/// The change of one figure from an earlier run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Change {
    /// Percent, beyond both runs' spreads (2 % without spreads), better.
    Percent(f64, bool, bool),
    /// The earlier figure was 0.
    FromZero,
}

/// The change of each figure: (group, impl) -> change.
type Changes = BTreeMap<(String, String), Change>;

pub(crate) fn changes(now: &[Measurement], before: &[Measurement]) -> Changes {
    let mut out = Changes::new();
    for m in now {
        let Some(old) = before.iter().find(|o| {
            o.group == m.group && o.implementation == m.implementation && o.unit == m.unit
        }) else {
            continue;
        };
        let change = if old.value == 0.0 {
            if m.value == 0.0 {
                Change::Percent(0.0, false, true)
            } else {
                Change::FromZero
            }
        } else {
            let pct = 100.0 * (m.value - old.value) / old.value;
            let (lo, hi) = m.range();
            let (olo, ohi) = old.range();
            // Without spreads, a change of 2 % or more counts (as for verdicts).
            let beyond = if m.has_spread() && old.has_spread() {
                lo > ohi || hi < olo
            } else {
                pct.abs() >= 2.0
            };
            let better = (pct < 0.0) == m.lower_is_better();
            Change::Percent(pct, beyond, better)
        };
        out.insert((m.group.clone(), m.implementation.clone()), change);
    }
    out
}

fn change_cell(changes: Option<&Changes>, m: &Measurement) -> Option<String> {
    let changes = changes?;
    Some(
        match changes.get(&(m.group.clone(), m.implementation.clone())) {
            Some(Change::Percent(pct, true, better)) => format!(
                "**{pct:+.1} %** ({})",
                if *better { "better" } else { "worse" }
            ),
            Some(Change::Percent(pct, false, _)) => format!("{pct:+.1} %"),
            Some(Change::FromZero) => "from 0".into(),
            None => "new".into(),
        },
    )
}

/// `report.md`: the summary first, then the machine, then a chart and a
/// table per group.
pub(crate) fn markdown(summary: &Summary, notes: &[String], previous: Option<&Summary>) -> String {
    let meta = Meta::from_json(&summary.meta);
    let groups = groups(&summary.results);
    let changes = previous.map(|p| changes(&summary.results, &p.results));
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# prodkit benchmark report\n");
    let _ = writeln!(
        w,
        "`{}`{} on {}, commit {}{}, {}.\n",
        meta.command,
        if meta.quick {
            " (**quick**: short measurements, rough figures)"
        } else {
            ""
        },
        meta.machine_line(),
        meta.commit,
        if meta.dirty {
            " (with uncommitted changes)"
        } else {
            ""
        },
        meta.date
    );
    if groups.is_empty() {
        let _ = writeln!(w, "No benchmark group exists yet.");
        return out;
    }
    let _ = writeln!(w, "{}", summary_table(&groups));
    machine_table(w, &meta, previous);
    let _ = writeln!(
        w,
        "How to read: each figure is a median (of criterion's samples, or of a figure \
         program's repetitions); the spread is criterion's 95 % confidence interval, or the \
         min and max of the repetitions (a percentile or a single run has none). `N×` is how many times better ours is (above 1: ours wins): on \
         another implementation's row, our defaults against it; on the row of another \
         setting of ours, that setting against the best peer. A win \
         or loss needs the two spreads apart (without spreads: 2 %), else it is a tie. `prodkit` is ours with its \
         defaults, `prodkit_<variant>` another setting of ours, compared with the others, not \
         with each other; `naive` is the seed's design translated; `floor` is the physical \
         limit on this machine, and \"of floor\" how close ours comes to it (100 % = at the \
         floor).{}\n",
        if changes.is_some() {
            " \"change\" is against the earlier run, in bold (better or worse) when beyond both \
             runs' spreads, or by 2 % or more where there are none."
        } else {
            ""
        }
    );
    let mut done = std::collections::HashSet::new();
    for g in &groups {
        if let Some((base, _)) = percentile(g.name) {
            if done.insert(base.to_string()) {
                let family: Vec<&Group<'_>> = groups
                    .iter()
                    .filter(|o| percentile(o.name).is_some_and(|(b, _)| b == base))
                    .collect();
                percentile_section(w, base, &family, changes.as_ref());
            }
            continue;
        }
        group_section(w, g, changes.as_ref());
    }
    if !notes.is_empty() {
        let _ = writeln!(w, "## Notes\n");
        for n in notes {
            let _ = writeln!(w, "- {n}");
        }
    }
    out
}

/// One line per group: ours, the best peer, the seed's design, the floor.
pub(crate) fn summary_table(groups: &[Group<'_>]) -> String {
    let mut w = String::new();
    let (mut wins, mut ties, mut losses, mut unsure) = (0, 0, Vec::new(), 0);
    let _ = writeln!(w, "## Summary\n");
    let _ = writeln!(
        w,
        "| group | ours | best peer | ours vs best peer | vs naive | of floor |\n|---|---|---|---|---:|---:|"
    );
    for g in groups {
        let Some(ours) = g.ours else {
            continue;
        };
        let peer = match g.best_peer {
            Some(p) => {
                let verdict = Verdict::of(ours, p);
                match verdict {
                    Some(Verdict::Win) => wins += 1,
                    Some(Verdict::Tie) => ties += 1,
                    Some(Verdict::Loss) => losses.push(g.name),
                    Some(Verdict::WinNoSpread) => {
                        wins += 1;
                        unsure += 1;
                    }
                    Some(Verdict::LossNoSpread) => {
                        losses.push(g.name);
                        unsure += 1;
                    }
                    None => {}
                }
                format!(
                    "{} {} | {} {}",
                    p.implementation,
                    human(p.value, &p.unit),
                    ratio(ours, p).map_or("n/a".into(), times),
                    verdict.map_or("", Verdict::mark)
                )
            }
            None => "none | ".into(),
        };
        let naive = g.naive.map_or(String::new(), |n| versus(ours, n));
        let floor = g.floor.map_or(String::new(), |f| floor_cell(ours, f));
        let _ = writeln!(
            w,
            "| {} | {} {} | {peer} | {naive} | {floor} |",
            g.name,
            ours.implementation,
            human(ours.value, &ours.unit)
        );
    }
    let _ = writeln!(
        w,
        "\nAgainst the best peer: {wins} win(s), {ties} tie(s), {} loss(es){}.{}",
        losses.len(),
        if losses.is_empty() {
            String::new()
        } else {
            format!(": {}", losses.join(", "))
        },
        if unsure > 0 {
            format!(
                " {unsure} of these rest on figures without a spread (one run, or a \
                 percentile), which cannot tell a difference from noise."
            )
        } else {
            String::new()
        }
    );
    w
}

fn machine_table(w: &mut String, meta: &Meta, previous: Option<&Summary>) {
    let load = |l: Option<f64>| l.map_or("unknown".into(), |l| format!("{l:.2}"));
    let _ = writeln!(w, "| machine | |\n|---|---|");
    let _ = writeln!(w, "| cpu | {} ({} cores available) |", meta.cpu, meta.cores);
    let _ = writeln!(w, "| memory | {} |", meta.memory);
    let _ = writeln!(w, "| kernel | {} |", meta.kernel);
    let _ = writeln!(w, "| rustc | {} |", meta.rustc);
    let _ = writeln!(
        w,
        "| commit | {}{} |",
        meta.commit,
        if meta.dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    );
    let _ = writeln!(w, "| date | {} |", meta.date);
    let _ = writeln!(w, "| quick | {} |", if meta.quick { "yes" } else { "no" });
    let _ = writeln!(w, "| PostgreSQL | {} |", meta.postgres);
    let _ = writeln!(
        w,
        "| load average (1 min) | {} before, {} after |",
        load(meta.load_before),
        load(meta.load_after)
    );
    if let Some(p) = previous {
        let before = Meta::from_json(&p.meta);
        let source = p.meta["source"].as_str().unwrap_or("an earlier run");
        let _ = writeln!(
            w,
            "| compared with | {source}: {}{} ({}, commit {}) |",
            if before.quick { "a quick run of " } else { "" },
            if before.date.is_empty() {
                "an earlier run"
            } else {
                &before.date
            },
            if before.cpu.is_empty() {
                "machine unknown"
            } else {
                &before.cpu
            },
            if before.commit.is_empty() {
                "unknown"
            } else {
                &before.commit
            }
        );
    }
    let _ = writeln!(w);
}

fn group_section(w: &mut String, g: &Group<'_>, changes: Option<&Changes>) {
    let _ = writeln!(w, "## {}\n", g.name);
    let _ = writeln!(w, "![{}](charts/{})\n", g.name, chart_file(g.name));
    let has_change = changes.is_some();
    let _ = writeln!(
        w,
        "| impl | value | spread | samples | ratio | of floor |{}\n|---|---:|---:|---:|---:|---:|{}",
        if has_change { " change |" } else { "" },
        if has_change { "---:|" } else { "" }
    );
    for m in &g.rows {
        let name = if is_ours(&m.implementation) {
            let default = if m.implementation == "prodkit" {
                " (defaults)"
            } else {
                ""
            };
            format!("**{}**{default}", m.implementation)
        } else {
            m.implementation.clone()
        };
        let spread = match (m.low, m.high) {
            (Some(lo), Some(hi)) => format!("{} – {}", human(lo, &m.unit), human(hi, &m.unit)),
            _ => String::new(),
        };
        // Ours against the others only; our variants against the floor.
        let vs = ratio_cell(g, m);
        let floor = match g.floor {
            Some(f) if is_ours(&m.implementation) => {
                percent_of_floor(m, f).map_or(String::new(), |p| format!("{p:.0} %"))
            }
            _ => String::new(),
        };
        let change = change_cell(changes, m).map_or(String::new(), |c| format!(" {c} |"));
        let _ = writeln!(
            w,
            "| {name} | {} | {spread} | {} | {vs} | {floor} |{change}",
            human(m.value, &m.unit),
            m.samples.map_or(String::new(), |s| s.to_string())
        );
    }
    let _ = writeln!(w);
}

/// Latency percentiles of one measurement, as columns of one table.
fn percentile_section(
    w: &mut String,
    base: &str,
    family: &[&Group<'_>],
    changes: Option<&Changes>,
) {
    let _ = writeln!(w, "## {base}\n");
    for g in family {
        let _ = write!(w, "![{}](charts/{}) ", g.name, chart_file(g.name));
    }
    let _ = writeln!(w, "\n");
    let ps: Vec<&str> = family
        .iter()
        .filter_map(|g| percentile(g.name).map(|(_, p)| p))
        .collect();
    let mut impls: Vec<&str> = Vec::new();
    // Rows in the order of the first percentile's ranking.
    for g in family {
        for m in &g.rows {
            if !impls.contains(&m.implementation.as_str()) {
                impls.push(&m.implementation);
            }
        }
    }
    let _ = write!(w, "| impl |");
    for p in &ps {
        let _ = write!(w, " {p} | ratio |");
        if changes.is_some() {
            let _ = write!(w, " change |");
        }
    }
    let _ = write!(w, "\n|---|");
    for _ in &ps {
        let _ = write!(w, "---:|---:|");
        if changes.is_some() {
            let _ = write!(w, "---:|");
        }
    }
    let _ = writeln!(w);
    for i in &impls {
        let shown = if is_ours(i) {
            format!("**{i}**")
        } else {
            (*i).to_string()
        };
        let _ = write!(w, "| {shown} |");
        for g in family {
            let m = g.rows.iter().find(|m| m.implementation == *i);
            let value = m.map_or(String::new(), |m| human(m.value, &m.unit));
            let vs = m.map_or(String::new(), |m| ratio_cell(g, m));
            let _ = write!(w, " {value} | {vs} |");
            if changes.is_some() {
                let change = m.and_then(|m| change_cell(changes, m)).unwrap_or_default();
                let _ = write!(w, " {change} |");
            }
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w);
}

/// The table a crate's README quotes, with the machine it came from:
/// `cargo xtask bench --readme CRATE` prints it from the last report.
pub(crate) fn readme_table(summary: &Summary, krate: &str) -> String {
    let meta = Meta::from_json(&summary.meta);
    let prefix = format!("{krate}/");
    let results: Vec<Measurement> = summary
        .results
        .iter()
        .filter(|m| m.group.starts_with(&prefix))
        .cloned()
        .collect();
    let mut w = String::new();
    let _ = writeln!(
        w,
        "Measured by `{}`{} on {}, commit {}{}, {}:\n",
        if meta.command.is_empty() {
            "cargo xtask bench"
        } else {
            &meta.command
        },
        if meta.quick { " (quick)" } else { "" },
        meta.machine_line(),
        meta.commit,
        if meta.dirty {
            " with uncommitted changes"
        } else {
            ""
        },
        meta.date
    );
    let _ = writeln!(
        w,
        "| group | prodkit | best peer | ours vs peer | naive | ours vs naive | of floor |\n|---|---:|---|---:|---:|---:|---:|"
    );
    for g in groups(&results) {
        let Some(ours) = g.ours else { continue };
        let cell = |m: Option<&Measurement>| m.map_or(String::new(), |m| human(m.value, &m.unit));
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} |",
            g.name.strip_prefix(&prefix).unwrap_or(g.name),
            human(ours.value, &ours.unit),
            g.best_peer.map_or(String::new(), |p| format!(
                "{} {}",
                p.implementation,
                human(p.value, &p.unit)
            )),
            g.best_peer.map_or(String::new(), |p| versus(ours, p)),
            cell(g.naive),
            g.naive.map_or(String::new(), |n| versus(ours, n)),
            g.floor.map_or(String::new(), |f| floor_cell(ours, f)),
        );
    }
    w
}
