//! Docker's `json-file` log format: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-22T20:38:52.123456789Z"}`.
//!
//! Output is split into lines; a partial line is held until its newline arrives (or
//! [`JsonLog::flush_partial`] at exit). A line longer than [`MAX_LINE`] is written in
//! `MAX_LINE` pieces without a trailing newline, as Docker's log copier does. Invalid UTF-8
//! becomes U+FFFD. No rotation: the file grows until the container is removed.

use std::io::{self, Write};

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
}
