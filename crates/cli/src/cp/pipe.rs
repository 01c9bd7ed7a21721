//! Byte streams between the async HTTP bodies and the blocking tar code, and the renaming
//! of an archive's entries on a thread of its own.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arca_store::archive as tarfs;
use bytes::Bytes;

/// Reads the chunks an async task sends (a response body).
pub(super) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl ChannelReader {
    pub(super) fn new(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// The request body was dropped: the upload ended on the HTTP side, whose error (or the
/// daemon's answer) says why.
#[derive(Debug)]
pub(super) struct UploadClosed;

impl std::fmt::Display for UploadClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upload was closed")
    }
}

impl std::error::Error for UploadClosed {}

pub(super) fn is_upload_closed(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<UploadClosed>())
}

/// Sends what is written to a request body, counting it.
pub(super) struct ChannelWriter {
    pub(super) tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    pub(super) count: Option<Arc<AtomicU64>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, UploadClosed))?;
        if let Some(c) = &self.count {
            c.fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A blocking pipe between two threads.
pub(super) struct PipeReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

pub(super) struct PipeWriter(std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>);

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(Ok(buf.to_vec()))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `r` with its entries renamed from `old` to `new` (moby's `RebaseArchiveEntries`), on a
/// thread of its own.
pub(super) fn rebased(r: Box<dyn Read + Send>, old: String, new: String) -> Box<dyn Read + Send> {
    let (tx, rx) = std::sync::mpsc::sync_channel(8);
    let errors = tx.clone();
    std::thread::spawn(move || {
        let w = io::BufWriter::with_capacity(64 * 1024, PipeWriter(tx));
        let res = tarfs::rebase(r, w, &old, &new).and_then(|mut w| w.flush());
        if let Err(e) = res {
            let _ = errors.send(Err(e));
        }
    });
    Box::new(PipeReader {
        rx,
        cur: Vec::new(),
        pos: 0,
    })
}
