//! [`extract`]: unpacking an untrusted tar into a directory without ever writing outside it
//! (see the module documentation of `archive` for the rules).
//!
//! Every filesystem call is relative to a descriptor; parents are walked one component at a
//! time with `O_NOFOLLOW`, and a symlink met on the way is resolved by hand inside the
//! destination (a stack of descriptors, so `..` never leaves it).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{self, FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid};
use tar::EntryType;

use super::{ExtractError, ExtractOptions, ExtractStats, clean_from, clean_name, display_join};
use crate::sys;
use crate::unpack::fsops::remove_all;
use crate::unpack::parse_pax_time;

/// Most symlinks followed while resolving one path (the kernel's limit).
const MAX_LINKS: usize = 40;
/// Mode of the directories an entry's name implies (moby's `ImpliedDirectoryMode`).
const IMPLIED_DIR_MODE: u32 = 0o755;

const WALK_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW);
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW);

/// Unpacks the tar stream `r` (gzip or zstd compressed, or not) into the existing directory
/// `dest`. See the `archive` module documentation for what is refused and how.
pub fn extract<R: Read>(
    r: R,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractStats, ExtractError> {
    let root = sys::open(dest, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("failed to open {}: {e}", dest.display()),
        )
    })?;
    let input = crate::compress::decompress(r)?;
    let mut archive = tar::Archive::new(input);
    let mut x = Extractor {
        root,
        dest,
        opts,
        dirs: Vec::new(),
        stats: ExtractStats::default(),
    };
    let res = archive
        .entries()
        .map_err(ExtractError::from)
        .and_then(|entries| {
            for entry in entries {
                x.entry(&mut entry?)?;
            }
            Ok(())
        });
    // Directories made before a failure still get their modes (moby sets them at once).
    let finished = x.finish_dirs();
    res?;
    finished?;
    Ok(x.stats)
}

/// One entry's attributes, after PAX overrides.
struct Meta {
    kind: EntryType,
    link: Option<Vec<u8>>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    device: (u64, u64),
}

/// A directory whose mode and mtime are applied once everything is unpacked.
struct PendingDir {
    comps: Vec<OsString>,
    mode: u32,
    mtime: TimeSpec,
}

struct Extractor<'a> {
    root: OwnedFd,
    dest: &'a Path,
    opts: &'a ExtractOptions,
    dirs: Vec<PendingDir>,
    stats: ExtractStats,
}

