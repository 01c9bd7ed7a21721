//! Reading a container's json-file log for `GET /containers/{id}/logs`.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arca_api::stdcopy::{self, StreamKind};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::Container;

#[derive(Debug, Clone)]
pub struct LogOpts {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// Number of lines from the end; `None` = all.
    pub tail: Option<usize>,
    /// Unix seconds (fractional); entries before are skipped.
    pub since: Option<f64>,
    pub until: Option<f64>,
    /// Raw output (TTY) instead of stdcopy frames.
    pub raw: bool,
}

#[derive(Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

fn ts(t: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp() as f64 + f64::from(d.timestamp_subsec_nanos()) / 1e9)
}

impl LogOpts {
    fn frame(&self, line: &str) -> Option<Bytes> {
        let e: Entry = serde_json::from_str(line).ok()?;
        let kind = match e.stream.as_str() {
            "stderr" => StreamKind::Stderr,
            _ => StreamKind::Stdout,
        };
        if (kind == StreamKind::Stdout && !self.stdout)
            || (kind == StreamKind::Stderr && !self.stderr)
        {
            return None;
        }
        if self.since.is_some() || self.until.is_some() {
            let t = ts(&e.time)?;
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return None;
            }
        }
        let payload = if self.timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log
        };
        if self.raw {
            return Some(Bytes::from(payload));
        }
        let mut out = Vec::with_capacity(payload.len() + stdcopy::HEADER_LEN);
        stdcopy::encode_into(&mut out, kind, payload.as_bytes());
        Some(Bytes::from(out))
    }
}

/// Streams the log into `tx`; with `follow`, keeps going until the container stops.
pub async fn stream(path: PathBuf, c: Arc<Container>, opts: LogOpts, tx: mpsc::Sender<Bytes>) {
    let mut life = c.subscribe();
    let (mut pos, first) = {
        let opts = opts.clone();
        let path = path.clone();
        match tokio::task::spawn_blocking(move || read_initial(&path, &opts)).await {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    for b in first {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    if !opts.follow {
        return;
    }
    loop {
        let running = life.borrow_and_update().status.is_running();
        let (new_pos, chunks) = {
            let path = path.clone();
            let opts = opts.clone();
            match tokio::task::spawn_blocking(move || read_from(&path, pos, &opts)).await {
                Ok(v) => v,
                Err(_) => return,
            }
        };
        pos = new_pos;
        for b in chunks {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if !running {
            return;
        }
        // Wake on a state change, or re-read soon for new output.
        tokio::select! {
            _ = life.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tx.closed() => return,
        }
    }
}

fn read_initial(path: &std::path::Path, opts: &LogOpts) -> (u64, Vec<Bytes>) {
    let Ok(f) = std::fs::File::open(path) else {
        return (0, Vec::new());
    };
    let mut frames: Vec<Bytes> = Vec::new();
    let mut pos = 0u64;
    let mut r = BufReader::new(f);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !line.ends_with('\n') {
                    break;
                }
                pos += n as u64;
                if let Some(b) = opts.frame(line.trim_end_matches('\n')) {
                    frames.push(b);
                }
            }
        }
    }
    if let Some(t) = opts.tail {
        let skip = frames.len().saturating_sub(t);
        frames.drain(..skip);
    }
    (pos, frames)
}

/// Complete lines after byte `pos`; a partial last line is left for the next read.
fn read_from(path: &std::path::Path, pos: u64, opts: &LogOpts) -> (u64, Vec<Bytes>) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (pos, Vec::new());
    };
    if f.seek(SeekFrom::Start(pos)).is_err() {
        return (pos, Vec::new());
    }
    let mut out = Vec::new();
    let mut new_pos = pos;
    let mut r = BufReader::new(f);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !line.ends_with('\n') {
                    break;
                }
                new_pos += n as u64;
                if let Some(b) = opts.frame(line.trim_end_matches('\n')) {
                    out.push(b);
                }
            }
        }
    }
    (new_pos, out)
}
