//! Garbage collection of image content, and the leases that hold it off.
//!
//! Contract:
//!
//! - A [`Lease`] ([`Store::lease`]) promises that nothing is deleted from the content store
//!   or the snapshots while it is alive. Everything that creates content takes one for its
//!   whole run (`write_blob`, `unpack_layer`, `create_image*`, `load`, `import`,
//!   `commit_container`, `save`); a client that spans several calls (a registry pull: write
//!   blobs, check for snapshots, then create the image) must hold one across all of them,
//!   `.await`s included: content it relies on but no image record references yet is
//!   otherwise fair game for the next sweep. Leases nest freely (a counter, not a lock).
//! - A *sweep* deletes every snapshot and blob that no image record references (its config
//!   blob, its layer blobs and its layers' snapshots), plus `snapshots/tmp-*` and
//!   `content/tmp/*`: with no lease alive nothing can be writing them, so they can only be
//!   the leftovers of a failed cleanup. A sweep runs only while no lease is alive, and taking
//!   a lease waits while one runs.
//! - Deleting an image record first makes sure a sweep is *owed*: in memory, and as the
//!   `gc-pending` marker in the store root, made durable before the record goes. If no
//!   lease is alive the sweep runs at once (so `rmi` frees space immediately, like
//!   Docker); otherwise the last lease to drop runs it, in the dropping thread. A crash
//!   leaves the marker, and [`Store::open`] sweeps only when it finds one, so a deleted
//!   image's content is never leaked and a clean open costs one `stat`. (Orphans of a crash
//!   during a creation, blobs written before any record, go with the next sweep.) The marker goes once a sweep has
//!   finished with no new deletion during it; a failed sweep (an unreadable record: then
//!   nothing can be proven unused) keeps it, for the next chance.
//!
//! Image records themselves are never leased: `rmi` deletes a record whatever leases exist;
//! only the content waits. A lease holder that needs an image to stay creates or references
//! it before dropping the lease.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::sync::{Condvar, Mutex, MutexGuard};

use arca_model::Digest;

use crate::layout::{remove_any, sync_dir};
use crate::{Store, StoreError};

/// Protection of stored content from garbage collection: while any lease is alive, no
/// snapshot or blob is deleted, even one no image references yet. Hold one across every
/// step of work that relies on content before an image record references it (a pull:
/// writing blobs, checking what is already there, unpacking, creating the image), `.await`s
/// included (it is `Send`). Image records are not protected: `rmi` still deletes them, and
/// their content goes once the last lease drops, unless an image created meanwhile
/// references it. Leases nest (a counter, not a lock). Dropping the last lease runs the
/// sweep an `rmi` left owed meanwhile, in the dropping thread (disk I/O).
#[derive(Debug)]
#[must_use = "content is protected only while the lease is alive"]
pub struct Lease<'a> {
    store: &'a Store,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = self.store.gc.lock();
        state.leases -= 1;
        if state.leases == 0 {
            self.store.sweep_if_owed(state);
        }
    }
}

/// The collector's state, behind one mutex; its condition variable wakes lease takers when a
/// sweep ends.
#[derive(Debug, Default)]
pub(crate) struct Gc {
    state: Mutex<GcState>,
    swept: Condvar,
    #[cfg(test)]
    pub(crate) hook: test_hook::Hook,
}

#[derive(Debug, Default)]
struct GcState {
    /// Live leases.
    leases: usize,
    /// Threads waiting in [`Store::lease`] for a sweep to end.
    waiting: usize,
    /// A record was deleted since the last sweep started reading records.
    pending: bool,
    /// The `gc-pending` marker is on disk (true whenever `pending` is).
    marker: bool,
    /// A sweep is running (and no lease is alive).
    sweeping: bool,
}

