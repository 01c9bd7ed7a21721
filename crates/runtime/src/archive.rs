//! `arca-shim archive <request>`: the sandboxed helper behind the archive API (`docker cp`);
//! protocol in [`arca_api::shim::ArchiveRequest`].
//!
//! A process of its own, so that it can change its mount namespace and root (arcad is
//! multi-threaded and must not). The helper
//! 1. makes a private mount namespace (nothing it mounts is seen by the host or the
//!    container, and everything goes away with it, even if it is killed);
//! 2. finds the container's root: the running container's mounted rootfs, or the overlay
//!    of a stopped one mounted afresh (read-only too with `--read-only`);
//! 3. clones the container's binds and volumes from host paths (`open_tree`, read-only ones
//!    made read-only), then `chroot`s into the root, and only then creates their mount
//!    points and attaches them (`move_mount`): every path the client named is resolved by
//!    the kernel inside the chroot, so a symlink in the container (even one a running
//!    container swaps meanwhile) cannot lead to the host. The container's tmpfs mounts are
//!    in its memory and out of reach (Docker's view leaves them out too): a put into one
//!    is refused rather than written where the container cannot see it;
//! 4. stats, archives or extracts with [`arca_store::archive`], which refuses archive
//!    entries that would leave the extraction directory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use arca_api::shim::{
    ArchiveError, ArchiveErrorKind, ArchiveOp, ArchiveReply, ArchiveRequest, ArchiveRoot,
    MountConfig,
};
use arca_store::archive as tarfs;
use nix::mount::MsFlags;

use crate::rootfs;

/// overlayfs's `statfs` magic: a running container's root must still be its overlay.
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// Runs one request and exits: 0 when the reply carried no error.
pub fn main(request: &str) -> ! {
    crate::sys::set_sigpipe(false);
    // No parent-death signal: it fires when the spawning *thread* ends, and arcad's threads
    // come and go. If arcad dies, the helper's pipes break and it ends by itself.
    let mut out = BufWriter::with_capacity(256 * 1024, crate::sys::stdout_file());
    let code = match serde_json::from_str::<ArchiveRequest>(request) {
        Ok(req) => run(&req, &mut out),
        Err(e) => {
            reply_error(
                &mut out,
                ArchiveErrorKind::Internal,
                format!("invalid archive request: {e}"),
            );
            2
        }
    };
    let _ = out.flush();
    std::process::exit(code)
}

/// An error for the reply line.
#[derive(Debug)]
struct Failure {
    kind: ArchiveErrorKind,
    message: String,
}

impl Failure {
    fn new(kind: ArchiveErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        Self::new(ArchiveErrorKind::Internal, format!("{what}: {e}"))
    }
}

fn reply_error(out: &mut impl Write, kind: ArchiveErrorKind, message: String) {
    write_reply(
        out,
        &ArchiveReply {
            stat: None,
            error: Some(ArchiveError { kind, message }),
        },
    );
}

fn write_reply(out: &mut impl Write, reply: &ArchiveReply) {
    let mut line = serde_json::to_vec(reply).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    let _ = out.write_all(&line);
    let _ = out.flush();
}

fn run(req: &ArchiveRequest, out: &mut BufWriter<File>) -> i32 {
    let result = enter(req).and_then(|()| operate(req, out));
    match result {
        Ok(()) => 0,
        Err(f) => {
            reply_error(out, f.kind, f.message);
            1
        }
    }
}

