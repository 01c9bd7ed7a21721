//! arca's image store: content-addressed blobs, unpacked layer snapshots, image records and
//! references, on local disk under one root directory. Synchronous: the daemon calls it from
//! blocking tasks and shares one [`Store`] (`Send + Sync`) behind an `Arc`.
//!
//! Layout under the root:
//!
//! ```text
//! content/blobs/sha256/<hex>  blobs (layer tars as received, configs), verified before visible
//! content/tmp/                blobs being written
//! snapshots/<diff-id-hex>/fs  one unpacked layer, shared by every image that has it
//! snapshots/<hex>/size        its unpacked size in bytes
//! snapshots/tmp-*             layers being unpacked or deleted
//! images/<config-hex>.json    image records (versioned); an image exists iff its record does
//! refs.json                   reference → image ID (versioned)
//! tmp/                        scratch space for `load`
//! gc-pending                  a garbage-collection sweep is owed (see below)
//! ```
//!
//! Crash safety: every file is published by rename after fsync (snapshots after `syncfs`),
//! a record only after its blobs and snapshots, refs only after their records. Leftover
//! temporaries are deleted by [`Store::open`]. Blobs and snapshots orphaned by a crash while
//! an image was being created stay on disk until the next garbage-collection sweep.
//!
//! Concurrency: the reference table sits behind a mutex held only for in-memory updates plus
//! the small record and `refs.json` writes. Deleting content is garbage collection (module
//! `gc`): a sweep deletes every snapshot and blob no image record references, and never
//! runs while a [`Lease`] is alive. Every operation that creates content holds a lease for
//! its whole run; a client spanning several calls (a registry pull) holds one across them
//! ([`Store::lease`]). `rmi` sweeps at once when no lease is alive; otherwise the sweep is
//! recorded as owed (in memory and durably, as `gc-pending`) and run by the last lease to
//! drop, or by the next [`Store::open`] after a crash: the content of a deleted image is
//! never leaked.
//!
//! Untrusted layers are unpacked by [`unpack`], which never writes outside the snapshot.

pub mod archive;
mod catalog;
mod changes;
mod commit;
mod compress;
mod content;
mod create;
mod error;
mod export;
mod flatten;
mod gc;
mod hello;
mod history;
mod image;
mod import;
mod layout;
mod load;
mod prune;
mod record;
mod remove;
mod save;
mod snapshot;
mod sys;
mod tarout;
pub mod unpack;

#[cfg(test)]
mod testutil;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use arca_model::Digest;

pub use commit::CommitOptions;
pub use create::config_diff_ids;
pub use error::StoreError;
pub use flatten::{FlattenError, write_merged_tar};
pub use gc::Lease;
pub use hello::{HELLO_MESSAGE, HelloError};
pub use history::HistoryItem;
pub use image::{Image, Layer, LayerBlob, RemoveItem};
pub use prune::{ImageUsage, PruneReport};
pub use unpack::{Limits, UnpackError};

use layout::Layout;
use record::{RefsFile, VERSION, read_versioned, write_json};

/// The image store. See the crate documentation for its contract.
#[derive(Debug)]
pub struct Store {
    layout: Layout,
    /// Full reference key → image ID; mirrors `refs.json`.
    refs: Mutex<BTreeMap<String, Digest>>,
    /// Leases and owed sweeps: when content may be deleted.
    gc: gc::Gc,
    limits: Limits,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, cleans up after a crash (including a
    /// garbage-collection sweep, if one was owed) and makes sure the built-in `hello-world`
    /// image exists.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Self::open_with_limits(root, Limits::default())
    }

    /// [`Store::open`] with custom decompression-bomb limits (tests use small ones).
    pub fn open_with_limits(root: &Path, limits: Limits) -> Result<Store, StoreError> {
        let layout = Layout::new(root);
        layout.prepare()?;
        let refs = read_versioned::<RefsFile>(&layout.refs())?
            .unwrap_or_default()
            .refs;
        // One `stat` when the last run ended cleanly: a sweep only if a crash left one owed.
        let owed = layout.gc_pending().exists();
        let store = Store {
            layout,
            refs: Mutex::new(refs),
            gc: gc::Gc::new(owed),
            limits,
        };
        store.drop_dangling_refs()?;
        if owed {
            store.collect_garbage();
        }
        store.seed_hello()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The snapshot directories of image `id`'s layers, topmost first, from its record alone
    /// (no config blob, no references): what starting a container needs.
    pub fn lower_dirs(&self, id: &arca_model::Digest) -> Result<Vec<PathBuf>, StoreError> {
        let record = self
            .record(id)?
            .ok_or_else(|| StoreError::NotFound(format!("No such image: {id}")))?;
        Ok(record
            .layers
            .iter()
            .rev()
            .map(|l| self.snapshot_dir(&l.diff_id))
            .collect())
    }

    /// The snapshot directories of `image`'s layers, topmost first (overlayfs `lowerdir`
    /// order).
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .rev()
            .map(|l| self.snapshot_dir(&l.diff_id))
            .collect()
    }

    fn lock_refs(&self) -> MutexGuard<'_, BTreeMap<String, Digest>> {
        // A panic while holding the lock cannot leave the map half-updated: it is only ever
        // replaced whole, after `refs.json` was written.
        self.refs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Persists `new` as the reference table, then makes it the in-memory one.
    fn store_refs(
        &self,
        current: &mut BTreeMap<String, Digest>,
        new: BTreeMap<String, Digest>,
    ) -> Result<(), StoreError> {
        if *current == new {
            return Ok(());
        }
        write_json(
            &self.layout.refs(),
            &RefsFile {
                version: VERSION,
                refs: new.clone(),
            },
        )?;
        *current = new;
        Ok(())
    }

    /// Removes references to images whose record is missing (a crash during removal).
    fn drop_dangling_refs(&self) -> Result<(), StoreError> {
        let mut refs = self.lock_refs();
        let mut kept = refs.clone();
        kept.retain(|key, id| {
            let keep = self.layout.record(id).exists();
            if !keep {
                tracing::warn!(reference = %key, %id, "dropping reference to a missing image");
            }
            keep
        });
        self.store_refs(&mut refs, kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
        check::<Lease<'_>>();
    }
}
