//! Tar pieces behind `docker cp` (the `/containers/{id}/archive` API) and `arca cp`: path
//! stats in Docker's `X-Docker-Container-Path-Stat` shape, packing a file or tree as Docker
//! does, unpacking an untrusted tar into a directory, and renaming entries of a stream.
//!
//! Contract of [`extract`] (moby's `Unpack` with its breakout checks, made strict):
//! - Entry names are cleaned lexically; a leading `/` is stripped (`/etc/x` lands in
//!   `dest/etc/x`, as moby does), a name that climbs above `dest` (`../x`) is a
//!   [`ExtractError::Breakout`]. Entries naming `dest` itself (`.`, `./`, `/`) are skipped:
//!   `dest`'s own attributes are never changed.
//! - A symlink entry whose target, joined lexically to the entry's directory, climbs above
//!   `dest` is a breakout; absolute targets count from `dest` (so `/usr/lib` is allowed and
//!   stored verbatim). A hard link whose target climbs above `dest` is a breakout; an
//!   absolute hard-link target is taken relative to `dest`.
//! - Nothing is ever written outside `dest`, even without a chroot: parent directories are
//!   resolved component by component from a descriptor of `dest`, symlinks found on the way
//!   (ones that already existed, or ones the archive created) are followed *as if `dest`
//!   were the root* (absolute targets restart at `dest`, `..` stops at `dest`), and the final
//!   component is never followed (it is removed and recreated, or created with
//!   `O_EXCL|O_NOFOLLOW`).
//! - Existing non-directories are replaced; directories are merged when the entry is a
//!   directory, replaced otherwise, unless `no_overwrite_dir_non_dir` refuses either swap.
//! - Modes (with set-id and sticky bits), mtimes (directories after their contents), owners
//!   (see [`ExtractOptions`]), fifos, devices (when allowed) and `SCHILY.xattr.*` records are
//!   applied; attributes the filesystem refuses (`EPERM`, `ENOTSUP`) are dropped. Names
//!   starting with `.wh.` are plain files: this is a copy, not an image layer.
//! - gzip and zstd streams are decompressed (moby's `Untar` accepts compressed input).
//! - On error, entries already extracted stay (as with moby).
//!
//! Limits: sockets are never packed; GNU sparse files are unpacked as regular files; there
//! is no size cap (a `cp` stream is as large as the client makes it).

mod extract;
mod pack;

use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use arca_model::ErrorKind;
use serde::{Deserialize, Serialize};

pub use extract::extract;
pub use pack::{PackOptions, pack, pack_with, rebase};

/// Docker's `X-Docker-Container-Path-Stat` (`types.ContainerPathStat`), base64(JSON) in the
/// header (see [`PathStat::to_header`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits (see [`go_file_mode`]).
    pub mode: u32,
    /// RFC 3339 with nanoseconds, as Go marshals a `time.Time` (always UTC here).
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// The name of the HTTP header that carries a [`PathStat`].
pub const PATH_STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

