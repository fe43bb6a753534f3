//! The graceful shutdown coordinator: ordered phases, each with its own
//! deadline, and a report of what each did and which overran.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

type Outcome = Result<(), String>;
type Boxed = Pin<Box<dyn Future<Output = Outcome> + Send>>;

enum Action {
    Blocking(Box<dyn FnOnce(Deadline) -> Outcome + Send>),
    Async(Box<dyn FnOnce(Deadline) -> Boxed + Send>),
}

struct Phase {
    name: String,
    deadline: Duration,
    action: Action,
}

/// The moment a phase should be done by, on the coordinator's clock: a
/// phase passes it on to what it stops (a server's graceful drain, a pool's
/// close) and checks it between steps.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::Shutdown;
///
/// let report = Shutdown::new()
///     .phase("flush writers", Duration::from_secs(5), |deadline| {
///         assert!(!deadline.expired());
///         assert!(deadline.remaining() <= Duration::from_secs(5));
///         Ok::<(), std::io::Error>(())
///     })
///     .run();
/// assert!(report.is_clean());
/// ```
#[derive(Clone, Debug)]
pub struct Deadline {
    /// `None`: further than a clock reading holds (never, in effect).
    at: Option<quanta::Instant>,
    clock: quanta::Clock,
}

impl Deadline {
    /// The time left, zero once the deadline has passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// Shutdown::new()
    ///     .phase("stop workers", Duration::from_secs(1), |d| {
    ///         assert!(d.remaining() > Duration::ZERO);
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .run();
    /// ```
    pub fn remaining(&self) -> Duration {
        match self.at {
            Some(at) => at.saturating_duration_since(self.clock.now()),
            None => Duration::MAX,
        }
    }

    /// Whether the deadline has passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// Shutdown::new()
    ///     .phase("readiness off", Duration::ZERO, |d| {
    ///         assert!(d.expired());
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .run();
    /// ```
    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }
}

/// How a phase ended.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::{PhaseOutcome, Shutdown};
///
/// let report = Shutdown::new()
///     .phase("close pools", Duration::from_secs(1), |_| Err("connection reset"))
///     .run();
/// assert_eq!(report.phases()[0].outcome, PhaseOutcome::Failed("connection reset".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhaseOutcome {
    /// It returned `Ok`.
    Done,
    /// It returned an error (its text).
    Failed(String),
    /// It panicked (the panic's message); the phases after it still ran.
    Panicked(String),
}

/// What one phase did.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::Shutdown;
///
/// let report = Shutdown::new()
///     .phase("drain http", Duration::from_secs(1), |_| Ok::<(), std::io::Error>(()))
///     .run();
/// let phase = &report.phases()[0];
/// assert_eq!(phase.name, "drain http");
/// assert!(!phase.overran());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PhaseReport {
    /// The phase's name.
    pub name: String,
    /// Its deadline, from its start.
    pub deadline: Duration,
    /// How long it took.
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: PhaseOutcome,
}

impl PhaseReport {
    /// Whether it took longer than its deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// let report = Shutdown::new()
    ///     .phase("slow", Duration::from_millis(1), |_| {
    ///         std::thread::sleep(Duration::from_millis(20));
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .run();
    /// assert!(report.phases()[0].overran());
    /// ```
    pub fn overran(&self) -> bool {
        self.elapsed > self.deadline
    }
}

/// What a shutdown did: each phase in the order run.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::{quanta::Clock, Shutdown};
///
/// let (clock, mock) = Clock::mock();
/// let report = Shutdown::new()
///     .clock(clock)
///     .phase("drain http", Duration::from_secs(1), move |_| {
///         mock.increment(Duration::from_secs(2));
///         Ok::<(), std::io::Error>(())
///     })
///     .phase("flush writers", Duration::from_secs(1), |_| Err("disk full"))
///     .run();
/// assert!(!report.is_clean());
/// assert_eq!(
///     report.to_string(),
///     "drain http: done in 2s of 1s, overran\nflush writers: failed (disk full) in 0ns of 1s\n"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    phases: Vec<PhaseReport>,
}

