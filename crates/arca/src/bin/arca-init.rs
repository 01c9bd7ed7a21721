//! `arca-init`: the tiny init that `--init` runs as PID 1 in a container (Docker's
//! `docker-init`, which is tini), as `/sbin/docker-init -- cmd args...`.
//!
//! It spawns `cmd` as its only direct child, forwards every signal it receives to that
//! child, reaps every process that exits (orphans are re-parented to PID 1), and exits with
//! the child's exit code, or 128 + the signal that killed it. When it is not PID 1 (tests)
//! it makes itself a child subreaper so that orphans still come to it.
//!
//! Like tini, the child runs in its own process group and, when stdin is a terminal, takes
//! over the terminal's foreground group (so that shells get job control).
//!
//! Limits: synchronous signals (SIGSEGV, SIGFPE, ...) are not forwarded, nor SIGTTIN and
//! SIGTTOU, which the init ignores. The init exits as soon as its child has; whatever else
//! still runs in the container is killed by the kernel when PID 1 exits.
//!
//! The binary is linked statically (see `crates/arca/build.rs`) so that it runs in any
//! root filesystem, with or without a C library.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

/// Signals that belong to the init itself: raised by its own faults, never forwarded.
const SYNCHRONOUS: [libc::c_int; 7] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// Job-control signals a background init would otherwise be stopped by.
const JOB_CONTROL: [libc::c_int; 2] = [libc::SIGTTIN, libc::SIGTTOU];

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("usage: arca-init [--] command [args...]");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("arca-init: {e}");
            ExitCode::from(1)
        }
    }
}

/// Spawns the child, then forwards signals and reaps until it exits; returns its code.
fn run(args: &[OsString]) -> io::Result<u8> {
    let forwarded = forwarded_set();
    // Blocked before the child exists, so no signal (or SIGCHLD) can slip by unseen; the
    // child unblocks them before exec.
    // SAFETY: `forwarded` is an initialized sigset; a null old-set pointer is allowed.
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &forwarded, std::ptr::null_mut()) })?;
    for sig in JOB_CONTROL {
        // SAFETY: setting a standard disposition for a valid signal number.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument.
        check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })?;
    }

    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (setpgid, isatty, tcsetpgrp, getpid, signal, sigprocmask).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // SIGTTOU is still ignored here (inherited), so a background group may take
            // the terminal; a stdin that is not a terminal is fine.
            if libc::isatty(0) == 1 {
                libc::tcsetpgrp(0, libc::getpid());
            }
            for sig in JOB_CONTROL {
                libc::signal(sig, libc::SIG_DFL);
            }
            // std's fork path keeps the parent's mask: without this the child would never
            // see the signals forwarded to it.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("arca-init: exec {} failed: {e}", args[0].to_string_lossy());
            return Ok(match e.kind() {
                io::ErrorKind::NotFound => 127,
                _ => 126,
            });
        }
    };
    let child_pid = libc::pid_t::try_from(child.id())
        .map_err(|_| io::Error::other("child pid out of range"))?;
    // The child is reaped below with waitpid(-1); std's handle must not wait for it.
    drop(child);

    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for the kernel to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `forwarded` and `info` are valid for the call.
        let sig = unsafe { libc::sigwaitinfo(&forwarded, &mut info) };
        if sig < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if sig == libc::SIGCHLD {
            if let Some(code) = reap_all(child_pid) {
                return Ok(code);
            }
        } else {
            // ESRCH: the child is gone already and its SIGCHLD is pending.
            // SAFETY: plain kill(2) to our own child.
            unsafe { libc::kill(child_pid, sig) };
        }
    }
}

/// Every signal except the synchronous ones and job control (SIGKILL and SIGSTOP cannot be
/// blocked anyway).
fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigfillset initializes the set before it is read.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for sig in SYNCHRONOUS.iter().chain(&JOB_CONTROL) {
            libc::sigdelset(&mut set, *sig);
        }
        set
    }
}

/// Reaps every exited child; the child's exit code once it is among them.
fn reap_all(child_pid: libc::pid_t) -> Option<u8> {
    let mut result = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a valid c_int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return result;
        }
        if pid == child_pid {
            result = Some(exit_code(status));
        }
    }
}

/// The shell's convention: the exit status, or 128 + the terminating signal.
fn exit_code(status: libc::c_int) -> u8 {
    let code = if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    };
    u8::try_from(code).unwrap_or(255)
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
