//! Reading a container's json-file log for `GET /containers/{id}/logs`.
//!
//! The shim rotates the log (see `arca_api::shim::LogConfig`): history is `<log>.N` …
//! `<log>.1`, then the live `<log>`. Following tracks `<log>` by inode and offset and
//! survives rotations; lines are best-effort if the shim rotates more than once between
//! two reads (100 ms), as with Docker's json-file.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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
    let (mut cursor, first) = {
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
        let (new_cursor, chunks) = {
            let path = path.clone();
            let opts = opts.clone();
            match tokio::task::spawn_blocking(move || read_from(&path, cursor, &opts)).await {
                Ok(v) => v,
                Err(_) => return,
            }
        };
        cursor = new_cursor;
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

/// Where following left off in the live `<log>`: the file (by inode) and the byte after
/// the last complete line read.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    ino: Option<u64>,
    pos: u64,
}

/// `<log>.n`, a file the shim rotated away (higher = older).
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

/// Every entry now on disk, oldest first: `<log>.N` … `<log>.1`, then `<log>`; `tail`
/// counts across files. A rotation while reading may drop or repeat some lines.
fn read_initial(path: &Path, opts: &LogOpts) -> (Cursor, Vec<Bytes>) {
    let mut frames: Vec<Bytes> = Vec::new();
    let old = (1u32..)
        .take_while(|&n| rotated(path, n).exists())
        .last()
        .unwrap_or(0);
    for n in (1..=old).rev() {
        if let Ok(f) = File::open(rotated(path, n)) {
            read_lines(f, 0, opts, &mut frames);
        }
    }
    let mut cursor = Cursor::default();
    if let Ok(f) = File::open(path) {
        cursor.ino = f.metadata().ok().map(|m| m.ino());
        cursor.pos = read_lines(f, 0, opts, &mut frames);
    }
    if let Some(t) = opts.tail {
        let skip = frames.len().saturating_sub(t);
        frames.drain(..skip);
    }
    (cursor, frames)
}

/// Complete lines after `cursor`; a partial last line is left for the next read. If `<log>`
/// was rotated (another inode), the rest of the old file is read from `<log>.1` if it is
/// still there, then the new `<log>` from its start; a truncated file is read from 0.
fn read_from(path: &Path, cursor: Cursor, opts: &LogOpts) -> (Cursor, Vec<Bytes>) {
    let mut out = Vec::new();
    let Ok(f) = File::open(path) else {
        return (cursor, out);
    };
    let Ok(meta) = f.metadata() else {
        return (cursor, out);
    };
    let mut pos = cursor.pos;
    if cursor.ino != Some(meta.ino()) {
        if let Some(ino) = cursor.ino
            && let Ok(old) = File::open(rotated(path, 1))
            && old.metadata().is_ok_and(|m| m.ino() == ino)
        {
            read_lines(old, pos, opts, &mut out);
        }
        pos = 0;
    } else if meta.len() < pos {
        pos = 0;
    }
    let pos = read_lines(f, pos, opts, &mut out);
    (
        Cursor {
            ino: Some(meta.ino()),
            pos,
        },
        out,
    )
}

/// Frames the complete lines of `f` after byte `pos` into `out`; returns the offset after
/// the last complete line.
fn read_lines(mut f: File, pos: u64, opts: &LogOpts, out: &mut Vec<Bytes>) -> u64 {
    if pos > 0 && f.seek(SeekFrom::Start(pos)).is_err() {
        return pos;
    }
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
    new_pos
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn opts(tail: Option<usize>) -> LogOpts {
        LogOpts {
            stdout: true,
            stderr: true,
            follow: false,
            timestamps: false,
            tail,
            since: None,
            until: None,
            raw: true,
        }
    }

    fn entries(lines: &[&str]) -> String {
        lines
            .iter()
            .map(|l| {
                format!(r#"{{"log":"{l}\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}}"#)
                    + "\n"
            })
            .collect()
    }

    fn text(frames: &[Bytes]) -> String {
        frames
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn initial_read_spans_rotated_files_oldest_first_and_tails_across_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("c-json.log");
        std::fs::write(rotated(&log, 2), entries(&["a", "b"])).expect("write");
        std::fs::write(rotated(&log, 1), entries(&["c"])).expect("write");
        std::fs::write(&log, entries(&["d", "e"])).expect("write");
        let (cursor, frames) = read_initial(&log, &opts(None));
        assert_eq!(text(&frames), "a\nb\nc\nd\ne\n");
        assert_eq!(cursor.pos, std::fs::metadata(&log).expect("stat").len());
        let (_, frames) = read_initial(&log, &opts(Some(4)));
        assert_eq!(text(&frames), "b\nc\nd\ne\n");
    }

    #[test]
    fn follow_survives_rotation_and_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("c-json.log");
        std::fs::write(&log, entries(&["a"])).expect("write");
        let o = opts(None);
        let (cursor, frames) = read_initial(&log, &o);
        assert_eq!(text(&frames), "a\n");

        // More output, then a rotation, then output to the new file.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        f.write_all(entries(&["b"]).as_bytes()).expect("write");
        std::fs::rename(&log, rotated(&log, 1)).expect("rotate");
        std::fs::write(&log, entries(&["c"])).expect("write");
        let (cursor, frames) = read_from(&log, cursor, &o);
        assert_eq!(text(&frames), "b\nc\n");

        // Rotated twice before the next read (`<log>.1` is not ours): the new file from 0.
        std::fs::rename(&log, rotated(&log, 2)).expect("rotate");
        std::fs::write(rotated(&log, 1), entries(&["d"])).expect("write");
        std::fs::write(dir.path().join("new"), entries(&["e"])).expect("write");
        std::fs::rename(dir.path().join("new"), &log).expect("rotate");
        let (cursor, frames) = read_from(&log, cursor, &o);
        assert_eq!(text(&frames), "e\n");

        // Truncated in place (same inode, shorter): read from 0 once it grows again.
        std::fs::write(&log, b"").expect("truncate");
        let (cursor, frames) = read_from(&log, cursor, &o);
        assert!(frames.is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        f.write_all(entries(&["f"]).as_bytes()).expect("write");
        let (_, frames) = read_from(&log, cursor, &o);
        assert_eq!(text(&frames), "f\n");
    }
}
