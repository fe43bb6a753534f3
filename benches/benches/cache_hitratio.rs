//! Hit ratios of bounded caches on real and generated access traces.
//!
//! - `cache/hit-ratio/<trace>/<capacity>`: each trace replayed in order by
//!   one thread into a fresh cache of `capacity` entries: `get` every key,
//!   and `insert(key, key)` on a miss; the figure is hits / accesses, in %.
//!   The caches depend on random seeds (their hashers, moka's admission):
//!   each of their figures is the median of 5 replays into fresh caches (3
//!   under `--quick`), with the range; LRU and OPT are replayed once.
//!   Implementations: `prodkit` (defaults), `moka` (`moka::sync::Cache` with
//!   `max_capacity`), `quick_cache` (`quick_cache::sync::Cache::new`), `lru`
//!   (`lru::LruCache`, the plain LRU every paper compares with) and `floor`:
//!   Belady's OPT computed offline, the best any cache of that size could do
//!   (on a miss it may also decline to keep the new key, as an admission
//!   policy may). Traces, from `$PRODKIT_DATA/cache-traces/` (default
//!   `../shared/data` beside the workspace): `oltp` (ARC's OLTP), `lirs-loop`,
//!   `multi2`, `2-pools` (LIRS paper traces) and `web07` (cache2k); a trace
//!   whose file is absent is skipped and the report says so. `zipf-<s>`
//!   traces are generated with a fixed seed (100,000 keys, 1,000,000 accesses)
//!   and measured at 1% and 10% of the keys.
//! - `cache/hit-ratio-2t/<trace>/<capacity>`: the same replay by two threads
//!   sharing one cache, for the concurrent implementations (`prodkit`, `moka`,
//!   `quick_cache`): the trace is cut in chunks of 256 accesses handed out in
//!   order, so the cache sees nearly the original order, while its concurrent
//!   paths (buffered policy updates, sharding) are exercised as in a service.
//!   Two threads change the order the cache sees, which changes the hit ratio
//!   of any policy: `prodkit_1t_interleaved` is prodkit replaying, on one
//!   thread, the order two threads in lockstep give (chunks `2i` and `2i + 1`
//!   interleaved access by access), so that the order's cost and the cost of
//!   concurrency can be told apart.
//!
//! At startup OPT is checked against an exhaustive search on small random
//! traces, and on every trace its hit ratio must be at least LRU's: a figure
//! above the floor would mean a bug in the floor, so the program stops.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use prodkit_benches::zipf::{self, Rng};
use prodkit_benches::{Better, Figures};

/// Accesses handed to a thread at a time in the two-thread replay.
const CHUNK: usize = 256;
const ZIPF_KEYS: usize = 100_000;
const ZIPF_ACCESSES: usize = 1_000_000;
const ZIPF_SEED: u64 = 0x5EED_CAC4E;
/// A key with no later access.
const NEVER: usize = usize::MAX;

/// How a trace file is stored.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// zstd; ARC text lines `start count ignored reqno`, standing for the keys
    /// `start..start + count`.
    Arc,
    /// gzip; one decimal key per line, CRLF; empty lines and `*` are not accesses.
    Lirs,
    /// xz; one big-endian i32 per access.
    Cache2k,
}

/// A trace file of the shared data folder and the capacities it is measured at.
#[derive(Debug)]
struct TraceFile {
    name: &'static str,
    file: &'static str,
    format: Format,
    capacities: &'static [usize],
    quick: &'static [usize],
}

