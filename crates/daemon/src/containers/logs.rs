//! Reading a container's json-file log for `GET /containers/{id}/logs`.
//!
//! The shim rotates the log (see `arca_api::shim::LogConfig`): history is `<log>.N` …
//! `<log>.1`, then the live `<log>`. Following tracks `<log>` by inode and offset and
//! survives rotations; lines are best-effort if the shim rotates more than once between
//! two reads (100 ms), as with Docker's json-file.
//!
//! Without `tail` the history is streamed file by file (the client's pace bounds the
//! memory); with `tail` the files are read backwards, newest first, in 64 KiB chunks, so
//! `--tail 10` of a 30 MiB history reads about 64 KiB. As with Docker, `tail` counts log
//! lines before the stream and time filters apply.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
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
    let mut cursor = {
        let opts = opts.clone();
        let path = path.clone();
        let tx = tx.clone();
        let initial = move || read_initial(&path, &opts, &mut |b| tx.blocking_send(b).is_ok());
        match tokio::task::spawn_blocking(initial).await {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => return,
        }
    };
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

/// Every entry now on disk, oldest first, into `sink` (which returns false to stop: then
/// `None`): `<log>.N` … `<log>.1`, then `<log>`; `tail` counts across files. A rotation while
/// reading may drop or repeat some lines. Returns where following continues.
fn read_initial(
    path: &Path,
    opts: &LogOpts,
    sink: &mut dyn FnMut(Bytes) -> bool,
) -> Option<Cursor> {
    let live = File::open(path).ok();
    let mut cursor = Cursor::default();
    if let Some(f) = &live {
        cursor.ino = f.metadata().ok().map(|m| m.ino());
        cursor.pos = complete_len(f);
    }
    let old = (1u32..)
        .take_while(|&n| rotated(path, n).exists())
        .last()
        .unwrap_or(0);
    if let Some(max) = opts.tail {
        // Newest first, backwards, until `max` lines are found.
        let mut newest_first = Vec::new();
        let mut lines = 0;
        let files = live
            .into_iter()
            .chain((1..=old).filter_map(|n| File::open(rotated(path, n)).ok()));
        for f in files {
            if lines >= max {
                break;
            }
            let end = if lines == 0 {
                cursor.pos
            } else {
                complete_len(&f)
            };
            lines += tail_lines(&f, end, max - lines, opts, &mut newest_first);
        }
        for b in newest_first.into_iter().rev() {
            if !sink(b) {
                return None;
            }
        }
        return Some(cursor);
    }
    for n in (1..=old).rev() {
        if let Ok(f) = File::open(rotated(path, n)) {
            stream_lines(&f, u64::MAX, opts, sink)?;
        }
    }
    if let Ok(f) = File::open(path) {
        cursor.pos = stream_lines(&f, cursor.pos, opts, sink)?;
    }
    Some(cursor)
}

/// Sends the frames of the complete lines of `f` before byte `end` into `sink` in batches
/// (a whole file of frames could be large); returns where reading stopped, or `None` if the
/// sink stopped.
fn stream_lines(
    f: &File,
    end: u64,
    opts: &LogOpts,
    sink: &mut dyn FnMut(Bytes) -> bool,
) -> Option<u64> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < end {
        let next = read_lines_limited(f, pos, opts, &mut out, SEND_BATCH);
        for b in out.drain(..) {
            if !sink(b) {
                return None;
            }
        }
        if next == pos {
            break;
        }
        pos = next;
    }
    Some(pos)
}

/// Lines read per batch when streaming history.
const SEND_BATCH: usize = 256;
/// Bytes read per step when reading a file backwards.
const TAIL_CHUNK: u64 = 64 << 10;

/// The length of `f` up to and including its last newline (a partial last line is not
/// complete yet).
fn complete_len(f: &File) -> u64 {
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return 0;
    };
    let mut end = len;
    let mut buf = vec![0u8; TAIL_CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(TAIL_CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        if f.read_exact_at(chunk, start).is_err() {
            return 0;
        }
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return start + i as u64 + 1;
        }
        end = start;
    }
    0
}

