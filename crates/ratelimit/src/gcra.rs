//! The Generic Cell Rate Algorithm in integer nanoseconds, shared by both
//! limiters, and the cell that holds the quota in force.
//!
//! The state of a bucket is its theoretical arrival time `tat`: the instant at
//! which the bucket would be full again. A cost `c = n * T` is admitted at `now`
//! when `max(tat, now) + c - now <= tau` with `tau = burst * T`, and then
//! `tat' = max(tat, now) + c`. A bucket with `tat <= now` is full: it behaves
//! exactly like a key never seen.

use crate::decision::Decision;
use crate::quota::Quota;
use crate::sync::{AtomicU64, Mutex, Ordering, fence, spin_loop};

/// The quota in force, copied out of a [`ParamCell`] for one decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub(crate) t: u64,
    pub(crate) tau: u64,
    pub(crate) burst: u32,
    pub(crate) shadow: bool,
}

impl Params {
    /// The cost of `n` cells; `n <= burst`, so it is at most `tau`.
    #[inline]
    pub(crate) fn cost(&self, n: u32) -> u64 {
        self.t * u64::from(n)
    }
}

/// The new `tat` if `cost` is admitted at `now`, else `None`. Never admits when
/// the arithmetic would reach `u64::MAX`: at the end of the clock's range the
/// limiter refuses rather than wrap.
#[inline]
pub(crate) fn admit(tat: u64, now: u64, cost: u64, tau: u64) -> Option<u64> {
    let new_tat = tat.max(now).checked_add(cost)?;
    (new_tat - now <= tau && new_tat != u64::MAX).then_some(new_tat)
}

/// The decision for an admitted request; `new_tat` is the state after it.
#[inline]
pub(crate) fn conforming(p: &Params, new_tat: u64, now: u64) -> Decision {
    Decision {
        allowed: true,
        conforming: true,
        burst: p.burst,
        interval_ns: p.t,
        tau_ns: p.tau,
        reset_ns: new_tat.saturating_sub(now),
        retry_ns: 0,
    }
}

/// The decision for a refused request; `tat` is the unchanged state.
#[inline]
pub(crate) fn nonconforming(p: &Params, tat: u64, now: u64, cost: u64) -> Decision {
    let base = tat.max(now);
    // Refused, so base + cost - now > tau, unless the arithmetic reached the end
    // of the clock's range, where waiting cannot help: then "never".
    let retry_ns = match base.checked_add(cost) {
        Some(end) if end != u64::MAX => end - now - p.tau,
        _ => u64::MAX,
    };
    Decision {
        allowed: p.shadow,
        conforming: false,
        burst: p.burst,
        interval_ns: p.t,
        tau_ns: p.tau,
        reset_ns: base - now,
        retry_ns,
    }
}

/// The quota and the shadow flag, readable on every check without a lock and
/// replaceable at run time: a sequence lock over three atomics. Readers retry
/// only while a writer is inside `set`.
#[derive(Debug)]
pub(crate) struct ParamCell {
    seq: AtomicU64,
    t: AtomicU64,
    tau: AtomicU64,
    /// The burst in the low 32 bits, the shadow flag in bit 32.
    burst_shadow: AtomicU64,
    /// The configured rate and period (for [`ParamCell::quota`] only).
    rate: AtomicU64,
    period: AtomicU64,
    writer: Mutex<()>,
}

const SHADOW_BIT: u64 = 1 << 32;

