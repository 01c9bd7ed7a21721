//! `docker image prune` and the numbers of `docker system df`.
//!
//! Prune deletes dangling images (no tag), or with `all` every image, that no container
//! uses and that the caller's filter accepts; each goes through [`Store::remove`] by ID
//! (forced, so images tagged in several repositories go too). The removals run under one
//! [`crate::Lease`], so the snapshots and blobs no remaining image uses are deleted by one
//! garbage-collection sweep when it drops, not one per image. The space reclaimed is what
//! was freed on disk meanwhile: the unpacked size of the deleted snapshots plus the size of
//! the deleted blobs. If another lease is alive (a pull in progress), the sweep waits for it
//! and the report counts only what is already gone.

use std::collections::{BTreeMap, BTreeSet};

use arca_model::Digest;

use crate::gc::ContentKind;
use crate::image::{Image, RemoveItem};
use crate::{Store, StoreError};

/// What a prune deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub items: Vec<RemoveItem>,
    /// Bytes freed on disk.
    pub space_reclaimed: u64,
}

/// Disk usage of the images, for `GET /system/df`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageUsage {
    pub image: Image,
    /// Unpacked bytes of layers that other images share.
    pub shared_size: u64,
}

impl Store {
    /// Deletes the images (all of them with `all`, else the dangling ones) that `filter`
    /// accepts and no container uses (`in_use`).
    pub fn prune(
        &self,
        all: bool,
        filter: &dyn Fn(&Image) -> bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<PruneReport, StoreError> {
        let before = self.content_sizes()?;
        let mut report = PruneReport::default();
        let lease = self.lease();
        for image in self.list()? {
            if (!all && !image.repo_tags.is_empty()) || !filter(&image) || in_use(&image.id) {
                continue;
            }
            match self.remove(&image.id.to_string(), true, in_use) {
                Ok(items) => report.items.extend(items),
                // Removed meanwhile (a concurrent rmi): nothing to report.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // The last lease to drop sweeps: usually this one, right here.
        drop(lease);
        let after = self.content_sizes()?;
        report.space_reclaimed = before
            .iter()
            .filter(|(k, _)| !after.contains_key(*k))
            .map(|(_, v)| *v)
            .sum();
        Ok(report)
    }

    /// Every image with the size of its layers that other images share too.
    pub fn usage(&self) -> Result<Vec<ImageUsage>, StoreError> {
        let images = self.list()?;
        let mut users: BTreeMap<&Digest, usize> = BTreeMap::new();
        for i in &images {
            let unique: BTreeSet<&Digest> = i.layers.iter().map(|l| &l.diff_id).collect();
            for d in unique {
                *users.entry(d).or_default() += 1;
            }
        }
        let mut out = Vec::with_capacity(images.len());
        for i in &images {
            let mut shared = 0;
            let unique: BTreeSet<&Digest> = i.layers.iter().map(|l| &l.diff_id).collect();
            for d in unique {
                if users.get(d).copied().unwrap_or(0) > 1 {
                    shared += self.snapshot_size(d)?.unwrap_or(0);
                }
            }
            out.push(ImageUsage {
                image: i.clone(),
                shared_size: shared,
            });
        }
        Ok(out)
    }

    /// The unpacked size of all layers, each counted once (Docker's `LayersSize`).
    pub fn layers_size(&self) -> Result<u64, StoreError> {
        let mut seen = BTreeSet::new();
        let mut total = 0;
        for i in self.list()? {
            for l in i.layers {
                if seen.insert(l.diff_id.clone()) {
                    total += self.snapshot_size(&l.diff_id)?.unwrap_or(0);
                }
            }
        }
        Ok(total)
    }

    /// Snapshot (unpacked) and blob sizes on disk, keyed by kind and digest.
    fn content_sizes(&self) -> Result<BTreeMap<(ContentKind, Digest), u64>, StoreError> {
        let mut out = BTreeMap::new();
        for (kind, d) in self.stored_content()? {
            let size = match kind {
                ContentKind::Blob => std::fs::metadata(self.layout.blob(&d)).map_or(0, |m| m.len()),
                ContentKind::Snapshot => self.snapshot_size(&d)?.unwrap_or(0),
            };
            out.insert((kind, d), size);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{empty_store, import_files};

    use super::*;

    #[test]
    fn prune_deletes_dangling_unused_images_and_frees_their_layers() {
        let (_tmp, store) = empty_store();
        let tagged = import_files(&store, &[("t", b"tt")], Some("keep"));
        let dangling = import_files(&store, &[("d", b"dddd")], None);
        let used = import_files(&store, &[("u", b"u")], None);
        let dir = store.layer_dirs(&dangling)[0].clone();
        let in_use = |id: &Digest| *id == used.id;
        let report = store.prune(false, &|_| true, &in_use).expect("prune");
        assert_eq!(report.items, vec![RemoveItem::Deleted(dangling.id.clone())]);
        // The 4-byte snapshot, the layer blob and the config blob.
        assert!(
            report.space_reclaimed > 4 + dangling.layers[0].size,
            "{report:?}"
        );
        assert!(!dir.exists(), "snapshot deleted");
        assert!(store.get(&used.id.to_string()).is_ok());
        assert!(store.get("keep").is_ok());

        // `-a` takes tagged images too, and the filter can spare some.
        let report = store
            .prune(
                true,
                &|i| !i.repo_tags.contains(&"hello-world:latest".to_owned()),
                &in_use,
            )
            .expect("prune all");
        assert_eq!(
            report.items,
            vec![
                RemoveItem::Untagged("keep:latest".into()),
                RemoveItem::Deleted(tagged.id.clone())
            ]
        );
        assert!(store.get("hello-world").is_ok());
    }

    #[test]
    fn usage_counts_shared_layers() {
        let (_tmp, store) = empty_store();
        let a = import_files(&store, &[("same", b"xyz")], Some("a"));
        let b = crate::testutil::import_files_with_message(&store, &[("same", b"xyz")], "b");
        let usage = store.usage().expect("usage");
        let of = |id: &Digest| usage.iter().find(|u| u.image.id == *id).expect("listed");
        assert_eq!(of(&a.id).shared_size, 3);
        assert_eq!(of(&b.id).shared_size, 3);
        let total = store.layers_size().expect("size");
        let hello = store.get("hello-world").expect("hello").size;
        assert_eq!(total, 3 + hello);
    }
}