/// Steps 1-3: a private namespace whose root is the container's, with its mounts.
fn enter(req: &ArchiveRequest) -> Result<(), Failure> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| Failure::internal("cannot make a mount namespace", e))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Failure::internal("cannot make the mounts private", e))?;

    let root: PathBuf = match &req.root {
        ArchiveRoot::Mounted { path } => {
            let fs = nix::sys::statfs::statfs(path.as_path())
                .map_err(|_| Failure::new(ArchiveErrorKind::Gone, "the container stopped"))?;
            if fs.filesystem_type().0 != OVERLAYFS_SUPER_MAGIC {
                return Err(Failure::new(
                    ArchiveErrorKind::Gone,
                    "the container stopped",
                ));
            }
            path.clone()
        }
        ArchiveRoot::Overlay {
            rootfs: cfg,
            mount_point,
        } => {
            rootfs::mount_overlay(cfg, mount_point, req.userns.as_ref())
                .map_err(|e| Failure::internal("cannot mount the container's filesystem", e))?;
            mount_point.clone()
        }
    };
    if req.readonly_rootfs {
        nix::mount::mount(
            None::<&str>,
            &root,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| Failure::internal("cannot make the root read-only", e))?;
    }

    // Parents before children, as the container gets them.
    let mut mounts: Vec<&MountConfig> = req.mounts.iter().collect();
    mounts.sort_by_key(|m| Path::new(&m.destination).components().count());
    let mut prepared = Vec::with_capacity(mounts.len());
    // A tmpfs of the container lives in its memory, where nothing outside it can reach
    // (Docker's view leaves them out too): a put there is refused (see `extraction_dir`).
    for m in mounts {
        let tree = match m.tmpfs {
            Some(_) => None,
            None => {
                let is_dir = std::fs::metadata(&m.source)
                    .map_err(|e| {
                        Failure::internal(&format!("cannot use {}", m.source.display()), e)
                    })?
                    .is_dir();
                let fd = crate::sys::clone_tree(&m.source, m.readonly).map_err(|e| {
                    Failure::internal(&format!("cannot bind {}", m.source.display()), e)
                })?;
                Some((fd, is_dir))
            }
        };
        prepared.push((m, tree));
    }

    nix::unistd::chdir(&root).map_err(|e| Failure::internal("cannot enter the root", e))?;
    nix::unistd::chroot(".").map_err(|e| Failure::internal("cannot chroot", e))?;
    nix::unistd::chdir("/").map_err(|e| Failure::internal("cannot enter the root", e))?;

    for (m, tree) in prepared {
        if let Some((fd, is_dir)) = tree {
            let dest = Path::new(&m.destination);
            make_mount_point(dest, is_dir)?;
            attach(&fd, dest)?;
        }
    }
    Ok(())
}

/// Creates a missing mount point (inside the chroot), as Docker's view of a container does.
fn make_mount_point(dest: &Path, is_dir: bool) -> Result<(), Failure> {
    let fail = |e: io::Error| {
        Failure::internal(
            &format!("cannot make the mount point {}", dest.display()),
            e,
        )
    };
    if dest.exists() {
        return Ok(());
    }
    if is_dir {
        std::fs::create_dir_all(dest).map_err(fail)
    } else {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dest)
            .map(drop)
            .map_err(fail)
    }
}

fn attach(tree: &OwnedFd, dest: &Path) -> Result<(), Failure> {
    crate::sys::move_mount(tree, dest)
        .map_err(|e| Failure::internal(&format!("cannot mount on {}", dest.display()), e))
}

/// The client's path made absolute and cleaned, keeping a trailing `/.` or `/` (they
/// change what is meant: a directory's content, a symlink's target).
pub fn absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut abs = format!("/{}", parts.join("/"));
    if specifies_current_dir(path) {
        if abs != "/" {
            abs.push('/');
        }
        abs.push('.');
    } else if path.ends_with('/') && abs != "/" {
        abs.push('/');
    }
    abs
}

fn specifies_current_dir(path: &str) -> bool {
    path == "." || path.ends_with("/.")
}

/// The name the archive's entries start with (Docker's `SplitPathDirEntry` base): the last
/// component, `.` for a path naming a directory's content.
pub fn entry_base(path: &str) -> String {
    let abs = absolute(path);
    if specifies_current_dir(&abs) {
        return ".".into();
    }
    let trimmed = abs.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        Some(b) if !b.is_empty() => b.to_owned(),
        _ => "/".into(),
    }
}

fn not_found(path: &str) -> Failure {
    Failure::new(ArchiveErrorKind::NotFound, path.to_owned())
}

fn io_failure(path: &str, e: io::Error) -> Failure {
    match e.raw_os_error() {
        Some(libc::ENOENT) => not_found(path),
        Some(libc::ENOTDIR) => Failure::new(
            ArchiveErrorKind::Invalid,
            format!("{path}: not a directory"),
        ),
        _ => Failure::internal(path, e),
    }
}

/// The stat Docker reports: `lstat` of the path (a trailing `/` follows a final symlink);
/// for a symlink, its target resolved as far as it goes (inside the chroot: the container).
fn stat_of(path: &str) -> Result<tarfs::PathStat, Failure> {
    let abs = absolute(path);
    tarfs::stat(Path::new(&abs), &entry_base(path)).map_err(|e| io_failure(path, e))
}

fn stat_reply(st: &tarfs::PathStat) -> Result<ArchiveReply, Failure> {
    Ok(ArchiveReply {
        stat: Some(serde_json::to_string(st).map_err(|e| Failure::internal("stat", e))?),
        error: None,
    })
}