impl PathStat {
    /// The header value: standard base64 (padded) of the JSON, as the Docker daemon sends.
    pub fn to_header(&self) -> String {
        // Strings and integers only: serialising cannot fail.
        arca_api::b64::encode(&serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses a header value; `None` when it is not base64 of a `PathStat` JSON.
    pub fn from_header(value: &str) -> Option<PathStat> {
        serde_json::from_slice(&arca_api::b64::decode(value)?).ok()
    }
}

/// Go's `os.ModeDir`.
pub const MODE_DIR: u32 = 1 << 31;
/// Go's `os.ModeSymlink`.
pub const MODE_SYMLINK: u32 = 1 << 27;
/// Go's `os.ModeDevice`.
pub const MODE_DEVICE: u32 = 1 << 26;
/// Go's `os.ModeNamedPipe`.
pub const MODE_NAMED_PIPE: u32 = 1 << 25;
/// Go's `os.ModeSocket`.
pub const MODE_SOCKET: u32 = 1 << 24;
/// Go's `os.ModeSetuid`.
pub const MODE_SETUID: u32 = 1 << 23;
/// Go's `os.ModeSetgid`.
pub const MODE_SETGID: u32 = 1 << 22;
/// Go's `os.ModeCharDevice`.
pub const MODE_CHAR_DEVICE: u32 = 1 << 21;
/// Go's `os.ModeSticky`.
pub const MODE_STICKY: u32 = 1 << 20;

/// The Go `os.FileMode` of `meta` (an lstat result), as Go's `os.Lstat` reports it.
pub fn go_file_mode(meta: &Metadata) -> u32 {
    let ft = meta.file_type();
    let raw = meta.mode();
    let mut mode = raw & 0o777;
    if ft.is_dir() {
        mode |= MODE_DIR;
    } else if ft.is_symlink() {
        mode |= MODE_SYMLINK;
    } else if ft.is_block_device() {
        mode |= MODE_DEVICE;
    } else if ft.is_char_device() {
        mode |= MODE_DEVICE | MODE_CHAR_DEVICE;
    } else if ft.is_fifo() {
        mode |= MODE_NAMED_PIPE;
    } else if ft.is_socket() {
        mode |= MODE_SOCKET;
    }
    if raw & 0o4000 != 0 {
        mode |= MODE_SETUID;
    }
    if raw & 0o2000 != 0 {
        mode |= MODE_SETGID;
    }
    if raw & 0o1000 != 0 {
        mode |= MODE_STICKY;
    }
    mode
}

pub fn is_dir_mode(mode: u32) -> bool {
    mode & MODE_DIR != 0
}

pub fn is_symlink_mode(mode: u32) -> bool {
    mode & MODE_SYMLINK != 0
}

/// lstat of `path` (a path the caller resolved; `/` is the root, as in a chroot), reported
/// under `name`. For a symlink, `link_target` is its full resolution inside `/` (moby's
/// `FollowSymlinkInScope`: `/bin -> usr/bin` gives `/usr/bin`; a dangling link resolves as
/// far as it exists).
pub fn stat(path: &Path, name: &str) -> io::Result<PathStat> {
    stat_in_root(Path::new("/"), path, name)
}

/// [`stat`] of `path` as seen from a process whose root is `root` (without chrooting):
/// `path` and the reported `link_target` are relative to `root`.
pub fn stat_in_root(root: &Path, path: &Path, name: &str) -> io::Result<PathStat> {
    let host = root.join(strip_root(path));
    let meta = std::fs::symlink_metadata(&host)?;
    let link_target = if meta.file_type().is_symlink() {
        resolve_in_root(root, path)?.to_string_lossy().into_owned()
    } else {
        String::new()
    };
    Ok(PathStat {
        name: name.to_owned(),
        size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
        mode: go_file_mode(&meta),
        mtime: go_time(meta.mtime(), meta.mtime_nsec()),
        link_target,
    })
}

/// Resolves every symlink in `path` as a process chrooted at `root` would (absolute targets
/// restart at `root`, `..` stops there), and returns the result relative to `root` (always
/// absolute, e.g. `/usr/bin`). Components that do not exist are kept as written, so a
/// dangling link resolves as far as it can (moby's `FollowSymlinkInScope`). More than 255
/// links is `ELOOP`.
pub fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    const MAX_LINKS: usize = 255;
    let mut done: Vec<std::ffi::OsString> = Vec::new();
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = components(path).collect();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            done.pop();
            continue;
        }
        let mut here = root.to_path_buf();
        here.extend(&done);
        here.push(&c);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&here)?;
                if target.is_absolute() {
                    done.clear();
                }
                for (i, t) in components(&target).enumerate() {
                    todo.insert(i, t);
                }
            }
            Ok(_) => done.push(c),
            Err(e) if e.kind() == io::ErrorKind::NotFound => done.push(c),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => done.push(c),
            Err(e) => return Err(e),
        }
    }
    let mut out = PathBuf::from("/");
    out.extend(done);
    Ok(out)
}

/// `path`'s normal and `..` components (root and `.` dropped).
fn components(path: &Path) -> impl Iterator<Item = std::ffi::OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_owned()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    })
}

