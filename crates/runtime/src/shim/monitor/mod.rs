//! The shim's event loop, from `Ready` until the container's exit is reported.
//!
//! One `poll` over the listening socket, the clients, the output (pipes or pty master) and
//! stdin of the container's init and of every exec, and a signalfd for `SIGCHLD`. It blocks
//! in `poll` without a timeout except while draining output after an exit (bounded by
//! [`DRAIN_LIMIT`]) and while flushing the last replies (bounded by [`FLUSH_LIMIT`]).
//!
//! Execs ([`super::exec`]): an exec's output goes only to the connection that created it (never to
//! the log), with backpressure: the shim stops reading the exec's output while that client
//! has [`EXEC_OUTPUT_HIGH_WATER`] bytes waiting (a client that disconnected just has the
//! output thrown away; the exec keeps running). When the exec has exited and its output
//! reached its end (or [`DRAIN_LIMIT`] passed without the client holding it back), the shim
//! records its status, answers its `ExecWait`s and closes its stream. Execs die with the
//! init (the kernel kills the PID namespace); their statuses are kept until the shim exits.
//!
//! The init's output has the same backpressure: while an attached client has
//! [`OUTPUT_HIGH_WATER`] bytes waiting, the shim stops reading the init's output, so the
//! container blocks on its writes (as with Docker's attach) instead of the client losing
//! output. After the init exited, the drain deadline is extended while such a client keeps
//! taking bytes; one that takes nothing for [`DRAIN_LIMIT`] is dropped, so that the rest of
//! the output still reaches the log.
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
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use arca_api::shim::{ExitStatus, PROTOCOL_VERSION, Reply, ShimConfig};
use arca_api::stdcopy::{self, StreamKind};
use libcgroups::common::{CgroupSetup, DEFAULT_CGROUP_ROOT};
use libcontainer::container::Container;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

mod control;
mod execs;
mod requests;

use super::client::{Client, Input, OUTPUT_HIGH_WATER, Role};
use super::create::Created;
use super::diag::{Diag, chain};
use super::exec::Exec;
use super::executor::Confinement;
use super::stdio::{Output, ProcessIo};
use crate::logfile::{JsonLog, RotatingFile};
use crate::timefmt::rfc3339_nano;
use crate::{resources, rootfs, sys};

/// How long to keep reading output after the init exited (normally EOF comes at once:
/// the PID namespace dies with its init).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// How long slow clients get to take their last bytes before the shim exits.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// Quiet time after the last client connected before the shim trims its memory (see
/// [`crate::shim::trim`]): handling a request runs code that the idle loop does not need.
const TRIM_DELAY: Duration = Duration::from_millis(200);
/// Stop reading an exec's output while its client has this much waiting.
const EXEC_OUTPUT_HIGH_WATER: usize = OUTPUT_HIGH_WATER;

/// Whose stdio.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Init,
    /// Index into [`Monitor::execs`].
    Exec(usize),
}

