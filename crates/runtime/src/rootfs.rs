//! The container's root filesystem as seen from the host: the overlay mount, and path
//! resolution *inside* it.
//!
//! [`resolve_in_root`] follows symlinks the way the container will see them: an absolute
//! link target restarts at the rootfs, `..` never climbs above it. Nothing here follows a
//! symlink out to the host. (The container is created but not started while the shim
//! looks, so nothing inside can race these lookups.)
//!
//! With `--userns` the lower layers are mounted idmapped: see [`idmap`].

mod idmap;

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use arca_api::shim::{IdMaps, RootfsConfig};
use nix::mount::{MntFlags, MsFlags};

pub use self::idmap::{host_id, mapped_root};

/// Default `PATH` when the container's environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Joins `path` (interpreted inside the container) onto `root`, resolving every symlink
/// within `root` ([`arca_store::archive::resolve_in_root`]). Components that do not exist are
/// appended as they are.
pub fn resolve_in_root(root: &Path, path: &str) -> io::Result<PathBuf> {
    let inside = arca_store::archive::resolve_in_root(root, Path::new(path))?;
    Ok(root.join(inside.strip_prefix("/").unwrap_or(&inside)))
}

/// Why the container's command cannot run, worded as Docker (runc) words it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    NotInPath(String),
    #[error("exec: \"{0}\": stat {0}: no such file or directory")]
    NoSuchFile(String),
    #[error("exec: \"{0}\": permission denied")]
    PermissionDenied(String),
    #[error("exec: \"{cmd}\": {message}")]
    Other { cmd: String, message: String },
}

impl LookupError {
    /// Docker's exit code for this failure: 127 not found, 126 cannot invoke.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NotInPath(_) | Self::NoSuchFile(_) => 127,
            Self::PermissionDenied(_) | Self::Other { .. } => 126,
        }
    }
}

enum Candidate {
    Executable,
    NotExecutable,
    Missing,
}

fn check_candidate(root: &Path, path: &str) -> io::Result<Candidate> {
    let host = resolve_in_root(root, path)?;
    match std::fs::metadata(&host) {
        Ok(m) if !m.is_dir() && m.permissions().mode() & 0o111 != 0 => Ok(Candidate::Executable),
        Ok(_) => Ok(Candidate::NotExecutable),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            Ok(Candidate::Missing)
        }
        Err(e) => Err(e),
    }
}

/// Finds the program `cmd` would run inside the container, as Go's `exec.LookPath` run in
/// the container would: a name with a slash is taken as it is, anything else is searched
/// in `path_env` (directories relative to `cwd` when not absolute). Returns the in-container
/// path to exec (symlinks are left for `execve` to follow, so `argv[0]` dispatch works).
pub fn lookup_executable(
    root: &Path,
    cmd: &str,
    path_env: Option<&str>,
    cwd: &str,
) -> Result<String, LookupError> {
    let other = |e: io::Error| LookupError::Other {
        cmd: cmd.to_owned(),
        message: e.to_string(),
    };
    if cmd.is_empty() {
        return Err(LookupError::NotInPath(String::new()));
    }
    if cmd.contains('/') {
        let in_container = if cmd.starts_with('/') {
            cmd.to_owned()
        } else {
            format!("{}/{}", cwd.trim_end_matches('/'), cmd)
        };
        return match check_candidate(root, &in_container).map_err(other)? {
            Candidate::Executable => Ok(cmd.to_owned()),
            Candidate::NotExecutable => Err(LookupError::PermissionDenied(cmd.to_owned())),
            Candidate::Missing => Err(LookupError::NoSuchFile(cmd.to_owned())),
        };
    }
    for dir in path_env.unwrap_or(DEFAULT_PATH).split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{}/{}", dir.trim_end_matches('/'), cmd);
        let in_container = if candidate.starts_with('/') {
            candidate.clone()
        } else {
            format!("{}/{}", cwd.trim_end_matches('/'), candidate)
        };
        // Like LookPath, entries that fail for any reason are skipped.
        if let Ok(Candidate::Executable) = check_candidate(root, &in_container) {
            return Ok(in_container);
        }
    }
    Err(LookupError::NotInPath(cmd.to_owned()))
}

