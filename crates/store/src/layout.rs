//! Where things live under the store root, and the atomic-write helpers every persisted file
//! goes through.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use arca_model::{Digest, random_hex};

use crate::StoreError;

/// Prefix of temporary files created by [`atomic_write`] next to their target.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

/// Paths under the store root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs(&self) -> PathBuf {
        self.root.join("content/blobs/sha256")
    }

    pub(crate) fn blob(&self, d: &Digest) -> PathBuf {
        self.blobs().join(d.hex())
    }

    /// Where blobs are written before their digest is verified.
    pub(crate) fn content_tmp(&self) -> PathBuf {
        self.root.join("content/tmp")
    }

    pub(crate) fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub(crate) fn snapshot(&self, diff_id: &Digest) -> PathBuf {
        self.snapshots().join(diff_id.hex())
    }

    pub(crate) fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    pub(crate) fn record(&self, id: &Digest) -> PathBuf {
        self.images().join(format!("{}.json", id.hex()))
    }

    pub(crate) fn refs(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The marker of an owed garbage-collection sweep (see [`crate::gc`]).
    pub(crate) fn gc_pending(&self) -> PathBuf {
        self.root.join("gc-pending")
    }

    /// Creates the directory tree and deletes what a crash may have left half-done.
    pub(crate) fn prepare(&self) -> Result<(), StoreError> {
        for dir in [
            self.blobs(),
            self.content_tmp(),
            self.snapshots(),
            self.images(),
            self.tmp(),
        ] {
            fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
        }
        self.remove_content_leftovers()?;
        empty_dir(&self.tmp())?;
        remove_matching(&self.images(), |n| n.starts_with(TMP_PREFIX))?;
        remove_matching(&self.root, |n| n.starts_with(TMP_PREFIX))?;
        Ok(())
    }

    /// Deletes blobs and snapshots in progress (`content/tmp/*`, `snapshots/tmp-*`): only
    /// safe when nothing can be writing them (at open, or in a sweep, which runs with no
    /// lease alive).
    pub(crate) fn remove_content_leftovers(&self) -> Result<(), StoreError> {
        empty_dir(&self.content_tmp())?;
        remove_matching(&self.snapshots(), |n| n.starts_with("tmp-"))
    }
}

/// Removes everything inside `dir`.
pub(crate) fn empty_dir(dir: &Path) -> Result<(), StoreError> {
    remove_matching(dir, |_| true)
}

/// Removes the entries of `dir` whose name satisfies `pred` (recursively, never following
/// symlinks).
fn remove_matching(dir: &Path, pred: impl Fn(&str) -> bool) -> Result<(), StoreError> {
    let entries = fs::read_dir(dir).map_err(StoreError::io("read", dir))?;
    for entry in entries {
        let entry = entry.map_err(StoreError::io("read", dir))?;
        let name = entry.file_name();
        if !pred(&name.to_string_lossy()) {
            continue;
        }
        remove_any(&entry.path())?;
    }
    Ok(())
}

/// Removes a file, symlink or directory tree; absent is fine.
pub(crate) fn remove_any(path: &Path) -> Result<(), StoreError> {
    let res = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    match res {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io("remove", path)(e))
        }
        _ => Ok(()),
    }
}

/// Flushes a directory so a rename or unlink inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync", dir))
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename, fsync
/// of the directory.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}",
        random_hex(6),
        name.unwrap_or_default()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io("write", path)(e));
    }
    sync_dir(dir)
}
