//! One connection to the shim's socket: a request line in, a reply line out, then (for
//! attach and exec) a stream. All I/O is non-blocking; output waits in a bounded buffer.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use arca_api::shim::{Reply, Request};

/// Output a client may have waiting before it is dropped as too slow. Streams stay well
/// below it: the monitor stops reading a process's output while one of its clients has
/// [`OUTPUT_HIGH_WATER`] waiting (backpressure, as Docker's attach blocks the container).
pub const MAX_BUFFERED: usize = 4 << 20;
/// Stop reading a process's output while one of its clients has this much waiting.
pub const OUTPUT_HIGH_WATER: usize = 1 << 20;
/// Longest request line accepted.
const MAX_REQUEST: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connected; the request line has not arrived yet.
    Pending,
    /// Streaming after `Attach`.
    Attached {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Waiting for the container to exit.
    Waiting,
    /// Streaming an exec's output after `Exec` (and feeding its stdin when `stdin`).
    /// `exec` indexes the monitor's execs.
    Exec { exec: usize, stdin: bool },
    /// Waiting for an exec to exit.
    ExecWaiting { exec: usize },
    /// Answered; closes once its output is flushed.
    Done,
}

pub struct Client {
    pub stream: UnixStream,
    pub role: Role,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// The peer shut down its writing side (EOF seen).
    pub read_closed: bool,
    /// Drop the connection (the peer is gone or misbehaved).
    pub dead: bool,
    /// When the client last took bytes (or connected).
    pub last_progress: Instant,
}

/// What reading from a client produced.
pub enum Input {
    Nothing,
    /// A complete request line (or why it could not be parsed), plus any bytes after it.
    Request(Result<Request, String>, Vec<u8>),
    /// Stream bytes after the request.
    Data(Vec<u8>),
    Eof,
}

impl Client {
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            role: Role::Pending,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            read_closed: false,
            dead: false,
            last_progress: Instant::now(),
        })
    }

    pub fn has_output(&self) -> bool {
        self.wpos < self.wbuf.len()
    }

    /// Bytes queued and not yet written.
    pub fn buffered(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Finished: answered and flushed, or dead.
    pub fn finished(&self) -> bool {
        self.dead || (self.role == Role::Done && !self.has_output())
    }

    /// Queues bytes; marks the client dead if its buffer would exceed [`MAX_BUFFERED`].
    pub fn queue(&mut self, data: &[u8]) {
        if self.dead {
            return;
        }
        if self.buffered() + data.len() > MAX_BUFFERED {
            self.dead = true;
            return;
        }
        if self.wpos > 0 && self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        self.wbuf.extend_from_slice(data);
    }

    pub fn queue_reply(&mut self, reply: &Reply) {
        // Serializing these plain enums cannot fail.
        let mut line = serde_json::to_vec(reply).unwrap_or_default();
        line.push(b'\n');
        self.queue(&line);
    }

    /// Writes as much buffered output as the socket takes.
    pub fn flush(&mut self) {
        while self.has_output() && !self.dead {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => self.dead = true,
                Ok(n) => {
                    self.wpos += n;
                    self.last_progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.dead = true,
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos > self.wbuf.len() / 2 {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
    }

    /// Reads what is available (one read call).
    pub fn read(&mut self) -> Input {
        let mut buf = [0u8; 64 << 10];
        let n = match self.stream.read(&mut buf) {
            Ok(0) => {
                self.read_closed = true;
                return match self.role {
                    // A request without its newline, then EOF: take it as it is.
                    Role::Pending if !self.rbuf.is_empty() => {
                        let line = std::mem::take(&mut self.rbuf);
                        Input::Request(parse(&line), Vec::new())
                    }
                    _ => Input::Eof,
                };
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Input::Nothing;
            }
            Err(_) => {
                self.dead = true;
                return Input::Nothing;
            }
        };
        let data = &buf[..n];
        if self.role != Role::Pending {
            return Input::Data(data.to_vec());
        }
        self.rbuf.extend_from_slice(data);
        match self.rbuf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let rest = self.rbuf.split_off(i + 1);
                let line = std::mem::take(&mut self.rbuf);
                Input::Request(parse(&line[..i]), rest)
            }
            None if self.rbuf.len() > MAX_REQUEST => {
                self.rbuf.clear();
                Input::Request(Err("request line too long".into()), Vec::new())
            }
            None => Input::Nothing,
        }
    }
}

fn parse(line: &[u8]) -> Result<Request, String> {
    serde_json::from_slice(line).map_err(|e| format!("invalid request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Client, UnixStream) {
        let (a, b) = UnixStream::pair().expect("pair");
        (Client::new(a).expect("client"), b)
    }

    #[test]
    fn request_line_is_parsed_and_trailing_bytes_kept() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"{\"op\":\"attach\",\"stdin\":true,\"stdout\":true,\"stderr\":false}\nabc")
            .expect("write");
        match c.read() {
            Input::Request(
                Ok(Request::Attach {
                    stdin,
                    stdout,
                    stderr,
                }),
                rest,
            ) => {
                assert!(stdin && stdout && !stderr);
                assert_eq!(rest, b"abc");
            }
            _ => panic!("expected an attach request"),
        }
    }

    #[test]
    fn malformed_requests_are_reported() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"{\"op\":\"dance\"}\n").expect("write");
        assert!(matches!(c.read(), Input::Request(Err(_), _)));
    }

    #[test]
    fn request_without_newline_is_taken_at_eof() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"{\"op\":\"wait\"}").expect("write");
        peer.shutdown(std::net::Shutdown::Write).expect("shutdown");
        assert!(matches!(c.read(), Input::Nothing));
        assert!(matches!(c.read(), Input::Request(Ok(Request::Wait), _)));
    }

    #[test]
    fn slow_clients_are_dropped_when_the_buffer_overflows() {
        let (mut c, _peer) = pair();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..8 {
            c.queue(&chunk);
            c.flush();
        }
        assert!(c.dead);
    }

    #[test]
    fn replies_are_json_lines() {
        let (mut c, mut peer) = pair();
        c.queue_reply(&Reply::Ok { pid: Some(7) });
        c.flush();
        let mut buf = [0u8; 64];
        let n = peer.read(&mut buf).expect("read");
        assert_eq!(&buf[..n], b"{\"reply\":\"ok\",\"pid\":7}\n");
    }
}
