//! Filesystem operations of the unpacker, all relative to the snapshot root descriptor and
//! none following a symlink.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{self, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use super::{BadName, Limits, Meta, UnpackError, is_dir, set_opaque, split_path, whiteout_target};
use crate::sys;

/// Why walking to a directory failed.
enum WalkError {
    Symlink,
    NotDirectory,
    Missing,
    Io(&'static str, Errno),
}

/// The unpacker's view of the destination tree.
pub(super) struct Fs<'a> {
    root: OwnedFd,
    layer: &'a str,
    limits: &'a Limits,
    written: u64,
    dir_times: Vec<(Vec<OsString>, TimeSpec)>,
}

fn is_type(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<FileStat> {
    stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW);

impl<'a> Fs<'a> {
    pub(super) fn new(root: OwnedFd, layer: &'a str, limits: &'a Limits) -> Self {
        Self {
            root,
            layer,
            limits,
            written: 0,
            dir_times: Vec::new(),
        }
    }

    pub(super) fn layer(&self) -> &str {
        self.layer
    }

    pub(super) fn written(&self) -> u64 {
        self.written
    }

    fn io(&self, entry: &Meta, op: &'static str) -> impl FnOnce(Errno) -> UnpackError + use<> {
        let (layer, entry) = (self.layer.to_owned(), entry.name());
        move |source| UnpackError::Io {
            layer,
            entry,
            op,
            source,
        }
    }

    fn name_err(&self, meta: &Meta, bad: BadName) -> UnpackError {
        let (layer, entry) = (self.layer.to_owned(), meta.name());
        match bad {
            BadName::Escape => UnpackError::Escape { layer, entry },
            BadName::Nul => UnpackError::Unsupported {
                layer,
                entry,
                reason: "name contains a NUL byte",
            },
        }
    }

    fn walk_err(&self, meta: &Meta, e: WalkError) -> UnpackError {
        let (layer, entry) = (self.layer.to_owned(), meta.name());
        match e {
            WalkError::Symlink => UnpackError::Symlink { layer, entry },
            WalkError::NotDirectory | WalkError::Missing => {
                UnpackError::NotDirectory { layer, entry }
            }
            WalkError::Io(op, source) => UnpackError::Io {
                layer,
                entry,
                op,
                source,
            },
        }
    }

    /// Opens the directory `comps` below the root, one component at a time with `O_NOFOLLOW`,
    /// creating missing ones (mode 0755) when `create` is set.
    fn walk(&self, comps: &[OsString], create: bool) -> Result<OwnedFd, WalkError> {
        let mut cur = self
            .root
            .try_clone()
            .map_err(|e| WalkError::Io("duplicate", errno_of(e)))?;
        for c in comps {
            let next = match sys::openat(cur.as_fd(), c.as_os_str(), DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    stat::mkdirat(
                        Some(cur.as_raw_fd()),
                        c.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                    .map_err(|e| WalkError::Io("create directory", e))?;
                    let fd = sys::openat(cur.as_fd(), c.as_os_str(), DIR_FLAGS, Mode::empty())
                        .map_err(|e| WalkError::Io("open directory", e))?;
                    // The umask must not decide the mode of implied parents.
                    stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))
                        .map_err(|e| WalkError::Io("chmod", e))?;
                    fd
                }
                Err(Errno::ENOENT) => return Err(WalkError::Missing),
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return match lstat_at(cur.as_fd(), c) {
                        Ok(st) if is_type(&st, SFlag::S_IFLNK) => Err(WalkError::Symlink),
                        Ok(_) => Err(WalkError::NotDirectory),
                        Err(e) => Err(WalkError::Io("stat", e)),
                    };
                }
                Err(e) => return Err(WalkError::Io("open directory", e)),
            };
            cur = next;
        }
        Ok(cur)
    }

    /// Handles one real (non-metadata) tar entry.
    pub(super) fn entry<R: Read>(
        &mut self,
        data: &mut R,
        kind: EntryType,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let comps = split_path(&meta.path).map_err(|b| self.name_err(meta, b))?;
        let dir = is_dir(kind, &meta.path);
        let Some((name, parents)) = comps.split_last() else {
            if dir {
                // `./` itself: the root directory's own attributes.
                let root = self.walk(&[], false).map_err(|e| self.walk_err(meta, e))?;
                self.set_attrs(root.as_fd(), meta)?;
                self.dir_times.push((Vec::new(), meta.mtime));
            }
            return Ok(());
        };
        let parent = self
            .walk(parents, true)
            .map_err(|e| self.walk_err(meta, e))?;
        let parent = parent.as_fd();
        if let Some(hidden) = whiteout_target(name) {
            return self.whiteout(parent, hidden, meta);
        }
        if dir {
            return self.directory(parent, name, &comps, meta);
        }
        match kind {
            EntryType::Regular | EntryType::Continuous => self.file(parent, name, data, meta),
            EntryType::Symlink => self.symlink(parent, name, meta),
            EntryType::Link => self.hardlink(parent, name, &comps, meta),
            EntryType::Fifo => self.fifo(parent, name, meta),
            EntryType::Char | EntryType::Block => {
                tracing::warn!(layer = self.layer, entry = %meta.name(), "skipping device node");
                Ok(())
            }
            EntryType::GNUSparse => Err(UnpackError::Unsupported {
                layer: self.layer.to_owned(),
                entry: meta.name(),
                reason: "sparse file",
            }),
            other => {
                tracing::debug!(layer = self.layer, entry = %meta.name(), kind = ?other, "skipping tar entry");
                Ok(())
            }
        }
    }

    fn whiteout(
        &self,
        parent: BorrowedFd<'_>,
        hidden: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if hidden == b".wh..opq" {
            return set_opaque(parent).map_err(self.io(meta, "mark opaque"));
        }
        if hidden.starts_with(b".wh.") {
            // AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): meaningless to overlayfs.
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.name_err(meta, BadName::Escape));
        }
        let hidden = OsStr::from_bytes(hidden);
        self.remove_existing(parent, hidden, meta)?;
        stat::mknodat(
            Some(parent.as_raw_fd()),
            hidden,
            SFlag::S_IFCHR,
            Mode::empty(),
            0,
        )
        .map_err(self.io(meta, "create whiteout for"))
    }

    fn directory(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        comps: &[OsString],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        match lstat_at(parent, name) {
            Ok(st) if is_type(&st, SFlag::S_IFDIR) => {}
            Ok(_) => {
                self.remove_existing(parent, name, meta)?;
                self.mkdir(parent, name, meta)?;
            }
            Err(Errno::ENOENT) => self.mkdir(parent, name, meta)?,
            Err(e) => return Err(self.io(meta, "stat")(e)),
        }
        let fd = sys::openat(parent, name, DIR_FLAGS, Mode::empty())
            .map_err(self.io(meta, "open directory"))?;
        self.set_attrs(fd.as_fd(), meta)?;
        self.dir_times.push((comps.to_vec(), meta.mtime));
        Ok(())
    }

    fn mkdir(&self, parent: BorrowedFd<'_>, name: &OsStr, meta: &Meta) -> Result<(), UnpackError> {
        stat::mkdirat(
            Some(parent.as_raw_fd()),
            name,
            Mode::from_bits_truncate(0o700),
        )
        .map_err(self.io(meta, "create directory"))
    }

    fn file<R: Read>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        data: &mut R,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        self.remove_existing(parent, name, meta)?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
        let fd = sys::openat(parent, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(self.io(meta, "create"))?;
        let mut file = File::from(fd);
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = data.read(&mut buf).map_err(|source| UnpackError::Read {
                layer: self.layer.to_owned(),
                source,
            })?;
            if n == 0 {
                break;
            }
            self.written += n as u64;
            if self.written > self.limits.max_bytes {
                return Err(UnpackError::TooLarge {
                    layer: self.layer.to_owned(),
                    limit: self.limits.max_bytes,
                });
            }
            file.write_all(&buf[..n])
                .map_err(|e| self.io(meta, "write")(errno_of(e)))?;
        }
        self.set_attrs(file.as_fd(), meta)?;
        self.set_times(file.as_fd(), meta)
    }

    fn symlink(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let target = match &meta.link {
            Some(t) if !t.is_empty() && !t.contains(&0) => OsStr::from_bytes(t),
            _ => {
                return Err(UnpackError::Unsupported {
                    layer: self.layer.to_owned(),
                    entry: meta.name(),
                    reason: "symlink without a valid target",
                });
            }
        };
        self.remove_existing(parent, name, meta)?;
        let raw = Some(parent.as_raw_fd());
        unistd::symlinkat(target, raw, name).map_err(self.io(meta, "create symlink"))?;
        unistd::fchownat(
            raw,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(self.io(meta, "chown"))?;
        for (key, value) in &meta.xattrs {
            let r = sys::lsetxattr_at(parent, name, key, value);
            self.xattr_result(r, meta, key)?;
        }
        stat::utimensat(
            raw,
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(self.io(meta, "set times of"))
    }

    fn hardlink(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        comps: &[OsString],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let target_bytes = meta.link.clone().unwrap_or_default();
        let fail = |reason| UnpackError::Hardlink {
            layer: self.layer.to_owned(),
            entry: meta.name(),
            target: String::from_utf8_lossy(&target_bytes).into_owned(),
            reason,
        };
        let tcomps = match split_path(&target_bytes) {
            Ok(c) => c,
            Err(BadName::Escape) => return Err(fail("escapes the layer root")),
            Err(BadName::Nul) => return Err(fail("contains a NUL byte")),
        };
        let Some((tname, tparents)) = tcomps.split_last() else {
            return Err(fail("is the layer root"));
        };
        if tcomps == comps {
            return Ok(());
        }
        let tparent = self.walk(tparents, false).map_err(|e| match e {
            WalkError::Symlink => fail("traverses a symlink"),
            WalkError::NotDirectory | WalkError::Missing => fail("does not exist in this layer"),
            WalkError::Io(op, source) => self.io(meta, op)(source),
        })?;
        match lstat_at(tparent.as_fd(), tname) {
            Ok(st) if is_type(&st, SFlag::S_IFDIR) => return Err(fail("is a directory")),
            Ok(_) => {}
            Err(Errno::ENOENT) => return Err(fail("does not exist in this layer")),
            Err(e) => return Err(self.io(meta, "stat link target of")(e)),
        }
        self.remove_existing(parent, name, meta)?;
        unistd::linkat(
            Some(tparent.as_raw_fd()),
            tname.as_os_str(),
            Some(parent.as_raw_fd()),
            name,
            AtFlags::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOENT => fail("does not exist in this layer"),
            e => self.io(meta, "create hard link")(e),
        })
    }

    fn fifo(&self, parent: BorrowedFd<'_>, name: &OsStr, meta: &Meta) -> Result<(), UnpackError> {
        self.remove_existing(parent, name, meta)?;
        stat::mknodat(
            Some(parent.as_raw_fd()),
            name,
            SFlag::S_IFIFO,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .map_err(self.io(meta, "create fifo"))?;
        // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW;
        let fd =
            sys::openat(parent, name, flags, Mode::empty()).map_err(self.io(meta, "open fifo"))?;
        self.set_attrs(fd.as_fd(), meta)?;
        self.set_times(fd.as_fd(), meta)
    }

    /// Owner, then mode (a chown clears set-id bits), then extended attributes.
    fn set_attrs(&self, fd: BorrowedFd<'_>, meta: &Meta) -> Result<(), UnpackError> {
        let raw = fd.as_raw_fd();
        unistd::fchown(
            raw,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(self.io(meta, "chown"))?;
        stat::fchmod(raw, Mode::from_bits_truncate(meta.mode & 0o7777))
            .map_err(self.io(meta, "chmod"))?;
        for (key, value) in &meta.xattrs {
            let r = sys::fsetxattr(fd, key, value);
            self.xattr_result(r, meta, key)?;
        }
        Ok(())
    }

    fn xattr_result(&self, r: nix::Result<()>, meta: &Meta, key: &[u8]) -> Result<(), UnpackError> {
        match r {
            Ok(()) => Ok(()),
            Err(Errno::EPERM | Errno::ENOTSUP) => {
                tracing::debug!(layer = self.layer, entry = %meta.name(), xattr = %String::from_utf8_lossy(key), "dropping extended attribute the filesystem refuses");
                Ok(())
            }
            Err(e) => Err(self.io(meta, "set extended attribute on")(e)),
        }
    }

    fn set_times(&self, fd: BorrowedFd<'_>, meta: &Meta) -> Result<(), UnpackError> {
        stat::futimens(fd.as_raw_fd(), &meta.mtime, &meta.mtime)
            .map_err(self.io(meta, "set times of"))
    }

    /// Removes whatever `name` is in `parent` (recursively for a directory), so the entry can
    /// replace it. Absent is fine.
    fn remove_existing(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        remove_all(parent, name).map_err(self.io(meta, "replace"))
    }

    /// Sets directory mtimes last, since creating their children changed them. Directories
    /// that later entries replaced are skipped.
    pub(super) fn apply_dir_times(&mut self) {
        for (comps, time) in std::mem::take(&mut self.dir_times) {
            if let Ok(fd) = self.walk(&comps, false)
                && let Err(e) = stat::futimens(fd.as_raw_fd(), &time, &time)
            {
                tracing::debug!(layer = self.layer, error = %e, "failed to set directory mtime");
            }
        }
    }
}

/// Removes `name` in `parent` and, if it is a directory, everything below it; never follows a
/// symlink. Depth is bounded by the 4096-byte path limit. Also used by `docker cp`'s
/// extraction.
pub(crate) fn remove_all(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    match unistd::unlinkat(Some(parent.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(e),
    }
    let fd = sys::openat(parent, name, DIR_FLAGS, Mode::empty())?;
    let dup = fd.try_clone().map_err(errno_of)?;
    let children: Vec<OsString> = Dir::from(dup)?
        .iter()
        .filter_map(Result::ok)
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    for child in children {
        remove_all(fd.as_fd(), &child)?;
    }
    unistd::unlinkat(Some(parent.as_raw_fd()), name, UnlinkatFlags::RemoveDir)
}

fn errno_of(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
