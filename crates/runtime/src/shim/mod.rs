//! `arca-shim`: the per-container monitor process (protocol: [`arca_api::shim`]).
//!
//! Single-threaded and synchronous by necessity: libcontainer clones this process to make
//! the container, so there are no other threads, no async runtime and no logging lock.
//!
//! Sequence: read the [`ShimConfig`] from stdin, `setsid`, create the container (overlay
//! rootfs, OCI bundle, libcontainer `build`), bind the socket, write one [`Ready`] line to
//! the original stdout, then run the [`monitor::Monitor`] event loop until the container
//! has exited and been cleaned up. The event loop also creates the container's execs
//! ([`exec`], with libcontainer's tenant builder), so they too are cloned from this single
//! thread.

mod client;
mod create;
mod diag;
mod exec;
mod executor;
mod monitor;
mod stdio;
mod trim;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use arca_api::shim::{PROTOCOL_VERSION, Ready, ShimConfig};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};

pub use create::CreateError;
use create::Undo;
use diag::{Diag, chain};
pub use monitor::write_exit_file;

/// The shim's entry point: never returns. Exit status 0 once the container's exit has been
/// reported; 1 if creating the container failed (reported in the `Ready` line).
pub fn main() -> ! {
    // The container inherits signal state from the shim: start from the defaults, whatever
    // the spawner (or the Rust runtime, which ignores SIGPIPE) left behind.
    crate::sys::set_sigpipe(false);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let code = run();
    std::process::exit(code)
}

fn run() -> i32 {
    let mut input = Vec::new();
    let cfg = std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| format!("failed to read the shim config: {e}"))
        .and_then(|_| {
            serde_json::from_slice::<ShimConfig>(&input)
                .map_err(|e| format!("invalid shim config: {e}"))
        });
    let cfg = match cfg {
        Ok(c) => c,
        Err(message) => {
            write_ready(&Ready {
                version: PROTOCOL_VERSION,
                shim_pid: std::process::id() as i32,
                pid: None,
                error: Some(message),
                exit_code: None,
            });
            return 1;
        }
    };
    // Detach from the spawner: its session, its working directory, its stdin.
    let _ = nix::unistd::setsid();
    let _ = nix::unistd::chdir("/");
    let diag = Diag::open(&cfg.shim_log);
    redirect_stdio(&diag);

    let mut undo = Undo::default();
    let created = match create::create(&cfg, &diag, &mut undo) {
        Ok(c) => c,
        Err(e) => return fail(&cfg, &diag, &mut undo, &e, e.exit_code()),
    };
    let init_pid = created.init_pid;
    let listener = match create::bind_listener(&cfg.socket) {
        Ok(l) => l,
        Err(e) => {
            create::destroy(created.container, init_pid, &diag);
            let e = BindError(e);
            return fail(&cfg, &diag, &mut undo, &e, None);
        }
    };
    // From here the rootfs belongs to the monitor, which unmounts it at exit.
    undo.rootfs = None;
    undo.files.clear();
    crate::sys::set_sigpipe(true);
    let monitor = match monitor::Monitor::new(cfg.clone(), diag, created, listener) {
        Ok(m) => m,
        Err(failure) => {
            let diag = Diag::open(&cfg.shim_log);
            create::destroy(failure.container, failure.init_pid, &diag);
            undo.rootfs = Some(cfg.bundle.join("rootfs"));
            undo.files.push(cfg.socket.clone());
            return fail(&cfg, &diag, &mut undo, &failure.error, None);
        }
    };
    write_ready(&Ready {
        version: PROTOCOL_VERSION,
        shim_pid: std::process::id() as i32,
        pid: Some(init_pid.as_raw()),
        error: None,
        exit_code: None,
    });
    // Ready is written: release the spawner's pipe; stdout joins stderr (the shim log).
    let _ = std::io::stdout().flush();
    let _ = nix::unistd::dup2(std::io::stderr().as_raw_fd(), 1);
    monitor.run();
    0
}

#[derive(Debug, thiserror::Error)]
#[error("failed to bind the shim socket")]
struct BindError(#[source] std::io::Error);

/// Reports a creation failure: log, undo, `Ready` with the error.
fn fail(
    cfg: &ShimConfig,
    diag: &Diag,
    undo: &mut Undo,
    err: &dyn std::error::Error,
    exit_code: Option<i32>,
) -> i32 {
    let message = chain(err);
    diag.error(format_args!("container {}: {message}", cfg.id));
    undo.run(diag);
    write_ready(&Ready {
        version: PROTOCOL_VERSION,
        shim_pid: std::process::id() as i32,
        pid: None,
        error: Some(message),
        exit_code,
    });
    1
}

/// Writes the one `Ready` line to fd 1 (unbuffered: nothing may linger in a user-space
/// buffer that a cloned child could flush again).
fn write_ready(ready: &Ready) {
    let mut line = serde_json::to_vec(ready).unwrap_or_default();
    line.push(b'\n');
    // Through the borrowed fd: a File over fd 1 would close it on drop.
    let _ = nix::unistd::write(std::io::stdout(), &line);
}

/// Points stdin at `/dev/null` and stderr at the shim log (or `/dev/null`); stdout follows
/// stderr once `Ready` was written, releasing the spawner's pipe.
fn redirect_stdio(diag: &Diag) {
    let Ok(null) = File::options().read(true).write(true).open("/dev/null") else {
        return;
    };
    let sink = diag.file().unwrap_or(&null);
    let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
    let _ = nix::unistd::dup2(sink.as_raw_fd(), 2);
}
