//! A read-through cache in front of a slow backend: single-flight loads from
//! threads and from async tasks, refresh-ahead, expiry, and the stats a
//! dashboard would show.
//!
//! `cargo run -p prodkit-cache --example loading_cache`

#![allow(clippy::print_stdout, reason = "an example shows its results")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prodkit_cache::{Cache, RemovalCause};

/// The backend: 20 ms per lookup, and it counts its calls.
fn backend(calls: &AtomicUsize, id: u64) -> Result<String, std::io::Error> {
    calls.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(20));
    Ok(format!("user-{id}"))
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let calls = Arc::new(AtomicUsize::new(0));
    let evicted = Arc::new(AtomicUsize::new(0));
    let (c, e) = (calls.clone(), evicted.clone());
    let users: Cache<u64, String> = Cache::builder(1_000)
        .time_to_live(Duration::from_secs(60))
        // Entries older than 10 s are served at once and reloaded behind.
        .refresh_after(Duration::from_secs(10))
        .loader(move |id: &u64| backend(&c, *id))
        .eviction_listener(move |_, _, cause| {
            if cause == RemovalCause::Size {
                e.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()?;

    // 8 threads ask for the same 50 users at once: one backend call per user.
    std::thread::scope(|s| {
        for _ in 0..8 {
            let users = users.clone();
            let calls = calls.clone();
            s.spawn(move || {
                for id in 0..50 {
                    let name = users.get_or_load(id, || backend(&calls, id)).unwrap();
                    assert_eq!(name, format!("user-{id}"));
                }
            });
        }
    });
    println!(
        "8 threads x 50 users: {} backend calls",
        calls.load(Ordering::Relaxed)
    );

    // Async tasks wait without blocking the runtime's thread.
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let names = rt.block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let users = users.clone();
                tokio::spawn(async move {
                    users
                        .get_or_load_async(500, || async {
                            Ok::<_, std::io::Error>("user-500".to_string())
                        })
                        .await
                })
            })
            .collect();
        let mut names = Vec::new();
        for t in tasks {
            names.push(t.await.unwrap());
        }
        names
    });
    println!(
        "100 tasks, one key: {} answers, all {:?}",
        names.len(),
        names[0]
    );

    // Warm related keys in the background; a full executor drops, never queues without bound.
    let p = users.prefetch(1_000..1_010)?;
    println!("prefetch: {} queued, {} dropped", p.queued, p.dropped);

    // Users read again and again survive a flood of one-off keys (an LRU
    // would keep the flood and drop them).
    for _ in 0..20 {
        for id in 0..50 {
            users.get(&id);
        }
    }
    for id in 10_000..20_000 {
        users.insert(id, format!("once-{id}"));
    }
    let kept = (0..50).filter(|id| users.contains_key(id)).count();
    println!("after 10,000 one-off inserts, {kept} of 50 hot users still cached");

    let s = users.stats();
    println!(
        "stats: {} hits, {} misses, {} loads ({:?} loading), {} evicted for size (listener saw {}), {} held of {}",
        s.hits,
        s.misses,
        s.loads_ok,
        s.load_time,
        s.evictions.size,
        evicted.load(Ordering::Relaxed),
        s.entries,
        s.capacity
    );
    Ok(())
}
