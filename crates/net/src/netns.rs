//! Network namespaces that arcad makes, named by a path it chooses.
//!
//! [`create`] makes a namespace as `ip netns add` does, but bind-mounted at any path (arcad
//! uses `<exec root>/netns/<container id>`): the bind mount keeps the namespace alive with
//! no process in it, across arcad's restarts, and a container joins it by that path (the
//! OCI spec's `network` namespace path). [`remove`] unmounts and deletes it.
//!
//! A network namespace belongs to a thread, not to the process, and arcad is a
//! multi-threaded tokio process: nothing here ever changes the caller's thread. Work inside a
//! namespace runs on a short-lived dedicated thread ([`run_in`], [`run_in_async`]) that ends
//! with the work, so no thread of arcad is ever left in a foreign namespace.
//!
//! Limits: the bind mount is made in arcad's mount namespace with the propagation of its
//! parent directory (shared on systemd hosts, so copies held by later mount namespaces are
//! unmounted with it). Needs CAP_SYS_ADMIN.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::thread;

use arca_model::ErrorKind;
use nix::errno::Errno;
use nix::mount::{self, MntFlags, MsFlags};
use nix::sched::{self, CloneFlags};
use nix::sys::statfs;

use crate::link::rtnl;

/// Why a namespace could not be made, removed or entered.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {path} already exists")]
    AlreadyExists { path: PathBuf },
    #[error("network namespace {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("{path} is not a network namespace")]
    NotNetns { path: PathBuf },
    #[error("failed to {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to {op} for network namespace {path}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to bring up the loopback interface of network namespace {path}")]
    Loopback {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the thread working in network namespace {path} died")]
    ThreadDied { path: PathBuf },
}

impl NetnsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::AlreadyExists { .. } => ErrorKind::Conflict,
            Self::NotFound { .. } => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io { op, path, source }
    }

    fn sys(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> Self {
        let path = path.to_owned();
        move |source| Self::Sys { op, path, source }
    }
}

/// Makes a new network namespace bind-mounted at `path` (an empty file; parent directories
/// are created), with `lo` up. Fails with [`NetnsError::AlreadyExists`] if a namespace is
/// already mounted there; a leftover plain file is reused.
pub fn create(path: &Path) -> Result<(), NetnsError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(NetnsError::io("create directory", parent))?;
    }
    if is_netns_mount(path)? {
        return Err(NetnsError::AlreadyExists {
            path: path.to_owned(),
        });
    }
    let created = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(NetnsError::io("create", path)(e)),
    };
    let result = thread::scope(|scope| {
        thread::Builder::new()
            .name("arca-netns-new".into())
            .spawn_scoped(scope, || new_mounted_netns(path))
            .map_err(NetnsError::io("spawn a thread for", path))?
            .join()
            .unwrap_or_else(|_| {
                Err(NetnsError::ThreadDied {
                    path: path.to_owned(),
                })
            })
    });
    if result.is_err() && created {
        // Nothing is mounted on it: new_mounted_netns mounts last.
        let _ = fs::remove_file(path);
    }
    result
}

/// Runs on a dedicated thread: unshares its network namespace, brings `lo` up there and
/// bind-mounts the namespace on `path`.
fn new_mounted_netns(path: &Path) -> Result<(), NetnsError> {
    sched::unshare(CloneFlags::CLONE_NEWNET).map_err(NetnsError::sys("unshare", path))?;
    rtnl::Rtnl::open()
        .and_then(|mut rtnl| rtnl.set_up(rtnl::LOOPBACK_INDEX))
        .map_err(|source| NetnsError::Loopback {
            path: path.to_owned(),
            source,
        })?;
    // thread-self, not self: /proc/self names the main thread, whose namespace is arcad's.
    mount::mount(
        Some("/proc/thread-self/ns/net"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(NetnsError::sys("bind-mount", path))
}

/// Whether a network namespace is mounted at `path`.
fn is_netns_mount(path: &Path) -> Result<bool, NetnsError> {
    match statfs::statfs(path) {
        Ok(fs) => Ok(fs.filesystem_type() == statfs::NSFS_MAGIC),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(NetnsError::sys("statfs", path)(e)),
    }
}

/// Unmounts the namespace at `path` (lazily: the container's processes may still hold it)
/// and deletes the file. A missing path is not an error.
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    match mount::umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a leftover file).
        Ok(()) | Err(Errno::ENOENT) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(NetnsError::sys("unmount", path)(e)),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetnsError::io("remove", path)(e)),
    }
}

/// Opens the namespace at `path` for [`sched::setns`].
fn open(path: &Path) -> Result<File, NetnsError> {
    File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => NetnsError::NotFound {
            path: path.to_owned(),
        },
        _ => NetnsError::io("open", path)(e),
    })
}

fn enter(ns: &File, path: &Path) -> Result<(), NetnsError> {
    sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| match e {
        Errno::EINVAL => NetnsError::NotNetns {
            path: path.to_owned(),
        },
        e => NetnsError::sys("enter", path)(e),
    })
}

/// Runs `f` on a dedicated thread that has entered the namespace at `path`, and returns its
/// result. The thread ends with `f`. Blocks the caller until then: from async code, use
/// [`run_in_async`]. A panic in `f` is resumed in the caller.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let ns = open(path)?;
    thread::scope(|scope| {
        let worker = thread::Builder::new()
            .name("arca-netns".into())
            .spawn_scoped(scope, || {
                enter(&ns, path)?;
                Ok(f())
            })
            .map_err(NetnsError::io("spawn a thread for", path))?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// [`run_in`] for async callers: the dedicated thread reports back through a channel, so
/// no runtime thread waits. If `f` panics, the error is [`NetnsError::ThreadDied`].
pub async fn run_in_async<T, F>(path: &Path, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = open(path)?;
    let owned = path.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    thread::Builder::new()
        .name("arca-netns".into())
        .spawn(move || {
            let result = enter(&ns, &owned).map(|()| f());
            // The receiver is gone only if the caller stopped waiting.
            let _ = tx.send(result);
        })
        .map_err(NetnsError::io("spawn a thread for", path))?;
    rx.await.unwrap_or_else(|_| {
        Err(NetnsError::ThreadDied {
            path: path.to_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_of_missing_path_is_ok() {
        let dir = tempfile::tempdir().expect("tempdir");
        remove(&dir.path().join("nope")).expect("missing is ok");
    }

    #[test]
    fn run_in_refuses_a_file_that_is_not_a_namespace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plain");
        fs::write(&path, b"").expect("write");
        assert!(matches!(
            run_in(&path, || ()),
            Err(NetnsError::NotNetns { .. })
        ));
        assert!(matches!(
            run_in(&dir.path().join("missing"), || ()),
            Err(NetnsError::NotFound { .. })
        ));
    }
}
