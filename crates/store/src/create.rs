//! Building an image from a config and layer blobs: the common end of `load`, `import` and
//! (in the registry client) `pull`.
//!
//! [`Store::prepare`] makes every blob and snapshot exist; [`Store::commit`] then writes the
//! records and references. Nothing becomes visible before commit, and a failed commit removes
//! the records it wrote.

use std::collections::HashSet;
use std::fs;

use arca_model::{Digest, Reference};

use crate::image::{Image, Layer, LayerBlob};
use crate::record::{ImageRecord, VERSION, ref_key, write_json};
use crate::{Store, StoreError};

/// An image whose content is in place, waiting for [`Store::commit`].
pub(crate) struct Prepared {
    pub record: ImageRecord,
}

impl Store {
    /// Creates (or finds) the image with config `config` whose layers, bottom first, are
    /// `layers` (blobs already in the content store, e.g. written by [`Store::write_blob`]),
    /// unpacking layers that have no snapshot yet, then tags it with `tags`.
    pub fn create_image(
        &self,
        config: &[u8],
        layers: &[LayerBlob],
        tags: &[Reference],
    ) -> Result<Image, StoreError> {
        let _lease = self.lease();
        let prepared = self.prepare(config, layers, &HashSet::new())?;
        let id = prepared.record.id.clone();
        let tags: Vec<_> = tags.iter().map(|t| (t.clone(), id.clone())).collect();
        self.commit(&[prepared], &tags)?;
        self.image_by_id(&id)
    }

    /// [`Store::create_image`] for a client that already unpacked or verified some layers
    /// with [`Store::unpack_layer`]: `verified` lists those (blob, diff_id) pairs, whose
    /// snapshots are then not hashed a second time.
    pub fn create_image_verified(
        &self,
        config: &[u8],
        layers: &[LayerBlob],
        tags: &[Reference],
        verified: &HashSet<(Digest, Digest)>,
    ) -> Result<Image, StoreError> {
        let _lease = self.lease();
        let prepared = self.prepare(config, layers, verified)?;
        let id = prepared.record.id.clone();
        let tags: Vec<_> = tags.iter().map(|t| (t.clone(), id.clone())).collect();
        self.commit(&[prepared], &tags)?;
        self.image_by_id(&id)
    }

    /// Makes sure the snapshot of layer `diff_id` exists, unpacking blob `blob` (already in
    /// the content store) if it does not, and returns its unpacked size. An existing snapshot
    /// is reused only once the blob is proven to be that layer (hashed, not unpacked), so a
    /// registry cannot borrow another image's layer by naming its diff_id. Lets a pull unpack
    /// each layer as soon as it is downloaded (holding a [`crate::Lease`] until the image is
    /// created, so the snapshot is not collected meanwhile).
    pub fn unpack_layer(&self, blob: &Digest, diff_id: &Digest) -> Result<u64, StoreError> {
        let _lease = self.lease();
        self.ensure_snapshot(blob, diff_id, false)
    }

    /// Ensures the config blob, layer blobs and snapshots of an image exist. `verified` lists
    /// (blob, diff_id) pairs already known to match, whose existing snapshots need no
    /// re-hashing. Call with a lease held.
    pub(crate) fn prepare(
        &self,
        config: &[u8],
        layers: &[LayerBlob],
        verified: &HashSet<(Digest, Digest)>,
    ) -> Result<Prepared, StoreError> {
        let id = Digest::of(config);
        if let Some(record) = self.record(&id)? {
            return Ok(Prepared { record });
        }
        let invalid = |reason: String| StoreError::Config {
            id: id.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(config).map_err(|e| invalid(e.to_string()))?;
        let diff_ids = diff_ids(&value).map_err(invalid)?;
        if diff_ids.len() != layers.len() {
            return Err(invalid(format!(
                "it lists {} layers but {} were given",
                diff_ids.len(),
                layers.len()
            )));
        }
        let mut out = Vec::with_capacity(layers.len());
        let mut size = 0;
        for (blob, diff_id) in layers.iter().zip(diff_ids) {
            // A blob that is not there is MissingBlob; any other stat failure names it.
            let blob_size = self.blob_size(&blob.digest)?;
            let media_type = if blob.media_type.is_empty() {
                self.blob_compression(&blob.digest)?
                    .layer_media_type()
                    .to_owned()
            } else {
                blob.media_type.clone()
            };
            let known = verified.contains(&(blob.digest.clone(), diff_id.clone()));
            size += self.ensure_snapshot(&blob.digest, &diff_id, known)?;
            out.push(Layer {
                diff_id,
                blob: blob.digest.clone(),
                media_type,
                size: blob_size,
            });
        }
        self.write_blob(config, Some(&id))?;
        Ok(Prepared {
            record: ImageRecord {
                version: VERSION,
                id,
                layers: out,
                size,
            },
        })
    }

    /// Writes the records of `images` (those not present yet) and then the references
    /// `tags`. On failure, the records written here are removed again.
    pub(crate) fn commit(
        &self,
        images: &[Prepared],
        tags: &[(Reference, Digest)],
    ) -> Result<(), StoreError> {
        let mut refs = self.lock_refs();
        let mut written = Vec::new();
        let result = (|| {
            for p in images {
                let path = self.layout.record(&p.record.id);
                if !path.exists() {
                    write_json(&path, &p.record)?;
                    written.push(path);
                    tracing::info!(id = %p.record.id, "created image");
                }
            }
            let mut new = refs.clone();
            for (reference, id) in tags {
                new.insert(ref_key(reference), id.clone());
            }
            self.store_refs(&mut refs, new)
        })();
        if result.is_err() {
            for path in written {
                let _ = fs::remove_file(path);
            }
        }
        result
    }
}

/// The `rootfs.diff_ids` of an image config's bytes (an absent list means no layers): what
/// every layer must unpack to, bottom first.
pub fn config_diff_ids(config: &[u8]) -> Result<Vec<Digest>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| format!("config: {e}"))?;
    diff_ids(&value)
}

