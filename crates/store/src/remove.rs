//! `docker rmi`: untagging and deleting images, and deleting content no image uses any more.
//!
//! Deleting an image deletes its record at once, whatever [`crate::Lease`]s are alive. Its
//! content (snapshots, blobs) goes by garbage collection (module `gc`): a sweep is first
//! recorded as owed (durably, so a crash cannot leak it), then runs at once when no lease is
//! alive, which is the usual case and matches Docker (`rmi` frees the space before it
//! returns). While a lease is alive (a pull, load or save in progress) the content stays
//! until the last lease drops, and whatever an image created meanwhile references survives.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use arca_model::{Digest, Reference};

use crate::image::RemoveItem;
use crate::layout::sync_dir;
use crate::{Store, StoreError};

impl Store {
    /// Removes `name` with Docker's semantics. A reference that shares its image with other
    /// references is only untagged. The last reference, or an ID, deletes the image (record
    /// and all its references); that needs `force` when `in_use(id)` or, for an ID, when the
    /// image is referenced from several repositories. Content (snapshots, blobs) no remaining
    /// image uses is deleted too (see the module docs for when), unless the image is in use
    /// (a container still needs its layers).
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<Vec<RemoveItem>, StoreError> {
        // `in_use` is the caller's code: run it without holding our lock, then make sure the
        // name still means the same image once the lock is held.
        let mut attempts = 0;
        let (mut refs, resolved, used) = loop {
            let snapshot = self.lock_refs().clone();
            let id = self.resolve(name, &snapshot)?.id;
            let used = in_use(&id);
            let refs = self.lock_refs();
            let resolved = self.resolve(name, &refs)?;
            attempts += 1;
            if resolved.id == id || attempts >= 3 {
                let used = if resolved.id == id { used } else { true };
                break (refs, resolved, used);
            }
        };
        let id = resolved.id;
        if self.record(&id)?.is_none() {
            return Err(crate::catalog::not_found(name));
        }
        let image_refs: Vec<String> = refs
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .collect();
        let short = id.short().to_owned();

        if let Some(key) = &resolved.via_ref {
            if image_refs.len() > 1 {
                let mut new = refs.clone();
                new.remove(key);
                self.store_refs(&mut refs, new)?;
                tracing::info!(%id, reference = %key, "untagged image");
                return Ok(vec![RemoveItem::Untagged(familiar(key))]);
            }
            if used && !force {
                return Err(StoreError::Conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container is using its referenced image {short}"
                )));
            }
        } else if !force {
            let repos: BTreeSet<String> = image_refs
                .iter()
                .filter_map(|k| k.parse::<Reference>().ok())
                .map(|r| r.full_repo())
                .collect();
            if repos.len() > 1 {
                return Err(StoreError::Conflict(format!(
                    "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                )));
            }
            if used {
                return Err(StoreError::Conflict(format!(
                    "conflict: unable to delete {short} (must be forced) - image is being used by a container"
                )));
            }
        }

        let mut items: Vec<RemoveItem> = image_refs
            .iter()
            .map(|k| RemoveItem::Untagged(familiar(k)))
            .collect();
        let mut new: BTreeMap<String, Digest> = refs.clone();
        new.retain(|_, v| *v != id);
        if !used {
            // Owed before anything changes: a crash after the record goes must not leak the
            // content, and a failure here leaves the image as it was.
            self.owe_sweep()?;
        }
        self.store_refs(&mut refs, new)?;
        if used {
            // Forced, but a container still needs the image to start again: it loses its
            // names and stays as a dangling image until no container uses it.
            tracing::info!(%id, "untagged image still used by a container");
            return Ok(items);
        }
        let path = self.layout.record(&id);
        fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
        sync_dir(&self.layout.images())?;
        drop(refs);
        tracing::info!(%id, "deleted image");
        items.push(RemoveItem::Deleted(id));

        self.collect_garbage();
        Ok(items)
    }
}

/// A reference key in familiar form (`busybox:latest`).
fn familiar(key: &str) -> String {
    key.parse::<Reference>()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| key.to_owned())
}

#[cfg(test)]
mod tests {
    use arca_model::ErrorKind;

    use crate::testutil::{empty_store, import_files};

    use super::*;

    fn unused(_: &Digest) -> bool {
        false
    }

    fn used(_: &Digest) -> bool {
        true
    }

