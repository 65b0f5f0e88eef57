//! The server's listening socket with limits: at most so many connections
//! at once (more are answered `503` and closed at once), and a deadline for
//! a new connection's first request headers (slow-header clients cannot
//! hold connections open).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Connections served at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Time a new connection has to send its first request's headers.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(10);

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 89\r\n\r\n{\"error\":{\"code\":\"too_many_connections\",\"message\":\"the server is busy; try again later\"}}";

/// A TCP listener that limits connections and header time.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    header_deadline: Duration,
}

impl LimitedListener {
    /// `inner` serving at most `max_connections` at once.
    pub fn new(inner: TcpListener, max_connections: usize, header_deadline: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max_connections)),
            header_deadline,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (mut stream, address) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let deadline = Box::pin(tokio::time::sleep(self.header_deadline));
                    let io = LimitedStream {
                        stream,
                        _permit: permit,
                        deadline: Some(deadline),
                        tail: [0; 3],
                    };
                    return (io, address);
                }
                Err(_) => {
                    tokio::spawn(async move {
                        // Best effort: the client is told why, then closed.
                        let _ = stream.write_all(BUSY).await;
                        let _ = stream.shutdown().await;
                    });
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: holds its place until closed, and fails its
/// reads if the first request's headers do not arrive in time.
#[derive(Debug)]
pub struct LimitedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Running until the first blank line (end of headers) is read.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The last three bytes read, to find `\r\n\r\n` across reads.
    tail: [u8; 3],
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Some(deadline) = &mut this.deadline {
            let fresh = &buf.filled()[before..];
            let mut window = this.tail.to_vec();
            window.extend_from_slice(fresh);
            if window.windows(4).any(|w| w == b"\r\n\r\n") {
                this.deadline = None;
            } else {
                let keep = window.len().min(3);
                this.tail = [0; 3];
                this.tail[3 - keep..].copy_from_slice(&window[window.len() - keep..]);
                if polled.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request headers did not arrive in time",
                    )));
                }
            }
        }
        polled
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
