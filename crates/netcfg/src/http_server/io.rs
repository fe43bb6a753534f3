//! A connection's deadlines, enforced where hyper reads and writes.
//!
//! hyper reads a connection only when it needs bytes (the next head, or
//! body the handler asked for) and writes only when it has bytes, so each
//! deadline is checked exactly where the wait happens: a read or write
//! that is not ready arms a timer for the deadline of the phase the
//! connection is in, and fails with [`io::ErrorKind::TimedOut`] when it
//! fires. hyper then closes the connection (and hands the error to a
//! handler reading the body).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::Limit;
use crate::ServerConfig;

/// Where a connection is in the life of its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepted, no byte yet: `first_byte_timeout` from the accept.
    FirstByte,
    /// Part of a head has arrived: `header_read_timeout` from its first byte.
    Head,
    /// The handler runs and may read the body: `request_read_timeout`
    /// from the request's first byte, until the body is read.
    Body,
    /// The handler has answered: the body, if still unread, keeps its
    /// deadline (else hyper reads only to notice a close); writes have
    /// `response_write_timeout`.
    Responding,
    /// hyper has taken the whole response; its last bytes may still wait
    /// to be written (a large body handed over at once, a slow reader).
    /// Idle starts at the next completed flush.
    Draining,
    /// The response is written, no next request yet: `idle_timeout`.
    Idle,
}

impl Phase {
    fn limit(self) -> Limit {
        match self {
            Phase::FirstByte => Limit::FirstByte,
            Phase::Head => Limit::Header,
            Phase::Body | Phase::Responding | Phase::Draining => Limit::RequestRead,
            Phase::Idle => Limit::Idle,
        }
    }
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// When the current request's first byte arrived.
    request_start: Instant,
    /// Reads must complete by this in the phases before a request's head
    /// is complete and after its response is written (during a request,
    /// see `body_wanted`).
    read_deadline: Option<Instant>,
    /// Writes must complete by this; armed when the handler answers, or
    /// at the first write that has to wait if nothing armed it.
    write_deadline: Option<Instant>,
    /// The limit that closed the connection, if one did.
    expired: Option<Limit>,
    /// Whether the handler has read the whole request body.
    body_done: bool,
    /// Whether the handler has dropped the body (read or not): nobody
    /// waits for it any more.
    body_released: bool,
    /// Since when the handler waits for body bytes that have not come, if
    /// it does. Only waiting counts against `request_read_timeout`: a
    /// client is not late while the handler does something else (or has
    /// not asked for the body yet, as with `Expect: 100-continue`).
    body_waiting_since: Option<Instant>,
    /// The time the handler has waited for this body so far.
    body_waited: Duration,
    /// Whether the response has been flushed whole; the connection turns
    /// idle once the body is done with too.
    response_flushed: bool,
    /// When the next request's first byte came, if it came before the
    /// response to this one was written (pipelining).
    next_head: Option<Instant>,
    /// The task of a read that waits. A new phase wakes it, so that the
    /// read arms the new phase's timer (hyper does not read again on its
    /// own after writing a response).
    reader: Option<Waker>,
}

impl State {
    fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    /// The handler starts (`true`) or stops waiting for body bytes.
    fn body_wanted(&mut self, wanted: bool) {
        match (wanted, self.body_waiting_since) {
            (true, None) => {
                self.body_waiting_since = Some(Instant::now());
                // hyper's read may be waiting without the body's timer.
                self.wake_reader();
            }
            (false, Some(since)) => {
                self.body_waiting_since = None;
                self.body_waited += since.elapsed();
            }
            _ => {}
        }
    }
}

/// The limits of one connection, shared by its I/O and its service.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    first_byte: Duration,
    header: Duration,
    request: Duration,
    write: Duration,
    idle: Duration,
}

