use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{Nack, NackReason};

type Outcome<T> = Result<(), Nack<T>>;

/// The promise of one submitted row: `Ok(())` once the write that holds it has
/// committed, or the row back with the reason it was not written. Every ticket
/// resolves exactly once, also when the batcher closes.
pub struct Ticket<T> {
    slot: Arc<Slot<T>>,
}

pub(crate) struct Slot<T> {
    outcome: Mutex<Option<Outcome<T>>>,
    ready: Condvar,
}

impl<T> Ticket<T> {
    /// Blocks until the row is written or refused.
    ///
    /// # Errors
    /// The row back, with the reason it was not written.
    pub fn wait(self) -> Outcome<T> {
        let mut outcome = self.slot.outcome.lock();
        loop {
            if let Some(outcome) = outcome.take() {
                return outcome;
            }
            self.slot.ready.wait(&mut outcome);
        }
    }

    /// As [`wait`](Ticket::wait), for at most `timeout`; the ticket comes back
    /// if the row is still pending.
    ///
    /// # Errors
    /// `Err(ticket)` when the timeout passed first.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Outcome<T>, Ticket<T>> {
        {
            let mut outcome = self.slot.outcome.lock();
            if outcome.is_none() {
                let _ = self
                    .slot
                    .ready
                    .wait_while_for(&mut outcome, |o| o.is_none(), timeout);
            }
            if let Some(outcome) = outcome.take() {
                return Ok(outcome);
            }
        }
        Err(self)
    }

    /// Whether the outcome is known.
    pub fn is_done(&self) -> bool {
        self.slot.outcome.lock().is_some()
    }
}

impl<T> fmt::Debug for Ticket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("done", &self.is_done())
            .finish()
    }
}

/// A dead-letter callback: receives every detached row that was not written.
pub(crate) type DeadLetter<T> = dyn Fn(Nack<T>) + Send + Sync;

/// The batcher's side of one row: whom to tell how it ended.
pub(crate) enum Ack<T> {
    Ticket(Arc<Slot<T>>),
    Detached,
}

impl<T> Ack<T> {
    pub(crate) fn ticket() -> (Ack<T>, Ticket<T>) {
        let slot = Arc::new(Slot {
            outcome: Mutex::new(None),
            ready: Condvar::new(),
        });
        (Ack::Ticket(Arc::clone(&slot)), Ticket { slot })
    }

    /// The row was written.
    pub(crate) fn ok(self) {
        if let Ack::Ticket(slot) = self {
            *slot.outcome.lock() = Some(Ok(()));
            slot.ready.notify_all();
        }
    }

    /// The row was not written: back to its ticket, or to the dead-letter callback.
    pub(crate) fn nack(self, row: T, reason: NackReason, dead_letter: Option<&DeadLetter<T>>) {
        let nack = Nack { row, reason };
        match self {
            Ack::Ticket(slot) => {
                *slot.outcome.lock() = Some(Err(nack));
                slot.ready.notify_all();
            }
            Ack::Detached => {
                if let Some(dead_letter) = dead_letter {
                    // A panicking callback must not take the flusher with it.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        dead_letter(nack)
                    }));
                }
            }
        }
    }
}
