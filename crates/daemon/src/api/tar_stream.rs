//! Tar responses produced by blocking code (`save`, `export`): the producer writes into a
//! [`ChannelWriter`] on the blocking pool, the response body streams the chunks, and a slow
//! client slows the producer (the channel is bounded) instead of filling memory.

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::sync::mpsc;

/// Bytes per chunk sent to the response body.
const CHUNK: usize = 256 * 1024;

/// A channel for a producer and the `application/x-tar` response that streams it. Send an
/// `Err` to cut the response short (the client sees a truncated body).
pub(crate) fn channel() -> (mpsc::Sender<io::Result<Bytes>>, Response) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    (tx, response(rx))
}

/// The `application/x-tar` response that streams what arrives on `rx`.
pub(crate) fn response(rx: mpsc::Receiver<io::Result<Bytes>>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    r
}

/// Buffers what a blocking producer writes and sends it in chunks; writing fails with
/// `BrokenPipe` once the client has gone.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(crate) fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