impl ShutdownReport {
    /// Every phase, in the order run.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// let report = Shutdown::new()
    ///     .phase("a", Duration::from_secs(1), |_| Ok::<(), std::io::Error>(()))
    ///     .phase("b", Duration::from_secs(1), |_| Ok::<(), std::io::Error>(()))
    ///     .run();
    /// let names: Vec<_> = report.phases().iter().map(|p| p.name.as_str()).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// ```
    pub fn phases(&self) -> &[PhaseReport] {
        &self.phases
    }

    /// The phases that took longer than their deadlines.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// let report = Shutdown::new()
    ///     .phase("quick", Duration::from_secs(1), |_| Ok::<(), std::io::Error>(()))
    ///     .run();
    /// assert!(report.overran().is_empty());
    /// ```
    pub fn overran(&self) -> Vec<&PhaseReport> {
        self.phases.iter().filter(|p| p.overran()).collect()
    }

    /// Whether every phase was done within its deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// assert!(Shutdown::new().run().is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.phases
            .iter()
            .all(|p| p.outcome == PhaseOutcome::Done && !p.overran())
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.phases {
            let how = match &p.outcome {
                PhaseOutcome::Done => "done".to_string(),
                PhaseOutcome::Failed(e) => format!("failed ({e})"),
                PhaseOutcome::Panicked(e) => format!("panicked ({e})"),
            };
            let over = if p.overran() { ", overran" } else { "" };
            writeln!(
                f,
                "{}: {how} in {:?} of {:?}{over}",
                p.name, p.elapsed, p.deadline
            )?;
        }
        Ok(())
    }
}

/// Ordered shutdown phases, each with its own deadline: readiness off, stop
/// accepting, drain HTTP, stop workers, flush writers, close pools, or
/// whatever a service needs. Each phase runs when the one before it has
/// ended, gets a [`Deadline`] to pass on and to check, and is reported with
/// how long it took and how it ended. A phase that fails, overruns or
/// panics does not stop the ones after it: the pools still close when the
/// drain went wrong.
///
/// The deadline is the phase's to honour (a phase is the caller's code and
/// is not killed); the report says which phase did not.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::Shutdown;
///
/// let report = Shutdown::new()
///     .phase("readiness off", Duration::from_millis(100), |_| Ok::<(), std::io::Error>(()))
///     .phase("drain http", Duration::from_secs(10), |deadline| {
///         // server.graceful_shutdown(deadline.remaining()) ...
///         Ok::<(), std::io::Error>(())
///     })
///     .phase("close pools", Duration::from_secs(5), |_| Ok::<(), std::io::Error>(()))
///     .run();
/// assert!(report.is_clean(), "{report}");
/// ```
#[derive(Default)]
pub struct Shutdown {
    phases: Vec<Phase>,
    clock: Option<quanta::Clock>,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.phases.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("Shutdown").field("phases", &names).finish()
    }
}

impl Shutdown {
    /// A shutdown with no phase yet.
    ///
    /// ```
    /// use prodkit_netcfg::Shutdown;
    ///
    /// assert!(Shutdown::new().run().phases().is_empty());
    /// ```
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// The clock deadlines and times are read from (a `quanta` mock in
    /// tests).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// let (clock, mock) = prodkit_netcfg::quanta::Clock::mock();
    /// let report = Shutdown::new()
    ///     .clock(clock)
    ///     .phase("drain", Duration::from_secs(1), move |_| {
    ///         mock.increment(Duration::from_secs(2));
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .run();
    /// assert_eq!(report.phases()[0].elapsed, Duration::from_secs(2));
    /// assert!(report.phases()[0].overran());
    /// ```
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Adds a blocking phase, run after the ones added before it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// let report = Shutdown::new()
    ///     .phase("stop workers", Duration::from_secs(2), |_| Ok::<(), std::io::Error>(()))
    ///     .run();
    /// assert_eq!(report.phases().len(), 1);
    /// ```
    pub fn phase<E: fmt::Display>(
        mut self,
        name: impl Into<String>,
        deadline: Duration,
        run: impl FnOnce(Deadline) -> Result<(), E> + Send + 'static,
    ) -> Self {
        self.phases.push(Phase {
            name: name.into(),
            deadline,
            action: Action::Blocking(Box::new(move |d| run(d).map_err(|e| e.to_string()))),
        });
        self
    }

