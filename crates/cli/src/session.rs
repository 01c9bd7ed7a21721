//! An attached session on the local terminal: raw mode, window size, and the copying of
//! stdin to the container and of its output to stdout/stderr. Shared by `run`, `start -a`
//! and `exec`.

use std::pin::Pin;

use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// Sends local stdin to the session when `interactive` (half-closing it at EOF), and
/// writes the session's output to stdout/stderr until the session ends.
pub async fn pump(mut output: Output, mut input: Input, interactive: bool) -> std::io::Result<()> {
    if interactive {
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let _ = tokio::io::copy(&mut stdin, &mut input).await;
            let _ = input.shutdown().await;
        });
    }
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    while let Some(Ok(item)) = output.next().await {
        write_item(&mut stdout, &mut stderr, item).await?;
    }
    Ok(())
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
