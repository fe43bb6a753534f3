//! Batch rows from several threads into a sink, each row acknowledged once its
//! batch is stored; here the sink is a vector (`prodkit_batch::pg` has the
//! PostgreSQL sinks).
//!
//! `cargo run -p prodkit-batch --example memory_sink`

#![allow(clippy::print_stdout, reason = "an example shows its results")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prodkit_batch::{Batcher, Failure, Sink, SinkError, SubmitErrorKind};

/// Stores rows; refuses the row 13 as a bad row (a constraint would).
struct Table(Arc<Mutex<Vec<u32>>>);

impl Sink<u32> for Table {
    fn write(&mut self, rows: &[u32]) -> Result<(), SinkError> {
        if let Some(at) = rows.iter().position(|&r| r == 13) {
            return Err(SinkError::new(Failure::Row, "13 is not allowed").at_row(at));
        }
        self.0.lock().unwrap().extend_from_slice(rows);
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let table = Arc::new(Mutex::new(Vec::new()));
    let batcher = {
        let table = Arc::clone(&table);
        Batcher::builder()
            .max_rows(8)
            .linger(Duration::from_millis(5))
            .build(move || Ok(Table(Arc::clone(&table))))?
    };

    let tickets = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4u32)
            .map(|w| {
                let batcher = &batcher;
                s.spawn(move || {
                    (w * 10..w * 10 + 10)
                        .map(|row| batcher.submit(row).map_err(SubmitErrorKind::from))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a submitting thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?;

    // Await the tickets on a current-thread runtime: no thread blocks.
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let (written, refused) = rt.block_on(async {
        let (mut written, mut refused) = (0, Vec::new());
        for ticket in tickets.into_iter().flatten() {
            match ticket.await {
                Ok(()) => written += 1,
                Err(nack) => refused.push(format!("{}: {}", nack.row, nack.reason)),
            }
        }
        (written, refused)
    });
    let stats = batcher.shutdown(Duration::from_secs(5)).stats;
    println!("{written} rows written in {} batches", stats.batches);
    for r in &refused {
        println!("refused {r}");
    }
    assert_eq!((written, refused.len()), (39, 1));
    assert_eq!(table.lock().unwrap().len(), 39);
    Ok(())
}
