//! Unpacking one image layer (an untrusted tar stream, possibly gzip- or zstd-compressed) into
//! an overlayfs-ready directory.
//!
//! Contract:
//! - Nothing is ever written outside `dest`: entry names with `..` or a leading `/` abort the
//!   layer, every parent directory is opened component by component with `O_NOFOLLOW`
//!   relative to `dest` (a symlink on the way aborts the layer), and files are created with
//!   `O_EXCL|O_NOFOLLOW`.
//! - Symlinks are created verbatim (they resolve inside the container at run time); hard
//!   links must name an existing non-directory in this layer; device nodes are skipped;
//!   AUFS-style whiteouts become overlayfs whiteouts (`0:0` character devices) and opaque
//!   markers become `trusted.overlay.opaque=y`.
//! - Modes (`0o7777` bits), owners, mtimes and `SCHILY.xattr.*` attributes are preserved;
//!   attributes the filesystem refuses (`EPERM`, `ENOTSUP`) are dropped, and so are
//!   `trusted.overlay.*` ones other than `opaque`.
//! - The diff_id (SHA-256 of the uncompressed tar) is computed on the fly and checked against
//!   the expected one. On any error the caller must discard `dest`: it may hold a partial tree.
//!
//! Limits: the uncompressed stream and the unpacked file data are capped by [`Limits`];
//! PAX/GNU metadata records are capped at 1 MiB, entry paths at 4096 bytes. GNU sparse files
//! and PAX `size` overrides are rejected.

pub(crate) mod fsops;

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use arca_model::{Digest, ErrorKind};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::time::TimeSpec;
use tar::EntryType;

use crate::compress::{HashReader, decompress};
use crate::sys;
use fsops::Fs;

/// Size caps that guard against decompression bombs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most uncompressed bytes per layer (tar stream and unpacked file data each).
    pub max_bytes: u64,
    /// Most tar entries per layer.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
        }
    }
}

/// What unpacking produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unpacked {
    /// SHA-256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Bytes of regular-file data written.
    pub size: u64,
}

const MAX_META: u64 = 1 << 20;
const MAX_PATH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {layer} entry {entry:?} escapes the layer root")]
    Escape { layer: String, entry: String },
    #[error("layer {layer} entry {entry:?} traverses a symlink")]
    Symlink { layer: String, entry: String },
    #[error("layer {layer} entry {entry:?} has a parent that is not a directory")]
    NotDirectory { layer: String, entry: String },
    #[error("layer {layer} entry {entry:?} is a hard link to {target:?}, which {reason}")]
    Hardlink {
        layer: String,
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("layer {layer} entry {entry:?} is not supported: {reason}")]
    Unsupported {
        layer: String,
        entry: String,
        reason: &'static str,
    },
    #[error("layer {layer} exceeds the limit of {limit} bytes")]
    TooLarge { layer: String, limit: u64 },
    #[error("layer {layer} exceeds the limit of {limit} entries")]
    TooManyEntries { layer: String, limit: u64 },
    #[error("layer {layer} has diff_id {actual}, expected {expected}")]
    DiffIdMismatch {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {layer} is not a valid tar stream")]
    Read {
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to {op} {entry:?} while unpacking layer {layer}")]
    Io {
        layer: String,
        entry: String,
        op: &'static str,
        #[source]
        source: Errno,
    },
}

impl UnpackError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// Unpacks the layer `input` into the existing, empty directory `dest`. `layer` names the
/// layer in errors. When `expected` is given, the stream's diff_id must equal it.
pub(crate) fn unpack(
    input: impl Read,
    dest: &Path,
    layer: &str,
    expected: Option<&Digest>,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    let read_err = |source| UnpackError::Read {
        layer: layer.to_owned(),
        source,
    };
    let root = sys::open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
    )
    .map_err(|source| UnpackError::Io {
        layer: layer.to_owned(),
        entry: String::new(),
        op: "open the destination of",
        source,
    })?;
    let reader = HashReader::new(decompress(input).map_err(read_err)?, limits.max_bytes);
    let mut archive = tar::Archive::new(reader);
    let mut fs = Fs::new(root, layer, limits);
    let result = run(&mut fs, &mut archive, limits);
    let reader = archive.into_inner();
    let too_large = || UnpackError::TooLarge {
        layer: layer.to_owned(),
        limit: limits.max_bytes,
    };
    if reader.exceeded() {
        return Err(too_large());
    }
    result?;
    let finished = reader.finish();
    let (diff_id, _) = match finished {
        Ok(v) => v,
        Err(e)
            if e.get_ref()
                .is_some_and(|r| r.is::<crate::compress::LimitExceeded>()) =>
        {
            return Err(too_large());
        }
        Err(e) => return Err(read_err(e)),
    };
    fs.apply_dir_times();
    if let Some(expected) = expected
        && *expected != diff_id
    {
        return Err(UnpackError::DiffIdMismatch {
            layer: layer.to_owned(),
            expected: expected.clone(),
            actual: diff_id,
        });
    }
    Ok(Unpacked {
        diff_id,
        size: fs.written(),
    })
}

