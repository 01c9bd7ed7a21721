//! Docker's `json-file` log format: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-22T20:38:52.123456789Z"}`.
//!
//! Output is split into lines; a partial line is held until its newline arrives (or
//! [`JsonLog::flush_partial`] at exit). A line longer than [`MAX_LINE`] is written in
//! `MAX_LINE` pieces without a trailing newline, as Docker's log copier does. Invalid UTF-8
//! becomes U+FFFD.
//!
//! [`RotatingFile`] rotates the file by [`LogConfig`] (see there for the scheme): only
//! renames and unlinks, no fsync, and only at line boundaries, so every file holds whole
//! JSON lines. Readers find the rotated files as `<log>.N` … `<log>.1` (oldest first).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use arca_api::shim::LogConfig;
use arca_api::stdcopy::StreamKind;

/// Docker's log copier buffer: longer lines are split into entries of this size.
pub const MAX_LINE: usize = 16 * 1024;

pub struct JsonLog<W: Write> {
    out: W,
    /// Pending partial lines for stdout and stderr.
    partial: [Vec<u8>; 2],
    buf: Vec<u8>,
}

fn slot(stream: StreamKind) -> usize {
    match stream {
        StreamKind::Stderr | StreamKind::System => 1,
        StreamKind::Stdin | StreamKind::Stdout => 0,
    }
}

impl<W: Write> JsonLog<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            partial: [Vec::new(), Vec::new()],
            buf: Vec::new(),
        }
    }

    /// Logs `data` read from `stream` at `time` (RFC 3339). Complete lines are written
    /// with one `write` call.
    pub fn write(&mut self, stream: StreamKind, data: &[u8], time: &str) -> io::Result<()> {
        let i = slot(stream);
        let mut pending = std::mem::take(&mut self.partial[i]);
        pending.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &pending[start..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(n) if n < MAX_LINE => {
                    self.entry(stream, &rest[..=n], time);
                    start += n + 1;
                }
                _ if rest.len() >= MAX_LINE => {
                    self.entry(stream, &rest[..MAX_LINE], time);
                    start += MAX_LINE;
                }
                _ => break,
            }
        }
        pending.drain(..start);
        self.partial[i] = pending;
        self.flush_buf()
    }

    /// Writes any held partial lines (without a newline), e.g. when the container exits.
    pub fn flush_partial(&mut self, time: &str) -> io::Result<()> {
        for (i, stream) in [StreamKind::Stdout, StreamKind::Stderr]
            .into_iter()
            .enumerate()
        {
            let pending = std::mem::take(&mut self.partial[i]);
            if !pending.is_empty() {
                self.entry(stream, &pending, time);
            }
        }
        self.flush_buf()
    }

    fn entry(&mut self, stream: StreamKind, line: &[u8], time: &str) {
        let text = String::from_utf8_lossy(line);
        self.buf.extend_from_slice(b"{\"log\":");
        // Serializing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, text.as_ref());
        self.buf.extend_from_slice(b",\"stream\":\"");
        self.buf.extend_from_slice(stream.log_name().as_bytes());
        self.buf.extend_from_slice(b"\",\"time\":\"");
        self.buf.extend_from_slice(time.as_bytes());
        self.buf.extend_from_slice(b"\"}\n");
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.out.write_all(&self.buf);
        self.buf.clear();
        r
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }
}

/// An append-only log file that rotates before a write would make it exceed
/// [`LogConfig::max_size`]. Writes must consist of whole lines (as [`JsonLog`] produces);
/// each line is kept whole in one file.
pub struct RotatingFile {
    path: PathBuf,
    cfg: LogConfig,
    file: File,
    /// Bytes in the current file.
    size: u64,
}

impl RotatingFile {
    /// Opens (creating, mode 0640) `path` for appending; an existing file's size counts.
    pub fn open(path: &Path, cfg: LogConfig) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            cfg,
            file,
            size,
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.cfg.max_files.max(1);
        if keep == 1 {
            ignore_missing(std::fs::remove_file(&self.path))?;
        } else {
            ignore_missing(std::fs::remove_file(self.rotated(keep - 1)))?;
            for n in (1..keep - 1).rev() {
                ignore_missing(std::fs::rename(self.rotated(n), self.rotated(n + 1)))?;
            }
            ignore_missing(std::fs::rename(&self.path, self.rotated(1)))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }

    fn append(&mut self, chunk: &[u8]) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.file.write_all(chunk)?;
        self.size += chunk.len() as u64;
        Ok(())
    }
}