impl Shared {
    /// A connection accepted now.
    pub(crate) fn new(config: &ServerConfig) -> Arc<Shared> {
        let now = Instant::now();
        Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::FirstByte,
                request_start: now,
                read_deadline: Some(later(now, config.first_byte_timeout)),
                write_deadline: None,
                expired: None,
                body_done: false,
                body_released: false,
                body_waiting_since: None,
                body_waited: Duration::ZERO,
                response_flushed: false,
                next_head: None,
                reader: None,
            }),
            first_byte: config.first_byte_timeout,
            header: config.header_read_timeout,
            request: config.request_read_timeout,
            write: config.response_write_timeout,
            idle: config.idle_timeout,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields, each update leaves it whole: a
        // panic elsewhere while it was held does not make it wrong.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: the first of a request starts its head deadline.
    fn bytes_read(&self) {
        let mut s = self.state();
        match s.phase {
            Phase::FirstByte | Phase::Idle => {
                let now = Instant::now();
                s.phase = Phase::Head;
                s.request_start = now;
                s.read_deadline = Some(later(now, self.header));
                s.write_deadline = None;
            }
            // Once the body is read, bytes are the next request's, early.
            Phase::Body | Phase::Responding | Phase::Draining if s.body_done => {
                s.next_head.get_or_insert_with(Instant::now);
            }
            _ => {}
        }
    }

    /// The head is complete and the handler is called; `empty` when the
    /// request has no body.
    pub(crate) fn request_started(&self, empty: bool) {
        let mut s = self.state();
        if s.phase != Phase::Head {
            // A pipelined head hyper had already buffered: this request
            // started with its own first byte, not with the one before.
            s.request_start = s.next_head.unwrap_or_else(Instant::now);
            s.write_deadline = None;
        }
        s.next_head = None;
        s.phase = Phase::Body;
        s.body_done = empty;
        s.body_released = false;
        s.body_waiting_since = None;
        s.body_waited = Duration::ZERO;
        s.response_flushed = false;
        // The body's deadline applies while the handler waits for it (see
        // `read_wait`); otherwise hyper reads only to notice a close.
        s.read_deadline = None;
        s.wake_reader();
    }

    /// The handler waits for body bytes (`true`), or got what it waited
    /// for (`false`).
    pub(crate) fn body_wanted(&self, wanted: bool) {
        let mut s = self.state();
        s.body_wanted(wanted);
    }

    /// The handler has read the whole body.
    pub(crate) fn body_finished(&self) {
        let mut s = self.state();
        s.body_wanted(false);
        s.body_done = true;
        self.maybe_idle(&mut s);
    }

    /// The handler has dropped the body: nobody waits for it any more
    /// (hyper reads what is left, or closes).
    pub(crate) fn body_released(&self) {
        let mut s = self.state();
        s.body_wanted(false);
        s.body_released = true;
        self.maybe_idle(&mut s);
    }

    /// The handler has answered; the response is being written. The
    /// body's deadline stays while the body is unread (an echo reads it as
    /// it answers). The response's deadline, returned.
    pub(crate) fn handler_done(&self) -> Instant {
        let mut s = self.state();
        s.phase = Phase::Responding;
        let deadline = later(Instant::now(), self.write);
        s.write_deadline = Some(deadline);
        s.wake_reader();
        deadline
    }

    /// hyper has taken the response's last byte (or dropped the response).
    pub(crate) fn response_done(&self) {
        let mut s = self.state();
        if s.phase == Phase::Responding {
            s.phase = Phase::Draining;
        }
    }

    /// Every byte handed to the stream is written.
    fn flushed(&self) {
        let mut s = self.state();
        if s.phase == Phase::Draining {
            s.response_flushed = true;
            self.maybe_idle(&mut s);
        }
    }

    /// A response written whole, and a body read or let go of, leave the
    /// connection idle, or reading the next head if its first bytes came
    /// early. (A body read after the answer, by a task the handler
    /// started, keeps its own deadline until then.)
    fn maybe_idle(&self, s: &mut State) {
        if s.phase == Phase::Draining && s.response_flushed && (s.body_done || s.body_released) {
            match s.next_head.take() {
                Some(first) => {
                    s.phase = Phase::Head;
                    s.request_start = first;
                    s.read_deadline = Some(later(first, self.header));
                }
                None => {
                    s.phase = Phase::Idle;
                    s.read_deadline = Some(later(Instant::now(), self.idle));
                }
            }
            s.wake_reader();
        }
    }

    /// The limit that closed the connection, if one did.
    pub(crate) fn expired(&self) -> Option<Limit> {
        self.state().expired
    }

    /// How long `limit` allows.
    pub(crate) fn allowed(&self, limit: Limit) -> Duration {
        match limit {
            Limit::FirstByte => self.first_byte,
            Limit::Header => self.header,
            Limit::RequestRead => self.request,
            Limit::ResponseWrite => self.write,
            Limit::Idle => self.idle,
            // Enforced around the handshake, before the connection exists.
            Limit::TlsHandshake => Duration::ZERO,
        }
    }

    /// A read must wait: its deadline, and the limit it enforces.
    fn read_wait(&self, cx: &Context<'_>) -> Option<(Instant, Limit)> {
        let mut s = self.state();
        match &s.reader {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.reader = Some(cx.waker().clone()),
        }
        let deadline = match s.phase {
            // What is left of the body's waiting budget, while the handler
            // waits for it.
            Phase::Body | Phase::Responding | Phase::Draining => match s.body_waiting_since {
                Some(since) if !s.body_done => {
                    Some(later(since, self.request.saturating_sub(s.body_waited)))
                }
                _ => None,
            },
            Phase::FirstByte | Phase::Head | Phase::Idle => s.read_deadline,
        };
        deadline.map(|d| (d, s.phase.limit()))
    }

    /// A write must wait: its deadline, armed now if nothing armed it.
    fn write_wait(&self) -> Instant {
        let mut s = self.state();
        *s.write_deadline
            .get_or_insert_with(|| later(Instant::now(), self.write))
    }

    /// Records that `limit` closed the connection; the error to return.
    pub(crate) fn expire(&self, limit: Limit) -> io::Error {
        self.state().expired.get_or_insert(limit);
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{limit} ({}) passed", crate::show(self.allowed(limit))),
        )
    }
}

