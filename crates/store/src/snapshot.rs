//! Snapshots: one unpacked layer per diff_id under `snapshots/<hex>/fs`, shared by every
//! image that contains the layer.
//!
//! A layer is unpacked into `snapshots/tmp-<random>/fs`, its diff_id verified, its unpacked
//! size recorded in `size`, the filesystem synced, and only then the directory is renamed to
//! its final name. A final-named snapshot is therefore always complete; `tmp-*` leftovers are
//! deleted by [`crate::Store::open`].

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use arca_model::{Digest, random_hex};

use crate::compress::{HashReader, decompress};
use crate::layout::{remove_any, sync_dir};
use crate::unpack::{UnpackError, unpack};
use crate::{Store, StoreError};

impl Store {
    /// The `fs` directory of the snapshot for `diff_id` (which may not exist).
    pub fn snapshot_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layout.snapshot(diff_id).join("fs")
    }

    /// The unpacked size of an existing snapshot, or `None` if there is none.
    pub(crate) fn snapshot_size(&self, diff_id: &Digest) -> Result<Option<u64>, StoreError> {
        let path = self.layout.snapshot(diff_id).join("size");
        match fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().parse().unwrap_or(0))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", &path)(e)),
        }
    }

    /// Makes sure the snapshot for `diff_id` exists, unpacking blob `blob` if it does not, and
    /// returns its unpacked size. An existing snapshot is reused; unless `verified`, the blob is
    /// still hashed (not unpacked) to prove it really is that layer, so an archive cannot
    /// borrow another image's layer by naming its diff_id.
    pub(crate) fn ensure_snapshot(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        verified: bool,
    ) -> Result<u64, StoreError> {
        if let Some(size) = self.snapshot_size(diff_id)? {
            if !verified {
                self.verify_diff_id(blob, diff_id)?;
            }
            return Ok(size);
        }
        let input = self.open_blob(blob)?;
        let (_, size) = self.unpack_snapshot(input, Some(diff_id), &blob.to_string())?;
        Ok(size)
    }

    fn verify_diff_id(&self, blob: &Digest, diff_id: &Digest) -> Result<(), StoreError> {
        let layer = blob.to_string();
        let read_err = |source| UnpackError::Read {
            layer: layer.clone(),
            source,
        };
        let input = decompress(self.open_blob(blob)?).map_err(read_err)?;
        let (actual, _) = HashReader::new(input, u64::MAX)
            .finish()
            .map_err(read_err)?;
        if actual != *diff_id {
            return Err(UnpackError::DiffIdMismatch {
                layer,
                expected: diff_id.clone(),
                actual,
            }
            .into());
        }
        Ok(())
    }

    /// Unpacks a layer stream into a new snapshot and returns its diff_id and unpacked size.
    /// If a snapshot with that diff_id appeared meanwhile, it is kept and this one discarded.
    pub(crate) fn unpack_snapshot(
        &self,
        input: impl Read,
        expected: Option<&Digest>,
        label: &str,
    ) -> Result<(Digest, u64), StoreError> {
        let tmp = self
            .layout
            .snapshots()
            .join(format!("tmp-{}", random_hex(8)));
        let result = self.unpack_into(&tmp, input, expected, label);
        if result.is_err() {
            let _ = remove_any(&tmp);
        }
        result
    }

    fn unpack_into(
        &self,
        tmp: &Path,
        input: impl Read,
        expected: Option<&Digest>,
        label: &str,
    ) -> Result<(Digest, u64), StoreError> {
        let fs_dir = tmp.join("fs");
        fs::create_dir_all(&fs_dir).map_err(StoreError::io("create", &fs_dir))?;
        fs::set_permissions(&fs_dir, fs::Permissions::from_mode(0o755))
            .map_err(StoreError::io("chmod", &fs_dir))?;
        let unpacked = unpack(input, &fs_dir, label, expected, &self.limits)?;
        let size_file = tmp.join("size");
        fs::write(&size_file, unpacked.size.to_string())
            .map_err(StoreError::io("write", &size_file))?;
        // One syncfs instead of an fsync per file: the rename below must not become durable
        // before the content it publishes.
        let dir = fs::File::open(tmp).map_err(StoreError::io("open", tmp))?;
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir))
            .map_err(|e| StoreError::io("sync", tmp)(e.into()))?;
        let dest = self.layout.snapshot(&unpacked.diff_id);
        match fs::rename(tmp, &dest) {
            Ok(()) => sync_dir(&self.layout.snapshots())?,
            Err(e) if dest.join("size").exists() => {
                tracing::debug!(diff_id = %unpacked.diff_id, error = %e, "snapshot already present; discarding the new copy");
                remove_any(tmp)?;
            }
            Err(e) => return Err(StoreError::io("rename", &dest)(e)),
        }
        tracing::info!(diff_id = %unpacked.diff_id, size = unpacked.size, "unpacked layer");
        Ok((unpacked.diff_id, unpacked.size))
    }

    /// Deletes the snapshot for `diff_id`: renamed to a `tmp-` name first so a half-deleted
    /// tree is never visible under the final name.
    pub(crate) fn delete_snapshot(&self, diff_id: &Digest) -> Result<(), StoreError> {
        let dir = self.layout.snapshot(diff_id);
        if !dir.exists() {
            return Ok(());
        }
        let tmp = self
            .layout
            .snapshots()
            .join(format!("tmp-{}", random_hex(8)));
        fs::rename(&dir, &tmp).map_err(StoreError::io("rename", &dir))?;
        remove_any(&tmp)
    }
}
