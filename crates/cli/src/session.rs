//! An attached session on the local terminal: raw mode, window size, and the copying of
//! stdin to the container and of its output to stdout/stderr. Shared by `run`, `start -a`
//! and `exec`.

use std::pin::Pin;

use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// How local stdin feeds a session.
pub struct StdinOpts {
    /// The detach sequence to watch for.
    pub keys: Vec<u8>,
    /// Whether the client itself detaches on the sequence, holding the keys back (docker
    /// does so with a TTY); otherwise everything goes to the daemon, which detaches.
    pub intercept: bool,
}

impl StdinOpts {
    /// Docker's choice: the client intercepts the keys only in TTY sessions. Keys that do
    /// not parse fall back to the default sequence here (docker warns the same way); the
    /// daemon reports them as invalid.
    pub fn new(detach_keys: Option<&str>, tty: bool) -> Self {
        let keys = match detach_keys.filter(|k| !k.is_empty()) {
            Some(k) => crate::parse::detach_keys(k).unwrap_or_else(|e| {
                eprintln!("WARNING: invalid detach escape keys, using default: {e}");
                crate::parse::DEFAULT_DETACH_KEYS.to_vec()
            }),
            None => crate::parse::DEFAULT_DETACH_KEYS.to_vec(),
        };
        Self {
            keys,
            intercept: tty,
        }
    }
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The container (or exec) closed its output.
    Output,
    /// The user typed the detach sequence.
    Detached,
}

/// Sends local stdin to the session when `stdin` is given (half-closing it at EOF), and
/// writes the session's output to stdout/stderr until the session ends or the user
/// detaches.
pub async fn pump(
    mut output: Output,
    mut input: Input,
    stdin: Option<StdinOpts>,
) -> std::io::Result<Ended> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncReadExt;

    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
    let saw_keys = Arc::new(AtomicBool::new(false));
    let mut detach_pending = stdin.is_some();
    if let Some(opts) = stdin {
        let saw_keys = saw_keys.clone();
        tokio::spawn(async move {
            let mut detach_tx = Some(detach_tx);
            let mut local = tokio::io::stdin();
            let mut proxy = EscapeProxy::new(opts.keys);
            let mut buf = vec![0u8; 4096];
            loop {
                let n = match local.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (forward, detached) = proxy.feed(&buf[..n]);
                let data = if opts.intercept { &forward } else { &buf[..n] };
                if input.write_all(data).await.is_err() || input.flush().await.is_err() {
                    return;
                }
                if detached {
                    if opts.intercept {
                        // Leave the connection open: closing stdin is not detaching.
                        if let Some(tx) = detach_tx.take() {
                            let _ = tx.send(());
                        }
                        std::future::pending::<()>().await;
                    }
                    saw_keys.store(true, Ordering::SeqCst);
                }
            }
            let _ = input.shutdown().await;
        });
    } else {
        drop(detach_tx);
    }
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    loop {
        tokio::select! {
            item = output.next() => match item {
                Some(Ok(item)) => write_item(&mut stdout, &mut stderr, item).await?,
                _ => break,
            },
            res = &mut detach_rx, if detach_pending => {
                detach_pending = false;
                if res.is_ok() {
                    return Ok(Ended::Detached);
                }
            }
        }
    }
    // Without a TTY the daemon detaches by closing the stream after the keys.
    if saw_keys.load(Ordering::SeqCst) {
        Ok(Ended::Detached)
    } else {
        Ok(Ended::Output)
    }
}

/// Finds the detach sequence in typed input, as moby/term's escape proxy: bytes that may
/// start the sequence are held back until it is complete (detach) or broken (they are
/// passed on with what follows).
pub struct EscapeProxy {
    keys: Vec<u8>,
    matched: usize,
}

impl EscapeProxy {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, matched: 0 }
    }

    /// The bytes to pass on, and whether the sequence is now complete (what follows it is
    /// dropped).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        if self.keys.is_empty() {
            out.extend_from_slice(data);
            return (out, false);
        }
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            // A broken partial match: the held bytes were ordinary input.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// One chunk of container output to the matching local stream.
pub async fn write_item<O, E>(
    stdout: &mut O,
    stderr: &mut E,
    item: LogOutput,
) -> std::io::Result<()>
where
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    match item {
        LogOutput::StdErr { message } => {
            stderr.write_all(&message).await?;
            stderr.flush().await
        }
        other => {
            stdout.write_all(other.as_ref()).await?;
            stdout.flush().await
        }
    }
}

/// The local terminal's size (rows, cols), if stdout is a terminal.
pub fn terminal_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointed-to struct, which outlives the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Puts stdin in raw mode; restores the previous mode when dropped.
pub struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    pub fn enable() -> Option<Self> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_proxy_detaches_on_the_full_sequence() {
        let mut p = EscapeProxy::new(vec![16, 17]);
        assert_eq!(p.feed(b"ls\n\x10\x11after"), (b"ls\n".to_vec(), true));
    }

    #[test]
    fn escape_proxy_holds_a_prefix_across_reads() {
        let mut p = EscapeProxy::new(vec![16, 17]);
        assert_eq!(p.feed(b"a\x10"), (b"a".to_vec(), false));
        assert_eq!(p.feed(b"\x11"), (Vec::new(), true));
    }

    #[test]
    fn escape_proxy_passes_a_broken_prefix_on() {
        let mut p = EscapeProxy::new(vec![16, 17]);
        assert_eq!(p.feed(b"\x10"), (Vec::new(), false));
        assert_eq!(p.feed(b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(p.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
        let mut p = EscapeProxy::new(b"abc".to_vec());
        assert_eq!(p.feed(b"abxabc"), (b"abx".to_vec(), true));
    }
}
