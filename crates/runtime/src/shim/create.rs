//! Creating the container: overlay rootfs, user and command resolution inside it, the OCI
//! bundle, stdio, and libcontainer's `build()`. On success the container's init is a
//! direct child of the shim, blocked until `start()`.
//!
//! `--device` nodes get a cgroup allow rule with their permissions; like the default rules
//! it is enforced on cgroup v1 hosts only (see [`crate::resources`]). With `--init` the
//! command is still looked up here (a missing command fails creation with 127, as without
//! init), but the init binary is what runs, with the original argv.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use arca_api::shim::{INIT_PATH_IN_CONTAINER, NetworkConfig, PROTOCOL_VERSION, ShimConfig};
use libcgroups::common::{CgroupSetup, DEFAULT_CGROUP_ROOT};
use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::error::LibcontainerError;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use super::diag::{Diag, chain};
use super::executor::{Confinement, ExecveExecutor, NulError};
use super::stdio::{self, ContainerIo};
use crate::bpf::BpfError;
use crate::rootfs::{self, LookupError, RootfsError};
use crate::spec::{self, DeviceError, SpecError, SpecInput};
use crate::user::{self, UserError};
use crate::{resources, seccomp, sys};

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("unsupported shim protocol version {0}")]
    Version(u32),
    #[error("no command specified")]
    NoCommand,
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error("failed to read {path} in the container")]
    ReadRootfsFile {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("failed to create working directory {cwd}")]
    Workdir {
        cwd: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("init binary {path:?} is not usable")]
    Init {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to compile the seccomp filter")]
    Seccomp(#[source] BpfError),
    #[error(transparent)]
    Nul(#[from] NulError),
    #[error("failed to write {path}")]
    WriteSpec {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to set up the container's stdio")]
    Stdio(#[source] io::Error),
    #[error("failed to create the container")]
    Build(#[source] LibcontainerError),
    #[error("failed to receive the container's terminal")]
    Console(#[source] io::Error),
    #[error("failed to bring up loopback in the container's network namespace")]
    Loopback(#[source] io::Error),
    #[error("failed to set the propagation of the bind mount on {destination}")]
    Propagation {
        destination: String,
        #[source]
        source: io::Error,
    },
}

impl CreateError {
    /// Docker's exit code when the failure is about the command (126/127).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::Lookup(e) => Some(e.exit_code()),
            _ => None,
        }
    }
}

pub struct Created {
    pub container: Container,
    pub init_pid: Pid,
    pub io: ContainerIo,
    pub cgroup_setup: Option<CgroupSetup>,
    /// The container's confinement, for its execs.
    pub confinement: Confinement,
}

/// What to undo if the shim fails before it hands over to the monitor.
#[derive(Default)]
pub struct Undo {
    pub rootfs: Option<PathBuf>,
    pub files: Vec<PathBuf>,
}

impl Undo {
    pub fn run(&mut self, diag: &Diag) {
        for f in self.files.drain(..) {
            let _ = std::fs::remove_file(f);
        }
        if let Some(r) = self.rootfs.take()
            && let Err(e) = rootfs::unmount(&r)
        {
            diag.warn(format_args!("failed to unmount {}: {e}", r.display()));
        }
    }
}

/// Binds a listening unix socket at `path`, replacing a stale file. Paths too long for
/// `sun_path` are reached through `/proc/self/fd/<dir>/<name>`.
pub fn bind_listener(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if path.as_os_str().len() < 100 {
        return UnixListener::bind(path);
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let dir = File::open(parent)?;
    let via = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    UnixListener::bind(via)
}

/// Kills a created container's init, reaps it and deletes the container's state and cgroup.
pub fn destroy(mut container: Container, pid: Pid, diag: &Diag) {
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
    reap_zombies();
    if let Err(e) = container.delete(true) {
        diag.warn(format_args!(
            "failed to delete the container: {}",
            chain(&e)
        ));
    }
}

/// Reaps every exited child without blocking.
pub fn reap_zombies() {
    while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if s == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}

/// The init binary must be an executable file on the host (it is bind-mounted as it is).
fn check_init(path: &Path) -> Result<(), CreateError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| CreateError::Init {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(err(io::Error::from_raw_os_error(libc::EACCES)));
    }
    Ok(())
}

/// Creates the container described by `cfg`. Everything it sets up is recorded in `undo`
/// (or torn down here) when it fails.
/// Removes libcontainer's state directory for this container if one is left: a shim that was
/// killed (or crashed) never deletes it, and libcontainer refuses to create a container
/// whose directory exists ("container already exists"), so the container could never start
/// again. arcad starts a shim only once the previous one has removed that directory (or a
/// deadline passed), so one that is still here is stale: its container is killed and its
/// cgroup and state deleted.
fn clear_stale_state(cfg: &ShimConfig, diag: &Diag) {
    let dir = cfg.state_root.join(&cfg.id);
    if !dir.exists() {
        return;
    }
    diag.warn(format_args!(
        "removing the stale runtime state of container {}",
        cfg.id
    ));
    if let Ok(mut stale) = Container::load(dir.clone())
        && let Err(e) = stale.delete(true)
    {
        diag.warn(format_args!(
            "deleting the stale container failed: {}",
            chain(&e)
        ));
    }
    // The directory holds only libcontainer's state files and socket, never mounts.
    let _ = std::fs::remove_dir_all(&dir);
}

pub fn create(cfg: &ShimConfig, diag: &Diag, undo: &mut Undo) -> Result<Created, CreateError> {
    if cfg.version != PROTOCOL_VERSION {
        return Err(CreateError::Version(cfg.version));
    }
    let Some(cmd) = cfg.process.args.first() else {
        return Err(CreateError::NoCommand);
    };
    clear_stale_state(cfg, diag);
    let rootfs = cfg.bundle.join("rootfs");
    rootfs::mount_overlay(&cfg.rootfs, &rootfs, cfg.namespaces.userns.as_ref())?;
    undo.rootfs = Some(rootfs.clone());

    let read = |path: &'static str| {
        rootfs::read_in_root(&rootfs, path)
            .map_err(|source| CreateError::ReadRootfsFile { path, source })
    };
    let passwd = read("/etc/passwd")?;
    let group = read("/etc/group")?;
    let mut user = user::resolve(&cfg.process.user, passwd.as_deref(), group.as_deref())?;
    user.add_groups(&user::additional_groups(
        &cfg.process.group_add,
        group.as_deref(),
    )?);
    let env = spec::final_env(&cfg.process.env, user.home.as_deref());
    let cwd = if cfg.process.cwd.starts_with('/') {
        cfg.process.cwd.clone()
    } else {
        format!("/{}", cfg.process.cwd)
    };
    let exe = rootfs::lookup_executable(&rootfs, cmd, spec::env_value(&env, "PATH"), &cwd)?;
    let mkdir = || rootfs::mkdir_all_in_root(&rootfs, &cwd);
    // With --userns, owned by the container's root as Docker makes it, not by the host's.
    let made = match cfg.namespaces.userns.as_ref().and_then(rootfs::mapped_root) {
        Some((uid, gid)) => sys::with_fs_ids(uid, gid, mkdir).and_then(|r| r),
        None => mkdir(),
    };
    made.map_err(|source| CreateError::Workdir {
        cwd: cwd.clone(),
        source,
    })?;

    let cgroup_setup = libcgroups::common::get_cgroup_setup().ok();
    // Probed only when it matters: swap accounting shapes only a memory limit.
    let swap = cfg.resources.memory.is_some_and(|m| m > 0)
        && cgroup_setup.as_ref().is_some_and(|s| {
            resources::swap_accounting_available(Path::new(DEFAULT_CGROUP_ROOT), s)
        });
    let devices = spec::resolve_devices(&cfg.devices, cfg.namespaces.userns.is_some())?;
    let mut translated = resources::translate(&cfg.resources, swap, cfg.security.privileged);
    if !devices.is_empty() {
        let mut rules = translated.resources.devices().clone().unwrap_or_default();
        rules.extend(
            devices
                .iter()
                .map(|d| resources::allow_device(&d.device, &d.access)),
        );
        translated.resources.set_devices(Some(rules));
    }
    let (rlimits, rlimit_warnings) = spec::clamped_rlimits(&cfg.process.rlimits)?;
    for w in translated.warnings.iter().chain(&rlimit_warnings) {
        diag.warn(w);
    }
    if let Some(init) = &cfg.init {
        check_init(init)?;
    }
    // Built here, in the shim: the container's init gets a copy when libcontainer clones.
    let confinement = Confinement {
        seccomp: cfg
            .security
            .seccomp
            .then(|| seccomp::default_program(&cfg.security.capabilities))
            .transpose()
            .map_err(CreateError::Seccomp)?,
        capabilities: spec::capability_mask(&cfg.security.capabilities)?,
    };
    let exe = if cfg.init.is_some() {
        INIT_PATH_IN_CONTAINER.to_owned()
    } else {
        exe
    };
    let executor = ExecveExecutor::new(&exe, &spec::process_args(cfg), &env, confinement.clone())?;
    let mut process_cfg = cfg.clone();
    process_cfg.process.cwd = cwd;
    let spec = spec::build(SpecInput {
        config: &process_cfg,
        user: &user,
        env,
        rootfs: rootfs.clone(),
        resources: translated.resources,
        devices: &devices,
        rlimits,
    })?;
    let spec_path = cfg.bundle.join("config.json");
    let json = serde_json::to_vec(&spec).map_err(|e| CreateError::WriteSpec {
        path: spec_path.clone(),
        source: e.into(),
    })?;
    std::fs::write(&spec_path, json).map_err(|source| CreateError::WriteSpec {
        path: spec_path.clone(),
        source,
    })?;

    let builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(&cfg.state_root)
        .map_err(CreateError::Build)?;
    let console = cfg.bundle.join("console.sock");
    let (builder, pending) =
        stdio::setup(builder, cfg.process.tty, cfg.process.open_stdin, &console)
            .map_err(CreateError::Stdio)?;
    if let Some(path) = pending.console_path() {
        undo.files.push(path.to_path_buf());
    }

    // libcontainer clones this process: nothing buffered in user space may be duplicated,
    // and the child must start with the default SIGPIPE disposition (see sys::set_sigpipe).
    let built = builder
        .as_init(&cfg.bundle)
        .with_systemd(false)
        .with_detach(true)
        .build();
    let container = match built {
        Ok(c) => c,
        Err(e) => {
            // A failed build leaves the intermediate and init processes as zombies, and may
            // leave the state directory it made (which would refuse every later create).
            reap_zombies();
            if !matches!(e, LibcontainerError::Exist) {
                let _ = std::fs::remove_dir_all(cfg.state_root.join(&cfg.id));
            }
            return Err(CreateError::Build(e));
        }
    };
    let Some(init_pid) = container.pid() else {
        reap_zombies();
        return Err(CreateError::Build(LibcontainerError::Other(
            "the container has no init pid".into(),
        )));
    };

    let io = match pending.finish(cfg.process.console_size) {
        Ok(io) => io,
        Err(e) => {
            destroy(container, init_pid, diag);
            return Err(CreateError::Console(e));
        }
    };

    if matches!(cfg.network, NetworkConfig::None) {
        let up =
            File::open(format!("/proc/{init_pid}/ns/net")).and_then(|ns| sys::loopback_up_in(&ns));
        if let Err(e) = up {
            destroy(container, init_pid, diag);
            return Err(CreateError::Loopback(e));
        }
    }
    if let Err(e) = apply_propagation(cfg, init_pid) {
        destroy(container, init_pid, diag);
        return Err(e);
    }
    Ok(Created {
        container,
        init_pid,
        io,
        cgroup_setup,
        confinement,
    })
}

/// Bind propagation: libcontainer attaches binds with the new mount API and leaves them as
/// the container's root is (`rslave`: a host mount under a bind's source would appear in
/// the container), so the shim sets the propagation of every bind that names one (arcad
/// names `rprivate`, Docker's default, for user binds and volumes) in the created
/// container's mount namespace, before its init runs anything. Paths resolve inside the
/// container there.
fn apply_propagation(cfg: &ShimConfig, init_pid: Pid) -> Result<(), CreateError> {
    let wanted: Vec<(&str, nix::mount::MsFlags)> = cfg
        .mounts
        .iter()
        .filter(|m| m.tmpfs.is_none())
        .filter_map(|m| {
            Some((
                m.destination.as_str(),
                propagation_flags(m.propagation.as_deref()?)?,
            ))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let fail = |destination: &str, source: io::Error| CreateError::Propagation {
        destination: destination.to_owned(),
        source,
    };
    let ns = File::open(format!("/proc/{init_pid}/ns/mnt")).map_err(|e| fail(wanted[0].0, e))?;
    sys::in_mount_namespace(&ns, || {
        for (dest, flags) in &wanted {
            nix::mount::mount(None::<&str>, *dest, None::<&str>, *flags, None::<&str>)
                .map_err(|e| fail(dest, e.into()))?;
        }
        Ok(())
    })
    .map_err(|e| fail(wanted[0].0, e))?
}

/// A bind's propagation option as mount flags.
fn propagation_flags(p: &str) -> Option<nix::mount::MsFlags> {
    use nix::mount::MsFlags;
    Some(match p {
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        _ => return None,
    })
}