impl Write for RotatingFile {
    /// Writes all of `buf` (whole lines), rotating between lines where needed; consecutive
    /// lines that fit go out in one `write`.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let max = self.cfg.max_size;
        if max == 0 {
            self.file.write_all(buf)?;
            self.size += buf.len() as u64;
            return Ok(buf.len());
        }
        let mut start = 0;
        let mut end = 0;
        while end < buf.len() {
            let line_end = buf[end..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(buf.len(), |n| end + n + 1);
            let pending = (end - start) as u64;
            let line = (line_end - end) as u64;
            if self.size + pending + line > max && self.size + pending > 0 {
                self.append(&buf[start..end])?;
                self.rotate()?;
                start = end;
            }
            end = line_end;
        }
        self.append(&buf[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-11-22T20:38:52.123456789Z";

    fn lines(log: &JsonLog<Vec<u8>>) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(log.get_ref())
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    #[test]
    fn complete_lines_become_entries() {
        let mut log = JsonLog::new(Vec::new());
        log.write(StreamKind::Stdout, b"hi\nthere\n", T)
            .expect("write");
        log.write(StreamKind::Stderr, b"err\n", T).expect("write");
        let v = lines(&log);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["log"], "hi\n");
        assert_eq!(v[1]["log"], "there\n");
        assert_eq!(v[2]["stream"], "stderr");
        assert_eq!(v[2]["time"], T);
        assert_eq!(
            String::from_utf8_lossy(log.get_ref()).lines().next(),
            Some(r#"{"log":"hi\n","stream":"stdout","time":"2026-11-22T20:38:52.123456789Z"}"#)
        );
    }

    #[test]
    fn partial_lines_wait_for_their_newline_per_stream() {
        let mut log = JsonLog::new(Vec::new());
        log.write(StreamKind::Stdout, b"hel", T).expect("write");
        log.write(StreamKind::Stderr, b"e1", T).expect("write");
        assert!(lines(&log).is_empty());
        log.write(StreamKind::Stdout, b"lo\nwor", T).expect("write");
        let v = lines(&log);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["log"], "hello\n");
        log.flush_partial(T).expect("flush");
        let v = lines(&log);
        assert_eq!(v[1]["log"], "wor");
        assert_eq!(v[2]["log"], "e1");
        assert_eq!(v[2]["stream"], "stderr");
    }

    #[test]
    fn long_lines_are_split_at_16k_without_newlines() {
        let mut log = JsonLog::new(Vec::new());
        let mut data = vec![b'x'; MAX_LINE * 2 + 10];
        data.push(b'\n');
        log.write(StreamKind::Stdout, &data, T).expect("write");
        let v = lines(&log);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["log"].as_str().map(str::len), Some(MAX_LINE));
        assert_eq!(v[1]["log"].as_str().map(str::len), Some(MAX_LINE));
        assert_eq!(v[2]["log"].as_str(), Some("xxxxxxxxxx\n"));
    }

    #[test]
    fn control_characters_and_invalid_utf8_are_escaped() {
        let mut log = JsonLog::new(Vec::new());
        log.write(StreamKind::Stdout, b"a\"b\\c\t\x1b[0m\xff\n", T)
            .expect("write");
        let v = lines(&log);
        assert_eq!(v[0]["log"], "a\"b\\c\t\u{1b}[0m\u{fffd}\n");
    }

    fn rotating(dir: &Path, max_size: u64, max_files: u32) -> (PathBuf, RotatingFile) {
        let path = dir.join("c-json.log");
        let f = RotatingFile::open(
            &path,
            LogConfig {
                max_size,
                max_files,
                disabled: false,
            },
        )
        .expect("open");
        (path, f)
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotation_shifts_files_and_drops_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut f) = rotating(dir.path(), 10, 3);
        for l in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n",
        ] {
            f.write_all(l.as_bytes()).expect("write");
        }
        assert_eq!(read(&path), "gggg\n");
        assert_eq!(read(&dir.path().join("c-json.log.1")), "eeee\nffff\n");
        assert_eq!(read(&dir.path().join("c-json.log.2")), "cccc\ndddd\n");
        assert_eq!(
            files(dir.path()),
            ["c-json.log", "c-json.log.1", "c-json.log.2"]
        );
    }

    #[test]
    fn rotation_happens_between_lines_of_one_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut f) = rotating(dir.path(), 10, 2);
        f.write_all(b"aaaa\nbbbb\ncccc\n").expect("write");
        assert_eq!(read(&dir.path().join("c-json.log.1")), "aaaa\nbbbb\n");
        assert_eq!(read(&path), "cccc\n");
    }

    #[test]
    fn a_line_longer_than_max_size_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut f) = rotating(dir.path(), 4, 2);
        f.write_all(b"ab\n").expect("write");
        f.write_all(b"0123456789\n").expect("write");
        assert_eq!(read(&dir.path().join("c-json.log.1")), "ab\n");
        assert_eq!(read(&path), "0123456789\n");
        f.write_all(b"cd\n").expect("write");
        assert_eq!(read(&dir.path().join("c-json.log.1")), "0123456789\n");
        assert_eq!(read(&path), "cd\n");
    }

    #[test]
    fn one_file_means_the_old_file_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut f) = rotating(dir.path(), 10, 1);
        f.write_all(b"aaaa\nbbbb\n").expect("write");
        f.write_all(b"cccc\n").expect("write");
        assert_eq!(read(&path), "cccc\n");
        assert_eq!(files(dir.path()), ["c-json.log"]);
    }

    #[test]
    fn zero_max_size_never_rotates_and_reopen_counts_existing_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut f) = rotating(dir.path(), 0, 2);
        f.write_all(b"aaaa\nbbbb\ncccc\n").expect("write");
        assert_eq!(files(dir.path()), ["c-json.log"]);
        drop(f);
        let (_, mut f) = rotating(dir.path(), 16, 2);
        f.write_all(b"dddd\n").expect("write");
        assert_eq!(read(&dir.path().join("c-json.log.1")), "aaaa\nbbbb\ncccc\n");
        assert_eq!(read(&path), "dddd\n");
    }

    #[test]
    fn json_log_entries_rotate_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, f) = rotating(dir.path(), 200, 2);
        let mut log = JsonLog::new(f);
        for i in 0..20 {
            log.write(StreamKind::Stdout, format!("line-{i}\n").as_bytes(), T)
                .expect("write");
        }
        let cur = read(&path);
        let old = read(&dir.path().join("c-json.log.1"));
        assert!(cur.len() <= 200 && old.len() <= 200);
        for l in old.lines().chain(cur.lines()) {
            let _: serde_json::Value = serde_json::from_str(l).expect("whole json line");
        }
        assert!(cur.contains("line-19\\n"));
        assert!(!old.contains("line-0\\n"));
    }
}
