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
    // 5 % of much larger ones change nothing; 10 % do.
    let mixed = BufPool::default();
    for i in 0..1_000 {
        let mut buf = mixed.get(0);
        let len = if i % 20 == 0 { 100_000 } else { 900 };
        buf.extend(std::iter::repeat_n(1u8, len));
    }
    assert_eq!(mixed.calibrated_size(), 1024);
    let mixed = BufPool::default();
    for i in 0..1_000 {
        let mut buf = mixed.get(0);
        let len = if i % 10 == 0 { 100_000 } else { 900 };
        buf.extend(std::iter::repeat_n(1u8, len));
    }
    assert_eq!(mixed.calibrated_size(), 128 << 10);
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
