//! Request and response bodies, as every listener and the gateway see them: the one
//! response body type, and a request body read whole under a limit.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Body;

/// The response body type of every gateway and admin response: bytes that are all there (a
/// component's whole response, a JSON error) or streamed by the host (server-sent events),
/// and never fail.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client did not send the whole body in time.
    #[error("the request body did not arrive within {} s", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The connection failed while the body was read.
    #[error("reading the request body failed: {0}")]
    Read(Box<dyn std::error::Error + Send + Sync>),
}

/// How much of a body past its limit is still read (and thrown away) before the 413.
///
/// A client sends its whole body before it reads the answer; a connection closed with its
/// upload unread is reset by the kernel, and the client may lose the 413 with it. So up to
/// this much more is read, within the body's deadline, and only a larger body is cut off.
pub const DRAIN_LIMIT: usize = 8 << 20;

/// Why [`read_body`] has no body.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body is larger than its limit.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Reading the body failed (it timed out, or the connection failed).
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// Reads `body` whole, if it is at most `limit` bytes. A larger one is read on and dropped,
/// up to [`DRAIN_LIMIT`] more bytes, before [`ReadError::TooLarge`] is answered.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    let (mut read, mut seen) = (bytes::BytesMut::new(), 0usize);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = match frame {
            Ok(frame) => frame,
            // Past the limit, the 413 says more than the failure of the rest.
            Err(_) if seen > limit => break,
            Err(e) => return Err(ReadError::Failed(e.into())),
        };
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            read.extend_from_slice(&data);
        } else if seen - limit > DRAIN_LIMIT {
            break;
        } else {
            read = bytes::BytesMut::new();
        }
    }
    if seen > limit { Err(ReadError::TooLarge(limit)) } else { Ok(read.freeze()) }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use hyper::body::Frame;

    use super::*;

    /// A body of `left` chunks of `size` bytes, counting the chunks read.
    struct Chunks {
        left: usize,
        size: usize,
        read: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            self.read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; self.size])))))
        }
    }

    /// Reads `chunks` chunks of 64 KiB with a limit of 1 MiB; answers the result and how many
    /// chunks were read.
    async fn read(chunks: usize) -> (Result<Bytes, ReadError>, usize) {
        let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let body = Chunks { left: chunks, size: 64 << 10, read: read.clone() };
        let result = read_body(body, 1 << 20).await;
        (result, read.load(std::sync::atomic::Ordering::Relaxed))
    }

    #[tokio::test]
    async fn a_body_over_its_limit_is_read_to_its_end_before_the_refusal() {
        let (whole, _) = read(16).await;
        assert_eq!(whole.expect("1 MiB is within the limit").len(), 1 << 20);
        // 2 MiB: the client is done sending when it is refused.
        let (over, chunks) = read(32).await;
        assert!(matches!(over, Err(ReadError::TooLarge(limit)) if limit == 1 << 20), "{over:?}");
        assert_eq!(chunks, 32, "the rest was read and dropped");
        // Far over: cut off once DRAIN_LIMIT more was read.
        let (cut, chunks) = read(10_000).await;
        assert!(matches!(cut, Err(ReadError::TooLarge(_))));
        assert_eq!(chunks * (64 << 10), (1 << 20) + DRAIN_LIMIT + (64 << 10));
    }
}