/// Capacities: ARC's and the LIRS papers' own, so that figures compare with the
/// published ones. web07 has 20,484 distinct keys in 76,118 accesses, so no
/// cache can hit more than 73.1% (the first access to a key always misses):
/// 1,000 to 4,000 entries (5% to 20% of its keys) span its curve, OPT going
/// from 64% to 72%; at 8,000 OPT already sits on that ceiling.
const TRACE_FILES: [TraceFile; 5] = [
    TraceFile {
        name: "oltp",
        file: "OLTP.lis.zst",
        format: Format::Arc,
        capacities: &[250, 500, 1000, 2000],
        quick: &[1000],
    },
    TraceFile {
        name: "lirs-loop",
        file: "lirs_loop.trace.gz",
        format: Format::Lirs,
        capacities: &[768, 1024],
        quick: &[768],
    },
    TraceFile {
        name: "multi2",
        file: "lirs_multi2.trace.gz",
        format: Format::Lirs,
        capacities: &[600, 1200, 1800],
        quick: &[],
    },
    TraceFile {
        name: "2-pools",
        file: "lirs_2_pools.trace.gz",
        format: Format::Lirs,
        capacities: &[450, 900, 1350],
        quick: &[],
    },
    TraceFile {
        name: "web07",
        file: "cache2k_web07.trace.xz",
        format: Format::Cache2k,
        capacities: &[1000, 2000, 4000],
        quick: &[],
    },
];

/// Zipf exponents of the generated traces.
const ZIPF_EXPONENTS: [f64; 3] = [0.9, 1.0, 1.2];

/// One trace and the capacities to replay it at.
#[derive(Debug)]
struct Workload {
    name: String,
    source: Source,
    capacities: Vec<usize>,
}

#[derive(Debug)]
enum Source {
    File(PathBuf, Format),
    Zipf(f64),
}

impl Workload {
    fn trace(&self) -> Vec<u64> {
        match &self.source {
            Source::File(path, format) => {
                load(path, *format).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            }
            Source::Zipf(s) => zipf::trace(ZIPF_KEYS, ZIPF_ACCESSES, *s, ZIPF_SEED),
        }
    }
}

/// The workloads of this run, and a sentence for each trace file that is absent.
fn workloads(quick: bool) -> (Vec<Workload>, Vec<String>) {
    let dir = prodkit_benches::data_dir().join("cache-traces");
    let mut absent = Vec::new();
    let mut all = Vec::new();
    for t in &TRACE_FILES {
        let capacities = if quick { t.quick } else { t.capacities };
        if capacities.is_empty() {
            continue;
        }
        let path = dir.join(t.file);
        if !path.is_file() {
            absent.push(format!(
                "trace {} not found at {}: cache/hit-ratio/{} skipped (set PRODKIT_DATA to the folder holding cache-traces/)",
                t.file,
                path.display(),
                t.name
            ));
            continue;
        }
        all.push(Workload {
            name: t.name.to_string(),
            source: Source::File(path, t.format),
            capacities: capacities.to_vec(),
        });
    }
    for s in ZIPF_EXPONENTS {
        if quick && s != 1.0 {
            continue;
        }
        let percent_1 = ZIPF_KEYS / 100;
        all.push(Workload {
            name: format!("zipf-{s:.1}"),
            source: Source::Zipf(s),
            capacities: if quick {
                vec![percent_1]
            } else {
                vec![percent_1, ZIPF_KEYS / 10]
            },
        });
    }
    (all, absent)
}

fn load(path: &Path, format: Format) -> io::Result<Vec<u64>> {
    let file = File::open(path)?;
    let mut raw = Vec::new();
    match format {
        Format::Arc => zstd::stream::read::Decoder::new(file)?.read_to_end(&mut raw)?,
        Format::Lirs => flate2::read::MultiGzDecoder::new(file).read_to_end(&mut raw)?,
        Format::Cache2k => xz2::read::XzDecoder::new(file).read_to_end(&mut raw)?,
    };
    match format {
        Format::Arc => parse_arc(&raw),
        Format::Lirs => parse_lirs(&raw),
        Format::Cache2k => Ok(raw
            .chunks_exact(4)
            .map(|b| u64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u32))
            .collect()),
    }
}

fn bad_line(n: usize, line: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("line {}: {line:?}", n + 1),
    )
}

fn parse_arc(raw: &[u8]) -> io::Result<Vec<u64>> {
    let text =
        std::str::from_utf8(raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(bad_line(n, line));
        };
        let start: u64 = start.parse().map_err(|_| bad_line(n, line))?;
        let count: u64 = count.parse().map_err(|_| bad_line(n, line))?;
        keys.extend(start..start + count);
    }
    Ok(keys)
}

