//! The shim's event loop, from `Ready` until the container's exit is reported.
//!
//! One `poll` over the listening socket, the clients, the container's output (pipes or pty
//! master), its stdin, and a signalfd for `SIGCHLD`. It blocks in `poll` without a
//! timeout except while draining output after the exit (bounded by [`DRAIN_LIMIT`]) and
//! while flushing the last replies (bounded by [`FLUSH_LIMIT`]).
//!
//! On exit: drain output to EOF, flush the log, read the OOM counter, write the exit file,
//! detach the rootfs mount (`MNT_DETACH`, cheap), then answer `Wait` and close attach
//! streams, so that a client that saw `Exited` may remove the container's directories at
//! once. Only then the slow part: remove the socket, and delete the container with
//! libcontainer (its cgroup, ~2 ms on cgroup v1, then its state directory
//! `<state_root>/<id>`, **the last thing removed**: a client that wants to start the same
//! container again waits until that directory is gone). The overlay's final teardown,
//! which syncs the whole upper filesystem, happens when the shim exits (see
//! [`rootfs::detach`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use arca_api::shim::{ExitStatus, PROTOCOL_VERSION, Reply, Request, ShimConfig};
use arca_api::stdcopy::{self, StreamKind};
use libcgroups::common::{CgroupSetup, DEFAULT_CGROUP_ROOT};
use libcontainer::container::Container;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::client::{Client, Input, Role};
use super::create::{ContainerIo, Created};
use super::diag::{Diag, chain};
use crate::logfile::JsonLog;
use crate::timefmt::rfc3339_nano;
use crate::{resources, rootfs, sys};

/// How long to keep reading output after the init exited (normally EOF comes at once:
/// the PID namespace dies with its init).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// How long slow clients get to take their last bytes before the shim exits.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// Stop reading client input while this much waits for the container's stdin.
const STDIN_HIGH_WATER: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Token {
    Listener,
    Signal,
    Output(usize),
    Stdin,
    Client(usize),
}

