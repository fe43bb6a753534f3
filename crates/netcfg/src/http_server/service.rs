//! The handler's side of a connection: its deadline, and the marks the
//! connection's deadlines move on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper::{Request, Response, StatusCode};

use super::io::Shared;

/// The handler of one connection, under `handler_timeout`.
pub(crate) struct Guard<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) handler_timeout: Duration,
}

impl<S, B> Service<Request<Incoming>> for Guard<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Body + Unpin,
{
    type Response = Response<ResponseBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.shared.request_started();
        let handler = self.inner.call(req);
        let shared = Arc::clone(&self.shared);
        let limit = self.handler_timeout;
        Box::pin(async move {
            let answer = tokio::time::timeout(limit, handler).await;
            shared.handler_done();
            let done = Done(shared);
            match answer {
                Ok(Ok(response)) => Ok(response.map(|body| ResponseBody {
                    inner: Some(body),
                    _done: done,
                })),
                Ok(Err(e)) => Err(e),
                Err(_elapsed) => {
                    let mut response = Response::new(ResponseBody {
                        inner: None,
                        _done: done,
                    });
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    Ok(response)
                }
            }
        })
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
/// It is what hyper writes; handlers return their own body type.
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
    _done: Done,
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("timed_out", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

impl<B: Body + Unpin> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match &mut self.get_mut().inner {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
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