    /// Adds a phase that is a future (a server's graceful drain, say), run
    /// after the ones added before it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// let report = Shutdown::new()
    ///     .phase_async("drain http", Duration::from_secs(1), |_| async { Ok::<(), std::io::Error>(()) })
    ///     .run();
    /// assert!(report.is_clean());
    /// ```
    pub fn phase_async<E, F>(
        mut self,
        name: impl Into<String>,
        deadline: Duration,
        run: impl FnOnce(Deadline) -> F + Send + 'static,
    ) -> Self
    where
        E: fmt::Display,
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.phases.push(Phase {
            name: name.into(),
            deadline,
            action: Action::Async(Box::new(move |d| {
                let f = run(d);
                Box::pin(async move { f.await.map_err(|e| e.to_string()) })
            })),
        });
        self
    }

    /// Runs every phase in order on this thread and reports. A phase that
    /// is a future is driven here, the thread parked while it waits: call
    /// [`run_async`](Self::run_async) from async code instead.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// let report = Shutdown::new()
    ///     .phase("a", Duration::from_secs(1), |_| Ok::<(), std::io::Error>(()))
    ///     .run();
    /// assert!(report.is_clean());
    /// ```
    pub fn run(self) -> ShutdownReport {
        block_on(self.run_async())
    }

    /// Runs every phase in order and reports, as a future: phases that are
    /// futures are awaited; blocking phases run inline on the task's thread
    /// (keep them short, or make them futures).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::Shutdown;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let report = Shutdown::new()
    ///     .phase_async("drain http", Duration::from_secs(1), |_| async { Ok::<(), std::io::Error>(()) })
    ///     .run_async()
    ///     .await;
    /// assert!(report.is_clean());
    /// # });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn run_async(self) -> ShutdownReport {
        let clock = self.clock.unwrap_or_default();
        let mut phases = Vec::with_capacity(self.phases.len());
        for phase in self.phases {
            let start = clock.now();
            let deadline = Deadline {
                at: start.checked_add(phase.deadline),
                clock: clock.clone(),
            };
            let outcome = match phase.action {
                Action::Blocking(run) => caught(catch_unwind(AssertUnwindSafe(|| run(deadline)))),
                Action::Async(run) => match catch_unwind(AssertUnwindSafe(|| run(deadline))) {
                    Ok(f) => Caught(f).await,
                    Err(panic) => caught(Err(panic)),
                },
            };
            phases.push(report(
                phase.name,
                phase.deadline,
                clock.now() - start,
                outcome,
            ));
        }
        ShutdownReport { phases }
    }
}

fn report(
    name: String,
    deadline: Duration,
    elapsed: Duration,
    outcome: PhaseOutcome,
) -> PhaseReport {
    PhaseReport {
        name,
        deadline,
        elapsed,
        outcome,
    }
}

fn caught(result: std::thread::Result<Outcome>) -> PhaseOutcome {
    match result {
        Ok(Ok(())) => PhaseOutcome::Done,
        Ok(Err(e)) => PhaseOutcome::Failed(e),
        Err(panic) => PhaseOutcome::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with no message".to_string()),
        ),
    }
}

/// A phase's future whose panics are caught and reported.
struct Caught(Boxed);

impl Future for Caught {
    type Output = PhaseOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PhaseOutcome> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(outcome)) => Poll::Ready(caught(Ok(outcome))),
            Err(panic) => Poll::Ready(caught(Err(panic))),
        }
    }
}

/// Wakes a parked thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `f` on this thread, parked while it waits.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
