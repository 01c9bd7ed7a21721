//! One process's stdio as the shim holds it, for the container's init and for every exec:
//! the read ends of its output (stdout and stderr pipes, or the pty master), the write
//! end of its stdin with the bytes still waiting for it, and the pty master for resizes.
//!
//! Everything is non-blocking; the monitor polls the descriptors and calls in here.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use arca_api::stdcopy::StreamKind;
use libcontainer::container::builder::ContainerBuilder;
use nix::fcntl::OFlag;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

use super::create::bind_listener;
use crate::sys;

/// Stop taking client input for a process while this much waits for its stdin.
pub const STDIN_HIGH_WATER: usize = 1 << 20;

/// The process's end of stdio, as the shim receives it from libcontainer.
pub enum ContainerIo {
    Pipes {
        stdout: File,
        stderr: File,
        /// The write end of the process's stdin pipe (`open_stdin`).
        stdin: Option<File>,
    },
    Pty {
        master: File,
    },
}

/// Stdio set up on a [`ContainerBuilder`] whose process has not been created yet.
pub enum PendingIo {
    /// libcontainer will send the pty master to this listener.
    Console {
        listener: UnixListener,
        path: PathBuf,
    },
    Pipes {
        stdout: File,
        stderr: File,
        stdin: Option<File>,
    },
}

fn pipe() -> io::Result<(File, File)> {
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((File::from(r), File::from(w)))
}

/// Gives `builder` the process's stdio: a console socket at `console` with a TTY, else
/// pipes for stdout and stderr, and for stdin a pipe (`open_stdin`) or `/dev/null`.
pub fn setup(
    builder: ContainerBuilder,
    tty: bool,
    open_stdin: bool,
    console: &Path,
) -> io::Result<(ContainerBuilder, PendingIo)> {
    if tty {
        let listener = bind_listener(console)?;
        let builder = builder.with_console_socket(Some(console));
        let pending = PendingIo::Console {
            listener,
            path: console.to_path_buf(),
        };
        return Ok((builder, pending));
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let mut builder = builder.with_stdout(out_w).with_stderr(err_w);
    let stdin = if open_stdin {
        let (r, w) = pipe()?;
        builder = builder.with_stdin(r);
        Some(w)
    } else {
        builder = builder.with_stdin(File::open("/dev/null")?);
        None
    };
    let pending = PendingIo::Pipes {
        stdout: out_r,
        stderr: err_r,
        stdin,
    };
    Ok((builder, pending))
}

impl PendingIo {
    /// Once libcontainer's `build()` returned: takes the pty master (sized to
    /// `console_size`) or the pipes.
    pub fn finish(self, console_size: Option<[u16; 2]>) -> io::Result<ContainerIo> {
        match self {
            Self::Pipes {
                stdout,
                stderr,
                stdin,
            } => Ok(ContainerIo::Pipes {
                stdout,
                stderr,
                stdin,
            }),
            Self::Console { listener, path } => {
                let master = receive_pty(&listener);
                let _ = std::fs::remove_file(&path);
                let master = master?;
                if let Some([rows, cols]) = console_size {
                    sys::set_winsize(&master, rows, cols)?;
                }
                Ok(ContainerIo::Pty { master })
            }
        }
    }

    /// The console socket's path, to remove when the process could not be created.
    pub fn console_path(&self) -> Option<&Path> {
        match self {
            Self::Console { path, .. } => Some(path),
            Self::Pipes { .. } => None,
        }
    }
}

/// Accepts libcontainer's console connection and takes the pty master it sends
/// (`SCM_RIGHTS`).
fn receive_pty(listener: &UnixListener) -> io::Result<File> {
    // build() returned, so the process has already connected and sent the master.
    listener.set_nonblocking(true)?;
    let (conn, _) = listener.accept()?;
    let mut name = [0u8; 256];
    let mut iov = [io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&conn),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut master = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                let owned = sys::own_received_fd(fd);
                if master.is_none() {
                    master = Some(File::from(owned));
                }
            }
        }
    }
    master.ok_or_else(|| io::Error::other("no terminal received"))
}

/// What one read of a process's output gave.
pub enum Output {
    /// `n` bytes at the start of the buffer.
    Data(usize),
    /// Nothing now (spurious wakeup).
    Nothing,
    /// The stream ended (or failed: the error, to report); it is closed.
    Closed(Option<io::Error>),
}

pub struct ProcessIo {
    tty: bool,
    /// `[stdout, stderr]` read ends; with a TTY, `[master, None]`.
    outputs: [Option<File>; 2],
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    close_stdin_when_drained: bool,
    /// The pty master, for resizes.
    pty: Option<File>,
}

impl ProcessIo {
    /// Takes over `io`; with a TTY the master is also the stdin when `open_stdin`.
    pub fn new(io: ContainerIo, open_stdin: bool) -> io::Result<Self> {
        let this = match io {
            ContainerIo::Pipes {
                stdout,
                stderr,
                stdin,
            } => Self {
                tty: false,
                outputs: [Some(stdout), Some(stderr)],
                stdin,
                stdin_buf: Vec::new(),
                close_stdin_when_drained: false,
                pty: None,
            },
            ContainerIo::Pty { master } => {
                let input = if open_stdin {
                    Some(master.try_clone()?)
                } else {
                    None
                };
                let resize = master.try_clone()?;
                Self {
                    tty: true,
                    outputs: [Some(master), None],
                    stdin: input,
                    stdin_buf: Vec::new(),
                    close_stdin_when_drained: false,
                    pty: Some(resize),
                }
            }
        };
        for f in this.outputs.iter().flatten().chain(this.stdin.as_ref()) {
            sys::set_nonblocking(f)?;
        }
        Ok(this)
    }

