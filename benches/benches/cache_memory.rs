//! Memory held by bounded caches, counted by a global allocator that tracks
//! live heap bytes.
//!
//! - `cache/bytes-per-entry`: live heap bytes after building a cache of
//!   capacity 1,000,000 and inserting 1,000,000 distinct u64 -> u64 entries,
//!   minus the live bytes before building it, divided by the entries it holds
//!   afterwards (its `len()`; if it evicted some, the report says so).
//!   The payload itself is 16 B per entry. Implementations: `prodkit`
//!   (defaults), `quick_cache` (`quick_cache::sync::Cache::new`), `moka`
//!   (`moka::sync::Cache::new`, measured after `run_pending_tasks()` so that
//!   its policy holds every entry).
//! - `cache/bytes-per-entry-ttl`: the same with a time to live of one hour, for
//!   the caches that have one (`prodkit`, `moka`; quick_cache has no TTL): the
//!   price of the expiry bookkeeping.
//!
//! Each cache is built, measured and dropped before the next is built, so that
//! live-byte counts do not mix.

use std::time::Duration;

use prodkit_benches::alloc::{Counting, live};
use prodkit_benches::zipf;
use prodkit_benches::{Better, Figures};

const GROUP: &str = "cache/bytes-per-entry";
const TTL_GROUP: &str = "cache/bytes-per-entry-ttl";
const ENTRIES: u64 = 1_000_000;
const TTL: Duration = Duration::from_secs(3600);
/// A u64 key and a u64 value.
const PAYLOAD: usize = 16;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What the measurement needs of a cache.
trait Measured {
    fn insert(&self, key: u64, value: u64);
    /// Entries held.
    fn len(&self) -> u64;
    /// Finishes work deferred by earlier inserts.
    fn settle(&self) {}
}

/// prodkit's cache: with `prodkit()`, the only code that names
/// prodkit-cache's API.
impl Measured for prodkit_cache::Cache<u64, u64> {
    fn insert(&self, key: u64, value: u64) {
        prodkit_cache::Cache::insert(self, key, value);
    }
    fn len(&self) -> u64 {
        prodkit_cache::Cache::len(self) as u64
    }
}

fn prodkit(ttl: Option<Duration>) -> prodkit_cache::Cache<u64, u64> {
    let builder = prodkit_cache::Cache::<u64, u64>::builder(ENTRIES);
    let builder = match ttl {
        Some(ttl) => builder.time_to_live(ttl),
        None => builder,
    };
    builder.build().expect("a valid configuration")
}

impl Measured for quick_cache::sync::Cache<u64, u64> {
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
    fn len(&self) -> u64 {
        quick_cache::sync::Cache::len(self) as u64
    }
}

impl Measured for moka::sync::Cache<u64, u64> {
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value);
    }
    fn len(&self) -> u64 {
        self.entry_count()
    }
    /// moka applies inserts to its policy (and its count) in batches.
    fn settle(&self) {
        self.run_pending_tasks();
    }
}

fn moka(ttl: Option<Duration>) -> moka::sync::Cache<u64, u64> {
    let builder = moka::sync::Cache::builder().max_capacity(ENTRIES);
    match ttl {
        Some(ttl) => builder.time_to_live(ttl).build(),
        None => builder.build(),
    }
}

/// Builds a cache, fills it and records its bytes per entry held; the cache is
/// dropped before this returns.
fn measure<C: Measured>(figures: &mut Figures, group: &str, name: &str, build: impl FnOnce() -> C) {
    figures.start(group, name);
    let before = live();
    let cache = build();
    for i in 0..ENTRIES {
        // Scrambled, as real keys are not 0, 1, 2, ...; still distinct.
        let key = zipf::scramble(i);
        cache.insert(key, i);
    }
    cache.settle();
    let held = cache.len();
    let bytes = live() - before;
    drop(cache);
    let per_entry = bytes as f64 / held as f64;
    figures.record(group, name, per_entry, "B/entry", Better::Lower);
    eprintln!("{group}/{name}: {per_entry:.1} B/entry ({bytes} B live, {held} entries held)");
    if held < ENTRIES {
        figures.note(&format!(
            "{group}/{name}: held {held} of {ENTRIES} entries inserted into a cache of capacity {ENTRIES}; the figure is per entry held"
        ));
    }
}

#[allow(
    clippy::print_stdout,
    reason = "`--list` answers cargo xtask bench on stdout, as criterion does"
)]
fn main() {
    if std::env::args().any(|a| a == "--list") {
        for name in ["prodkit", "quick_cache", "moka"] {
            println!("{GROUP}/{name}: benchmark");
        }
        for name in ["prodkit", "moka"] {
            println!("{TTL_GROUP}/{name}: benchmark");
        }
        return;
    }
    let mut figures = Figures::new("cache_memory");
    // One fill per figure: live bytes do not vary from run to run.
    figures.samples(1);

    measure(&mut figures, GROUP, "prodkit", || prodkit(None));
    measure(&mut figures, GROUP, "quick_cache", || {
        quick_cache::sync::Cache::<u64, u64>::new(ENTRIES as usize)
    });
    measure(&mut figures, GROUP, "moka", || moka(None));

    measure(&mut figures, TTL_GROUP, "prodkit", || prodkit(Some(TTL)));
    measure(&mut figures, TTL_GROUP, "moka", || moka(Some(TTL)));

    figures.note(&format!(
        "{GROUP}: live heap bytes of a cache of capacity {ENTRIES} after {ENTRIES} distinct u64 -> u64 inserts, per entry held; the payload is {PAYLOAD} B per entry; {TTL_GROUP}: the same with a time to live of 1 h (quick_cache has none)"
    ));
    let path = figures.write().expect("write figures");
    eprintln!("figures written to {}", path.display());
}
