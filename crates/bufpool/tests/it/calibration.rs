//! Calibration: the size asked for fits what 95 % of the returned buffers
//! held, and every thread's returns count, short-lived ones included.

use std::sync::Arc;
use std::time::Duration;

use prodkit_bufpool::BufPool;

use crate::watchdog;

#[test]
fn the_calibrated_size_fits_what_most_buffers_held() {
    let pool = BufPool::default();
    for _ in 0..1_000 {
        let mut buf = pool.get(0);
        buf.extend_from_slice(&[1; 5000]);
    }
    assert!(pool.calibrated_size() >= 5000, "{}", pool.calibrated_size());
    // A few much larger ones change nothing; many do. Sizes drawn at
    // random (a fixed seed): the pool samples one return in 64.
    let calibrate = |large_percent: u64| {
        let pool = BufPool::default();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = if state % 100 < large_percent {
                100_000
            } else {
                900
            };
            let mut buf = pool.get(0);
            buf.extend(std::iter::repeat_n(1u8, len));
        }
        pool.calibrated_size()
    };
    assert_eq!(calibrate(1), 1024);
    assert_eq!(calibrate(20), 128 << 10);
}

#[test]
fn short_lived_threads_feed_the_calibration() {
    watchdog(Duration::from_secs(60), || {
        let pool = Arc::new(BufPool::default());
        for _ in 0..50 {
            let p = Arc::clone(&pool);
            std::thread::spawn(move || {
                // Fewer returns than a thread adds its counts at.
                for _ in 0..10 {
                    let mut buf = p.get(0);
                    buf.extend_from_slice(&[1; 20_000]);
                }
            })
            .join()
            .unwrap();
        }
        assert!(
            pool.calibrated_size() >= 20_000,
            "{}",
            pool.calibrated_size()
        );
    });
}

#[test]
fn lengths_above_the_largest_class_calibrate_to_it() {
    let pool = BufPool::new(prodkit_bufpool::PoolConfig {
        max_class: 64 << 10,
        max_retained_bytes: 1 << 20,
        ..prodkit_bufpool::PoolConfig::default()
    })
    .unwrap();
    for _ in 0..200 {
        let mut buf = pool.get(0);
        buf.extend(std::iter::repeat_n(1u8, 200_000));
    }
    assert_eq!(pool.calibrated_size(), 64 << 10);
}
