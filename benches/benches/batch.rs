//! prodkit-batch against the seed's `BatchWriter`, single-row INSERTs and one raw
//! COPY, on a server with its default durability (fsync and synchronous_commit
//! on), started by prodkit-testkit unless `DATABASE_URL` names one. The table has
//! a primary key; rows are about 64 bytes. Eight producer threads.
//!
//! `batch/100k-rows` (rows/s), closed loop:
//! - `prodkit_tuned`, `prodkit_insert_tuned`: 100,000 rows submitted to a `Batcher`
//!   tuned for throughput (two flushers, batches of up to 10,000, the default
//!   linger of zero) through the COPY or the unnest INSERT sink; the rows are
//!   formatted before the clock starts, as for `floor`; each producer keeps
//!   up to 2000 tickets outstanding and waits for every one. The time ends when
//!   the last ticket resolved.
//! - `prodkit`: the same through `Batcher::builder()`'s defaults
//!   (one flusher, batches of up to 1000).
//! - `naive`: the seed's `BatchWriter` translated (single-row INSERTs in a
//!   transaction, results before COMMIT), with a batch size of 8, one per
//!   producer, so that it flushes on size rather than on its 100 ms ticker.
//! - `single_row`: one autocommit INSERT per row through a prepared statement, a
//!   connection per producer.
//! - `floor`: the physical limit with the tuned batcher's resources: the
//!   100,000 rows formatted before the clock starts, then two connections (as
//!   many as its flushers), each one transaction with one binary COPY of half.
//!
//! `naive` and `single_row` are far slower, so they run for a fixed time (1 s,
//! 0.5 s with `--quick`) instead of 100,000 rows; their figure is the same rows/s.
//! Every figure is the median of 7 runs (3 with `--quick`), each on an empty
//! table.
//!
//! `batch/latency-5k-rows-s/p50` and `/p99` (us), open loop: the eight producers
//! offer 5000 rows/s in all (a rate every implementation sustains) for 2 s (1 s
//! with `--quick`), three times (once with `--quick`), and each figure is the
//! median of the runs' percentiles; a row's latency runs from the moment it was due to be
//! submitted to the moment its ticket (or its call, for `naive` and
//! `single_row`) said it was written, so a producer held up by a slow call
//! counts the delay in the rows behind it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use prodkit_batch::pg::{Mode, PgRow, PgTarget};
use prodkit_batch::{Batcher, Ticket};
use prodkit_benches::naive::batch::BatchWriter;
use prodkit_benches::{Better, Figures};
use prodkit_testkit::{Durability, PgServer};

const GROUP: &str = "batch/100k-rows";
const P50: &str = "batch/latency-5k-rows-s/p50";
const P99: &str = "batch/latency-5k-rows-s/p99";
const ROWS: i64 = 100_000;
const PRODUCERS: i64 = 8;
/// Tickets each producer keeps outstanding in the throughput runs.
const WINDOW: usize = 2000;
/// Rows per second offered in all in the latency runs.
const OFFERED: u32 = 5000;
const COLUMNS: &[(&str, Type)] = &[("id", Type::INT8), ("body", Type::TEXT)];
const INSERT: &str = "INSERT INTO bench_rows (id, body) VALUES ($1, $2)";

struct Row {
    id: i64,
    body: String,
}

impl PgRow for Row {
    fn values<'a>(&'a self, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        out.push(&self.id);
        out.push(&self.body);
    }
}

fn row(id: i64) -> Row {
    Row {
        id,
        body: format!("{id:>12}: a row of about sixty-four bytes of text, padded"),
    }
}

fn reset(client: &mut Client) {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_rows; \
             CREATE TABLE bench_rows (id int8 PRIMARY KEY, body text NOT NULL)",
        )
        .unwrap();
}

fn count(client: &mut Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM bench_rows", &[])
        .unwrap()
        .get(0)
}