/// Why resolving a parent directory failed.
enum WalkError {
    Missing,
    NotDirectory,
    TooManyLinks,
    Io(&'static str, Errno),
}

fn is_type(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<FileStat> {
    stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn errno_of(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn os(c: &[u8]) -> &OsStr {
    OsStr::from_bytes(c)
}

impl Extractor<'_> {
    /// An I/O error naming the entry.
    fn io(&self, op: &str, entry: &[u8], e: Errno) -> ExtractError {
        ExtractError::Io(io::Error::new(
            io::Error::from(e).kind(),
            format!(
                "failed to {op} {:?}: {}",
                String::from_utf8_lossy(entry),
                io::Error::from(e)
            ),
        ))
    }

    fn walk_err(&self, entry: &[u8], e: WalkError) -> ExtractError {
        let name = String::from_utf8_lossy(entry);
        match e {
            WalkError::Missing => ExtractError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!("failed to create {name:?}: a parent directory does not exist"),
            )),
            WalkError::NotDirectory => ExtractError::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("failed to create {name:?}: a parent is not a directory"),
            )),
            WalkError::TooManyLinks => ExtractError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("failed to create {name:?}: too many levels of symbolic links"),
            )),
            WalkError::Io(op, errno) => self.io(op, entry, errno),
        }
    }

    /// The owner to give an entry whose header says `uid:gid`; `None`: leave it alone.
    fn owner(&self, uid: u32, gid: u32) -> Result<Option<(u32, u32)>, ExtractError> {
        if !self.opts.preserve_owner {
            return Ok(None);
        }
        let (uid, gid) = self.opts.owner.unwrap_or((uid, gid));
        match &self.opts.id_map {
            None => Ok(Some((uid, gid))),
            Some(map) => map.to_host(uid, gid).map(Some).ok_or_else(|| {
                ExtractError::Invalid(format!(
                    "container ID {uid}:{gid} cannot be mapped to a host ID"
                ))
            }),
        }
    }

    /// Opens the directory `comps` below the root, following symlinks as if the root were
    /// `/`. Missing directories are created (mode 0755) when `create` is set.
    fn walk(&self, comps: &[OsString], create: bool) -> Result<OwnedFd, WalkError> {
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| WalkError::Io("duplicate", errno_of(&e)))
        };
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut todo: VecDeque<OsString> = comps.iter().cloned().collect();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c.is_empty() || c == "." {
                continue;
            }
            if c == ".." {
                stack.pop();
                continue;
            }
            let cur = stack.last().unwrap_or(&self.root).as_fd();
            match sys::openat(cur, c.as_os_str(), WALK_FLAGS, Mode::empty()) {
                Ok(fd) => stack.push(fd),
                Err(Errno::ENOENT) if create => stack.push(self.implied_dir(cur, &c)?),
                Err(Errno::ENOENT) => return Err(WalkError::Missing),
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    let st = lstat_at(cur, &c).map_err(|e| WalkError::Io("stat", e))?;
                    if !is_type(&st, SFlag::S_IFLNK) {
                        return Err(WalkError::NotDirectory);
                    }
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(WalkError::TooManyLinks);
                    }
                    let target = nix::fcntl::readlinkat(Some(cur.as_raw_fd()), c.as_os_str())
                        .map_err(|e| WalkError::Io("read link", e))?;
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    let parts = target
                        .split(|b| *b == b'/')
                        .filter(|p| !p.is_empty())
                        .map(|p| os(p).to_owned());
                    for (i, p) in parts.enumerate() {
                        todo.insert(i, p);
                    }
                }
                Err(e) => return Err(WalkError::Io("open directory", e)),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            None => dup(&self.root),
        }
    }

    /// Creates the directory `name` in `parent` that an entry's path implies.
    fn implied_dir(&self, parent: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, WalkError> {
        match stat::mkdirat(
            Some(parent.as_raw_fd()),
            name,
            Mode::from_bits_truncate(IMPLIED_DIR_MODE),
        ) {
            Ok(()) => {}
            // Created meanwhile: open whatever is there (a symlink there fails below).
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(WalkError::Io("create directory", e)),
        }
        let fd = sys::openat(parent, name, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => WalkError::NotDirectory,
            e => WalkError::Io("open directory", e),
        })?;
        // The umask must not decide the mode of implied parents.
        stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(IMPLIED_DIR_MODE))
            .map_err(|e| WalkError::Io("chmod", e))?;
        if self.opts.preserve_owner
            && let Some((uid, gid)) = self.opts.id_map.as_ref().and_then(|m| m.to_host(0, 0))
        {
            unistd::fchown(
                fd.as_raw_fd(),
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
            )
            .map_err(|e| WalkError::Io("chown", e))?;
        }
        Ok(fd)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        self.stats.entries += 1;
        let path = entry.path_bytes().into_owned();
        if path.contains(&0) {
            return Err(ExtractError::Invalid(format!(
                "tar entry name {:?} contains a NUL byte",
                String::from_utf8_lossy(&path)
            )));
        }
        let comps = clean_name(&path).ok_or_else(|| {
            ExtractError::Breakout(format!(
                "{:?} is outside of {:?}",
                String::from_utf8_lossy(&path),
                self.dest.display().to_string()
            ))
        })?;
        let meta = read_meta(entry, kind, &path)?;
        let is_dir = meta.kind == EntryType::Directory;
        let full = display_join(self.dest, &comps);
        let Some((&name, parents)) = comps.split_last() else {
            // The destination itself: its attributes are never changed.
            if self.opts.no_overwrite_dir_non_dir && !is_dir {
                return Err(ExtractError::Refused(format!(
                    "cannot overwrite directory {full:?} with non-directory {:?}",
                    self.dest.display().to_string()
                )));
            }
            return Ok(());
        };
        // Every check that needs nothing from the filesystem comes before touching it.
        let mut link_target: Option<Vec<&[u8]>> = None;
        match meta.kind {
            EntryType::Symlink => {
                let target = meta.link.as_deref().unwrap_or_default();
                if target.is_empty() || target.contains(&0) {
                    return Err(ExtractError::Invalid(format!(
                        "symlink {:?} has no valid target",
                        String::from_utf8_lossy(&path)
                    )));
                }
                if clean_from(parents, target).is_none() {
                    return Err(ExtractError::Breakout(format!(
                        "invalid symlink {full:?} -> {:?}",
                        String::from_utf8_lossy(target)
                    )));
                }
            }
            EntryType::Link => {
                let target = meta.link.as_deref().unwrap_or_default();
                let invalid = || {
                    let mut joined = self.dest.to_path_buf();
                    joined.push(os(target.strip_prefix(b"/").unwrap_or(target)));
                    ExtractError::Breakout(format!(
                        "invalid hardlink {:?} -> {:?}",
                        joined.display().to_string(),
                        String::from_utf8_lossy(target)
                    ))
                };
                if target.contains(&0) {
                    return Err(invalid());
                }
                match clean_name(target) {
                    Some(t) if !t.is_empty() => link_target = Some(t),
                    _ => return Err(invalid()),
                }
            }
            EntryType::Char | EntryType::Block if !self.opts.allow_devices => {
                return Err(ExtractError::Refused(format!(
                    "refusing to create device node {full:?}"
                )));
            }
            _ => {}
        }
        let owner = self.owner(meta.uid, meta.gid)?;
        let parent_comps: Vec<OsString> = parents.iter().map(|c| os(c).to_owned()).collect();
        let parent = self
            .walk(&parent_comps, true)
            .map_err(|e| self.walk_err(&path, e))?;
        let parent = parent.as_fd();
        let name = os(name);
        // A hard link's target is found before anything is replaced.
        let link_src = match &link_target {
            Some(t) => Some(self.link_source(t, &path)?),
            None => None,
        };
        let existing_dir = match lstat_at(parent, name) {
            Ok(st) => {
                let existing_dir = is_type(&st, SFlag::S_IFDIR);
                if self.opts.no_overwrite_dir_non_dir && existing_dir && !is_dir {
                    return Err(ExtractError::Refused(format!(
                        "cannot overwrite directory {full:?} with non-directory {:?}",
                        self.dest.display().to_string()
                    )));
                }
                if self.opts.no_overwrite_dir_non_dir && !existing_dir && is_dir {
                    return Err(ExtractError::Refused(format!(
                        "cannot overwrite non-directory {full:?} with directory {:?}",
                        self.dest.display().to_string()
                    )));
                }
                if !(existing_dir && is_dir) {
                    remove_all(parent, name).map_err(|e| self.io("replace", &path, e))?;
                }
                existing_dir
            }
            Err(Errno::ENOENT) => false,
            Err(e) => return Err(self.io("stat", &path, e)),
        };
        match meta.kind {
            EntryType::Directory => {
                if !existing_dir {
                    stat::mkdirat(
                        Some(parent.as_raw_fd()),
                        name,
                        Mode::from_bits_truncate(0o700),
                    )
                    .map_err(|e| self.io("create directory", &path, e))?;
                }
                self.chown_at(parent, name, owner, &path)?;
                if !meta.xattrs.is_empty() {
                    let fd = sys::openat(parent, name, DIR_FLAGS, Mode::empty())
                        .map_err(|e| self.io("open directory", &path, e))?;
                    self.set_xattrs(fd.as_fd(), &meta, &path)?;
                }
                self.dirs.push(PendingDir {
                    comps: comps.iter().map(|c| os(c).to_owned()).collect(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
                Ok(())
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(parent, name, entry, &meta, owner, &path)
            }
            EntryType::Symlink => {
                let target = meta.link.as_deref().unwrap_or_default();
                unistd::symlinkat(os(target), Some(parent.as_raw_fd()), name)
                    .map_err(|e| self.io("create symlink", &path, e))?;
                self.chown_at(parent, name, owner, &path)?;
                self.times_at(parent, name, &meta, &path)
            }
            EntryType::Link => {
                let (tparent, tname, tsymlink) =
                    link_src.expect("hard links resolve their source above");
                unistd::linkat(
                    Some(tparent.as_raw_fd()),
                    tname.as_os_str(),
                    Some(parent.as_raw_fd()),
                    name,
                    AtFlags::empty(),
                )
                .map_err(|e| self.io("create hard link", &path, e))?;
                self.chown_at(parent, name, owner, &path)?;
                if tsymlink {
                    return Ok(());
                }
                self.chmod_at(parent, name, meta.mode, &path)?;
                self.times_at(parent, name, &meta, &path)
            }
            EntryType::Fifo => {
                stat::mknodat(
                    Some(parent.as_raw_fd()),
                    name,
                    SFlag::S_IFIFO,
                    Mode::from_bits_truncate(0o600),
                    0,
                )
                .map_err(|e| self.io("create fifo", &path, e))?;
                // O_NONBLOCK: opening a fifo for reading must not wait for a writer.
                let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW;
                let fd = sys::openat(parent, name, flags, Mode::empty())
                    .map_err(|e| self.io("open fifo", &path, e))?;
                self.set_attrs(fd.as_fd(), &meta, owner, &path)
            }
            EntryType::Char | EntryType::Block => {
                let kind = if meta.kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                let dev = stat::makedev(meta.device.0, meta.device.1);
                stat::mknodat(
                    Some(parent.as_raw_fd()),
                    name,
                    kind,
                    Mode::from_bits_truncate(0o600),
                    dev,
                )
                .map_err(|e| self.io("create device", &path, e))?;
                // A device is never opened (that can have side effects): its attributes
                // are set by name, right after creating it.
                self.chown_at(parent, name, owner, &path)?;
                self.chmod_at(parent, name, meta.mode, &path)?;
                self.times_at(parent, name, &meta, &path)
            }
            other => Err(ExtractError::Invalid(format!(
                "unhandled tar header type {}",
                other.as_byte()
            ))),
        }
    }

    /// The directory holding a hard link's target, the target's name, and whether it is a
    /// symlink. The target must exist and not be a directory.
    fn link_source(
        &self,
        target: &[&[u8]],
        path: &[u8],
    ) -> Result<(OwnedFd, OsString, bool), ExtractError> {
        let (tname, tparents) = target.split_last().expect("the target is not empty");
        let tparents: Vec<OsString> = tparents.iter().map(|c| os(c).to_owned()).collect();
        let tparent = self
            .walk(&tparents, false)
            .map_err(|e| self.walk_err(path, e))?;
        let tname = os(tname).to_owned();
        let st = lstat_at(tparent.as_fd(), &tname)
            .map_err(|e| self.io("find the hard link target of", path, e))?;
        if is_type(&st, SFlag::S_IFDIR) {
            return Err(ExtractError::Invalid(format!(
                "hard link {:?} points to a directory",
                String::from_utf8_lossy(path)
            )));
        }
        Ok((tparent, tname, is_type(&st, SFlag::S_IFLNK)))
    }

    fn file<R: Read>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        data: &mut R,
        meta: &Meta,
        owner: Option<(u32, u32)>,
        path: &[u8],
    ) -> Result<(), ExtractError> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
        let fd = sys::openat(parent, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| self.io("create", path, e))?;
        let mut file = File::from(fd);
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            file.write_all(&buf[..n])
                .map_err(|e| self.io("write", path, errno_of(&e)))?;
            self.stats.bytes += n as u64;
        }
        self.set_attrs(file.as_fd(), meta, owner, path)
    }

    /// Owner, then mode (a chown clears set-id bits), attributes and times of an open node.
    fn set_attrs(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        owner: Option<(u32, u32)>,
        path: &[u8],
    ) -> Result<(), ExtractError> {
        if let Some((uid, gid)) = owner {
            unistd::fchown(
                fd.as_raw_fd(),
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
            )
            .map_err(|e| self.chown_err(path, uid, gid, e))?;
        }
        stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(meta.mode & 0o7777))
            .map_err(|e| self.io("chmod", path, e))?;
        self.set_xattrs(fd, meta, path)?;
        stat::futimens(fd.as_raw_fd(), &meta.mtime, &meta.mtime)
            .map_err(|e| self.io("set times of", path, e))
    }

    fn set_xattrs(&self, fd: BorrowedFd<'_>, meta: &Meta, path: &[u8]) -> Result<(), ExtractError> {
        for (key, value) in &meta.xattrs {
            match sys::fsetxattr(fd, key, value) {
                Ok(()) => {}
                Err(Errno::EPERM | Errno::ENOTSUP) => {
                    tracing::debug!(entry = %String::from_utf8_lossy(path), xattr = %String::from_utf8_lossy(key), "dropping extended attribute the filesystem refuses");
                }
                Err(e) => return Err(self.io("set extended attribute on", path, e)),
            }
        }
        Ok(())
    }

    fn chown_err(&self, path: &[u8], uid: u32, gid: u32, e: Errno) -> ExtractError {
        ExtractError::Io(io::Error::new(
            io::Error::from(e).kind(),
            format!(
                "failed to Lchown {:?} for UID {uid}, GID {gid}: {}",
                String::from_utf8_lossy(path),
                io::Error::from(e)
            ),
        ))
    }

    fn chown_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        owner: Option<(u32, u32)>,
        path: &[u8],
    ) -> Result<(), ExtractError> {
        let Some((uid, gid)) = owner else {
            return Ok(());
        };
        unistd::fchownat(
            Some(parent.as_raw_fd()),
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.chown_err(path, uid, gid, e))
    }

    /// chmod by name, of a node this run just created and found not to be a symlink
    /// (Linux has no `lchmod`; devices must not be opened).
    fn chmod_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        mode: u32,
        path: &[u8],
    ) -> Result<(), ExtractError> {
        let st = lstat_at(parent, name).map_err(|e| self.io("stat", path, e))?;
        if is_type(&st, SFlag::S_IFLNK) {
            return Ok(());
        }
        stat::fchmodat(
            Some(parent.as_raw_fd()),
            name,
            Mode::from_bits_truncate(mode & 0o7777),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| self.io("chmod", path, e))
    }

    fn times_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        path: &[u8],
    ) -> Result<(), ExtractError> {
        stat::utimensat(
            Some(parent.as_raw_fd()),
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.io("set times of", path, e))
    }

    /// Applies directories' modes and mtimes, deepest (latest) first, once their contents
    /// are in place. Directories that later entries replaced are skipped.
    fn finish_dirs(&mut self) -> Result<(), ExtractError> {
        for d in std::mem::take(&mut self.dirs).into_iter().rev() {
            let path = d
                .comps
                .iter()
                .map(|c| c.to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
                .into_bytes();
            let Some((name, parents)) = d.comps.split_last() else {
                continue;
            };
            let Ok(parent) = self.walk(parents, false) else {
                continue;
            };
            let mode = Mode::from_bits_truncate(d.mode & 0o7777);
            match sys::openat(parent.as_fd(), name.as_os_str(), DIR_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    stat::fchmod(fd.as_raw_fd(), mode).map_err(|e| self.io("chmod", &path, e))?;
                    stat::futimens(fd.as_raw_fd(), &d.mtime, &d.mtime)
                        .map_err(|e| self.io("set times of", &path, e))?;
                }
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => {}
                Err(Errno::EACCES) => {
                    // A directory this (unprivileged) user may not read: by name instead.
                    match lstat_at(parent.as_fd(), name) {
                        Ok(st) if is_type(&st, SFlag::S_IFDIR) => {}
                        _ => continue,
                    }
                    stat::fchmodat(
                        Some(parent.as_raw_fd()),
                        name.as_os_str(),
                        mode,
                        FchmodatFlags::FollowSymlink,
                    )
                    .map_err(|e| self.io("chmod", &path, e))?;
                    stat::utimensat(
                        Some(parent.as_raw_fd()),
                        name.as_os_str(),
                        &d.mtime,
                        &d.mtime,
                        UtimensatFlags::NoFollowSymlink,
                    )
                    .map_err(|e| self.io("set times of", &path, e))?;
                }
                Err(e) => return Err(self.io("open directory", &path, e)),
            }
        }
        Ok(())
    }
}

