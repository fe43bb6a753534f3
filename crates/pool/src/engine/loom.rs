//! Models of the engine's protocols under loom: `cargo xtask ci` runs them with
//! `RUSTFLAGS="--cfg prodkit_loom" cargo test -p prodkit-pool --lib --release loom`.
//! loom runs every interleaving (within a preemption bound) and fails a model
//! when an assertion fails or when every thread is blocked (a lost wake-up).

use loom::sync::Arc;
use loom::thread;

use super::{Engine, Idle, Refused};

/// A worker's loop: everything it takes out, until the engine says exit.
fn worker(engine: &Engine<u32>) -> Vec<u32> {
    let mut got = Vec::new();
    loop {
        if let Some(task) = engine.pop() {
            got.push(task);
            continue;
        }
        if engine.idle(0) == Idle::Exit {
            return got;
        }
    }
}

/// A submit that pushes without waiting.
fn push(engine: &Engine<u32>, task: u32) -> Result<(), Refused<u32>> {
    match engine.begin() {
        Some(window) => window.try_push(task),
        None => Err(Refused::Closed(task)),
    }
}

/// A submit that waits for room.
fn push_wait(engine: &Engine<u32>, task: u32) -> Result<(), Refused<u32>> {
    match engine.begin() {
        Some(window) => window.push_wait(task, None),
        None => Err(Refused::Closed(task)),
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// The submit/close handshake: a push racing `close` either lands in the queue
/// and is run by a worker before it exits, or is refused with its task. It is
/// never accepted and then stranded behind the worker's exit, and the worker,
/// asleep or not, always exits.
#[test]
fn loom_a_push_racing_close_is_run_or_refused() {
    model(|| {
        let engine = Arc::new(Engine::new(2));
        let w = {
            let e = Arc::clone(&engine);
            thread::spawn(move || worker(&e))
        };
        let s = {
            let e = Arc::clone(&engine);
            thread::spawn(move || push(&e, 7).map_err(|r| matches!(r, Refused::Closed(7))))
        };
        engine.close();
        let pushed = s.join().unwrap();
        let got = w.join().unwrap();
        match pushed {
            Ok(()) => assert_eq!(got, vec![7], "an accepted task was lost"),
            Err(closed) => {
                assert!(closed, "refused for another reason than closing");
                assert!(got.is_empty(), "a refused task ran");
            }
        }
    });
}

/// Sleeping workers: a push wakes the only worker, asleep on an empty queue or
/// on its way there (no lost wake-up: nothing else would wake it before the
/// task is taken).
#[test]
fn loom_a_push_wakes_a_sleeping_worker() {
    model(|| {
        let engine = Arc::new(Engine::new(1));
        let w = {
            let e = Arc::clone(&engine);
            thread::spawn(move || worker(&e))
        };
        push(&engine, 1).unwrap();
        // Only the woken worker can take it; a lost wake-up spins here forever,
        // which loom reports.
        while engine.len() > 0 {
            thread::yield_now();
        }
        engine.close();
        assert_eq!(w.join().unwrap(), vec![1]);
    });
}

/// The stop protocol: sealing wakes every sleeping worker, and each exits.
#[test]
fn loom_the_seal_stops_every_worker() {
    model(|| {
        let engine = Arc::new(Engine::<u32>::new(1));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let e = Arc::clone(&engine);
                thread::spawn(move || worker(&e))
            })
            .collect();
        engine.close();
        for w in workers {
            assert!(w.join().unwrap().is_empty());
        }
    });
}

/// Blocked submitters: a push into a full queue either gets room from a pop or
/// is sent home by `close` with its task; it never sleeps through either.
#[test]
fn loom_a_blocked_push_gets_room_or_its_task_back() {
    model(|| {
        let engine = Arc::new(Engine::new(1));
        push(&engine, 1).unwrap();
        let s = {
            let e = Arc::clone(&engine);
            thread::spawn(move || push_wait(&e, 2).map_err(|r| matches!(r, Refused::Closed(2))))
        };
        let w = {
            let e = Arc::clone(&engine);
            thread::spawn(move || worker(&e))
        };
        engine.close();
        let pushed = s.join().unwrap();
        let got = w.join().unwrap();
        match pushed {
            Ok(()) => assert_eq!(got, vec![1, 2]),
            Err(closed) => {
                assert!(closed);
                assert_eq!(got, vec![1]);
            }
        }
    });
}

/// `close` sends a submitter blocked on a queue that stays full (no worker
/// makes room) home with its task, so `close` never waits on it forever.
#[test]
fn loom_close_sends_a_blocked_push_home() {
    model(|| {
        let engine = Arc::new(Engine::new(1));
        push(&engine, 1).unwrap();
        let s = {
            let e = Arc::clone(&engine);
            thread::spawn(move || push_wait(&e, 2))
        };
        engine.close();
        assert!(matches!(s.join().unwrap(), Err(Refused::Closed(2))));
        assert_eq!(engine.pop(), Some(1));
    });
}

/// `shutdown_now`'s drain racing a worker: every queued task is taken exactly
/// once, by one or the other.
#[test]
fn loom_drain_and_worker_take_each_task_once() {
    model(|| {
        let engine = Arc::new(Engine::new(2));
        push(&engine, 1).unwrap();
        push(&engine, 2).unwrap();
        let w = {
            let e = Arc::clone(&engine);
            thread::spawn(move || worker(&e))
        };
        engine.close();
        let mut all: Vec<u32> = std::iter::from_fn(|| engine.pop()).collect();
        all.extend(w.join().unwrap());
        all.sort_unstable();
        assert_eq!(all, vec![1, 2]);
    });
}

/// `DropOldest` racing a worker and `close`: each task is run or evicted,
/// exactly once, or refused.
#[test]
fn loom_force_push_racing_a_worker_and_close() {
    model(|| {
        let engine = Arc::new(Engine::new(1));
        push(&engine, 1).unwrap();
        let w = {
            let e = Arc::clone(&engine);
            thread::spawn(move || worker(&e))
        };
        let s = {
            let e = Arc::clone(&engine);
            thread::spawn(move || e.begin().map(|w| w.force_push(2)).ok_or(Refused::Closed(2)))
        };
        engine.close();
        let forced = s.join().unwrap();
        let mut seen = w.join().unwrap();
        match forced {
            Ok(evicted) => seen.extend(evicted),
            Err(Refused::Closed(2)) => seen.push(2),
            Err(other) => panic!("unexpected {other:?}"),
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![1, 2]);
    });
}

/// Two closes racing a push: both return only after the seal, and the push is
/// run or refused.
#[test]
fn loom_two_closes_racing_a_push() {
    model(|| {
        let engine = Arc::new(Engine::new(1));
        let s = {
            let e = Arc::clone(&engine);
            thread::spawn(move || push(&e, 4).is_ok())
        };
        let c = {
            let e = Arc::clone(&engine);
            thread::spawn(move || e.close())
        };
        engine.close();
        c.join().unwrap();
        let pushed = s.join().unwrap();
        let left: Vec<u32> = std::iter::from_fn(|| engine.pop()).collect();
        assert_eq!(left, if pushed { vec![4] } else { vec![] });
        assert_eq!(engine.idle(0), Idle::Exit, "sealed and empty");
    });
}