#[derive(Clone, Copy)]
enum Token {
    Listener,
    Signal,
    Output(Target, usize),
    Stdin(Target),
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
    /// The init's stdio.
    io: ProcessIo,
    /// For execs.
    confinement: Confinement,
    /// Every exec since the container started, in creation order (never removed: their
    /// statuses are kept until the container exits).
    execs: Vec<Exec>,
    clients: Vec<Client>,
    log: Option<JsonLog<RotatingFile>>,
    started: bool,
    /// Exit code and time, once the init has been reaped.
    reaped: Option<(i32, SystemTime)>,
    deadline: Option<Instant>,
    status: Option<ExitStatus>,
    /// Reused for reading the container's output.
    read_buf: Vec<u8>,
    /// Keeps the detached overlay alive until the shim exits (see [`rootfs::detach`]).
    rootfs_pin: Option<File>,
    /// The container's cgroup is frozen (see [`control`]).
    paused: bool,
    /// The container's cgroup manager, opened on the first pause or update.
    cgroup: Option<libcgroups::common::AnyCgroupManager>,
    /// When to give back memory that handling requests touched ([`TRIM_DELAY`]).
    trim_at: Option<Instant>,
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
    #[error("failed to set up the container's stdio")]
    Stdio(#[source] io::Error),
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
            confinement,
        } = created;
        let setup = || -> Result<_, MonitorError> {
            // Blocked only now: the container's processes were cloned with the default mask.
            let mut mask = SigSet::empty();
            mask.add(Signal::SIGCHLD);
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(MonitorError::Signal)?;
            let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
                .map_err(MonitorError::Signal)?;
            let log = if cfg.log.disabled {
                None
            } else {
                let file = RotatingFile::open(&cfg.log_path, cfg.log).map_err(|source| {
                    MonitorError::Log {
                        path: cfg.log_path.display().to_string(),
                        source,
                    }
                })?;
                Some(JsonLog::new(file))
            };
            let io = ProcessIo::new(io, cfg.process.open_stdin).map_err(MonitorError::Stdio)?;
            Ok((sigfd, log, io))
        };
        let (sigfd, log, io) = match setup() {
            Ok(v) => v,
            Err(error) => {
                return Err(Box::new(SetupFailure {
                    error,
                    container,
                    init_pid,
                }));
            }
        };
        let _ = listener.set_nonblocking(true);
        Ok(Self {
            cfg,
            diag,
            container: Some(container),
            init_pid,
            cgroup_setup,
            listener: Some(listener),
            sigfd,
            io,
            confinement,
            execs: Vec::new(),
            clients: Vec::new(),
            log,
            started: false,
            reaped: None,
            deadline: None,
            status: None,
            read_buf: vec![0; 64 << 10],
            rootfs_pin: None,
            paused: false,
            cgroup: None,
            trim_at: None,
        })
    }

    /// Runs until the container has exited, everything is cleaned up and every client has
    /// been answered (or [`FLUSH_LIMIT`] passed).
    pub fn run(mut self) {
        // An exit may have happened before SIGCHLD was routed to the signalfd.
        self.reap();
        loop {
            self.settle_execs();
            self.clients.retain(|c| !c.finished());
            if self.status.is_none() && self.reaped.is_some() {
                self.drop_stalled_clients();
                if self.init_output_held_back() {
                    self.deadline = Some(Instant::now() + DRAIN_LIMIT);
                }
            }
            if self.status.is_none()
                && self.reaped.is_some()
                && ((self.io.drained() && !self.execs.iter().any(Exec::active))
                    || self.past_deadline())
            {
                self.finish();
                self.clients.retain(|c| !c.finished());
            }
            if self.status.is_some() && (self.clients.is_empty() || self.past_deadline()) {
                break;
            }
            if self.trim_at.is_some_and(|t| Instant::now() >= t) {
                self.trim_at = None;
                if let Err(e) = crate::shim::trim::release_startup_memory() {
                    self.diag.warn(format_args!("could not trim memory: {e}"));
                }
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

    /// The earliest time the loop must wake up without an event.
    fn next_deadline(&self) -> Option<Instant> {
        self.execs
            .iter()
            .filter(|e| e.active())
            .filter_map(|e| e.deadline)
            .chain(self.deadline)
            .chain(self.trim_at)
            .min()
    }

    fn poll_once(&mut self) -> nix::Result<()> {
        let timeout = match self.next_deadline() {
            None => PollTimeout::NONE,
            Some(d) => {
                let ms = d.saturating_duration_since(Instant::now()).as_millis() + 1;
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let held_back = self.exec_backpressure();
        let init_held_back = self.init_output_held_back();
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
            let running_exec = self.execs.iter().any(|e| e.active() && e.exited.is_none());
            if self.reaped.is_none() || running_exec {
                add!(Token::Signal, self.sigfd.as_fd(), PollFlags::POLLIN);
            }
            if !init_held_back {
                for (i, fd) in self.io.outputs() {
                    add!(Token::Output(Target::Init, i), fd, PollFlags::POLLIN);
                }
            }
            if let Some(fd) = self.io.stdin_pending() {
                add!(Token::Stdin(Target::Init), fd, PollFlags::POLLOUT);
            }
            for (k, e) in self.execs.iter().enumerate() {
                if !e.active() {
                    continue;
                }
                let target = Target::Exec(k);
                if !held_back[k] {
                    for (i, fd) in e.io.outputs() {
                        add!(Token::Output(target, i), fd, PollFlags::POLLIN);
                    }
                }
                if let Some(fd) = e.io.stdin_pending() {
                    add!(Token::Stdin(target), fd, PollFlags::POLLOUT);
                }
            }
            for (i, c) in self.clients.iter().enumerate() {
                let mut ev = PollFlags::empty();
                let stdin_full = feeds(c.role).is_some_and(|t| self.io_of(t).stdin_full());
                if !(c.read_closed || stdin_full) {
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
                Token::Output(t, i) => self.read_output(t, i),
                Token::Stdin(t) => self.io_mut(t).write_stdin(),
                Token::Listener => self.accept(),
                Token::Client(i) => self.client_event(i, revents),
            }
        }
        Ok(())
    }

    /// Whether an attached client has so much of the init's output waiting that the shim
    /// must stop reading more.
    fn init_output_held_back(&self) -> bool {
        self.clients.iter().any(holds_back_init_output)
    }

    /// After the init exited: drops attached clients that hold its output back and took
    /// nothing for [`DRAIN_LIMIT`], so the rest of the output can still reach the log.
    fn drop_stalled_clients(&mut self) {
        for c in &mut self.clients {
            if holds_back_init_output(c) && c.last_progress.elapsed() >= DRAIN_LIMIT {
                c.dead = true;
                self.diag
                    .warn("dropping an attached client that stopped reading");
            }
        }
    }

    fn io_of(&self, target: Target) -> &ProcessIo {
        match target {
            Target::Init => &self.io,
            Target::Exec(k) => &self.execs[k].io,
        }
    }

    fn io_mut(&mut self, target: Target) -> &mut ProcessIo {
        match target {
            Target::Init => &mut self.io,
            Target::Exec(k) => &mut self.execs[k].io,
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, _)) => match Client::new(stream) {
                    Ok(c) => {
                        self.clients.push(c);
                        self.trim_at = Some(Instant::now() + TRIM_DELAY);
                    }
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

    /// Drains the signalfd and reaps every exited child; records the exits of the init and
    /// of execs (anything else is libcontainer's: intermediate processes, failed execs).
    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(s) => match docker_exit_code(Some(s)) {
                    Some(v) => v,
                    None => continue,
                },
            };
            let now = SystemTime::now();
            if pid == self.init_pid && self.reaped.is_none() {
                self.reaped = Some((code, now));
                self.deadline = Some(Instant::now() + DRAIN_LIMIT);
            } else if let Some(e) = self
                .execs
                .iter_mut()
                .find(|e| e.pid == pid && e.exited.is_none())
            {
                e.exited = Some((code, now));
                e.deadline = Some(Instant::now() + DRAIN_LIMIT);
            }
        }
    }

    fn read_output(&mut self, target: Target, i: usize) {
        let mut buf = std::mem::take(&mut self.read_buf);
        match self.io_mut(target).read(i, &mut buf) {
            Output::Data(n) => self.distribute(target, i, &buf[..n]),
            Output::Nothing | Output::Closed(None) => {}
            Output::Closed(Some(e)) => self
                .diag
                .warn(format_args!("reading process output failed: {e}")),
        }
        self.read_buf = buf;
    }

    /// Logs a chunk of the init's output; queues output to every client attached to its
    /// stream.
    fn distribute(&mut self, target: Target, i: usize, data: &[u8]) {
        let io = self.io_of(target);
        let (kind, tty) = (io.kind(i), io.tty());
        if target == Target::Init
            && let Some(log) = self.log.as_mut()
            && let Err(e) = log.write(kind, data, &rfc3339_nano(SystemTime::now()))
        {
            self.diag
                .warn(format_args!("writing the container log failed: {e}"));
        }
        let mut framed = Vec::new();
        for c in &mut self.clients {
            let wanted = match (target, c.role) {
                (Target::Init, Role::Attached { stdout, stderr, .. }) => match kind {
                    StreamKind::Stdout => stdout,
                    _ => stderr,
                },
                (Target::Exec(k), Role::Exec { exec, .. }) => exec == k,
                _ => false,
            };
            if !wanted {
                continue;
            }
            if tty {
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
        if let Some(t) = feeds(self.clients[i].role) {
            self.io_mut(t).feed_stdin(data);
        }
    }

    fn client_eof(&mut self, i: usize) {
        match self.clients[i].role {
            Role::Attached { stdin: true, .. } if self.cfg.process.stdin_once => {
                self.io.close_stdin();
            }
            // An exec's stdin ends with its client's (`docker exec -i`).
            Role::Exec { exec, stdin: true } => self.execs[exec].io.close_stdin(),
            Role::Pending => self.clients[i].dead = true,
            _ => {}
        }
    }

    /// The container has exited and its output is drained: record, detach the rootfs,
    /// answer, then clean up.
    fn finish(&mut self) {
        let (exit_code, at) = self
            .reaped
            .unwrap_or((128 + libc::SIGKILL, SystemTime::now()));
        self.io.close();
        self.finish_all_execs();
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
                Role::Pending | Role::Done | Role::Exec { .. } | Role::ExecWaiting { .. } => {}
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
        self.thaw_for_delete();
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

/// The client's role feeds this process's stdin.
fn holds_back_init_output(c: &Client) -> bool {
    matches!(c.role, Role::Attached { stdout, stderr, .. } if stdout || stderr)
        && !c.dead
        && c.buffered() >= OUTPUT_HIGH_WATER
}

fn feeds(role: Role) -> Option<Target> {
    match role {
        Role::Attached { stdin: true, .. } => Some(Target::Init),
        Role::Exec { exec, stdin: true } => Some(Target::Exec(exec)),
        _ => None,
    }
}

/// Docker's exit code (the status, or 128 + signal) of an exited or killed child.
fn docker_exit_code(status: Option<WaitStatus>) -> Option<(Pid, i32)> {
    match status? {
        WaitStatus::Exited(pid, code) => Some((pid, code)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid, 128 + sig as i32)),
        _ => None,
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