/// Reads a file inside the rootfs (following symlinks within it); `None` if it is absent.
pub fn read_in_root(root: &Path, path: &str) -> io::Result<Option<String>> {
    let host = resolve_in_root(root, path)?;
    match std::fs::read(&host) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates directory `path` inside the rootfs (mode 0755, owned by root) if missing, as
/// Docker does for the working directory.
pub fn mkdir_all_in_root(root: &Path, path: &str) -> io::Result<()> {
    let host = resolve_in_root(root, path)?;
    if host.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&host)
}

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("the rootfs has no layers")]
    NoLayers,
    #[error("overlay path {0:?} contains ':', ',' or a newline")]
    UnsupportedPath(PathBuf),
    #[error(
        "overlay mount options are {len} bytes for {layers} layers, over the {limit}-byte limit"
    )]
    OptionsTooLong {
        len: usize,
        layers: usize,
        limit: usize,
    },
    #[error("failed to create mount point {path}")]
    MountPoint {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to mount overlay at {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("failed to change directory to {path}")]
    Chdir {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("--userns maps must map the container's root (uid and gid 0)")]
    RootNotMapped,
    #[error("failed to create a user namespace for the ID maps")]
    UserNamespace(#[source] io::Error),
    #[error(
        "failed to mount layer {path} idmapped (needs Linux 5.19 and a filesystem that supports idmapped mounts)"
    )]
    Idmap {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to give {path} to the container's root")]
    Chown {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The mount data limit: the kernel copies at most one page of options.
fn options_limit() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|n| n as usize)
        .unwrap_or(4096)
        - 1
}

fn check_path(p: &Path) -> Result<(), RootfsError> {
    if p.as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b':' | b',' | b'\n'))
    {
        return Err(RootfsError::UnsupportedPath(p.to_path_buf()));
    }
    Ok(())
}

/// Builds the overlay option string with the lower layers given as `lower`.
fn overlay_options(lower: &[PathBuf], cfg: &RootfsConfig) -> String {
    let mut s = String::from("lowerdir=");
    for (i, l) in lower.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&l.to_string_lossy());
    }
    s.push_str(",upperdir=");
    s.push_str(&cfg.upper.to_string_lossy());
    s.push_str(",workdir=");
    s.push_str(&cfg.work.to_string_lossy());
    if cfg.volatile {
        s.push_str(",volatile");
    }
    s
}

/// Mounts, and if the kernel does not know `volatile` (before 5.10), mounts without it.
fn mount_maybe_volatile(target: &Path, data: &str) -> Result<(), RootfsError> {
    match mount(target, data) {
        Err(e) if data.ends_with(",volatile") => {
            mount(target, data.trim_end_matches(",volatile")).map_err(|_| e)
        }
        other => other,
    }
}

/// The deepest directory containing every path in `paths`.
fn common_parent(paths: &[PathBuf]) -> Option<PathBuf> {
    let first = paths.first()?.parent()?;
    let mut common: Vec<Component> = first.components().collect();
    for p in &paths[1..] {
        let parent: Vec<Component> = p.parent()?.components().collect();
        let n = common
            .iter()
            .zip(&parent)
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(n);
    }
    (!common.is_empty()).then(|| common.iter().collect())
}

/// Mounts the overlay described by `cfg` at `target` (created if missing), with its lower
/// layers idmapped through `userns` when given (see the module docs).
///
/// If the absolute option string would exceed a page, the lower layers are given relative
/// to their common parent directory, which the shim changes into for the mount (the trick
/// Docker's overlay2 driver uses); if even that is too long the mount fails clearly.
pub fn mount_overlay(
    cfg: &RootfsConfig,
    target: &Path,
    userns: Option<&IdMaps>,
) -> Result<(), RootfsError> {
    if cfg.lower.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    for p in cfg.lower.iter().chain([&cfg.upper, &cfg.work]) {
        check_path(p)?;
    }
    std::fs::create_dir_all(target).map_err(|source| RootfsError::MountPoint {
        path: target.to_path_buf(),
        source,
    })?;
    match userns {
        None => mount_layers(&cfg.lower, cfg, target),
        Some(maps) => idmap::mount_overlay(cfg, target, maps),
    }
}

