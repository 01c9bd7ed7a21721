//! Snapshots: one unpacked layer per diff_id under `snapshots/<hex>/fs`, shared by every
//! image that contains the layer.
//!
//! A layer is unpacked into `snapshots/tmp-<random>/fs`, its diff_id verified, its unpacked
//! size recorded in `size`, the filesystem synced, and only then the directory is renamed to
//! its final name. A final-named snapshot is therefore always complete; `tmp-*` leftovers are
//! deleted by [`crate::Store::open`].
//!
//! `snapshots/<hex>/sources` lists the blobs verified to decompress to that layer, so an
//! image that brings a present layer in an already verified blob is not hashed again.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use arca_model::{Digest, random_hex};

use crate::compress::{HashReader, decompress};
use crate::layout::{remove_any, sync_dir};
use crate::unpack::{UnpackError, unpack};
use crate::{Store, StoreError};

/// The blobs (one digest per line) known to decompress to a snapshot's layer.
const SOURCES: &str = "sources";

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
            if !verified && !self.known_source(blob, diff_id) {
                self.verify_diff_id(blob, diff_id)?;
                self.remember_source(blob, diff_id);
            }
            return Ok(size);
        }
        let input = self.open_blob(blob)?;
        let (_, size) = self.unpack_snapshot(input, Some(diff_id), &blob.to_string())?;
        self.remember_source(blob, diff_id);
        Ok(size)
    }

    /// Whether blob `blob` is already known to decompress to layer `diff_id` (a blob digest
    /// fixes its content, so the fact never goes stale).
    fn known_source(&self, blob: &Digest, diff_id: &Digest) -> bool {
        let path = self.layout.snapshot(diff_id).join(SOURCES);
        fs::read_to_string(path)
            .map(|s| s.lines().any(|l| l == blob.to_string()))
            .unwrap_or(false)
    }

    /// Records that `blob` was verified to be layer `diff_id`, so the next image that brings
    /// both needs no re-hashing. A cache: failures are only logged (the price is a re-hash).
    fn remember_source(&self, blob: &Digest, diff_id: &Digest) {
        let dir = self.layout.snapshot(diff_id);
        let path = dir.join(SOURCES);
        let mut known = fs::read_to_string(&path).unwrap_or_default();
        if known.lines().any(|l| l == blob.to_string()) {
            return;
        }
        known.push_str(&format!("{blob}\n"));
        // Replaced whole (never torn); a concurrent writer may win and drop our line, which
        // costs one re-hash later.
        let tmp = dir.join(format!("{SOURCES}.tmp-{}", random_hex(8)));
        let result = fs::write(&tmp, known).and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            tracing::debug!(%blob, %diff_id, error = %e, "could not record a verified layer source");
        }
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

#[cfg(test)]
mod tests {
    use crate::testutil::{RawTar, empty_store, gzip};

    use super::*;

    #[test]
    fn a_verified_blob_is_not_hashed_again_and_others_still_are() {
        let (_tmp, store) = empty_store();
        let layer = RawTar::new().file("etc/motd", b"hi").finish();
        let diff_id = Digest::of(&layer);
        let (plain, _) = store.write_blob(&layer[..], None).expect("blob");
        store.unpack_layer(&plain, &diff_id).expect("unpack");
        assert!(store.known_source(&plain, &diff_id));

        // The same layer in another blob (gzipped) is verified once, then remembered.
        let (gz, _) = store.write_blob(&gzip(&layer)[..], None).expect("blob");
        assert!(!store.known_source(&gz, &diff_id));
        store
            .ensure_snapshot(&gz, &diff_id, false)
            .expect("verified");
        assert!(store.known_source(&gz, &diff_id));

        // Known pairs are not read again: even a damaged copy of the blob file passes
        // (content-addressed files are never rewritten; this only proves no re-hash).
        fs::write(store.layout.blob(&gz), b"damaged").expect("damage");
        store
            .ensure_snapshot(&gz, &diff_id, false)
            .expect("no re-hash");

        // A blob that is some other layer cannot borrow the snapshot.
        let other = RawTar::new().file("etc/motd", b"other").finish();
        let (bogus, _) = store.write_blob(&other[..], None).expect("blob");
        assert!(store.ensure_snapshot(&bogus, &diff_id, false).is_err());
        assert!(!store.known_source(&bogus, &diff_id));
    }
}
