//! The handler's side of a connection: its deadline, the request body it
//! reads, the response it returns, and the marks the connection's
//! deadlines move on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper::{Request, Response, StatusCode};
use tokio::time::{Instant, Sleep};

use super::Limit;
use super::io::Shared;

/// An error of a response body, boxed (the handler's, or the write
/// deadline's).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The handler of one connection, under `handler_timeout`.
pub(crate) struct Guard<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) handler_timeout: Duration,
}

impl<S, B> Service<Request<Incoming>> for Guard<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let empty = req.body().is_end_stream();
        self.shared.request_started(empty);
        let body_shared = Arc::clone(&self.shared);
        let handler = self.inner.call(req.map(|inner| RequestBody {
            inner,
            shared: body_shared,
            finished: empty,
        }));
        let shared = Arc::clone(&self.shared);
        let limit = self.handler_timeout;
        Box::pin(async move {
            let answer = tokio::time::timeout(limit, handler).await;
            let deadline = shared.handler_done();
            let body = |inner| ResponseBody {
                inner,
                deadline,
                timer: None,
                done: Done(shared),
            };
            match answer {
                Ok(Ok(response)) => Ok(response.map(|b| body(Some(b)))),
                Ok(Err(e)) => Err(e),
                Err(_elapsed) => {
                    let mut response = Response::new(body(None));
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    Ok(response)
                }
            }
        })
    }
}

/// The body of a request served by [`HttpServer`](super::HttpServer):
/// hyper's, read under `request_read_timeout` (a read that waits past it
/// fails). Once it is read to its end, the connection's read deadline is
/// lifted: the handler may take its own time.
///
/// ```
/// use http_body_util::BodyExt;
/// use hyper::Request;
/// use prodkit_netcfg::RequestBody;
///
/// async fn length(req: Request<RequestBody>) -> Result<usize, hyper::Error> {
///     Ok(req.into_body().collect().await?.to_bytes().len())
/// }
/// # let _ = length;
/// ```
pub struct RequestBody {
    inner: Incoming,
    shared: Arc<Shared>,
    finished: bool,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("inner", &self.inner)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // Nobody waits for the body any more.
        self.shared.body_released();
    }
}

impl RequestBody {
    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.shared.body_finished();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.finish(),
            Poll::Ready(_) => this.shared.body_wanted(false),
            Poll::Pending if !this.finished => this.shared.body_wanted(true),
            Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Marks the response written when hyper drops its body: hyper drops it
/// after taking the last frame (or when the connection ends).
struct Done(Arc<Shared>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.response_done();
    }
}

/// The body of a response served by [`HttpServer`](super::HttpServer):
/// the handler's body, or none when the handler ran out of time (503).
/// It ends in an error, and the connection with it, when it is not all
/// handed over within `response_write_timeout` of the handler's answer (a
/// stream that stalls or runs too long). It is what hyper writes;
/// handlers return their own body type.
///
/// ```
/// use http_body_util::Full;
/// use hyper::body::{Body, Bytes, SizeHint};
/// use prodkit_netcfg::ResponseBody;
///
/// fn announced(body: &ResponseBody<Full<Bytes>>) -> SizeHint {
///     body.size_hint()
/// }
/// # let _ = announced;
/// ```
pub struct ResponseBody<B> {
    inner: Option<B>,
    deadline: Instant,
    /// Armed only when the handler's body makes us wait.
    timer: Option<Pin<Box<Sleep>>>,
    done: Done,
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("timed_out", &self.inner.is_none())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B> {
    fn expired(&mut self) -> Poll<Option<Result<Frame<B::Data>, BoxError>>>
    where
        B: Body,
    {
        self.inner = None;
        Poll::Ready(Some(Err(self.done.0.expire(Limit::ResponseWrite).into())))
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let this = self.get_mut();
        let Some(body) = &mut this.inner else {
            return Poll::Ready(None);
        };
        if Instant::now() >= this.deadline {
            return this.expired();
        }
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => this.expired(),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