fn operate(req: &ArchiveRequest, out: &mut BufWriter<File>) -> Result<(), Failure> {
    match &req.op {
        ArchiveOp::Stat { path } => {
            let st = stat_of(path)?;
            write_reply(out, &stat_reply(&st)?);
            Ok(())
        }
        ArchiveOp::Get { path } => {
            let st = stat_of(path)?;
            write_reply(out, &stat_reply(&st)?);
            let abs = absolute(path);
            // Errors from here on cut the stream short: the reply has been sent.
            let opts = tarfs::PackOptions {
                id_map: req.userns.as_ref().map(tarfs::IdMapping::from),
            };
            let packed = tarfs::pack_with(Path::new(&abs), &entry_base(path), &mut *out, &opts);
            if let Err(e) = packed.and_then(|w| w.flush()) {
                eprintln!("archive of {path} failed: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        ArchiveOp::Put {
            path,
            no_overwrite_dir_non_dir,
            owner_user,
        } => {
            let tmpfs: Vec<&str> = req
                .mounts
                .iter()
                .filter(|m| m.tmpfs.is_some())
                .map(|m| m.destination.as_str())
                .collect();
            let dir = extraction_dir(path, &tmpfs)?;
            let owner = match owner_user {
                Some(user) => Some(owner_ids(user)?),
                None => None,
            };
            let opts = tarfs::ExtractOptions {
                no_overwrite_dir_non_dir: *no_overwrite_dir_non_dir,
                owner,
                id_map: req.userns.as_ref().map(tarfs::IdMapping::from),
                allow_devices: false,
                preserve_owner: true,
            };
            // Ready: the daemon sends the archive only now (a refusal above leaves the
            // request body unread, and a `Gone` can be retried with it).
            write_reply(out, &ArchiveReply::default());
            let stdin = io::stdin().lock();
            tarfs::extract(stdin, &dir, &opts).map_err(|e| match e {
                tarfs::ExtractError::Io(io) if io.kind() == io::ErrorKind::ReadOnlyFilesystem => {
                    Failure::new(ArchiveErrorKind::Invalid, read_only_message(&dir))
                }
                tarfs::ExtractError::Io(io) => Failure::internal("extraction failed", io),
                other => Failure::new(ArchiveErrorKind::Invalid, other.to_string()),
            })?;
            write_reply(out, &ArchiveReply::default());
            Ok(())
        }
    }
}

/// The directory a `Put` extracts into: every symlink followed (also a final one, so an
/// archive can go to a link to a directory), which must be a writable directory.
fn extraction_dir(path: &str, tmpfs: &[&str]) -> Result<PathBuf, Failure> {
    let dir = rootfs::resolve_in_root(Path::new("/"), &absolute(path))
        .map_err(|e| io_failure(path, e))?;
    if let Some(t) = tmpfs.iter().find(|t| dir.starts_with(t)) {
        return Err(Failure::new(
            ArchiveErrorKind::Invalid,
            format!("cannot copy into {t}: it is a tmpfs mount, in the container's memory"),
        ));
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| io_failure(path, e))?;
    if !meta.is_dir() {
        return Err(Failure::new(
            ArchiveErrorKind::Invalid,
            "extraction point is not a directory",
        ));
    }
    let vfs = nix::sys::statvfs::statvfs(&dir).map_err(|e| Failure::internal(path, e))?;
    if vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Err(Failure::new(
            ArchiveErrorKind::Invalid,
            read_only_message(&dir),
        ));
    }
    Ok(dir)
}

/// Docker's words for a read-only target: the root, or a volume mounted read-only.
fn read_only_message(dir: &Path) -> String {
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    if dev(dir).is_some() && dev(dir) == dev(Path::new("/")) {
        "container rootfs is marked read-only".into()
    } else {
        "mounted volume is marked read-only".into()
    }
}

/// `copyUIDGID`: the container user's IDs (as the container sees them; the extraction maps
/// them to the host's with a user namespace).
fn owner_ids(user: &str) -> Result<(u32, u32), Failure> {
    let passwd = rootfs::read_in_root(Path::new("/"), "/etc/passwd")
        .ok()
        .flatten();
    let group = rootfs::read_in_root(Path::new("/"), "/etc/group")
        .ok()
        .flatten();
    let u = crate::user::resolve(user, passwd.as_deref(), group.as_deref())
        .map_err(|e| Failure::new(ArchiveErrorKind::Invalid, e.to_string()))?;
    Ok((u.uid, u.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_what_their_trailing_characters_mean() {
        assert_eq!(absolute("etc"), "/etc");
        assert_eq!(absolute("/etc/"), "/etc/");
        assert_eq!(absolute("/etc/."), "/etc/.");
        assert_eq!(absolute("/"), "/");
        assert_eq!(absolute("/."), "/.");
        assert_eq!(absolute("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(absolute("a//b/../c"), "/a/c");
        assert_eq!(entry_base("/etc/"), "etc");
        assert_eq!(entry_base("/etc/."), ".");
        assert_eq!(entry_base("/etc/passwd"), "passwd");
        assert_eq!(entry_base("/"), "/");
    }
}