/// Metadata records (GNU long names, PAX headers) that apply to the next real entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

/// One entry's name and attributes, after PAX and GNU overrides.
pub(crate) struct Meta {
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: TimeSpec,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    /// The entry name for messages.
    pub(crate) fn name(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

fn run<R: Read>(
    fs: &mut Fs<'_>,
    archive: &mut tar::Archive<R>,
    limits: &Limits,
) -> Result<(), UnpackError> {
    let layer = fs.layer().to_owned();
    let read_err = |source| UnpackError::Read {
        layer: layer.clone(),
        source,
    };
    let mut pending = Pending::default();
    let mut count: u64 = 0;
    for entry in archive.entries().map_err(read_err)?.raw(true) {
        let mut entry = entry.map_err(read_err)?;
        count += 1;
        if count > limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                layer: layer.clone(),
                limit: limits.max_entries,
            });
        }
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname() {
            pending.long_name = Some(trim_nul(read_meta(&mut entry, &layer)?));
        } else if kind.is_gnu_longlink() {
            pending.long_link = Some(trim_nul(read_meta(&mut entry, &layer)?));
        } else if kind.is_pax_local_extensions() {
            pending.pax = Some(read_meta(&mut entry, &layer)?);
        } else if kind.is_pax_global_extensions() {
            // Global records carry nothing a layer needs (comments, charset).
            read_meta(&mut entry, &layer)?;
        } else {
            let meta = meta(&entry, std::mem::take(&mut pending), &layer)?;
            fs.entry(&mut entry, kind, &meta)?;
        }
    }
    Ok(())
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, layer: &str) -> Result<Vec<u8>, UnpackError> {
    if entry.size() > MAX_META {
        return Err(UnpackError::Unsupported {
            layer: layer.to_owned(),
            entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            reason: "metadata record larger than 1 MiB",
        });
    }
    let mut v = Vec::new();
    entry
        .read_to_end(&mut v)
        .map_err(|source| UnpackError::Read {
            layer: layer.to_owned(),
            source,
        })?;
    Ok(v)
}