fn parse_lirs(raw: &[u8]) -> io::Result<Vec<u64>> {
    let text =
        std::str::from_utf8(raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line == "*" {
            continue;
        }
        keys.push(line.parse().map_err(|_| bad_line(n, line))?);
    }
    Ok(keys)
}

/// A concurrent cache replaying a trace: `get`, and `insert(key, key)` on a miss.
trait Replay: Sync {
    /// Whether `key` was a hit.
    fn access(&self, key: u64) -> bool;
}

/// prodkit's cache with its defaults: with `prodkit()`, the only code
/// that names prodkit-cache's API.
impl Replay for prodkit_cache::Cache<u64, u64> {
    fn access(&self, key: u64) -> bool {
        if self.get(&key).is_some() {
            return true;
        }
        self.insert(key, key);
        false
    }
}

fn prodkit(capacity: usize) -> prodkit_cache::Cache<u64, u64> {
    prodkit_cache::Cache::<u64, u64>::builder(capacity as u64)
        .build()
        .expect("a valid capacity")
}

impl Replay for moka::sync::Cache<u64, u64> {
    fn access(&self, key: u64) -> bool {
        if self.get(&key).is_some() {
            return true;
        }
        self.insert(key, key);
        false
    }
}

impl Replay for quick_cache::sync::Cache<u64, u64> {
    fn access(&self, key: u64) -> bool {
        if self.get(&key).is_some() {
            return true;
        }
        self.insert(key, key);
        false
    }
}

/// The concurrent implementations, in the report's order.
const CONCURRENT: [&str; 3] = ["prodkit", "moka", "quick_cache"];

/// A fresh cache of implementation `name` with room for `capacity` entries.
fn concurrent(name: &str, capacity: usize) -> Box<dyn Replay> {
    match name {
        "prodkit" => Box::new(prodkit(capacity)),
        "moka" => Box::new(moka::sync::Cache::new(capacity as u64)),
        "quick_cache" => Box::new(quick_cache::sync::Cache::new(capacity)),
        _ => unreachable!("unknown implementation {name}"),
    }
}

fn percent(hits: u64, accesses: usize) -> f64 {
    100.0 * hits as f64 / accesses as f64
}

fn replay(trace: &[u64], cache: &dyn Replay) -> u64 {
    trace.iter().map(|&k| u64::from(cache.access(k))).sum()
}

/// Two threads share the trace chunk by chunk, in order.
fn replay_2t(trace: &[u64], cache: &dyn Replay) -> u64 {
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut hits = 0;
        loop {
            // Relaxed: the counter only hands out distinct chunks; the cache
            // orders its own memory.
            let start = next.fetch_add(1, Ordering::Relaxed) * CHUNK;
            if start >= trace.len() {
                return hits;
            }
            let chunk = &trace[start..trace.len().min(start + CHUNK)];
            hits += replay(chunk, cache);
        }
    };
    std::thread::scope(|s| {
        let other = s.spawn(worker);
        worker() + other.join().expect("replay thread panicked")
    })
}

/// The order two threads in lockstep would give `replay_2t`: chunks `2i` and
/// `2i + 1` interleaved access by access. Replayed by one thread, it
/// separates what the order costs from what concurrency costs.
fn interleaved(trace: &[u64]) -> Vec<u64> {
    let mut order = Vec::with_capacity(trace.len());
    for pair in trace.chunks(2 * CHUNK) {
        let (a, b) = pair.split_at(pair.len().min(CHUNK));
        for i in 0..CHUNK {
            order.extend(a.get(i));
            order.extend(b.get(i));
        }
    }
    order
}

fn lru_hits(trace: &[u64], capacity: usize) -> u64 {
    let mut cache = lru::LruCache::new(NonZeroUsize::new(capacity).expect("capacity > 0"));
    let mut hits = 0;
    for &k in trace {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.put(k, k);
        }
    }
    hits
}

/// For every access, the index of the next access to the same key, or `NEVER`.
fn next_uses(trace: &[u64]) -> Vec<usize> {
    let mut later: HashMap<u64, usize> = HashMap::with_capacity(trace.len() / 4);
    let mut next = vec![NEVER; trace.len()];
    for (i, &k) in trace.iter().enumerate().rev() {
        if let Some(j) = later.insert(k, i) {
            next[i] = j;
        }
    }
    next
}

