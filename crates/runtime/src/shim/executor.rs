//! The container's payload exec, driven by libcontainer in the container's init and in
//! every exec process (libcontainer's tenant path runs the same hooks): confine the process
//! (seccomp filter, then capabilities), and once `start` arrives `execve` the path the shim
//! resolved inside the rootfs, with the spec's argv and environment in their original order
//! (libcontainer's default executor re-searches `PATH` and passes the environment through a
//! `HashMap`).
//!
//! Seccomp and capabilities are applied here rather than by libcontainer (see
//! [`crate::spec`]): libcontainer leaves the init with the shim's capabilities, so the
//! filter can be installed without `no_new_privs` (Docker's default: setuid binaries keep
//! working), and only then are the capabilities dropped. This happens in
//! [`Executor::setup_envs`], libcontainer's last hook before the init reports ready (after
//! it switched to the container's user), as runc does it: a failure still reaches the shim
//! as a creation error, and the init waits for `start` already confined. What libcontainer
//! does after that (report ready, accept the start message, close, `execve`) and what the
//! confinement itself needs after the filter (`prctl`, `capget`, `capset`) are in Docker's
//! allow-list whatever the capabilities. After `execve` the kernel's rules give Docker's
//! result: root gets the bounding set (the configured capabilities), any other user none,
//! unless file capabilities or setuid say otherwise.
//!
//! An exec into a container with its own user namespace first enters that namespace here
//! ([`UsernsEntry`]): libcontainer 0.7's tenant builder joins every namespace of the
//! container but the user namespace. Until then it runs as the *host* IDs the container
//! user maps to (what the shim put in its process spec), never as host root.

use std::ffi::CString;
use std::io;

use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};
use oci_spec::runtime::Spec;

use crate::sys::{self, CapSets};

/// The container's confinement, applied before the init reports ready.
#[derive(Clone)]
pub struct Confinement {
    /// The seccomp program (`None`: unconfined).
    pub seccomp: Option<Vec<libc::sock_filter>>,
    /// The container's capabilities, bit `n` = capability number `n`: the bounding set,
    /// and the effective and permitted sets as far as the shim holds them. Inheritable and
    /// ambient end up empty.
    pub capabilities: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("failed to install the seccomp filter")]
    Seccomp(#[source] io::Error),
    #[error("failed to drop capability {cap} from the bounding set")]
    Bounding {
        cap: u32,
        #[source]
        source: io::Error,
    },
    #[error("failed to clear the ambient capabilities")]
    Ambient(#[source] io::Error),
    #[error("failed to set the capabilities")]
    Capabilities(#[source] io::Error),
}

impl Confinement {
    /// Filter first (needs `CAP_SYS_ADMIN`), then capabilities: bounding set (needs
    /// `CAP_SETPCAP`), ambient, and last effective/permitted/inheritable.
    fn apply(&self) -> Result<(), ConfineError> {
        if let Some(prog) = &self.seccomp {
            sys::seccomp_set_filter(prog).map_err(ConfineError::Seccomp)?;
        }
        // Up to the kernel's last capability: dropping a number it does not know is EINVAL
        // (cheaper than reading /proc/sys/kernel/cap_last_cap).
        for cap in 0..64u32 {
            if self.capabilities & (1 << cap) != 0 {
                continue;
            }
            match sys::capbset_drop(cap) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(source) => return Err(ConfineError::Bounding { cap, source }),
            }
        }
        sys::clear_ambient_caps().map_err(ConfineError::Ambient)?;
        let held = sys::capget().map_err(ConfineError::Capabilities)?;
        let keep = self.capabilities & held.permitted;
        sys::capset(CapSets {
            effective: keep,
            permitted: keep,
            inheritable: 0,
        })
        .map_err(ConfineError::Capabilities)
    }
}

/// The container's user namespace, for an exec to enter, and who to be in it.
#[derive(Clone, Debug)]
pub struct UsernsEntry {
    /// An open `/proc/<init>/ns/user`, kept open by the shim until the exec is created.
    pub fd: std::os::fd::RawFd,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

#[derive(Clone)]
pub struct ExecveExecutor {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    confinement: Confinement,
    userns: Option<UsernsEntry>,
}

#[derive(Debug, thiserror::Error)]
#[error("{what} contains a NUL byte")]
pub struct NulError {
    what: &'static str,
}

fn cstrings(v: &[String], what: &'static str) -> Result<Vec<CString>, NulError> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| NulError { what }))
        .collect()
}

impl ExecveExecutor {
    pub fn new(
        path: &str,
        args: &[String],
        env: &[String],
        confinement: Confinement,
    ) -> Result<Self, NulError> {
        Ok(Self {
            path: CString::new(path).map_err(|_| NulError {
                what: "the command",
            })?,
            argv: cstrings(args, "an argument")?,
            envp: cstrings(env, "an environment variable")?,
            confinement,
            userns: None,
        })
    }

    /// Enter `userns` before confining the process (execs into a `--userns` container).
    pub fn with_userns(mut self, userns: UsernsEntry) -> Self {
        self.userns = Some(userns);
        self
    }
}

impl Executor for ExecveExecutor {
    fn exec(&self, _spec: &Spec) -> Result<(), ExecutorError> {
        // Cloned from the shim, which blocks SIGCHLD and ignores SIGPIPE (and whatever its
        // spawner ignored): the program must not inherit any of it.
        sys::reset_signals_for_exec();
        let err = match nix::unistd::execve(&self.path, &self.argv, &self.envp) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        // runc's wording, which Docker passes on: `exec: "/x": permission denied`.
        Err(ExecutorError::Other(format!(
            "exec: {:?}: {}",
            self.path.to_string_lossy(),
            err.desc().to_lowercase()
        )))
    }

    fn validate(&self, _spec: &Spec) -> Result<(), ExecutorValidationError> {
        // The shim resolved and checked the command before creating the container.
        Ok(())
    }

    fn setup_envs(
        &self,
        _envs: std::collections::HashMap<String, String>,
    ) -> Result<(), ExecutorSetEnvsError> {
        // execve gets the environment explicitly; this is the hook to confine the init in
        // (see the module docs).
        if let Some(u) = &self.userns {
            sys::enter_userns(u.fd, u.uid, u.gid, &u.additional_gids).map_err(|e| {
                ExecutorSetEnvsError::Other(format!(
                    "failed to enter the container's user namespace: {e}"
                ))
            })?;
        }
        self.confinement
            .apply()
            .map_err(|e| ExecutorSetEnvsError::Other(super::diag::chain(&e)))
    }
}