    pub fn tty(&self) -> bool {
        self.tty
    }

    /// The open output descriptors, by index.
    pub fn outputs(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        self.outputs
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.as_ref().map(|f| (i, f.as_fd())))
    }

    /// Every output reached its end.
    pub fn drained(&self) -> bool {
        self.outputs.iter().all(Option::is_none)
    }

    /// The stream output `i` carries.
    pub fn kind(&self, i: usize) -> StreamKind {
        if i == 0 || self.tty {
            StreamKind::Stdout
        } else {
            StreamKind::Stderr
        }
    }

    /// Reads once from output `i` into `buf`; closes it at its end.
    pub fn read(&mut self, i: usize, buf: &mut [u8]) -> Output {
        let Some(f) = self.outputs[i].as_mut() else {
            return Output::Nothing;
        };
        let end = match f.read(buf) {
            Ok(0) => None,
            // EIO: the pty's last slave descriptor closed.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => None,
            Ok(n) => return Output::Data(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Output::Nothing;
            }
            Err(e) => Some(e),
        };
        self.outputs[i] = None;
        Output::Closed(end)
    }

    /// The stdin descriptor, when bytes wait for it.
    pub fn stdin_pending(&self) -> Option<BorrowedFd<'_>> {
        self.stdin
            .as_ref()
            .filter(|_| !self.stdin_buf.is_empty())
            .map(AsFd::as_fd)
    }

    /// Enough waits for stdin: stop reading client input for it.
    pub fn stdin_full(&self) -> bool {
        self.stdin_buf.len() >= STDIN_HIGH_WATER
    }

    /// Queues client input for the process's stdin (dropped without a stdin, or once it
    /// is being closed).
    pub fn feed_stdin(&mut self, data: &[u8]) {
        if self.stdin.is_some() && !self.close_stdin_when_drained {
            self.stdin_buf.extend_from_slice(data);
            self.write_stdin();
        }
    }

    /// Writes what the stdin pipe takes; closes it once drained if asked to.
    pub fn write_stdin(&mut self) {
        if let Some(s) = self.stdin.as_mut() {
            let mut written = 0;
            while written < self.stdin_buf.len() {
                match s.write(&self.stdin_buf[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // The process closed its stdin: input has nowhere to go.
                        self.stdin = None;
                        self.stdin_buf.clear();
                        return;
                    }
                }
            }
            self.stdin_buf.drain(..written);
        }
        if self.close_stdin_when_drained && self.stdin_buf.is_empty() {
            self.stdin = None;
        }
    }

    /// Closes stdin once the bytes already queued have been written.
    pub fn close_stdin(&mut self) {
        self.close_stdin_when_drained = true;
        self.write_stdin();
    }

    /// Sets the TTY size; `None` without a TTY.
    pub fn resize(&self, rows: u16, cols: u16) -> Option<io::Result<()>> {
        self.pty.as_ref().map(|m| sys::set_winsize(m, rows, cols))
    }

    /// Closes every descriptor.
    pub fn close(&mut self) {
        self.outputs = [None, None];
        self.stdin = None;
        self.stdin_buf = Vec::new();
        self.pty = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipes(open_stdin: bool) -> (ProcessIo, File, File, Option<File>) {
        let (out_r, out_w) = pipe().expect("pipe");
        let (err_r, err_w) = pipe().expect("pipe");
        let (stdin_w, stdin_r) = if open_stdin {
            let (r, w) = pipe().expect("pipe");
            (Some(w), Some(r))
        } else {
            (None, None)
        };
        let io = ProcessIo::new(
            ContainerIo::Pipes {
                stdout: out_r,
                stderr: err_r,
                stdin: stdin_w,
            },
            open_stdin,
        )
        .expect("io");
        (io, out_w, err_w, stdin_r)
    }

    #[test]
    fn output_is_read_per_stream_until_its_end() {
        let (mut io, mut out, err, _) = pipes(false);
        let mut buf = [0u8; 16];
        assert!(matches!(io.read(0, &mut buf), Output::Nothing));
        out.write_all(b"hi").expect("write");
        assert!(matches!(io.read(0, &mut buf), Output::Data(2)));
        assert_eq!(io.kind(1), StreamKind::Stderr);
        drop((out, err));
        assert!(matches!(io.read(0, &mut buf), Output::Closed(None)));
        assert!(!io.drained());
        assert!(matches!(io.read(1, &mut buf), Output::Closed(None)));
        assert!(io.drained());
    }

    #[test]
    fn stdin_is_closed_after_the_queued_bytes() {
        let (mut io, _out, _err, stdin) = pipes(true);
        let mut stdin = stdin.expect("stdin");
        io.feed_stdin(b"abc");
        io.close_stdin();
        io.feed_stdin(b"dropped");
        let mut got = Vec::new();
        stdin.read_to_end(&mut got).expect("read");
        assert_eq!(got, b"abc");
    }

    #[test]
    fn input_without_stdin_is_dropped_and_resize_needs_a_tty() {
        let (mut io, _out, _err, _) = pipes(false);
        io.feed_stdin(b"x");
        assert!(io.stdin_pending().is_none());
        assert!(io.resize(1, 1).is_none());
    }
}