impl ParamCell {
    pub(crate) fn new(quota: Quota, shadow: bool) -> ParamCell {
        ParamCell {
            seq: AtomicU64::new(0),
            t: AtomicU64::new(quota.interval_ns()),
            tau: AtomicU64::new(quota.tau_ns()),
            burst_shadow: AtomicU64::new(pack(quota.burst(), shadow)),
            rate: AtomicU64::new(u64::from(quota.rate().0)),
            period: AtomicU64::new(quota.period_ns()),
            writer: Mutex::default(),
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> Params {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            let t = self.t.load(Ordering::Relaxed);
            let tau = self.tau.load(Ordering::Relaxed);
            let bs = self.burst_shadow.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if before & 1 == 0 && self.seq.load(Ordering::Relaxed) == before {
                return Params {
                    t,
                    tau,
                    burst: bs as u32,
                    shadow: bs & SHADOW_BIT != 0,
                };
            }
            spin_loop();
        }
    }

    pub(crate) fn quota(&self) -> Quota {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            let t = self.t.load(Ordering::Relaxed);
            let bs = self.burst_shadow.load(Ordering::Relaxed);
            let rate = self.rate.load(Ordering::Relaxed);
            let period = self.period.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if before & 1 == 0 && self.seq.load(Ordering::Relaxed) == before {
                return Quota::from_parts(t, bs as u32, rate as u32, period);
            }
            spin_loop();
        }
    }

    pub(crate) fn set_quota(&self, quota: Quota) {
        let _writer = self.writer.lock();
        let shadow = self.burst_shadow.load(Ordering::Relaxed) & SHADOW_BIT != 0;
        self.publish(
            quota.interval_ns(),
            quota.tau_ns(),
            pack(quota.burst(), shadow),
            Some(quota),
        );
    }

    pub(crate) fn set_shadow(&self, shadow: bool) {
        let _writer = self.writer.lock();
        let bs = self.burst_shadow.load(Ordering::Relaxed);
        let bs = if shadow {
            bs | SHADOW_BIT
        } else {
            bs & !SHADOW_BIT
        };
        self.publish(
            self.t.load(Ordering::Relaxed),
            self.tau.load(Ordering::Relaxed),
            bs,
            None,
        );
    }

    /// Called with `writer` held.
    fn publish(&self, t: u64, tau: u64, bs: u64, quota: Option<Quota>) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.t.store(t, Ordering::Relaxed);
        self.tau.store(tau, Ordering::Relaxed);
        self.burst_shadow.store(bs, Ordering::Relaxed);
        if let Some(q) = quota {
            self.rate.store(u64::from(q.rate().0), Ordering::Relaxed);
            self.period.store(q.period_ns(), Ordering::Relaxed);
        }
        self.seq.store(seq + 2, Ordering::Release);
    }
}

fn pack(burst: u32, shadow: bool) -> u64 {
    u64::from(burst) | if shadow { SHADOW_BIT } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admit_exactly_burst_then_one_per_interval() {
        let (t, tau) = (10, 30);
        let mut tat = 0;
        for _ in 0..3 {
            tat = admit(tat, 100, t, tau).unwrap();
        }
        assert_eq!(admit(tat, 100, t, tau), None);
        assert_eq!(admit(tat, 109, t, tau), None);
        assert_eq!(admit(tat, 110, t, tau), Some(140));
    }

    #[test]
    fn a_refusal_at_the_end_of_the_range_says_never() {
        let p = Params {
            t: 1,
            tau: 10,
            burst: 10,
            shadow: false,
        };
        let d = nonconforming(&p, u64::MAX - 1, u64::MAX - 1, 1);
        assert_eq!(d.retry_ns, u64::MAX);
        let d = nonconforming(&p, 100, 50, 1);
        assert_eq!(d.retry_ns, 41);
    }

    #[test]
    fn extremes_refuse_instead_of_wrapping() {
        assert_eq!(admit(0, u64::MAX, 1, 10), None);
        assert_eq!(admit(u64::MAX - 1, u64::MAX - 1, 1, 10), None);
        assert_eq!(admit(u64::MAX - 3, u64::MAX - 3, 1, 10), Some(u64::MAX - 2));
    }

    #[test]
    fn params_round_trip() {
        let q = Quota::per_second(5).unwrap().with_burst(7).unwrap();
        let cell = ParamCell::new(q, false);
        assert_eq!(cell.quota(), q);
        cell.set_shadow(true);
        assert!(cell.load().shadow);
        let q2 = Quota::per_minute(3).unwrap();
        cell.set_quota(q2);
        let p = cell.load();
        assert_eq!(
            (p.t, p.tau, p.burst, p.shadow),
            (20_000_000_000, 60_000_000_000, 3, true)
        );
    }
}