/// Mounts the overlay with `lower` as its lower layers.
fn mount_layers(lower: &[PathBuf], cfg: &RootfsConfig, target: &Path) -> Result<(), RootfsError> {
    let limit = options_limit();
    let data = overlay_options(lower, cfg);
    if data.len() <= limit {
        return mount_maybe_volatile(target, &data);
    }
    let too_long = |len| RootfsError::OptionsTooLong {
        len,
        layers: lower.len(),
        limit,
    };
    let parent = common_parent(lower).ok_or_else(|| too_long(data.len()))?;
    let relative: Vec<PathBuf> = lower
        .iter()
        .map(|l| l.strip_prefix(&parent).map(Path::to_path_buf))
        .collect::<Result<_, _>>()
        .map_err(|_| too_long(data.len()))?;
    let data = overlay_options(&relative, cfg);
    if data.len() > limit {
        return Err(too_long(data.len()));
    }
    let previous = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    nix::unistd::chdir(&parent).map_err(|source| RootfsError::Chdir {
        path: parent.clone(),
        source,
    })?;
    let result = mount_maybe_volatile(target, &data);
    // Best effort: the shim does not depend on its working directory afterwards.
    let _ = nix::unistd::chdir(&previous);
    result
}

fn mount(target: &Path, data: &str) -> Result<(), RootfsError> {
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data),
    )
    .map_err(|source| RootfsError::Mount {
        path: target.to_path_buf(),
        source,
    })
}

