//! Submitting from async code: a future that waits for room in a full queue
//! without blocking the executor's thread.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::batcher::{Batcher, Refused};
use crate::error::SubmitError;
use crate::ticket::Ticket;

impl<T: Send + 'static> Batcher<T> {
    /// As [`submit`](Batcher::submit) for async callers: while the queue is
    /// full the future waits for room instead of blocking the executor's
    /// thread (no runtime is required). A flusher that takes a batch of n rows
    /// wakes the n oldest waiting futures; one woken that is then dropped
    /// passes its wake on.
    /// It has no timeout of its own (a timer needs a runtime): bound it with
    /// the runtime's, and take the row back from a future that has not
    /// resolved with [`SubmitFuture::cancel`]. Dropped unresolved, it drops
    /// the row, which was never queued.
    ///
    /// ```
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// rt.block_on(async {
    ///     let ticket = batcher.submit_async(7).await?;
    ///     ticket.await?; // written
    ///     Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// })?;
    /// assert_eq!(batcher.stats().acked, 1);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn submit_async(&self, row: T) -> SubmitFuture<'_, T> {
        SubmitFuture {
            batcher: self,
            row: Some(row),
            waiter: None,
        }
    }
}

/// The future of [`Batcher::submit_async`]: the row's [`Ticket`] once it is
/// queued, or the row back in [`SubmitError::Closed`] or
/// [`SubmitError::TooLarge`] (never `Timeout`: it waits as long as it is
/// polled). Polled again after it resolved, it stays pending.
///
/// ```
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, FnSink, SubmitError};
///
/// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
/// batcher.shutdown(Duration::from_secs(1));
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// let refused = rt.block_on(batcher.submit_async(7));
/// assert!(matches!(refused, Err(SubmitError::Closed(7)))); // the row comes back
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[must_use = "a future does nothing unless awaited"]
pub struct SubmitFuture<'a, T: Send + 'static> {
    batcher: &'a Batcher<T>,
    row: Option<T>,
    /// The id its waker is kept under while it waits for room.
    waiter: Option<u64>,
}

// The row is moved in and out, never pinned: the future is `Unpin` whatever
// `T` is, so `cancel` can be called on one that was polled through `&mut`.
impl<T: Send + 'static> Unpin for SubmitFuture<'_, T> {}

impl<T: Send + 'static> SubmitFuture<'_, T> {
    /// Gives up: the row back if it was not queued yet (`None` once the
    /// future has resolved).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::task::{Context, Poll, Waker};
    /// use std::future::Future;
    /// use std::pin::Pin;
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// // A sink held shut: one row in its write, one queued, and the queue is full.
    /// let gate = Arc::new(Mutex::new(()));
    /// let shut = gate.lock().unwrap();
    /// let open = {
    ///     let gate = Arc::clone(&gate);
    ///     move || {
    ///         let gate = Arc::clone(&gate);
    ///         Ok(FnSink(move |_rows: &[u32]| { drop(gate.lock()); Ok(()) }))
    ///     }
    /// };
    /// let batcher = Batcher::builder().max_rows(1).queue_rows(1).build(open)?;
    /// batcher.submit_detached(1)?;
    /// while batcher.stats().queued_rows > 0 { std::thread::yield_now(); }
    /// batcher.submit_detached(2)?;
    ///
    /// let mut fut = batcher.submit_async(3);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(Pin::new(&mut fut).poll(&mut cx).is_pending()); // no room
    /// assert_eq!(fut.cancel(), Some(3));
    /// drop(shut);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn cancel(mut self) -> Option<T> {
        self.row.take()
    }
}

impl<T: Send + 'static> Future for SubmitFuture<'_, T> {
    type Output = Result<Ticket<T>, SubmitError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(row) = this.row.take() else {
            return Poll::Pending;
        };
        match this
            .batcher
            .submit_or_register(row, cx.waker(), &mut this.waiter)
        {
            Err(Refused::Full(row)) => {
                this.row = Some(row);
                Poll::Pending
            }
            done => {
                if let Some(waiter) = this.waiter.take() {
                    this.batcher.forget_waiter(waiter, done.is_ok());
                }
                Poll::Ready(done.map_err(Refused::into_submit))
            }
        }
    }
}

impl<T: Send + 'static> Drop for SubmitFuture<'_, T> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.batcher.forget_waiter(waiter, false);
        }
    }
}

impl<T: Send + 'static> fmt::Debug for SubmitFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitFuture")
            .field("queued", &self.row.is_none())
            .field("waiting", &self.waiter.is_some())
            .finish_non_exhaustive()
    }
}