/// `d` after `from`, or as good as never when that is past what an
/// `Instant` holds (validation refuses such limits; this is the backstop).
pub(crate) fn later(from: Instant, d: Duration) -> Instant {
    from.checked_add(d)
        .unwrap_or_else(|| from + Duration::from_secs(30 * 365 * 86_400))
}

/// A stream whose reads and writes fail once their deadline passes.
pub(crate) struct Guarded<T> {
    io: T,
    shared: Arc<Shared>,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
}

impl<T> Guarded<T> {
    pub(crate) fn new(io: T, shared: Arc<Shared>) -> Guarded<T> {
        let far = Instant::now() + Duration::from_secs(86_400);
        Guarded {
            io,
            shared,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_timer: Box::pin(tokio::time::sleep_until(far)),
        }
    }
}

/// Waits on `timer` for `deadline`: ready (with the error) once it passed.
fn wait(
    timer: &mut Pin<Box<Sleep>>,
    deadline: Instant,
    cx: &mut Context<'_>,
    shared: &Shared,
    limit: Limit,
) -> Poll<io::Error> {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    match timer.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(shared.expire(limit)),
        Poll::Pending => Poll::Pending,
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.shared.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.shared.read_wait(cx) {
                None => Poll::Pending,
                Some((deadline, limit)) => {
                    wait(&mut this.read_timer, deadline, cx, &this.shared, limit).map(Err)
                }
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
    /// `op` on the stream, failing once the write deadline passed.
    fn write_op<R>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match op(Pin::new(&mut self.io), cx) {
            Poll::Pending => {
                let deadline = self.shared.write_wait();
                wait(
                    &mut self.write_timer,
                    deadline,
                    cx,
                    &self.shared,
                    Limit::ResponseWrite,
                )
                .map(Err)
            }
            ready => ready,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_op(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_op(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = this.write_op(cx, |io, cx| io.poll_flush(cx));
        if let Poll::Ready(Ok(())) = flushed {
            this.shared.flushed();
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().write_op(cx, |io, cx| io.poll_shutdown(cx))
    }
}