/// How a benchmark configures its batcher.
#[derive(Clone, Copy)]
enum Config {
    /// Two flushers, batches of up to 10,000.
    Tuned,
    /// `Batcher::builder()` as it comes.
    Default,
}

fn batcher(pg: &PgServer, mode: Mode, config: Config) -> Batcher<Row> {
    let target = PgTarget::new(&pg.url(), "bench_rows", COLUMNS)
        .unwrap()
        .mode(mode);
    let builder = match config {
        Config::Tuned => Batcher::builder()
            .max_rows(10_000)
            .max_bytes(8 << 20)
            .queue_rows(50_000)
            .flushers(2),
        Config::Default => Batcher::builder(),
    };
    builder.build(move || target.open::<Row>()).unwrap()
}

fn written(ticket: Ticket<Row>) {
    if let Err(nack) = ticket.wait() {
        panic!("a benchmark row was refused: {}", nack.reason);
    }
}

/// prodkit, closed loop: rows/s.
fn prodkit(pg: &PgServer, mode: Mode, config: Config) -> f64 {
    let batcher = batcher(pg, mode, config);
    // Formatted before the clock starts, as for floor.
    let mut rows: Vec<Vec<Row>> = (0..PRODUCERS)
        .map(|p| (p..ROWS).step_by(PRODUCERS as usize).map(row).collect())
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for mine in rows.iter_mut() {
            let batcher = &batcher;
            let mine = std::mem::take(mine);
            s.spawn(move || {
                let mut window = std::collections::VecDeque::with_capacity(WINDOW);
                for r in mine {
                    window.push_back(batcher.submit(r).unwrap());
                    if window.len() == WINDOW {
                        written(window.pop_front().unwrap());
                    }
                }
                window.into_iter().for_each(written);
            });
        }
    });
    let rate = ROWS as f64 / start.elapsed().as_secs_f64();
    batcher.shutdown(Duration::from_secs(60));
    rate
}

/// Runs `work(producer, next_id)` in eight threads for `span`: rows/s.
fn for_a_while(span: Duration, work: impl Fn(i64, i64) + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let rows = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let (stop, rows, work) = (&stop, &rows, &work);
            s.spawn(move || {
                let mut id = p;
                while !stop.load(Ordering::Relaxed) {
                    work(p, id);
                    rows.fetch_add(1, Ordering::Relaxed);
                    id += PRODUCERS;
                }
            });
        }
        std::thread::sleep(span);
        stop.store(true, Ordering::Relaxed);
    });
    rows.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Two connections, each one COPY of half the rows, formatted beforehand.
fn raw_copy(pg: &PgServer) -> f64 {
    let rows: Vec<Row> = (0..ROWS).map(row).collect();
    let mut clients: Vec<Client> = (0..2).map(|_| pg.connect().unwrap()).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (half, client) in rows.chunks(rows.len().div_ceil(2)).zip(clients.iter_mut()) {
            s.spawn(move || {
                let mut tx = client.transaction().unwrap();
                let writer = tx
                    .copy_in("COPY bench_rows (id, body) FROM STDIN (FORMAT binary)")
                    .unwrap();
                let mut writer = BinaryCopyInWriter::new(writer, &[Type::INT8, Type::TEXT]);
                for r in half {
                    writer.write(&[&r.id, &r.body]).unwrap();
                }
                writer.finish().unwrap();
                tx.commit().unwrap();
            });
        }
    });
    ROWS as f64 / start.elapsed().as_secs_f64()
}

/// The moments producer `p` is due to submit its rows, in the open loop.
fn schedule(p: i64, start: Instant, span: Duration) -> impl Iterator<Item = (i64, Instant)> {
    let every = Duration::from_secs(1) * PRODUCERS as u32 / OFFERED;
    // Producers start spread over one interval, not in step.
    let first = start + every * p as u32 / PRODUCERS as u32;
    let n = (span.as_secs_f64() * f64::from(OFFERED) / PRODUCERS as f64) as u32;
    (0..n).map(move |k| (p + PRODUCERS * i64::from(k), first + every * k))
}

