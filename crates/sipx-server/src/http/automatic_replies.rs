//! Problem documents for the requests hyper answers by itself.
//!
//! A request hyper cannot parse (a malformed request line or header field, a URI or header
//! section over its limits) never reaches the API's handlers: hyper writes a bare `400`, `414`
//! or `431` with an empty body and closes the connection. Every error of the API is an RFC 9457
//! problem document, these included, so this stream wrapper recognises such an automatic reply
//! as it is written and writes a problem document in its place. hyper offers no hook for it.
//!
//! The recognition cannot catch a reply of the API's own: its handlers answer these statuses
//! only through `ApiError`, always with a body, and an automatic reply is one buffer holding
//! only a head with `content-length: 0`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use sipx_api::problem::ApiError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's stream, with hyper's automatic error replies turned into problem documents.
pub(crate) struct ProblemReplies<S> {
    io: S,
    /// A replacement accepted from hyper (as the reply it stands for) and not all written yet:
    /// the rest, and how much of it has gone. Written before anything else, and by a flush
    /// or a shutdown, like a write buffer's contents.
    replacing: Option<(Vec<u8>, usize)>,
}

impl<S> ProblemReplies<S> {
    pub(crate) fn new(io: S) -> Self {
        ProblemReplies {
            io,
            replacing: None,
        }
    }
}

/// The problem document to send instead of `head`, when `head` is one of hyper's automatic
/// replies: the same head (status, date) with a body and its type, a request id like every
/// answer of the API, and the connection's close said (hyper closes it after such a reply).
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let status = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let error = match status {
        b"400" => ApiError::BadRequest(
            "the request is not well-formed HTTP/1.1 (request line or header fields)".to_owned(),
        ),
        b"414" => ApiError::UriTooLong("the request's URI is too long".to_owned()),
        // hyper says the same of a request line longer than all it reads.
        b"431" => ApiError::HeadersTooLarge(
            "the request's head (request line and header fields) is too large, or has too many fields"
                .to_owned(),
        ),
        _ => return None,
    };
    const EMPTY: &[u8] = b"\r\ncontent-length: 0\r\n";
    let end = head.len().checked_sub(4)?;
    // Exactly one head, ending the buffer: nothing after it, no second head inside.
    if head.get(end..) != Some(b"\r\n\r\n".as_slice()) || find(head, b"\r\n\r\n") != Some(end) {
        return None;
    }
    let at = find(head, EMPTY)?;
    let body = serde_json::to_vec(&error.to_problem()).ok()?;
    let request_id = ulid::Ulid::new();
    let status = String::from_utf8_lossy(status).into_owned();
    // Beside the router's per-route counts, which never see these requests.
    metrics::counter!("sipx_http_unparsable_requests_total", "status" => status.clone())
        .increment(1);
    tracing::info!(
        %status,
        %request_id,
        "a request that is not HTTP/1.1 hyper can parse was answered with a problem"
    );
    let mut reply = Vec::with_capacity(head.len() + body.len() + 128);
    reply.extend_from_slice(&head[..at]);
    reply.extend_from_slice(b"\r\ncontent-type: application/problem+json");
    reply.extend_from_slice(format!("\r\ncontent-length: {}", body.len()).as_bytes());
    reply.extend_from_slice(format!("\r\nx-request-id: {request_id}").as_bytes());
    // hyper says it already when it closes the connection at once; not twice.
    if find(&head.to_ascii_lowercase(), b"\r\nconnection: close\r\n").is_none() {
        reply.extend_from_slice(b"\r\nconnection: close");
    }
    reply.extend_from_slice(b"\r\n");
    reply.extend_from_slice(&head[at + EMPTY.len()..]);
    reply.extend_from_slice(&body);
    Some(reply)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl<S: AsyncWrite + Unpin> ProblemReplies<S> {
    /// Writes what remains of a replacement; ready once none remains.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.replacing.as_mut() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == bytes.len() {
                self.replacing = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` in as its replacement, when it is an automatic reply: all of it is then
    /// accepted, and the replacement goes out as far as the stream takes it now.
    fn replaced(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let bytes = replacement(buf)?;
        self.replacing = Some((bytes, 0));
        Some(match self.poll_drain(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(buf.len())),
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemReplies<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemReplies<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if let Some(done) = this.replaced(cx, buf) {
            return done;
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && let Some(done) = this.replaced(cx, only)
        {
            return done;
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 02:00:00 GMT\r\n\r\n";

    #[test]
    fn an_automatic_reply_becomes_a_problem_document() {
        let reply = replacement(HYPER_400).unwrap();
        let text = String::from_utf8(reply).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-type: application/problem+json\r\n"));
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        assert!(head.contains("\r\ndate: Tue, 01 Dec 2026 02:00:00 GMT"));
        assert!(head.contains("\r\nx-request-id: "));
        assert_eq!(
            head.matches("\r\nconnection: close\r\n").count(),
            1,
            "{head}"
        );
        // As hyper writes it when it closes at once: the header is not said twice.
        let closing = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let text = String::from_utf8(replacement(closing).unwrap()).unwrap();
        assert_eq!(text.matches("connection: close").count(), 1, "{text}");
        assert!(text.contains("\r\ndate: x\r\n\r\n{"), "{text}");
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["type"], "urn:sipx:problem:bad-request");
        assert_eq!(problem["status"], 400);
    }

    #[test]
    fn the_apis_own_replies_pass_unchanged() {
        for head in [
            // A body follows (in another buffer): the API's own problem.
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 80\r\n\r\n".as_slice(),
            // Head and body in one buffer.
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 x\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            // A body that happens to look like a head, written on its own.
            b"HTTP/1.1 431 x\r\n\r\n",
            b"HTTP/1.1 4",
        ] {
            assert_eq!(replacement(head), None, "{}", String::from_utf8_lossy(head));
        }
    }

    /// A stream that takes one byte a call, and says Pending every other call.
    #[derive(Default)]
    struct Trickle {
        out: Vec<u8>,
        calls: usize,
        flushed: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.calls += 1;
            if this.calls.is_multiple_of(2) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.out.extend_from_slice(&buf[..buf.len().min(1)]);
            Poll::Ready(Ok(buf.len().min(1)))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushed = true;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_slow_stream_gets_the_whole_replacement_once() {
        use tokio::io::AsyncWriteExt;
        let mut stream = ProblemReplies::new(Trickle::default());
        // hyper's own write loop: the whole head is accepted in one write, then flushed.
        let n = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_write(cx, HYPER_400))
            .await
            .unwrap();
        assert_eq!(n, HYPER_400.len(), "the automatic reply is accepted whole");
        stream.flush().await.unwrap();
        let written = String::from_utf8(stream.io.out.clone()).unwrap();
        assert_eq!(written.matches("HTTP/1.1 400").count(), 1, "{written}");
        let (head, body) = written.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(
            serde_json::from_str::<serde_json::Value>(body).is_ok(),
            "{body}"
        );
        assert!(stream.io.flushed);
        // What follows passes unchanged.
        stream.write_all(b"next").await.unwrap();
        assert!(String::from_utf8_lossy(&stream.io.out).ends_with("}next"));
    }
}