/// Reads an entry's attributes, letting PAX records override the header's.
fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    kind: EntryType,
    path: &[u8],
) -> Result<Meta, ExtractError> {
    let bad = |what: &str| {
        ExtractError::Invalid(format!(
            "tar entry {:?} has an invalid {what}",
            String::from_utf8_lossy(path)
        ))
    };
    let h = entry.header();
    // Old-style archives mark directories with a trailing slash on a regular entry.
    let kind = if kind == EntryType::Regular && path.ends_with(b"/") {
        EntryType::Directory
    } else {
        kind
    };
    let (mode, uid, gid, secs) = super::header_numbers(h).map_err(|_| bad("header"))?;
    let (mut uid, mut gid) = (uid, gid);
    let mut mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
    let device = match kind {
        EntryType::Char | EntryType::Block => (
            u64::from(h.device_major().ok().flatten().unwrap_or(0)),
            u64::from(h.device_minor().ok().flatten().unwrap_or(0)),
        ),
        _ => (0, 0),
    };
    let link = entry.link_name_bytes().map(|l| l.into_owned());
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let value = ext.value_bytes();
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
            };
            match ext.key_bytes() {
                b"uid" => uid = number().ok_or_else(|| bad("PAX uid"))?,
                b"gid" => gid = number().ok_or_else(|| bad("PAX gid"))?,
                b"mtime" => mtime = parse_pax_time(value).ok_or_else(|| bad("PAX mtime"))?,
                key => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        xattrs.push((name.to_vec(), value.to_vec()));
                    }
                }
            }
        }
    }
    Ok(Meta {
        kind,
        link,
        mode,
        uid: u32::try_from(uid).map_err(|_| bad("uid"))?,
        gid: u32::try_from(gid).map_err(|_| bad("gid"))?,
        mtime,
        xattrs,
        device,
    })
}