/// Belady's OPT: keep the keys used again soonest. The resident keys are kept
/// as `(next use, key)`; a resident key accessed at `i` is found as `(i, key)`,
/// since its next use was this access. A missed key joins the set, and when
/// the set is over capacity the key used furthest in the future leaves, which
/// may be the new key itself (not admitting it) or one never used again.
fn opt_hits(trace: &[u64], next: &[usize], capacity: usize) -> u64 {
    let mut resident: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut hits = 0;
    for (i, &k) in trace.iter().enumerate() {
        if resident.remove(&(i, k)) {
            hits += 1;
        }
        resident.insert((next[i], k));
        if resident.len() > capacity {
            resident.pop_last();
        }
    }
    hits
}

/// The most hits any cache of `capacity` could get on `trace` (keys below
/// 32), by trying every choice at every miss: keep the key or not, and which
/// key to evict for it.
fn exhaustive_hits(trace: &[u8], capacity: u32) -> u64 {
    fn best(
        trace: &[u8],
        capacity: u32,
        i: usize,
        held: u32,
        memo: &mut HashMap<(usize, u32), u64>,
    ) -> u64 {
        if i == trace.len() {
            return 0;
        }
        if let Some(&b) = memo.get(&(i, held)) {
            return b;
        }
        let bit = 1u32 << trace[i];
        let b = if held & bit != 0 {
            1 + best(trace, capacity, i + 1, held, memo)
        } else {
            let mut b = best(trace, capacity, i + 1, held, memo);
            if held.count_ones() < capacity {
                b = b.max(best(trace, capacity, i + 1, held | bit, memo));
            } else {
                for victim in (0..32).map(|v| 1u32 << v).filter(|v| held & v != 0) {
                    b = b.max(best(trace, capacity, i + 1, held & !victim | bit, memo));
                }
            }
            b
        };
        memo.insert((i, held), b);
        b
    }
    best(trace, capacity, 0, 0, &mut HashMap::new())
}

/// OPT must equal the exhaustive optimum on small traces, and never lose to LRU.
fn check_opt() {
    let mut rng = Rng::new(42);
    for round in 0..300 {
        let len = 8 + rng.below(10) as usize;
        let keys = 2 + rng.below(5);
        let capacity = 1 + rng.below(3) as usize;
        let small: Vec<u8> = (0..len).map(|_| rng.below(keys) as u8).collect();
        let trace: Vec<u64> = small.iter().map(|&k| u64::from(k)).collect();
        let opt = opt_hits(&trace, &next_uses(&trace), capacity);
        let exact = exhaustive_hits(&small, capacity as u32);
        assert_eq!(
            opt, exact,
            "OPT is not optimal on round {round}: {small:?} at capacity {capacity}"
        );
        assert!(
            opt >= lru_hits(&trace, capacity),
            "OPT below LRU on {small:?}"
        );
    }
}

