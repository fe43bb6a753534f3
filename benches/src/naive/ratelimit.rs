//! The seed's `RateLimiter` ("Rate limiting with token bucket"), translated: a
//! bounded channel of `rps` tokens, prefilled, and a ticker thread that puts one
//! token back every `1 s / rps` when there is room. `Allow` takes a token without
//! waiting. One thread per limiter; the burst is forced to `rps`; a rate above the
//! ticker's resolution (the OS sleep, tens of microseconds) cannot be delivered.
//! Kept as the baseline, not as advice.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, select, tick};

/// The Go `RateLimiter`.
pub struct RateLimiter {
    tokens: Receiver<()>,
    done: Option<Sender<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `NewRateLimiter(rps)`.
    pub fn new(rps: usize) -> RateLimiter {
        let (tx, tokens) = bounded(rps);
        for _ in 0..rps {
            tx.send(()).expect("the receiver is alive");
        }
        let (done, done_rx) = bounded::<()>(0);
        let interval = Duration::from_secs(1) / u32::try_from(rps).unwrap_or(u32::MAX);
        let ticker = std::thread::spawn(move || {
            // `refillTokens`: a `time.Ticker` and a select on it and `done`.
            let ticks = tick(interval);
            loop {
                select! {
                    recv(ticks) -> _ => { let _ = tx.try_send(()); }
                    recv(done_rx) -> _ => return,
                }
            }
        });
        RateLimiter {
            tokens,
            done: Some(done),
            ticker: Some(ticker),
        }
    }

    /// `Allow`.
    pub fn allow(&self) -> bool {
        self.tokens.try_recv().is_ok()
    }
}

impl Drop for RateLimiter {
    fn drop(&mut self) {
        // The Go version has no Stop; here dropping closes `done` and joins.
        drop(self.done.take());
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}
