//! `docker exec`: an extra process in the running container ([`Request::Exec`]).
//!
//! Everything that can be checked from the shim is checked before anything is forked, with
//! Docker's wording: the user (against the container's `/etc/passwd` and `/etc/group`),
//! the working directory, and the command (`PATH` lookup). All of it is resolved through
//! `/proc/<init>/root`, so the container's own mounts (volumes, bind-mounted files) count.
//!
//! The process is created with libcontainer's tenant builder, which joins the init's
//! namespaces and the container's cgroup. Its process spec comes from a file
//! (`with_process`) rather than the builder's setters: they would write a capability set
//! (empty unless named one by one) that libcontainer applies before our executor runs, and
//! the executor needs the shim's capabilities to install the container's seccomp filter
//! without `no_new_privs`. So, as for the init, the spec has no capabilities and the
//! executor ([`super::executor`]) installs the filter, then drops to the container's
//! capabilities (every capability the shim holds when `privileged`).
//!
//! As Docker's execs (which start from the container's process spec), an exec gets the
//! container's `--group-add` groups (whatever its user) and `--ulimit`s, plus any groups
//! and limits of its own request.
//!
//! The exec process is a direct child of the shim (libcontainer clones it with
//! `CLONE_PARENT` from an intermediate process, which `build()` reaps); the monitor reaps
//! it. libcontainer leaves a notify socket (and, with a TTY, a console symlink) in the
//! container's state directory for every exec: removed here once `build()` returned.
//!
//! [`Request::Exec`]: arca_api::shim::Request::Exec

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use arca_api::shim::{ExitStatus, IdMaps, ProcessConfig, ShimConfig};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::error::LibcontainerError;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;
use oci_spec::runtime::{PosixRlimit, Process, User};

use super::executor::{Confinement, ExecveExecutor, NulError, UsernsEntry};
use super::stdio::{self, ProcessIo};
use crate::rootfs::{self, LookupError};
use crate::spec::{self, SpecError};
use crate::user::{self, UserError};

/// Prefix of the files libcontainer's tenant builder leaves in the container's state
/// directory (`tenant-notify-<rand>.sock`, `tenant-tty-<rand>.sock`).
const TENANT_LEFTOVER_PREFIX: &str = "tenant-";

/// One exec, from its creation until the container exits.
pub struct Exec {
    pub id: String,
    pub pid: Pid,
    pub io: ProcessIo,
    /// Exit code and time, once reaped.
    pub exited: Option<(i32, SystemTime)>,
    /// After the exit: stop waiting for the end of its output at this time.
    pub deadline: Option<Instant>,
    /// Set once it exited and its output was drained (or given up on).
    pub status: Option<ExitStatus>,
}