fn sleep_until(due: Instant) {
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

fn micros(from: Instant) -> f64 {
    from.elapsed().as_secs_f64() * 1e6
}

/// Open loop through a batcher: each producer submits on schedule and a waiter
/// beside it collects the tickets in order. Latencies in us.
fn prodkit_latency(pg: &PgServer, mode: Mode, config: Config, span: Duration) -> Vec<f64> {
    let batcher = batcher(pg, mode, config);
    let start = Instant::now();
    let latencies = std::thread::scope(|s| {
        let waiters: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Ticket<Row>)>(100_000);
                let batcher = &batcher;
                s.spawn(move || {
                    for (id, due) in schedule(p, start, span) {
                        sleep_until(due);
                        tx.send((due, batcher.submit(row(id)).unwrap())).unwrap();
                    }
                });
                s.spawn(move || {
                    rx.into_iter()
                        .map(|(due, ticket)| {
                            written(ticket);
                            micros(due)
                        })
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        waiters
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    batcher.shutdown(Duration::from_secs(60));
    latencies
}

/// Open loop with a blocking call per row. Latencies in us.
fn blocking_latency(span: Duration, work: impl Fn(i64, i64) + Sync) -> Vec<f64> {
    let start = Instant::now();
    std::thread::scope(|s| {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let work = &work;
                s.spawn(move || {
                    schedule(p, start, span)
                        .map(|(id, due)| {
                            sleep_until(due);
                            work(p, id);
                            micros(due)
                        })
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        producers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// The median of `values` and their spread (min, max).
fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// The eight connections of `single_row`, one per producer, each with the
/// INSERT prepared once.
struct Connections(Vec<parking_lot::Mutex<(Client, postgres::Statement)>>);

impl Connections {
    fn open(pg: &PgServer) -> Connections {
        Connections(
            (0..PRODUCERS)
                .map(|_| {
                    let mut client = pg.connect().unwrap();
                    let insert = client.prepare(INSERT).unwrap();
                    parking_lot::Mutex::new((client, insert))
                })
                .collect(),
        )
    }

    fn insert(&self, producer: i64, id: i64) {
        let r = row(id);
        let mut conn = self.0[producer as usize].lock();
        let (client, insert) = &mut *conn;
        client.execute(&*insert, &[&r.id, &r.body]).unwrap();
    }
}

fn naive_insert(writer: &BatchWriter, id: i64) {
    let r = row(id);
    writer
        .execute(INSERT, vec![Box::new(r.id), Box::new(r.body)])
        .unwrap();
}

#[allow(
    clippy::print_stdout,
    reason = "`--list` answers cargo xtask bench on stdout, as criterion does"
)]
fn main() {
    let names = [
        "prodkit_tuned",
        "prodkit_insert_tuned",
        "prodkit",
        "naive",
        "single_row",
        "floor",
    ];
    if std::env::args().any(|a| a == "--list") {
        for n in names {
            println!("{GROUP}/{n}: benchmark");
        }
        for n in &names[..5] {
            println!("batch/latency-5k-rows-s/{n}: benchmark");
        }
        return;
    }
    let pg = match prodkit_testkit::shared(Durability::ServerDefault) {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("skipped: batch benchmarks need PostgreSQL: {e}");
            let mut figures = Figures::new("batch");
            figures.note(&format!("skipped, no PostgreSQL server: {e}"));
            figures.write().expect("write figures");
            return;
        }
    };
    let quick = prodkit_benches::quick();
    let (runs, span) = if quick {
        (3, Duration::from_millis(500))
    } else {
        (7, Duration::from_secs(1))
    };
    let (latency_runs, latency_span) = if quick {
        (1, Duration::from_secs(1))
    } else {
        (3, Duration::from_secs(2))
    };
    let mut figures = Figures::new("batch");
    let mut admin = pg.connect().unwrap();
    let mut throughput =
        |figures: &mut Figures, name: &str, run: &mut dyn FnMut(&mut Client) -> f64| {
            figures.start(GROUP, name);
            let rates = (0..runs)
                .map(|_| {
                    reset(&mut admin);
                    run(&mut admin)
                })
                .collect();
            let (rate, low, high) = median(rates);
            figures.samples(runs as u64);
            eprintln!("{name}: {rate:.0} rows/s (median of {runs})");
            figures.record_spread(GROUP, name, rate, low, high, "rows/s", Better::Higher);
        };
    let ours = [
        ("prodkit_tuned", Mode::Copy, Config::Tuned),
        ("prodkit_insert_tuned", Mode::Insert, Config::Tuned),
        ("prodkit", Mode::Copy, Config::Default),
    ];
    for (name, mode, config) in ours {
        throughput(&mut figures, name, &mut |admin| {
            let rate = prodkit(pg, mode, config);
            assert_eq!(count(admin), ROWS, "every acked row is stored");
            rate
        });
    }
    throughput(&mut figures, "naive", &mut |_| {
        let writer = BatchWriter::new(pg.connect().unwrap(), PRODUCERS as usize);
        for_a_while(span, |_, id| naive_insert(&writer, id))
    });
    let connections = Connections::open(pg);
    throughput(&mut figures, "single_row", &mut |_| {
        for_a_while(span, |p, id| connections.insert(p, id))
    });
    throughput(&mut figures, "floor", &mut |_| raw_copy(pg));

    let mut latency = |figures: &mut Figures, name: &str, run: &mut dyn FnMut() -> Vec<f64>| {
        figures.start("batch/latency-5k-rows-s", name);
        let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
        for _ in 0..latency_runs {
            reset(&mut admin);
            let mut latencies = run();
            latencies.sort_by(f64::total_cmp);
            p50s.push(quantile(&latencies, 0.5));
            p99s.push(quantile(&latencies, 0.99));
        }
        let ((p50, p50_lo, p50_hi), (p99, p99_lo, p99_hi)) = (median(p50s), median(p99s));
        figures.samples(latency_runs as u64);
        eprintln!("{name}: p50 {p50:.0} us, p99 {p99:.0} us (medians of {latency_runs})");
        figures.record_spread(P50, name, p50, p50_lo, p50_hi, "us", Better::Lower);
        figures.record_spread(P99, name, p99, p99_lo, p99_hi, "us", Better::Lower);
    };
    for (name, mode, config) in ours {
        latency(&mut figures, name, &mut || {
            prodkit_latency(pg, mode, config, latency_span)
        });
    }
    latency(&mut figures, "naive", &mut || {
        let writer = BatchWriter::new(pg.connect().unwrap(), PRODUCERS as usize);
        blocking_latency(latency_span, |_, id| naive_insert(&writer, id))
    });
    latency(&mut figures, "single_row", &mut || {
        blocking_latency(latency_span, |p, id| connections.insert(p, id))
    });

    figures.note(&format!(
        "{GROUP}: {PRODUCERS} producers, table (id int8 primary key, body text), ~64-byte rows, \
         server default durability (fsync, synchronous_commit on); each figure the median (spread: min-max) of \
         {runs} runs on an empty table; naive and single_row ran for {span:?} a run, the others \
         wrote {ROWS} rows"
    ));
    figures.note(&format!(
        "batch/latency-5k-rows-s: {OFFERED} rows/s offered by {PRODUCERS} producers for \
         {latency_span:?}, latency from when a row was due to when it was known written; \
         p50 and p99 are medians over {latency_runs} runs"
    ));
    let path = figures.write().expect("write figures");
    eprintln!("figures written to {}", path.display());
}