fn strip_root(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

/// Formats a Unix time as Go's `time.Time.MarshalJSON` does in UTC (RFC 3339, fraction
/// without trailing zeros).
pub(crate) fn go_time(secs: i64, nanos: i64) -> String {
    let nanos = u32::try_from(nanos.clamp(0, 999_999_999)).unwrap_or(0);
    let Some(t) = chrono::DateTime::from_timestamp(secs, nanos) else {
        return "0001-01-01T00:00:00Z".to_owned();
    };
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Container↔host ID ranges of a user namespace: `(container_id, host_id, size)` each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMapping {
    pub uids: Vec<(u32, u32, u32)>,
    pub gids: Vec<(u32, u32, u32)>,
}

/// One ID through `(container_id, host_id, size)` ranges, container to host or back.
fn map_id(ranges: &[(u32, u32, u32)], id: u32, to_host: bool) -> Option<u32> {
    ranges.iter().find_map(|&(c, h, n)| {
        let (from, to) = if to_host { (c, h) } else { (h, c) };
        let off = id.checked_sub(from)?;
        (off < n).then(|| to.checked_add(off)).flatten()
    })
}

impl From<&arca_api::shim::IdMaps> for IdMapping {
    /// The ranges of a container's user namespace as the shim protocol carries them.
    fn from(maps: &arca_api::shim::IdMaps) -> Self {
        let ranges = |m: &[arca_api::shim::IdMap]| {
            m.iter()
                .map(|r| (r.container_id, r.host_id, r.size))
                .collect()
        };
        IdMapping {
            uids: ranges(&maps.uid),
            gids: ranges(&maps.gid),
        }
    }
}

impl IdMapping {
    /// Container IDs to host IDs (moby's `ToHost`).
    pub fn to_host(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        Some((
            map_id(&self.uids, uid, true)?,
            map_id(&self.gids, gid, true)?,
        ))
    }

    /// Host IDs to container IDs (moby's `ToContainer`), each ID outside the maps becoming
    /// the kernel's overflow ID (65534), as a process in the user namespace sees it.
    pub fn to_container_or_overflow(&self, uid: u32, gid: u32) -> (u32, u32) {
        const OVERFLOW: u32 = 65534;
        (
            map_id(&self.uids, uid, false).unwrap_or(OVERFLOW),
            map_id(&self.gids, gid, false).unwrap_or(OVERFLOW),
        )
    }
}

/// How [`extract`] treats what it writes.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// moby's `NoOverwriteDirNonDir`: refuse to replace a directory with a non-directory or
    /// the other way round.
    pub no_overwrite_dir_non_dir: bool,
    /// Chown every entry to this `(uid, gid)` instead of the header's (moby's `ChownOpts`,
    /// `docker cp -a` into a container with a `User`). Container IDs: mapped through
    /// `id_map` like header IDs.
    pub owner: Option<(u32, u32)>,
    /// Container→host ID ranges: header IDs (or `owner`) are mapped through them (an ID
    /// outside every range is an error); directories the archive implies are owned by the
    /// mapped root.
    pub id_map: Option<IdMapping>,
    /// `false`: character and block device entries are refused.
    pub allow_devices: bool,
    /// `false` (a non-root CLI user): never chown (moby's `NoLchown`).
    pub preserve_owner: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An entry would land, point or link outside the destination (moby's breakout errors).
    #[error("{0}")]
    Breakout(String),
    /// The entry is well-formed but not allowed here: a directory/non-directory swap under
    /// `no_overwrite_dir_non_dir`, a device node when devices are not allowed.
    #[error("{0}")]
    Refused(String),
    /// The archive is malformed or holds something that cannot be created (an unknown entry
    /// type, an ID outside the mapping).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ExtractError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Breakout(_) | Self::Refused(_) | Self::Invalid(_) => ErrorKind::InvalidArgument,
            Self::Io(e) => match e.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                    ErrorKind::InvalidArgument
                }
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    ErrorKind::Forbidden
                }
                _ => ErrorKind::Internal,
            },
        }
    }
}

/// What [`extract`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Entries read (metadata records not counted).
    pub entries: u64,
    /// Bytes of regular-file data written.
    pub bytes: u64,
}

/// Cleans a tar entry name into components below the root: a leading `/` is dropped (and
/// `..` at the root of an absolute name stays there, as `path.Clean` does); `None` when a
/// relative name climbs above the root.
pub(crate) fn clean_name(name: &[u8]) -> Option<Vec<&[u8]>> {
    clean_from(&[], name)
}

/// Like [`clean_name`], for `rel` joined to the directory `base` (already clean).
pub(crate) fn clean_from<'a>(base: &[&'a [u8]], rel: &'a [u8]) -> Option<Vec<&'a [u8]>> {
    let absolute = rel.first() == Some(&b'/');
    let mut out: Vec<&[u8]> = if absolute { Vec::new() } else { base.to_vec() };
    for c in rel.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() && !absolute {
                    return None;
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// A header's mode, uid, gid and mtime. Go reads an empty (all NUL or space) numeric field
/// as 0, and Go-written or hand-made archives have them; so do we.
pub(crate) fn header_numbers(h: &tar::Header) -> io::Result<(u32, u64, u64, u64)> {
    let old = h.as_old();
    let blank = |field: &[u8]| field.iter().all(|b| *b == 0 || *b == b' ');
    let or_zero = |r: io::Result<u64>, field: &[u8]| match r {
        Err(_) if blank(field) => Ok(0),
        r => r,
    };
    let mode = match h.mode() {
        Err(_) if blank(&old.mode) => 0,
        r => r?,
    };
    Ok((
        mode,
        or_zero(h.uid(), &old.uid)?,
        or_zero(h.gid(), &old.gid)?,
        or_zero(h.mtime(), &old.mtime)?,
    ))
}

/// `dest/comps` for messages.
pub(crate) fn display_join(dest: &Path, comps: &[&[u8]]) -> String {
    let mut p = dest.to_path_buf();
    for c in comps {
        p.push(std::ffi::OsStr::from_bytes(c));
    }
    p.display().to_string()
}

#[cfg(test)]
mod tests;