impl Exec {
    /// Still streaming: not yet finished.
    pub fn active(&self) -> bool {
        self.status.is_none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no command specified")]
    NoCommand,
    #[error("failed to read {path} in the container")]
    ReadFile {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    User(#[from] UserError),
    /// runc's wording.
    #[error("chdir to cwd ({cwd:?}) set in config.json failed: not a directory")]
    NotADirectory { cwd: String },
    #[error("chdir to cwd ({cwd:?}) set in config.json failed: no such file or directory")]
    NoWorkdir { cwd: String },
    #[error("failed to look up the working directory {cwd:?}")]
    Workdir {
        cwd: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Rlimit(#[from] SpecError),
    #[error("{what} {id} is not mapped in the container's user namespace")]
    Unmapped { what: &'static str, id: u32 },
    #[error("failed to open the container's user namespace")]
    UserNamespace(#[source] io::Error),
    #[error(transparent)]
    Nul(#[from] NulError),
    #[error("failed to write the exec's process spec")]
    WriteProcess(#[source] io::Error),
    #[error("failed to set up the exec's stdio")]
    Stdio(#[source] io::Error),
    #[error("failed to start the exec process")]
    Build(#[source] LibcontainerError),
    #[error("failed to receive the exec's terminal")]
    Console(#[source] io::Error),
}

/// The running container an exec joins.
pub struct Target<'a> {
    pub cfg: &'a ShimConfig,
    pub init_pid: Pid,
    pub confinement: &'a Confinement,
}

/// Creates the exec process; on success it runs (libcontainer's `build()` returns once it
/// called `execve`). On failure after the fork the caller must reap what is left (the
/// intermediate and the exec's init, as zombies).
pub fn spawn(
    target: &Target<'_>,
    process: &ProcessConfig,
    privileged: bool,
) -> Result<(Pid, ProcessIo), ExecError> {
    let cfg = target.cfg;
    let Some(cmd) = process.args.first() else {
        return Err(ExecError::NoCommand);
    };
    let root = PathBuf::from(format!("/proc/{}/root", target.init_pid));
    let read = |path: &'static str| {
        rootfs::read_in_root(&root, path).map_err(|source| ExecError::ReadFile { path, source })
    };
    let passwd = read("/etc/passwd")?;
    let group = read("/etc/group")?;
    let user_spec = if process.user.is_empty() {
        &cfg.process.user
    } else {
        &process.user
    };
    let mut user = user::resolve(user_spec, passwd.as_deref(), group.as_deref())?;
    let group_add: Vec<String> = cfg
        .process
        .group_add
        .iter()
        .chain(&process.group_add)
        .cloned()
        .collect();
    user.add_groups(&user::additional_groups(&group_add, group.as_deref())?);
    let rlimits = exec_rlimits(cfg, process)?;
    let env = spec::final_env(&process.env, user.home.as_deref());
    let cwd = absolute(if process.cwd.is_empty() {
        &cfg.process.cwd
    } else {
        &process.cwd
    });
    check_workdir(&root, &cwd)?;
    let exe = rootfs::lookup_executable(&root, cmd, spec::env_value(&env, "PATH"), &cwd)?;

    let confinement = Confinement {
        seccomp: target.confinement.seccomp.clone(),
        capabilities: if privileged {
            u64::MAX
        } else {
            target.confinement.capabilities
        },
    };
    let mut executor = ExecveExecutor::new(&exe, &process.args, &env, confinement)?;
    // Kept open until the exec is created (see `executor`).
    let mut _userns_fd = None;
    if let Some(maps) = &cfg.namespaces.userns {
        let fd = std::fs::File::open(format!("/proc/{}/ns/user", target.init_pid))
            .map_err(ExecError::UserNamespace)?;
        executor = executor.with_userns(UsernsEntry {
            fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.additional_gids.clone(),
        });
        _userns_fd = Some(fd);
        user = host_user(&user, maps)?;
    }

    let process_path = cfg.bundle.join("exec-process.json");
    let spec = process_spec(cfg, process, &user, env, cwd, rlimits);
    let json = serde_json::to_vec(&spec).map_err(|e| ExecError::WriteProcess(e.into()))?;
    std::fs::write(&process_path, json).map_err(ExecError::WriteProcess)?;

    let result = build(target, executor, process, &process_path);
    let _ = std::fs::remove_file(&process_path);
    remove_tenant_leftovers(&cfg.state_root.join(&cfg.id));
    result
}

fn build(
    target: &Target<'_>,
    executor: ExecveExecutor,
    process: &ProcessConfig,
    process_path: &Path,
) -> Result<(Pid, ProcessIo), ExecError> {
    let cfg = target.cfg;
    // The container's ID: the tenant builder finds the container's state by it.
    let builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(&cfg.state_root)
        .map_err(ExecError::Build)?;
    let console = cfg.bundle.join("exec-console.sock");
    let (builder, pending) = stdio::setup(builder, process.tty, process.open_stdin, &console)
        .map_err(ExecError::Stdio)?;
    let built = builder
        .as_tenant()
        .with_process(Some(process_path))
        .with_detach(true)
        .build();
    let pid = match built {
        Ok(pid) => pid,
        Err(e) => {
            if let Some(path) = pending.console_path() {
                let _ = std::fs::remove_file(path);
            }
            return Err(ExecError::Build(tidy(e)));
        }
    };
    let io = pending
        .finish(process.console_size)
        .and_then(|io| ProcessIo::new(io, process.open_stdin));
    match io {
        Ok(io) => Ok((pid, io)),
        Err(e) => {
            // Without its terminal the process is of no use; the caller reaps it.
            let _ = crate::sys::kill(pid.as_raw(), libc::SIGKILL);
            Err(ExecError::Console(e))
        }
    }
}

/// libcontainer reads the exec's error in 3-byte chunks and keeps whole chunks, so the
/// message may end in NULs.
fn tidy(e: LibcontainerError) -> LibcontainerError {
    match e {
        LibcontainerError::Other(s) => LibcontainerError::Other(s.trim_end_matches('\0').into()),
        e => e,
    }
}

fn absolute(cwd: &str) -> String {
    if cwd.starts_with('/') {
        cwd.to_owned()
    } else {
        format!("/{cwd}")
    }
}

/// Docker creates a missing working directory for the container's process, not for an
/// exec: there it is an error.
fn check_workdir(root: &Path, cwd: &str) -> Result<(), ExecError> {
    let host = rootfs::resolve_in_root(root, cwd).map_err(|source| ExecError::Workdir {
        cwd: cwd.to_owned(),
        source,
    })?;
    match std::fs::metadata(&host) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(ExecError::NotADirectory {
            cwd: cwd.to_owned(),
        }),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            Err(ExecError::NoWorkdir {
                cwd: cwd.to_owned(),
            })
        }
        Err(source) => Err(ExecError::Workdir {
            cwd: cwd.to_owned(),
            source,
        }),
    }
}

/// `user` as host IDs under `maps`: what libcontainer switches to before the executor enters
/// the container's user namespace. Without supplementary groups: libcontainer would check
/// host gids against the container's side of the maps (the executor sets them).
fn host_user(user: &user::ExecUser, maps: &IdMaps) -> Result<user::ExecUser, ExecError> {
    let map = |maps: &[arca_api::shim::IdMap], id, what| {
        rootfs::host_id(maps, id).ok_or(ExecError::Unmapped { what, id })
    };
    for gid in &user.additional_gids {
        map(&maps.gid, *gid, "gid")?;
    }
    Ok(user::ExecUser {
        uid: map(&maps.uid, user.uid, "uid")?,
        gid: map(&maps.gid, user.gid, "gid")?,
        additional_gids: Vec::new(),
        home: user.home.clone(),
    })
}

/// The container's `--ulimit`s, overridden by the exec's own; clamped as for the container
/// (see [`spec::rlimits`]), whose warnings were logged when it was created.
fn exec_rlimits(cfg: &ShimConfig, process: &ProcessConfig) -> Result<Vec<PosixRlimit>, SpecError> {
    let all: Vec<_> = cfg
        .process
        .rlimits
        .iter()
        .chain(&process.rlimits)
        .cloned()
        .collect();
    let (rlimits, _warnings) = spec::clamped_rlimits(&all)?;
    Ok(rlimits)
}

/// The tenant's process spec. As for the init (see [`crate::spec`]): no capabilities (the
/// executor confines the process), `noNewPrivileges` only when true, only the configured
/// rlimits.
fn process_spec(
    cfg: &ShimConfig,
    process: &ProcessConfig,
    user: &user::ExecUser,
    env: Vec<String>,
    cwd: String,
    rlimits: Vec<PosixRlimit>,
) -> Process {
    let mut u = User::default();
    u.set_uid(user.uid);
    u.set_gid(user.gid);
    u.set_umask(Some(0o022));
    if !user.additional_gids.is_empty() {
        u.set_additional_gids(Some(user.additional_gids.clone()));
    }
    let mut p = Process::default();
    p.set_terminal(Some(process.tty))
        .set_user(u)
        .set_args(Some(process.args.clone()))
        .set_env(Some(env))
        .set_cwd(PathBuf::from(cwd))
        .set_capabilities(None)
        .set_rlimits((!rlimits.is_empty()).then_some(rlimits))
        .set_no_new_privileges(cfg.security.no_new_privileges.then_some(true))
        .set_oom_score_adj(None);
    p
}

/// Removes what libcontainer's tenant builder left in the container's state directory.
fn remove_tenant_leftovers(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .as_encoded_bytes()
            .starts_with(TENANT_LEFTOVER_PREFIX.as_bytes())
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::config;

    #[test]
    fn process_spec_leaves_confinement_to_the_executor() {
        let mut cfg = config();
        let mut process = cfg.process.clone();
        process.args = vec!["id".into()];
        process.tty = true;
        let user = user::ExecUser {
            uid: 65534,
            gid: 65534,
            additional_gids: vec![65534],
            home: None,
        };
        let p = process_spec(
            &cfg,
            &process,
            &user,
            vec!["A=1".into()],
            "/w".into(),
            Vec::new(),
        );
        assert!(p.capabilities().is_none());
        assert!(p.rlimits().is_none());
        assert_eq!(p.no_new_privileges(), None);
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.user().uid(), 65534);
        assert_eq!(p.user().umask(), Some(0o022));
        assert_eq!(p.env().as_deref(), Some(&["A=1".to_owned()][..]));
        cfg.security.no_new_privileges = true;
        let p = process_spec(&cfg, &process, &user, Vec::new(), "/".into(), Vec::new());
        assert_eq!(p.no_new_privileges(), Some(true));
    }

    #[test]
    fn execs_inherit_the_containers_ulimits_and_may_override_them() {
        let mut cfg = config();
        let lim = |name: &str, n| arca_api::shim::Rlimit {
            name: name.into(),
            soft: n,
            hard: n,
        };
        cfg.process.rlimits = vec![lim("nofile", 100), lim("core", 0)];
        let mut process = cfg.process.clone();
        process.rlimits = vec![lim("nofile", 50)];
        let r = exec_rlimits(&cfg, &process).expect("rlimits");
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v[0]["type"], "RLIMIT_CORE");
        assert_eq!(v[1]["type"], "RLIMIT_NOFILE");
        assert_eq!(v[1]["soft"], 50);
        process.rlimits.clear();
        assert!(exec_rlimits(&config(), &process).expect("none").is_empty());
    }

    #[test]
    fn missing_or_file_workdir_is_an_error_with_runcs_wording() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("f"), "").expect("write");
        assert!(check_workdir(dir.path(), "/d").is_ok());
        assert_eq!(
            check_workdir(dir.path(), "/nope")
                .expect_err("missing")
                .to_string(),
            "chdir to cwd (\"/nope\") set in config.json failed: no such file or directory"
        );
        assert!(matches!(
            check_workdir(dir.path(), "/f"),
            Err(ExecError::NotADirectory { .. })
        ));
    }

    #[test]
    fn only_tenant_files_are_removed_from_the_state_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "state.json",
            "notify.sock",
            "tenant-notify-1a.sock",
            "tenant-tty-2b.sock",
        ] {
            std::fs::write(dir.path().join(f), "").expect("write");
        }
        remove_tenant_leftovers(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["notify.sock", "state.json"]);
    }

    #[test]
    fn nul_padding_is_trimmed_from_exec_errors() {
        let e = tidy(LibcontainerError::Other("exec: \"x\": boom\0\0".into()));
        assert_eq!(e.to_string(), "exec: \"x\": boom");
    }
}