/// Detaches the overlay at `target` from the mount tree at once, and returns a descriptor
/// that keeps the detached mount alive.
///
/// Why: tearing down an overlay superblock syncs its *entire* upper filesystem
/// (`ovl_sync_fs` → `sync_filesystem(upper_sb)`), which took a full second on this host
/// while other processes had dirty pages. Holding the returned descriptor moves that cost to
/// the moment it is closed (the shim's exit), after the exit has been reported, while the
/// mount point is already free for the daemon to remove. `None` if `target` was not
/// mounted.
pub fn detach(target: &Path) -> nix::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let pin = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(target)
        .ok();
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(pin),
        Err(nix::errno::Errno::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Unmounts `target`, falling back to a lazy detach if it is busy.
pub fn unmount(target: &Path) -> nix::Result<()> {
    match nix::mount::umount2(target, MntFlags::empty()) {
        Err(nix::errno::Errno::EBUSY) => nix::mount::umount2(target, MntFlags::MNT_DETACH),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn write_exe(p: &Path, mode: u32) {
        std::fs::write(p, b"#!/bin/sh\n").expect("write");
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// root/{bin/busybox (0755), bin/sh -> busybox, usr/bin/abs -> /bin/busybox,
    /// usr/bin/escape -> /../../../../etc/shadow, etc/notexec (0644), sbin -> /usr/bin}
    fn fixture() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        for d in ["bin", "usr/bin", "etc"] {
            std::fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        write_exe(&r.join("bin/busybox"), 0o755);
        write_exe(&r.join("etc/notexec"), 0o644);
        symlink("busybox", r.join("bin/sh")).expect("symlink");
        symlink("/bin/busybox", r.join("usr/bin/abs")).expect("symlink");
        symlink("/../../../../etc/shadow", r.join("usr/bin/escape")).expect("symlink");
        symlink("/usr/bin", r.join("sbin")).expect("symlink");
        t
    }

    #[test]
    fn resolve_keeps_absolute_symlinks_inside_the_root() {
        let t = fixture();
        let r = t.path();
        assert_eq!(
            resolve_in_root(r, "/usr/bin/abs").expect("resolve"),
            r.join("bin/busybox")
        );
        assert_eq!(
            resolve_in_root(r, "/sbin/abs").expect("resolve"),
            r.join("bin/busybox")
        );
        assert_eq!(
            resolve_in_root(r, "/usr/bin/escape").expect("resolve"),
            r.join("etc/shadow")
        );
        assert_eq!(
            resolve_in_root(r, "../../etc/../bin/./sh").expect("resolve"),
            r.join("bin/busybox")
        );
        assert_eq!(resolve_in_root(r, "/").expect("resolve"), r.to_path_buf());
    }

    #[test]
    fn resolve_detects_symlink_loops() {
        let t = fixture();
        symlink("/loop", t.path().join("loop")).expect("symlink");
        let err = resolve_in_root(t.path(), "/loop/x").expect_err("loop");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn lookup_searches_path_inside_the_root() {
        let t = fixture();
        let r = t.path();
        let path = Some("/usr/local/bin:/sbin:/bin");
        // Found through the /sbin -> /usr/bin absolute link, then abs -> /bin/busybox.
        assert_eq!(
            lookup_executable(r, "abs", path, "/"),
            Ok("/sbin/abs".to_owned())
        );
        assert_eq!(
            lookup_executable(r, "sh", path, "/"),
            Ok("/bin/sh".to_owned())
        );
        assert_eq!(
            lookup_executable(r, "nope", path, "/"),
            Err(LookupError::NotInPath("nope".into()))
        );
        // A host binary that is not in the rootfs is not found.
        assert!(lookup_executable(r, "ls", Some("/bin:/usr/bin"), "/").is_err());
    }

    #[test]
    fn lookup_errors_carry_docker_messages_and_codes() {
        let t = fixture();
        let r = t.path();
        let e = lookup_executable(r, "nope", None, "/").expect_err("missing");
        assert_eq!(
            e.to_string(),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(e.exit_code(), 127);
        let e = lookup_executable(r, "/etc/notexec", None, "/").expect_err("not exec");
        assert_eq!(e.to_string(), "exec: \"/etc/notexec\": permission denied");
        assert_eq!(e.exit_code(), 126);
        let e = lookup_executable(r, "/etc", None, "/").expect_err("dir");
        assert_eq!(e.exit_code(), 126);
        let e = lookup_executable(r, "/no/such", None, "/").expect_err("missing");
        assert_eq!(
            e.to_string(),
            "exec: \"/no/such\": stat /no/such: no such file or directory"
        );
        assert_eq!(e.exit_code(), 127);
        // Not executable files in PATH are skipped, as LookPath does.
        let e = lookup_executable(r, "notexec", Some("/etc"), "/").expect_err("skip");
        assert_eq!(e.exit_code(), 127);
        assert_eq!(
            lookup_executable(r, "./busybox", None, "/bin"),
            Ok("./busybox".to_owned())
        );
    }

    #[test]
    fn mkdir_creates_missing_workdir_inside_the_root() {
        let t = fixture();
        let r = t.path();
        mkdir_all_in_root(r, "/sbin/work/dir").expect("mkdir");
        assert!(r.join("usr/bin/work/dir").is_dir());
        mkdir_all_in_root(r, "/usr/bin/work/dir").expect("exists");
    }

    #[test]
    fn reading_files_follows_links_within_the_root() {
        let t = fixture();
        std::fs::write(
            t.path().join("etc/passwd.real"),
            "root:x:0:0::/root:/bin/sh\n",
        )
        .expect("write");
        symlink("/etc/passwd.real", t.path().join("etc/passwd")).expect("symlink");
        let text = read_in_root(t.path(), "/etc/passwd").expect("read");
        assert!(text.is_some_and(|s| s.starts_with("root:")));
        assert_eq!(read_in_root(t.path(), "/etc/group").expect("read"), None);
    }

    #[test]
    fn common_parent_of_layer_dirs() {
        let l = vec![
            PathBuf::from("/var/lib/arca/snapshots/a/fs"),
            PathBuf::from("/var/lib/arca/snapshots/b/fs"),
        ];
        assert_eq!(
            common_parent(&l),
            Some(PathBuf::from("/var/lib/arca/snapshots"))
        );
    }

    #[test]
    fn overlay_rejects_ambiguous_paths() {
        let cfg = RootfsConfig {
            lower: vec![PathBuf::from("/a:b")],
            upper: PathBuf::from("/u"),
            work: PathBuf::from("/w"),
            readonly: false,
            volatile: false,
        };
        assert!(matches!(
            mount_overlay(&cfg, Path::new("/nonexistent-target"), None),
            Err(RootfsError::UnsupportedPath(_))
        ));
    }

    #[test]
    fn volatile_is_asked_for_only_when_configured() {
        let mut cfg = RootfsConfig {
            lower: vec![PathBuf::from("/l")],
            upper: PathBuf::from("/u"),
            work: PathBuf::from("/w"),
            readonly: false,
            volatile: false,
        };
        assert_eq!(
            overlay_options(&cfg.lower, &cfg),
            "lowerdir=/l,upperdir=/u,workdir=/w"
        );
        cfg.volatile = true;
        assert!(overlay_options(&cfg.lower, &cfg).ends_with(",volatile"));
    }
}