/// Reads the complete lines of `f[..end]` backwards until `max` lines were seen, pushing
/// the frames of those that pass the filters newest first; returns the lines seen.
fn tail_lines(f: &File, end: u64, max: usize, opts: &LogOpts, out: &mut Vec<Bytes>) -> usize {
    let mut seen = 0;
    // File bytes from `end` on that start mid-line: the front of the next line up.
    let mut carry: Vec<u8> = Vec::new();
    let mut end = end;
    while end > 0 && seen < max {
        let start = end.saturating_sub(TAIL_CHUNK);
        let mut data = vec![0u8; (end - start) as usize];
        if f.read_exact_at(&mut data, start).is_err() {
            break;
        }
        data.extend_from_slice(&carry);
        // `data` ends with a newline (or is empty); lines end at each newline.
        let mut line_end = data.len();
        while line_end > 0 && seen < max {
            let body = &data[..line_end - 1];
            match body.iter().rposition(|&b| b == b'\n') {
                Some(i) => {
                    push_frame(&data[i + 1..line_end - 1], opts, out);
                    seen += 1;
                    line_end = i + 1;
                }
                None if start == 0 => {
                    push_frame(body, opts, out);
                    seen += 1;
                    line_end = 0;
                }
                None => break,
            }
        }
        data.truncate(line_end);
        carry = data;
        end = start;
    }
    seen
}

fn push_frame(line: &[u8], opts: &LogOpts, out: &mut Vec<Bytes>) {
    if let Ok(line) = std::str::from_utf8(line)
        && let Some(b) = opts.frame(line)
    {
        out.push(b);
    }
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
fn read_lines(f: File, pos: u64, opts: &LogOpts, out: &mut Vec<Bytes>) -> u64 {
    read_lines_limited(&f, pos, opts, out, usize::MAX)
}

/// [`read_lines`] for at most `limit` lines.
fn read_lines_limited(
    mut f: &File,
    pos: u64,
    opts: &LogOpts,
    out: &mut Vec<Bytes>,
    limit: usize,
) -> u64 {
    if f.seek(SeekFrom::Start(pos)).is_err() {
        return pos;
    }
    let mut count = 0;
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
                count += 1;
                if count >= limit {
                    break;
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

    fn collect(log: &Path, o: &LogOpts) -> (Cursor, Vec<Bytes>) {
        let mut frames = Vec::new();
        let cursor = read_initial(log, o, &mut |b| {
            frames.push(b);
            true
        })
        .expect("not stopped");
        (cursor, frames)
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
        let (cursor, frames) = collect(&log, &opts(None));
        assert_eq!(text(&frames), "a\nb\nc\nd\ne\n");
        assert_eq!(cursor.pos, std::fs::metadata(&log).expect("stat").len());
        let (_, frames) = collect(&log, &opts(Some(4)));
        assert_eq!(text(&frames), "b\nc\nd\ne\n");
        let (_, frames) = collect(&log, &opts(Some(0)));
        assert!(frames.is_empty());
        let (_, frames) = collect(&log, &opts(Some(100)));
        assert_eq!(text(&frames), "a\nb\nc\nd\ne\n");
    }

    #[test]
    fn tail_reads_backwards_across_chunks_and_skips_a_partial_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("c-json.log");
        // Lines longer than a chunk, and many of them, so lines straddle chunk borders.
        let long = "x".repeat(70_000);
        let names: Vec<String> = (0..300)
            .map(|i| format!("l{i}-{}", &long[..i * 7]))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut content = entries(&refs);
        content.push_str(r#"{"log":"partial"#);
        std::fs::write(&log, &content).expect("write");
        let (cursor, frames) = collect(&log, &opts(Some(3)));
        assert_eq!(
            text(&frames),
            format!("{}\n{}\n{}\n", names[297], names[298], names[299])
        );
        assert_eq!(
            cursor.pos,
            (content.len() - r#"{"log":"partial"#.len()) as u64
        );
        let (_, frames) = collect(&log, &opts(Some(1000)));
        assert_eq!(frames.len(), 300);
        assert_eq!(text(&frames[..1]), format!("{}\n", names[0]));
    }

    #[test]
    fn tail_counts_lines_before_the_stream_filter_like_docker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("c-json.log");
        let err = r#"{"log":"e\n","stream":"stderr","time":"2026-01-01T00:00:00Z"}"#;
        std::fs::write(&log, format!("{}{err}\n", entries(&["a", "b"]))).expect("write");
        let mut o = opts(Some(2));
        o.stderr = false;
        let (_, frames) = collect(&log, &o);
        assert_eq!(text(&frames), "b\n");
    }

    #[test]
    fn follow_survives_rotation_and_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("c-json.log");
        std::fs::write(&log, entries(&["a"])).expect("write");
        let o = opts(None);
        let (cursor, frames) = collect(&log, &o);
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
