//! Detach keys: a key sequence in a client's stdin (default `ctrl-p,ctrl-q`) that ends its
//! attach or exec session while the container keeps running.
//!
//! [`parse_keys`] reads Docker's notation; [`Matcher`] finds the sequence in a byte stream
//! split at arbitrary points. Bytes of a partial match are held back until the match
//! fails (then they are passed on, in order) or completes (then they are swallowed).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Parses `ctrl-p,ctrl-q`, `a,b`, `ctrl-@`… into bytes: a single character is itself;
/// `ctrl-<c>` for `c` in `a..z`, `@`, `[`, `\`, `]`, `^`, `_` is the control code.
pub fn parse_keys(spec: &str) -> ApiResult<Vec<u8>> {
    let bad = || ApiError::invalid(format!("Invalid detach keys ({spec}) provided"));
    let mut out = Vec::new();
    for key in spec.split(',') {
        let b = key.as_bytes();
        if b.len() == 1 {
            out.push(b[0]);
            continue;
        }
        let c = match key.strip_prefix("ctrl-").map(str::as_bytes) {
            Some(&[c]) => c,
            _ => return Err(bad()),
        };
        match c {
            b'a'..=b'z' => out.push(c - b'a' + 1),
            b'@' => out.push(0),
            b'[' | b'\\' | b']' | b'^' | b'_' => out.push(c - b'@'),
            _ => return Err(bad()),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Finds the detach sequence in a stream.
#[derive(Debug, Clone)]
pub struct Matcher {
    keys: Vec<u8>,
    /// Bytes that match a prefix of `keys`, held back.
    held: Vec<u8>,
}

/// What one chunk of input amounts to.
#[derive(Debug, PartialEq, Eq)]
pub struct Fed {
    /// Bytes to pass on to the process.
    pub pass: Vec<u8>,
    /// The sequence completed: the session ends; input after it is dropped.
    pub detached: bool,
}

impl Matcher {
    pub fn new(keys: Vec<u8>) -> Self {
        Self {
            keys,
            held: Vec::new(),
        }
    }

    pub fn feed(&mut self, input: &[u8]) -> Fed {
        let mut pass = Vec::with_capacity(input.len());
        for &b in input {
            self.held.push(b);
            // Drop bytes from the front until what is held is a prefix of the sequence
            // again: a failed partial match may still end in the start of a new one.
            while !self.held.is_empty() && !self.keys.starts_with(&self.held) {
                pass.push(self.held.remove(0));
            }
            if self.held.len() == self.keys.len() {
                self.held.clear();
                return Fed {
                    pass,
                    detached: true,
                };
            }
        }
        Fed {
            pass,
            detached: false,
        }
    }

    /// At the end of input: what is held was not the sequence after all.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

/// Copies a client's stdin to the process through `matcher` (`None`: no detach keys).
/// Returns `Some(writer)`, not shut down, when the client detached (or its input ended
/// and `eof_detaches`); otherwise the input ended (EOF or error) and `writer` has been
/// shut down (the process sees EOF).
pub async fn pump_stdin<R, W>(
    mut client: R,
    mut writer: W,
    mut matcher: Option<Matcher>,
    eof_detaches: bool,
) -> Option<W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let fed = match matcher.as_mut() {
            Some(m) => m.feed(&buf[..n]),
            None => Fed {
                pass: buf[..n].to_vec(),
                detached: false,
            },
        };
        if !fed.pass.is_empty() && writer.write_all(&fed.pass).await.is_err() {
            break;
        }
        if fed.detached {
            let _ = writer.flush().await;
            return Some(writer);
        }
    }
    if let Some(mut m) = matcher {
        let rest = m.finish();
        if !rest.is_empty() {
            let _ = writer.write_all(&rest).await;
        }
    }
    if eof_detaches {
        let _ = writer.flush().await;
        return Some(writer);
    }
    let _ = writer.shutdown().await;
    None
}

/// How a spliced session ended.
pub enum Ended<W> {
    /// The process's output ended; the stdin pump may still run (abort it when done).
    OutputDone(tokio::task::JoinHandle<Option<W>>),
    /// The client typed the detach keys; the writer to the process is handed back, not
    /// shut down.
    Detached(W),
}

/// Splices a client session: client input → `writer` (through the detach matcher when
/// `stdin`, else drained), `reader` → client output, until the output ends or the client
/// detaches. `eof_detaches`: the end of the client's stdin ends the session like a detach
/// (Docker's TTY sessions: the container's stdin stays open).
pub async fn splice_session<CR, CW, SR, SW>(
    client_in: CR,
    client_out: &mut CW,
    reader: &mut SR,
    writer: SW,
    stdin: bool,
    matcher: Option<Matcher>,
    eof_detaches: bool,
) -> Ended<SW>
where
    CR: AsyncRead + Unpin + Send + 'static,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin + Send + 'static,
{
    let mut input = tokio::spawn(async move {
        if stdin {
            pump_stdin(client_in, writer, matcher, eof_detaches).await
        } else {
            // Drain and ignore anything the client sends until it hangs up.
            let mut client_in = client_in;
            let mut writer = writer;
            let _ = tokio::io::copy(&mut client_in, &mut tokio::io::sink()).await;
            let _ = writer.shutdown().await;
            None
        }
    });
    let output = tokio::io::copy(reader, client_out);
    tokio::pin!(output);
    tokio::select! {
        _ = &mut output => Ended::OutputDone(input),
        r = &mut input => match r {
            Ok(Some(w)) => Ended::Detached(w),
            _ => {
                let _ = output.await;
                Ended::OutputDone(tokio::spawn(async { None }))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_key_notation_parses() {
        assert_eq!(parse_keys("ctrl-p,ctrl-q").expect("ok"), vec![16, 17]);
        assert_eq!(
            parse_keys("a,ctrl-@,ctrl-_").expect("ok"),
            vec![b'a', 0, 31]
        );
        assert_eq!(parse_keys("ctrl-[").expect("ok"), vec![27]);
        assert!(parse_keys("").is_err());
        assert!(parse_keys("ctrl-").is_err());
        assert!(parse_keys("ctrl-P").is_err());
        assert!(parse_keys("shift-a").is_err());
        assert_eq!(
            parse_keys("ctrl-1").expect_err("bad").message,
            "Invalid detach keys (ctrl-1) provided"
        );
    }

    #[test]
    fn sequence_split_across_chunks_detaches() {
        let mut m = Matcher::new(vec![16, 17]);
        let a = m.feed(b"ab\x10");
        assert_eq!(a.pass, b"ab");
        assert!(!a.detached);
        let b = m.feed(b"\x11zz");
        assert!(b.detached);
        assert!(b.pass.is_empty());
    }

    #[test]
    fn partial_match_is_passed_through_when_it_fails() {
        let mut m = Matcher::new(vec![16, 17]);
        let a = m.feed(b"\x10x");
        assert_eq!(a.pass, b"\x10x");
        assert!(!a.detached);
        let mut m = Matcher::new(vec![16, 17]);
        assert!(m.feed(b"\x10").pass.is_empty());
        assert_eq!(m.finish(), vec![16]);
    }

    #[test]
    fn overlapping_prefixes_still_match() {
        let mut m = Matcher::new(b"aab".to_vec());
        let f = m.feed(b"xaaab");
        assert!(f.detached);
        assert_eq!(f.pass, b"xa");
        let mut m = Matcher::new(vec![16, 16, 17]);
        let f = m.feed(b"\x10\x10\x10\x11");
        assert!(f.detached);
        assert_eq!(f.pass, b"\x10");
    }

    #[tokio::test]
    async fn pump_returns_writer_on_detach_and_shuts_down_on_eof() {
        let (mut client, server) = tokio::io::duplex(64);
        let (shim_w, mut shim_r) = tokio::io::duplex(64);
        let task = tokio::spawn(pump_stdin(
            server,
            shim_w,
            Some(Matcher::new(vec![16, 17])),
            false,
        ));
        client.write_all(b"hi\x10\x11ignored").await.expect("write");
        let w = task.await.expect("join");
        assert!(w.is_some(), "detached");
        let mut got = [0u8; 2];
        shim_r.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hi");

        let (mut client, server) = tokio::io::duplex(64);
        let (shim_w, mut shim_r) = tokio::io::duplex(64);
        let task = tokio::spawn(pump_stdin(
            server,
            shim_w,
            Some(Matcher::new(vec![16, 17])),
            false,
        ));
        client.write_all(b"x\x10").await.expect("write");
        drop(client);
        assert!(task.await.expect("join").is_none());
        let mut all = Vec::new();
        shim_r.read_to_end(&mut all).await.expect("read");
        assert_eq!(all, b"x\x10");
    }
}
