//! The one time seam: every limiter reads `quanta::Clock` (the TSC where it is
//! reliable, the OS monotonic clock elsewhere, a mock in tests) as integer
//! nanoseconds since the limiter was built.

/// A clock with the limiter's epoch.
#[derive(Clone, Debug)]
pub(crate) struct Time {
    clock: quanta::Clock,
    epoch: u64,
}

impl Time {
    pub(crate) fn new(clock: quanta::Clock) -> Time {
        let epoch = clock.raw();
        Time { clock, epoch }
    }

    /// Nanoseconds since the epoch; 0 if the clock reads earlier than the epoch.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.delta_as_nanos(self.epoch, self.clock.raw())
    }
}