pub struct Monitor {
    cfg: ShimConfig,
    diag: Diag,
    container: Option<Container>,
    init_pid: Pid,
    cgroup_setup: Option<CgroupSetup>,
    listener: Option<UnixListener>,
    sigfd: SignalFd,
    tty: bool,
    /// `[stdout, stderr]` read ends; with a TTY, `[master, None]`.
    outputs: [Option<File>; 2],
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    close_stdin_when_drained: bool,
    /// The pty master, for resizes.
    pty: Option<File>,
    clients: Vec<Client>,
    log: Option<JsonLog<File>>,
    started: bool,
    /// Exit code and time, once the init has been reaped.
    reaped: Option<(i32, SystemTime)>,
    deadline: Option<Instant>,
    status: Option<ExitStatus>,
    /// Reused for reading the container's output.
    read_buf: Vec<u8>,
    /// Keeps the detached overlay alive until the shim exits (see [`rootfs::detach`]).
    rootfs_pin: Option<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("failed to watch for SIGCHLD")]
    Signal(#[source] nix::Error),
    #[error("failed to open the container log {path}")]
    Log {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to duplicate the terminal")]
    Pty(#[source] io::Error),
}

/// The monitor could not be set up; the created container is handed back for teardown.
pub struct SetupFailure {
    pub error: MonitorError,
    pub container: Container,
    pub init_pid: Pid,
}

impl Monitor {
    pub fn new(
        cfg: ShimConfig,
        diag: Diag,
        created: Created,
        listener: UnixListener,
    ) -> Result<Self, Box<SetupFailure>> {
        let Created {
            container,
            init_pid,
            io,
            cgroup_setup,
        } = created;
        let setup = || -> Result<_, MonitorError> {
            // Blocked only now: the container's processes were cloned with the default mask.
            let mut mask = SigSet::empty();
            mask.add(Signal::SIGCHLD);
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(MonitorError::Signal)?;
            let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
                .map_err(MonitorError::Signal)?;
            let log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_CLOEXEC)
                .open(&cfg.log_path)
                .map_err(|source| MonitorError::Log {
                    path: cfg.log_path.display().to_string(),
                    source,
                })?;
            Ok((sigfd, log))
        };
        let (sigfd, log) = match setup() {
            Ok(v) => v,
            Err(error) => {
                return Err(Box::new(SetupFailure {
                    error,
                    container,
                    init_pid,
                }));
            }
        };
        let (tty, outputs, stdin, pty) = match io {
            ContainerIo::Pipes {
                stdout,
                stderr,
                stdin,
            } => (false, [Some(stdout), Some(stderr)], stdin, None),
            ContainerIo::Pty { master } => {
                let dup = |f: &File| f.try_clone().map_err(MonitorError::Pty);
                let (input, resize) = match (dup(&master), dup(&master)) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(error), _) | (_, Err(error)) => {
                        return Err(Box::new(SetupFailure {
                            error,
                            container,
                            init_pid,
                        }));
                    }
                };
                let input = cfg.process.open_stdin.then_some(input);
                (true, [Some(master), None], input, Some(resize))
            }
        };
        for f in outputs.iter().flatten().chain(stdin.as_ref()) {
            set_nonblocking(f);
        }
        let _ = listener.set_nonblocking(true);
        Ok(Self {
            cfg,
            diag,
            container: Some(container),
            init_pid,
            cgroup_setup,
            listener: Some(listener),
            sigfd,
            tty,
            outputs,
            stdin,
            stdin_buf: Vec::new(),
            close_stdin_when_drained: false,
            pty,
            clients: Vec::new(),
            log: Some(JsonLog::new(log)),
            started: false,
            reaped: None,
            deadline: None,
            status: None,
            read_buf: vec![0; 64 << 10],
            rootfs_pin: None,
        })
    }

    /// Runs until the container has exited, everything is cleaned up and every client has
    /// been answered (or [`FLUSH_LIMIT`] passed).
    pub fn run(mut self) {
        // An exit may have happened before SIGCHLD was routed to the signalfd.
        self.reap();
        loop {
            self.clients.retain(|c| !c.finished());
            if self.status.is_none()
                && self.reaped.is_some()
                && (self.outputs.iter().all(Option::is_none) || self.past_deadline())
            {
                self.finish();
                self.clients.retain(|c| !c.finished());
            }
            if self.status.is_some() && (self.clients.is_empty() || self.past_deadline()) {
                break;
            }
            if let Err(e) = self.poll_once() {
                self.diag.error(format_args!("poll failed: {e}"));
                if self.status.is_none() {
                    // Without poll the shim cannot watch anything: give up on the
                    // container rather than leave it unmonitored.
                    let _ = sys::kill(self.init_pid.as_raw(), libc::SIGKILL);
                    let _ = waitpid(self.init_pid, None);
                    self.reaped.get_or_insert((137, SystemTime::now()));
                    self.finish();
                }
                break;
            }
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn poll_once(&mut self) -> nix::Result<()> {
        let timeout = match self.deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let ms = d.saturating_duration_since(Instant::now()).as_millis() + 1;
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let ready: Vec<(Token, PollFlags)> = {
            let mut tokens = Vec::with_capacity(self.clients.len() + 5);
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(self.clients.len() + 5);
            macro_rules! add {
                ($t:expr, $fd:expr, $ev:expr) => {{
                    tokens.push($t);
                    fds.push(PollFd::new($fd, $ev));
                }};
            }
            if let Some(l) = &self.listener {
                add!(Token::Listener, l.as_fd(), PollFlags::POLLIN);
            }
            if self.reaped.is_none() {
                add!(Token::Signal, self.sigfd.as_fd(), PollFlags::POLLIN);
            }
            for (i, o) in self.outputs.iter().enumerate() {
                if let Some(f) = o {
                    add!(Token::Output(i), f.as_fd(), PollFlags::POLLIN);
                }
            }
            if let Some(s) = &self.stdin
                && !self.stdin_buf.is_empty()
            {
                add!(Token::Stdin, s.as_fd(), PollFlags::POLLOUT);
            }
            let stdin_full = self.stdin_buf.len() >= STDIN_HIGH_WATER;
            for (i, c) in self.clients.iter().enumerate() {
                let mut ev = PollFlags::empty();
                let feeds_stdin = matches!(c.role, Role::Attached { stdin: true, .. });
                if !(c.read_closed || feeds_stdin && stdin_full) {
                    ev |= PollFlags::POLLIN;
                }
                if c.has_output() {
                    ev |= PollFlags::POLLOUT;
                }
                add!(Token::Client(i), c.stream.as_fd(), ev);
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
            tokens
                .into_iter()
                .zip(&fds)
                .filter_map(|(t, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (t, r)))
                .collect()
        };
        for (token, revents) in ready {
            match token {
                Token::Signal => self.reap(),
                Token::Output(i) => self.read_output(i),
                Token::Stdin => self.write_stdin(),
                Token::Listener => self.accept(),
                Token::Client(i) => self.client_event(i, revents),
            }
        }
        Ok(())
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, _)) => match Client::new(stream) {
                    Ok(c) => self.clients.push(c),
                    Err(e) => self.diag.warn(format_args!("client setup failed: {e}")),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.diag.warn(format_args!("accept failed: {e}"));
                    break;
                }
            }
        }
    }

    /// Drains the signalfd and reaps every exited child; records the init's exit.
    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            if pid == self.init_pid && self.reaped.is_none() {
                self.reaped = Some((code, SystemTime::now()));
                self.deadline = Some(Instant::now() + DRAIN_LIMIT);
            }
        }
    }

    fn read_output(&mut self, i: usize) {
        let Some(f) = self.outputs[i].as_mut() else {
            return;
        };
        let mut buf = std::mem::take(&mut self.read_buf);
        let n = match f.read(&mut buf) {
            // EIO: the pty's last slave descriptor closed.
            Ok(0) => 0,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => 0,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return;
            }
            Err(e) => {
                self.diag
                    .warn(format_args!("reading container output failed: {e}"));
                0
            }
        };
        if n == 0 {
            self.outputs[i] = None;
        } else {
            self.distribute(i, &buf[..n]);
        }
        self.read_buf = buf;
    }

    /// Logs a chunk of output and queues it to every client attached to its stream.
    fn distribute(&mut self, i: usize, data: &[u8]) {
        let kind = if i == 0 || self.tty {
            StreamKind::Stdout
        } else {
            StreamKind::Stderr
        };
        if let Some(log) = self.log.as_mut()
            && let Err(e) = log.write(kind, data, &rfc3339_nano(SystemTime::now()))
        {
            self.diag
                .warn(format_args!("writing the container log failed: {e}"));
        }
        let mut framed = Vec::new();
        for c in &mut self.clients {
            let Role::Attached { stdout, stderr, .. } = c.role else {
                continue;
            };
            let wanted = match kind {
                StreamKind::Stdout => stdout,
                _ => stderr,
            };
            if !wanted {
                continue;
            }
            if self.tty {
                c.queue(data);
            } else {
                if framed.is_empty() {
                    stdcopy::encode_into(&mut framed, kind, data);
                }
                c.queue(&framed);
            }
            if c.dead {
                self.diag
                    .warn("dropping an attached client that stopped reading");
            }
            c.flush();
        }
    }

    fn feed_stdin(&mut self, data: &[u8]) {
        if self.stdin.is_some() && !self.close_stdin_when_drained {
            self.stdin_buf.extend_from_slice(data);
            self.write_stdin();
        }
    }

    fn write_stdin(&mut self) {
        if let Some(s) = self.stdin.as_mut() {
            let mut written = 0;
            while written < self.stdin_buf.len() {
                match s.write(&self.stdin_buf[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // The container closed its stdin: input has nowhere to go.
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

    fn client_event(&mut self, i: usize, revents: PollFlags) {
        if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            && !self.clients[i].read_closed
        {
            match self.clients[i].read() {
                Input::Nothing => {}
                Input::Request(req, rest) => {
                    self.handle_request(i, req);
                    if !rest.is_empty() {
                        self.client_data(i, &rest);
                    }
                }
                Input::Data(d) => self.client_data(i, &d),
                Input::Eof => self.client_eof(i),
            }
        }
        let c = &mut self.clients[i];
        if c.has_output() {
            c.flush();
        }
        // POLLHUP on a unix stream: the peer closed both directions.
        if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) && c.read_closed {
            c.dead = true;
        }
    }

    fn client_data(&mut self, i: usize, data: &[u8]) {
        if let Role::Attached { stdin: true, .. } = self.clients[i].role {
            self.feed_stdin(data);
        }
    }

    fn client_eof(&mut self, i: usize) {
        let c = &mut self.clients[i];
        match c.role {
            Role::Attached { stdin: true, .. } if self.cfg.process.stdin_once => {
                self.close_stdin_when_drained = true;
                self.write_stdin();
            }
            Role::Pending => c.dead = true,
            _ => {}
        }
    }

    fn handle_request(&mut self, i: usize, req: Result<Request, String>) {
        let pid = Some(self.init_pid.as_raw());
        let exited = self.reaped.is_some();
        let reply = match req {
            Err(message) => Reply::Error { message },
            Ok(Request::Start) => self.start(),
            Ok(Request::Attach {
                stdin,
                stdout,
                stderr,
            }) => {
                let c = &mut self.clients[i];
                c.queue_reply(&Reply::Ok { pid });
                c.role = if self.status.is_some() {
                    Role::Done
                } else {
                    Role::Attached {
                        stdin,
                        stdout,
                        stderr,
                    }
                };
                c.flush();
                return;
            }
            Ok(Request::Kill { .. }) if exited => Reply::Error {
                message: "container is not running".into(),
            },
            Ok(Request::Kill { signal }) if !(1..=64).contains(&signal) => Reply::Error {
                message: format!("invalid signal {signal}"),
            },
            Ok(Request::Kill { signal }) => match sys::kill(self.init_pid.as_raw(), signal) {
                Ok(()) => Reply::Ok { pid },
                Err(e) => Reply::Error {
                    message: format!("failed to signal the container: {e}"),
                },
            },
            Ok(Request::Wait) => match &self.status {
                Some(s) => Reply::Exited(s.clone()),
                None => {
                    self.clients[i].role = Role::Waiting;
                    return;
                }
            },
            Ok(Request::Resize { rows, cols }) => match (&self.pty, exited) {
                (_, true) => Reply::Error {
                    message: "container is not running".into(),
                },
                (None, false) => Reply::Error {
                    message: "the container has no tty".into(),
                },
                (Some(m), false) => match sys::set_winsize(m, rows, cols) {
                    Ok(()) => Reply::Ok { pid: None },
                    Err(e) => Reply::Error {
                        message: format!("failed to resize the tty: {e}"),
                    },
                },
            },
        };
        let c = &mut self.clients[i];
        c.queue_reply(&reply);
        c.role = Role::Done;
        c.flush();
    }

    fn start(&mut self) -> Reply {
        if self.reaped.is_some() {
            return Reply::Error {
                message: "container is not running".into(),
            };
        }
        if self.started {
            return Reply::Error {
                message: "container already started".into(),
            };
        }
        let Some(container) = self.container.as_mut() else {
            return Reply::Error {
                message: "container is not running".into(),
            };
        };
        match container.start() {
            Ok(()) => {
                self.started = true;
                Reply::Ok {
                    pid: Some(self.init_pid.as_raw()),
                }
            }
            Err(e) => {
                let message = format!("failed to start the container: {}", chain(&e));
                self.diag.error(&message);
                Reply::Error { message }
            }
        }
    }

    /// The container has exited and its output is drained: record, detach the rootfs,
    /// answer, then clean up.
    fn finish(&mut self) {
        let (exit_code, at) = self
            .reaped
            .unwrap_or((128 + libc::SIGKILL, SystemTime::now()));
        self.outputs = [None, None];
        self.stdin = None;
        self.pty = None;
        if let Some(mut log) = self.log.take()
            && let Err(e) = log.flush_partial(&rfc3339_nano(SystemTime::now()))
        {
            self.diag
                .warn(format_args!("writing the container log failed: {e}"));
        }
        let oom_killed = self.cgroup_setup.as_ref().is_some_and(|s| {
            resources::oom_killed(Path::new(DEFAULT_CGROUP_ROOT), s, &self.cfg.cgroup_path)
        });
        let status = ExitStatus {
            version: PROTOCOL_VERSION,
            exit_code,
            finished_at: rfc3339_nano(at),
            oom_killed,
            error: String::new(),
        };
        if let Err(e) = write_exit_file(&self.cfg.exit_file, &status) {
            self.diag.error(format_args!(
                "failed to write {}: {e}",
                self.cfg.exit_file.display()
            ));
        }
        let rootfs = self.cfg.bundle.join("rootfs");
        match rootfs::detach(&rootfs) {
            Ok(pin) => self.rootfs_pin = pin,
            Err(e) => self
                .diag
                .warn(format_args!("failed to unmount {}: {e}", rootfs.display())),
        }
        for c in &mut self.clients {
            match c.role {
                Role::Waiting => {
                    c.queue_reply(&Reply::Exited(status.clone()));
                    c.role = Role::Done;
                }
                Role::Attached { .. } => c.role = Role::Done,
                Role::Pending | Role::Done => {}
            }
            c.flush();
        }
        self.status = Some(status);
        self.deadline = Some(Instant::now() + FLUSH_LIMIT);
        self.cleanup();
    }

    /// After the replies: removes the socket, then deletes the container's cgroup and, last,
    /// its runtime state directory (see the module docs). Existing connections stay open.
    fn cleanup(&mut self) {
        self.listener = None;
        let _ = std::fs::remove_file(&self.cfg.socket);
        if let Some(mut c) = self.container.take()
            && let Err(e) = c.delete(true)
        {
            self.diag.warn(format_args!(
                "failed to delete the container: {}",
                chain(&e)
            ));
        }
    }
}

fn set_nonblocking(f: &File) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::os::fd::AsRawFd;
    if let Ok(flags) = fcntl(f.as_raw_fd(), FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags));
    }
}

/// Writes `status` to `path` atomically (temp file + rename; no fsync: the exit file
/// only needs to survive a daemon restart, not a host crash).
pub fn write_exit_file(path: &Path, status: &ExitStatus) -> io::Result<()> {
    let json = serde_json::to_vec(status)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}