/// The config's `rootfs.diff_ids` (an absent list means no layers).
fn diff_ids(config: &serde_json::Value) -> Result<Vec<Digest>, String> {
    if !config.is_object() {
        return Err("not a JSON object".into());
    }
    match config.pointer("/rootfs/diff_ids") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("rootfs.diff_ids: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{RawTar, config_for, empty_store};

    use super::*;

    #[test]
    fn create_image_from_blobs_and_reuse_snapshots() {
        let (_tmp, store) = empty_store();
        let layer = RawTar::new().file("etc/motd", b"hi").finish();
        let (blob, _) = store.write_blob(&layer[..], None).expect("blob");
        let config = config_for(&[&layer]);
        let tag: Reference = "made:1".parse().expect("ref");
        let blobs = [LayerBlob {
            digest: blob.clone(),
            media_type: String::new(),
        }];
        let img = store.create_image(&config, &blobs, &[tag]).expect("create");
        assert_eq!(img.id, Digest::of(&config));
        assert_eq!(
            img.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar"
        );
        assert_eq!(img.size, 2);
        assert_eq!(img.repo_tags, vec!["made:1"]);
        let motd = store.layer_dirs(&img)[0].join("etc/motd");
        assert_eq!(fs::read(motd).expect("read"), b"hi");
        // A config claiming that snapshot with a blob that is not that layer is refused.
        let other = RawTar::new().file("etc/motd", b"evil").finish();
        let (other_blob, _) = store.write_blob(&other[..], None).expect("blob");
        let mut forged: serde_json::Value = serde_json::from_slice(&config).expect("json");
        forged["architecture"] = "forged".into();
        let forged = serde_json::to_vec(&forged).expect("json");
        let blobs = [LayerBlob {
            digest: other_blob,
            media_type: String::new(),
        }];
        let err = store
            .create_image(&forged, &blobs, &[])
            .expect_err("forged");
        assert!(err.to_string().contains("has diff_id"), "{err}");
        assert!(store.get(&Digest::of(&forged).to_string()).is_err());
    }

    #[test]
    fn unpack_layer_then_create_image_verified_shares_the_snapshot() {
        let (_tmp, store) = empty_store();
        let layer = RawTar::new().file("etc/motd", b"hi").finish();
        let (blob, _) = store.write_blob(&layer[..], None).expect("blob");
        let diff_id = Digest::of(&layer);
        assert_eq!(store.unpack_layer(&blob, &diff_id).expect("unpack"), 2);
        assert!(store.snapshot_dir(&diff_id).join("etc/motd").is_file());
        // A wrong diff_id is refused and leaves no snapshot under that name.
        let wrong = Digest::of(b"not the layer");
        assert!(store.unpack_layer(&blob, &wrong).is_err());
        assert!(!store.snapshot_dir(&wrong).exists());
        let config = config_for(&[&layer]);
        let blobs = [LayerBlob {
            digest: blob.clone(),
            media_type: String::new(),
        }];
        let verified = HashSet::from([(blob, diff_id)]);
        let img = store
            .create_image_verified(&config, &blobs, &[], &verified)
            .expect("create");
        assert_eq!(img.size, 2);
    }

    #[test]
    fn create_image_refuses_layer_count_mismatch() {
        let (_tmp, store) = empty_store();
        let layer = RawTar::new().file("a", b"a").finish();
        let config = config_for(&[&layer, &layer]);
        let (blob, _) = store.write_blob(&layer[..], None).expect("blob");
        let blobs = [LayerBlob {
            digest: blob,
            media_type: String::new(),
        }];
        let err = store
            .create_image(&config, &blobs, &[])
            .expect_err("mismatch");
        assert!(matches!(err, StoreError::Config { .. }));
    }
}