fn meta<R: Read>(
    entry: &tar::Entry<'_, R>,
    pending: Pending,
    layer: &str,
) -> Result<Meta, UnpackError> {
    let header = entry.header();
    let mut path = pending
        .long_name
        .unwrap_or_else(|| entry.path_bytes().into_owned());
    let mut link = pending
        .long_link
        .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
    let unsupported = |path: &[u8], reason| UnpackError::Unsupported {
        layer: layer.to_owned(),
        entry: String::from_utf8_lossy(path).into_owned(),
        reason,
    };
    let bad_header = |path: &[u8]| unsupported(path, "malformed header");
    let mut uid = header.uid().map_err(|_| bad_header(&path))?;
    let mut gid = header.gid().map_err(|_| bad_header(&path))?;
    let mut mtime = TimeSpec::new(
        i64::try_from(header.mtime().map_err(|_| bad_header(&path))?).unwrap_or(i64::MAX),
        0,
    );
    let mode = header.mode().map_err(|_| bad_header(&path))?;
    let mut xattrs = Vec::new();
    if let Some(pax) = &pending.pax {
        for ext in tar::PaxExtensions::new(pax) {
            let ext = ext.map_err(|_| unsupported(&path, "malformed PAX record"))?;
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
            };
            match key {
                b"path" => path = value.to_vec(),
                b"linkpath" => link = Some(value.to_vec()),
                b"uid" => uid = number().ok_or_else(|| bad_header(&path))?,
                b"gid" => gid = number().ok_or_else(|| bad_header(&path))?,
                b"mtime" => mtime = parse_pax_time(value).ok_or_else(|| bad_header(&path))?,
                b"size" => {
                    if number() != Some(entry.size()) {
                        return Err(unsupported(&path, "PAX size override"));
                    }
                }
                _ if key.starts_with(b"GNU.sparse.") => {
                    return Err(unsupported(&path, "sparse file"));
                }
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        // overlayfs' own attributes (redirect, origin, metacopy…) would
                        // change how the mount resolves paths; only the opaque marker,
                        // which a `.wh..wh..opq` entry could set anyway, is taken.
                        if name.starts_with(b"trusted.overlay.")
                            && name != b"trusted.overlay.opaque"
                        {
                            tracing::debug!(layer, entry = %String::from_utf8_lossy(&path), "dropping overlayfs attribute");
                            continue;
                        }
                        xattrs.push((name.to_vec(), value.to_vec()));
                    }
                }
            }
        }
    }
    if path.len() > MAX_PATH {
        return Err(unsupported(&path[..64], "path longer than 4096 bytes"));
    }
    let uid = u32::try_from(uid).map_err(|_| unsupported(&path, "uid out of range"))?;
    let gid = u32::try_from(gid).map_err(|_| unsupported(&path, "gid out of range"))?;
    Ok(Meta {
        path,
        link,
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// Parses a PAX time (`1700000000.123456789`, possibly negative, `-0.5` included); also
/// used by `docker cp`'s extraction.
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    if s.starts_with('-') && nanos > 0 {
        Some(TimeSpec::new(secs - 1, 1_000_000_000 - nanos))
    } else {
        Some(TimeSpec::new(secs, nanos))
    }
}

/// Why an entry name was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadName {
    Escape,
    Nul,
}

/// Splits a tar path into components, dropping `.` and empty ones (so `./a//b/` is `a/b`).
/// Absolute paths and `..` components are refused.
pub(crate) fn split_path(path: &[u8]) -> Result<Vec<OsString>, BadName> {
    if path.first() == Some(&b'/') {
        return Err(BadName::Escape);
    }
    if path.contains(&0) {
        return Err(BadName::Nul);
    }
    let mut out = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(BadName::Escape),
            _ => out.push(OsString::from_vec(c.to_vec())),
        }
    }
    Ok(out)
}

/// Whether the entry is a directory (including old-style regular entries ending in `/`).
fn is_dir(kind: EntryType, path: &[u8]) -> bool {
    kind.is_dir() || (kind.is_file() && path.last() == Some(&b'/'))
}

/// Applies an opaque marker's attribute to a directory.
fn set_opaque(dir: impl AsFd) -> nix::Result<()> {
    sys::fsetxattr(dir.as_fd(), b"trusted.overlay.opaque", b"y")
}

/// The name a whiteout entry hides, or `None` if `name` is not a whiteout.
fn whiteout_target(name: &std::ffi::OsStr) -> Option<&[u8]> {
    name.as_bytes().strip_prefix(b".wh.")
}

#[cfg(test)]
mod tests;