    #[test]
    fn removing_one_of_several_tags_only_untags() {
        let (_tmp, store) = empty_store();
        let img = import_files(&store, &[("a", b"1")], Some("app:1"));
        store
            .tag(&img.id, &"app:2".parse().expect("ref"))
            .expect("tag");
        let out = store.remove("app:1", false, &used).expect("untag");
        assert_eq!(out, vec![RemoveItem::Untagged("app:1".into())]);
        assert_eq!(store.get("app:2").expect("still there").id, img.id);
    }

    #[test]
    fn removing_last_tag_deletes_image_and_content() {
        let (_tmp, store) = empty_store();
        let img = import_files(&store, &[("a", b"1")], Some("app"));
        let dirs = store.layer_dirs(&img);
        assert!(dirs[0].is_dir());
        let out = store.remove("app", false, &unused).expect("remove");
        assert_eq!(
            out,
            vec![
                RemoveItem::Untagged("app:latest".into()),
                RemoveItem::Deleted(img.id.clone())
            ]
        );
        assert_eq!(
            store.get(&img.id.to_string()).expect_err("gone").kind(),
            ErrorKind::NotFound
        );
        assert!(!dirs[0].exists(), "unused snapshot deleted");
        assert!(!store.has_blob(&img.layers[0].blob));
        assert!(!store.has_blob(&img.id));
    }

    #[test]
    fn in_use_images_need_force_and_stay_dangling_when_forced() {
        let (_tmp, store) = empty_store();
        let img = import_files(&store, &[("a", b"1")], Some("app"));
        let err = store.remove("app", false, &used).expect_err("in use");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(
            err.to_string()
                .starts_with("conflict: unable to remove repository reference")
        );
        let err = store
            .remove(img.id.short(), false, &used)
            .expect_err("in use");
        assert_eq!(
            err.to_string(),
            format!(
                "conflict: unable to delete {} (must be forced) - image is being used by a container",
                img.id.short()
            )
        );
        let out = store.remove(img.id.short(), true, &used).expect("forced");
        assert_eq!(out, vec![RemoveItem::Untagged("app:latest".into())]);
        // Still there, dangling, so the container can start again.
        let kept = store.get(&img.id.to_string()).expect("image kept");
        assert!(kept.repo_tags.is_empty());
        assert!(
            store.layer_dirs(&img)[0].is_dir(),
            "a container still uses the layer"
        );
        // Once unused, removing it by ID deletes it.
        let out = store
            .remove(&img.id.to_string(), false, &unused)
            .expect("delete");
        assert_eq!(out, vec![RemoveItem::Deleted(img.id.clone())]);
    }

    #[test]
    fn removing_by_id_with_refs_in_several_repos_needs_force() {
        let (_tmp, store) = empty_store();
        let img = import_files(&store, &[("a", b"1")], Some("one:latest"));
        store
            .tag(&img.id, &"two:latest".parse().expect("ref"))
            .expect("tag");
        let err = store
            .remove(&img.id.to_string(), false, &unused)
            .expect_err("conflict");
        assert_eq!(
            err.to_string(),
            format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                img.id.short()
            )
        );
        let out = store
            .remove(&img.id.to_string(), true, &unused)
            .expect("forced");
        assert_eq!(
            out,
            vec![
                RemoveItem::Untagged("one:latest".into()),
                RemoveItem::Untagged("two:latest".into()),
                RemoveItem::Deleted(img.id.clone()),
            ]
        );
        assert!(store.get("one").is_err() && store.get("two").is_err());
    }

    #[test]
    fn removing_by_id_with_tags_in_one_repo_deletes_without_force() {
        let (_tmp, store) = empty_store();
        let img = import_files(&store, &[("a", b"1")], Some("one:1"));
        store
            .tag(&img.id, &"one:2".parse().expect("ref"))
            .expect("tag");
        let out = store
            .remove(img.id.short(), false, &unused)
            .expect("remove");
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn shared_layers_survive_removal_of_one_image() {
        let (_tmp, store) = empty_store();
        let a = import_files(&store, &[("same", b"x")], Some("a"));
        // Same layer, different config (import time and message differ).
        let b = crate::testutil::import_files_with_message(&store, &[("same", b"x")], "b");
        assert_eq!(a.layers[0].diff_id, b.layers[0].diff_id);
        store.remove("a", false, &unused).expect("remove");
        assert!(store.layer_dirs(&b)[0].is_dir());
        assert!(store.has_blob(&b.layers[0].blob));
    }
}
