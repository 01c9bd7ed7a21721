//! Downloading one blob into the content store: the HTTP body flows through a bounded channel
//! into a blocking task running [`Store::write_blob`], which hashes it and publishes it only
//! if the digest matches. Transient failures (connection trouble, 5xx, timeouts) are retried
//! with back-off, resuming with an HTTP `Range` request from the bytes already written; a
//! registry that ignores `Range` resends the whole blob and the bytes we have are skipped.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use arca_model::Digest;
use arca_store::{Store, StoreError};
use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::Client;
use oci_client::client::{BlobResponse, SizedStream};
use oci_client::errors::DigestError;
use tokio::sync::mpsc;

use crate::error::{PullError, Target, from_oci, request_reason};

/// Back-off before each retry; its length is the number of retries.
pub(crate) const BACKOFF: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

/// Where blobs come from and go to.
pub(crate) struct Source<'a> {
    pub client: &'a Client,
    pub image: &'a oci_client::Reference,
    pub registry: &'a str,
    pub store: Arc<Store>,
}

/// Downloads blob `digest` into the store, calling `on_bytes(total so far)` as data arrives.
/// Nothing is visible in the store unless the whole blob arrived and matched its digest.
pub(crate) async fn fetch(
    src: &Source<'_>,
    digest: &Digest,
    on_bytes: impl FnMut(u64),
) -> Result<(), PullError> {
    let (tx, rx) = mpsc::channel(16);
    let store = src.store.clone();
    let expected = digest.clone();
    let writer = tokio::task::spawn_blocking(move || {
        store.write_blob(ChannelReader::new(rx), Some(&expected))
    });
    let fed = feed(src, digest, &tx, on_bytes).await;
    // End of stream for the writer (also when this future is dropped: the writer then sees a
    // short stream, whose digest cannot match, and discards it).
    drop(tx);
    let written = writer.await.map_err(|e| PullError::Task(e.to_string()))?;
    match (fed, written) {
        (Err(e), _) => Err(e),
        (Ok(()), Ok(_)) => Ok(()),
        (Ok(()), Err(StoreError::DigestMismatch { actual, .. })) => Err(PullError::BlobDigest {
            layer: digest.clone(),
            actual,
        }),
        (Ok(()), Err(e)) => Err(e.into()),
    }
}

/// How one request ended.
enum Fed {
    /// The whole body went to the writer.
    Complete,
    /// The writer stopped reading (it failed; its error tells why).
    WriterGone,
}

/// Sends the blob's bytes to `tx`, retrying transient failures. On a final failure the
/// writer is sent an error too, so it never publishes a short blob.
async fn feed(
    src: &Source<'_>,
    digest: &Digest,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    mut on_bytes: impl FnMut(u64),
) -> Result<(), PullError> {
    let mut offset = 0u64;
    let mut attempt = 0;
    loop {
        match request(src, digest, offset, tx, &mut offset, &mut on_bytes).await {
            Ok(Fed::Complete | Fed::WriterGone) => return Ok(()),
            Err(e) if e.is_transient() && attempt < BACKOFF.len() => {
                tracing::debug!(blob = %digest, offset, error = %e, "retrying blob download");
                tokio::time::sleep(BACKOFF[attempt]).await;
                attempt += 1;
            }
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                return Err(e);
            }
        }
    }
}

/// One GET of the blob from `start`; `offset` counts the bytes delivered to the writer.
async fn request(
    src: &Source<'_>,
    digest: &Digest,
    start: u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    offset: &mut u64,
    on_bytes: &mut impl FnMut(u64),
) -> Result<Fed, PullError> {
    let name = digest.to_string();
    let oci_err = |e| from_oci(e, src.registry, Target::Blob(digest));
    let (mut stream, mut skip): (SizedStream, u64) = if start == 0 {
        let s = src
            .client
            .pull_blob_stream(src.image, name.as_str())
            .await
            .map_err(oci_err)?;
        (s, 0)
    } else {
        match src
            .client
            .pull_blob_stream_partial(src.image, name.as_str(), start, None)
            .await
            .map_err(oci_err)?
        {
            BlobResponse::Partial(s) => (s, 0),
            BlobResponse::Full(s) => (s, start),
        }
    };
    while let Some(item) = stream.next().await {
        let mut chunk = match item {
            Ok(c) => c,
            // oci-client's own digest check at the end of a full response: the writer has
            // all the bytes and reports the mismatch itself, naming the layer.
            Err(e) if e.get_ref().is_some_and(|i| i.is::<DigestError>()) => {
                return Ok(Fed::Complete);
            }
            Err(e) => {
                return Err(PullError::Unavailable {
                    registry: src.registry.to_owned(),
                    reason: format!("reading blob {digest}: {}", request_reason(&e)),
                });
            }
        };
        if skip > 0 {
            let n = skip.min(chunk.len() as u64);
            skip -= n;
            chunk = chunk.slice(n as usize..);
            if chunk.is_empty() {
                continue;
            }
        }
        let len = chunk.len() as u64;
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(Fed::WriterGone);
        }
        *offset += len;
        on_bytes(*offset);
    }
    Ok(Fed::Complete)
}

/// A blocking [`Read`] over the chunks of a channel; the sender closing is end of stream.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_reader_joins_chunks_and_ends_when_the_sender_closes() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"hel"))).expect("send");
        tx.try_send(Ok(Bytes::from_static(b"lo"))).expect("send");
        drop(tx);
        let mut out = String::new();
        ChannelReader::new(rx)
            .read_to_string(&mut out)
            .expect("read");
        assert_eq!(out, "hello");
    }

    #[test]
    fn channel_reader_passes_errors_on() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Err(io::Error::other("gone"))).expect("send");
        let mut out = Vec::new();
        assert!(ChannelReader::new(rx).read_to_end(&mut out).is_err());
    }
}