#[allow(
    clippy::print_stdout,
    reason = "`--list` answers cargo xtask bench on stdout, as criterion does"
)]
fn main() {
    let quick = prodkit_benches::quick();
    let (workloads, absent) = workloads(quick);
    if std::env::args().any(|a| a == "--list") {
        for w in &workloads {
            for c in &w.capacities {
                for name in CONCURRENT.iter().chain(&["lru", "floor"]) {
                    println!("cache/hit-ratio/{}/{c}/{name}: benchmark", w.name);
                }
            }
            for c in &w.capacities {
                for name in CONCURRENT.iter().chain(&["prodkit_1t_interleaved"]) {
                    println!("cache/hit-ratio-2t/{}/{c}/{name}: benchmark", w.name);
                }
            }
        }
        return;
    }
    check_opt();

    let mut figures = Figures::new("cache_hitratio");
    // OPT and LRU are deterministic: one replay each. The caches vary from
    // run to run (random hash seeds, moka's admission jitter, thread
    // interleaving), by up to 3 points on a 1,000-entry Zipf cache in trial
    // runs: each of their figures is the median of several fresh caches,
    // with the range.
    for sentence in &absent {
        eprintln!("{sentence}");
        figures.note(sentence);
    }
    let mut sizes = Vec::new();
    for w in &workloads {
        let trace = w.trace();
        let unique = trace.iter().collect::<HashSet<_>>().len();
        eprintln!(
            "{}: {} accesses, {unique} distinct keys",
            w.name,
            trace.len()
        );
        sizes.push(format!("{} {}/{unique}", w.name, trace.len()));
        measure(&mut figures, &w.name, &trace, &w.capacities);
    }
    figures.note(&format!(
        "cache/hit-ratio: each trace replayed in order into a fresh cache (get, insert on a miss), hits / accesses; the caches' figures are the median of 5 fresh caches (random seeds), with the range; floor = Belady's OPT (may decline to keep a key); accesses/distinct keys: {}; zipf traces generated with a fixed seed over {ZIPF_KEYS} keys",
        sizes.join(", ")
    ));
    figures.note(&format!(
        "cache/hit-ratio-2t: the same replay by two threads sharing one cache, the trace handed out in chunks of {CHUNK} accesses in order; prodkit_1t_interleaved: one thread replaying the order two threads in lockstep would give (chunks 2i and 2i+1 interleaved access by access), what the order alone costs"
    ));
    let path = figures.write().expect("write figures");
    eprintln!("figures written to {}", path.display());
}

/// Replays of a cache that depends on a random seed (its hasher, its
/// admission): 5 fresh caches (3 under `--quick`), sorted.
fn repeat(mut replay: impl FnMut() -> f64) -> Vec<f64> {
    let reps = if prodkit_benches::quick() { 3 } else { 5 };
    let mut ratios: Vec<f64> = (0..reps).map(|_| replay()).collect();
    ratios.sort_by(f64::total_cmp);
    ratios
}

/// Records the median of sorted `ratios`, with their range as the spread.
fn record_spread(figures: &mut Figures, group: &str, name: &str, ratios: &[f64]) {
    figures.samples(ratios.len() as u64);
    let (low, high) = (ratios[0], ratios[ratios.len() - 1]);
    let median = ratios[ratios.len() / 2];
    figures.record_spread(group, name, median, low, high, "%", Better::Higher);
    eprintln!("{group}/{name}: {median:.2}% ({low:.2} to {high:.2})");
}

fn measure(figures: &mut Figures, trace_name: &str, trace: &[u64], capacities: &[usize]) {
    let next = next_uses(trace);
    for &capacity in capacities {
        let group = format!("cache/hit-ratio/{trace_name}/{capacity}");
        let record = |figures: &mut Figures, name: &str, hits: u64| {
            figures.samples(1);
            let ratio = percent(hits, trace.len());
            figures.record(&group, name, ratio, "%", Better::Higher);
            eprintln!("{group}/{name}: {ratio:.2}%");
        };
        for name in CONCURRENT {
            figures.start(&group, name);
            let ratios =
                repeat(|| percent(replay(trace, &*concurrent(name, capacity)), trace.len()));
            record_spread(figures, &group, name, &ratios);
        }
        figures.start(&group, "lru");
        let lru = lru_hits(trace, capacity);
        record(figures, "lru", lru);
        figures.start(&group, "floor");
        let opt = opt_hits(trace, &next, capacity);
        assert!(
            opt >= lru,
            "{group}: OPT got {opt} hits and LRU {lru}: OPT is wrong"
        );
        record(figures, "floor", opt);
    }
    for &capacity in capacities {
        let group = format!("cache/hit-ratio-2t/{trace_name}/{capacity}");
        for name in CONCURRENT {
            figures.start(&group, name);
            let ratios =
                repeat(|| percent(replay_2t(trace, &*concurrent(name, capacity)), trace.len()));
            record_spread(figures, &group, name, &ratios);
        }
        let name = "prodkit_1t_interleaved";
        figures.start(&group, name);
        let order = interleaved(trace);
        let ratios = repeat(|| {
            percent(
                replay(&order, &*concurrent("prodkit", capacity)),
                trace.len(),
            )
        });
        record_spread(figures, &group, name, &ratios);
    }
}