impl Gc {
    /// A collector for a store whose root holds the marker (`marker`) or not.
    pub(crate) fn new(marker: bool) -> Self {
        Self {
            state: Mutex::new(GcState {
                pending: marker,
                marker,
                ..GcState::default()
            }),
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, GcState> {
        // Every update of the state is a few plain assignments that cannot panic halfway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a sweep found and deleted.
#[derive(Debug, Default)]
struct Swept {
    snapshots: usize,
    blobs: usize,
}

/// The content image records reference.
#[derive(Debug, Default)]
pub(crate) struct LiveContent {
    /// Layer diff_ids: snapshots.
    pub layers: BTreeSet<Digest>,
    /// Config and layer blobs.
    pub blobs: BTreeSet<Digest>,
}

/// A kind of stored content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ContentKind {
    Snapshot,
    Blob,
}

impl Store {
    /// Takes a [`Lease`]: until it is dropped, no snapshot or blob is deleted. Waits while a
    /// garbage-collection sweep is running (it never runs while a lease is alive).
    pub fn lease(&self) -> Lease<'_> {
        let mut state = self.gc.lock();
        if state.sweeping {
            state.waiting += 1;
            while state.sweeping {
                state = self.gc.swept.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.waiting -= 1;
        }
        state.leases += 1;
        Lease { store: self }
    }

    /// Records durably that a sweep is owed. Called before an image record is deleted, so a
    /// crash between the two cannot leak the image's content.
    pub(crate) fn owe_sweep(&self) -> Result<(), StoreError> {
        let mut state = self.gc.lock();
        if !state.marker {
            // Under the lock: the sweeper removes the marker under it too, so the file on
            // disk always matches `marker`. The file is empty: only its name must be durable.
            let path = self.layout.gc_pending();
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(StoreError::io("create", &path))?;
            sync_dir(self.layout.root())?;
            state.marker = true;
        }
        state.pending = true;
        Ok(())
    }

    /// After an image record was deleted: sweeps now if no lease is alive, else leaves the
    /// sweep to the last lease (or to the sweep already running, which then goes round again).
    pub(crate) fn collect_garbage(&self) {
        let mut state = self.gc.lock();
        state.pending = true;
        if state.leases == 0 {
            self.sweep_if_owed(state);
        }
    }

    /// Runs the owed sweeps, if any and if nobody else is running them, in this thread.
    /// Called with no lease alive.
    fn sweep_if_owed(&self, mut state: MutexGuard<'_, GcState>) {
        if !state.pending || state.sweeping {
            return;
        }
        state.sweeping = true;
        drop(state);
        let _end = SweepEnd(self);
        self.sweep_while_owed();
    }

    /// Sweeps until no record was deleted during the last sweep, then removes the marker.
    fn sweep_while_owed(&self) {
        let mut state = self.gc.lock();
        while state.pending {
            state.pending = false;
            drop(state);
            let result = self.sweep();
            state = self.gc.lock();
            match result {
                Ok(swept) => {
                    if swept.snapshots + swept.blobs > 0 {
                        tracing::info!(
                            snapshots = swept.snapshots,
                            blobs = swept.blobs,
                            "deleted unused image content"
                        );
                    }
                }
                Err(e) => {
                    // Kept owed (the marker stays): retried at the next removal, the next
                    // last lease, or the next open.
                    state.pending = true;
                    tracing::warn!(error = %e, "failed to delete unused image content");
                    return;
                }
            }
        }
        // Nothing was deleted since this sweep read the records: nothing is owed any more.
        // A stale marker (this unlink lost in a crash) only costs one needless sweep at open.
        if state.marker {
            let path = self.layout.gc_pending();
            match fs::remove_file(&path) {
                Ok(()) => state.marker = false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => state.marker = false,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "failed to remove the gc marker");
                }
            }
        }
    }

    /// Deletes every snapshot and blob no image record references. Runs with no lease alive:
    /// records can only disappear meanwhile (which keeps more, never less), never appear.
    fn sweep(&self) -> Result<Swept, StoreError> {
        #[cfg(test)]
        self.gc.hook.run();
        let live = self.live_content()?;
        self.layout.remove_content_leftovers()?;
        let mut swept = Swept::default();
        let mut first_err = None;
        for (kind, digest) in self.stored_content()? {
            let result = match kind {
                ContentKind::Snapshot if !live.layers.contains(&digest) => {
                    swept.snapshots += 1;
                    self.delete_snapshot(&digest)
                }
                ContentKind::Blob if !live.blobs.contains(&digest) => {
                    swept.blobs += 1;
                    remove_any(&self.layout.blob(&digest))
                }
                _ => Ok(()),
            };
            // One failure does not keep the rest from going; the first is reported.
            if let Err(e) = result {
                first_err.get_or_insert(e);
            }
        }
        // The deletions must be durable before the marker goes.
        if swept.snapshots > 0 {
            sync_dir(&self.layout.snapshots())?;
        }
        if swept.blobs > 0 {
            sync_dir(&self.layout.blobs())?;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(swept),
        }
    }

    /// The snapshots and blobs the image records reference. An unreadable record is an
    /// error: what it references cannot be known, so nothing may be called unused.
    pub(crate) fn live_content(&self) -> Result<LiveContent, StoreError> {
        let mut live = LiveContent::default();
        for id in self.record_ids()? {
            if let Some(record) = self.record(&id)? {
                live.blobs.insert(record.id);
                for l in record.layers {
                    live.layers.insert(l.diff_id);
                    live.blobs.insert(l.blob);
                }
            }
        }
        Ok(live)
    }

    /// Every snapshot and blob on disk under its final name (in-progress `tmp` names are not
    /// listed).
    pub(crate) fn stored_content(&self) -> Result<Vec<(ContentKind, Digest)>, StoreError> {
        let mut out = Vec::new();
        for (dir, kind) in [
            (self.layout.snapshots(), ContentKind::Snapshot),
            (self.layout.blobs(), ContentKind::Blob),
        ] {
            let entries = fs::read_dir(&dir).map_err(StoreError::io("read", &dir))?;
            for entry in entries {
                let entry = entry.map_err(StoreError::io("read", &dir))?;
                if let Some(d) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| Digest::from_hex(n).ok())
                {
                    out.push((kind, d));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
impl Store {
    /// Threads waiting in [`Store::lease`] for a sweep to end.
    pub(crate) fn lease_waiters(&self) -> usize {
        self.gc.lock().waiting
    }
}

/// Ends a sweep however it ends (a panic included): wakes the lease takers.
struct SweepEnd<'a>(&'a Store);

impl Drop for SweepEnd<'_> {
    fn drop(&mut self) {
        let mut state = self.0.gc.lock();
        state.sweeping = false;
        if std::thread::panicking() {
            // A sweep cut short: still owed if the marker is still on disk.
            state.pending = state.marker;
        }
        if state.waiting > 0 {
            self.0.gc.swept.notify_all();
        }
    }
}

#[cfg(test)]
pub(crate) mod test_hook {
    //! A function the next sweeps call before reading the records, so tests can hold a
    //! sweep in progress.

    use std::sync::Mutex;

    type HookFn = Box<dyn Fn() + Send + Sync>;

    #[derive(Default)]
    pub(crate) struct Hook(Mutex<Option<HookFn>>);

    impl std::fmt::Debug for Hook {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Hook")
        }
    }

    impl Hook {
        pub(crate) fn set(&self, f: impl Fn() + Send + Sync + 'static) {
            *self.0.lock().expect("hook lock") = Some(Box::new(f));
        }

        pub(crate) fn run(&self) {
            if let Some(f) = self.0.lock().expect("hook lock").as_ref() {
                f();
            }
        }
    }
}

#[cfg(test)]
mod tests;
