use crate::error::SinkError;

/// Where batches go. Each flusher thread owns one sink (for PostgreSQL: one
/// long-lived connection), so a sink needs `Send` but not `Sync`.
pub trait Sink<T>: Send {
    /// Writes `rows` as one unit: all of them or none (for PostgreSQL: one
    /// transaction). Return `Ok` only once the rows are durable (after COMMIT);
    /// classify every failure ([`SinkError::failure`]) so the batcher knows what
    /// to retry.
    ///
    /// # Errors
    /// The failure, classified.
    fn write(&mut self, rows: &[T]) -> Result<(), SinkError>;

    /// Called after a `Transient` or `UnknownOutcome` failure, before the batch
    /// is written again: reopen what failed (reconnect). The default does
    /// nothing.
    ///
    /// # Errors
    /// The failure to reopen; the batcher backs off and tries again within its
    /// retry budget.
    fn reconnect(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A sink made of a closure: `FnSink(|rows: &[T]| ...)`.
pub struct FnSink<F>(pub F);

impl<T, F> Sink<T> for FnSink<F>
where
    F: FnMut(&[T]) -> Result<(), SinkError> + Send,
{
    fn write(&mut self, rows: &[T]) -> Result<(), SinkError> {
        (self.0)(rows)
    }
}

impl<F> std::fmt::Debug for FnSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnSink(..)")
    }
}
