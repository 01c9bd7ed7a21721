//! One download per blob: concurrent pulls into the same store that need the same blob share
//! one download instead of fetching it twice.
//!
//! The first pull to [`claim`] a blob becomes its leader and downloads it; later ones follow,
//! watching the leader's byte count (so their progress moves too). When the leader ends —
//! done, failed or dropped — its entry goes away and followers check the store: the blob is
//! there (shared download), or it is not (the leader failed or was cancelled) and they claim
//! again, one of them becoming the new leader. A follower's pull is therefore never worse off
//! than if it had downloaded alone, only later.
//!
//! The table is process-wide and keyed by the store's root, so several stores in one process
//! (tests) do not share entries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard};

use arca_model::Digest;
use tokio::sync::watch;

type Key = (PathBuf, Digest);

static INFLIGHT: LazyLock<Mutex<HashMap<Key, watch::Receiver<u64>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn table() -> MutexGuard<'static, HashMap<Key, watch::Receiver<u64>>> {
    // The map is only ever changed by single inserts and removes: a panic elsewhere while
    // the lock was held cannot leave it inconsistent.
    INFLIGHT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who downloads a blob.
pub(crate) enum Claim {
    /// This pull downloads it and reports its bytes through the [`Leader`].
    Leader(Leader),
    /// Another pull is downloading it: bytes so far; closed when that pull ends.
    Follower(watch::Receiver<u64>),
}

/// The right to download one blob; dropping it lets followers go on.
pub(crate) struct Leader {
    key: Key,
    bytes: watch::Sender<u64>,
}

impl Leader {
    /// Tells followers how many bytes have arrived.
    pub(crate) fn progress(&self, n: u64) {
        self.bytes.send_replace(n);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Removed before the sender closes: a follower woken by the close that claims again
        // must not find this finished entry.
        table().remove(&self.key);
    }
}

/// Claims blob `digest` of the store at `root`.
pub(crate) fn claim(root: &Path, digest: &Digest) -> Claim {
    let key = (root.to_path_buf(), digest.clone());
    let mut table = table();
    if let Some(rx) = table.get(&key) {
        return Claim::Follower(rx.clone());
    }
    let (bytes, rx) = watch::channel(0);
    table.insert(key.clone(), rx);
    Claim::Leader(Leader { key, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_claim_follows_until_the_leader_drops() {
        let root = Path::new("/store-a");
        let d = Digest::of(b"blob");
        let Claim::Leader(leader) = claim(root, &d) else {
            panic!("first claim leads");
        };
        let Claim::Follower(mut rx) = claim(root, &d) else {
            panic!("second claim follows");
        };
        // Another store's blob is independent.
        assert!(matches!(claim(Path::new("/store-b"), &d), Claim::Leader(_)));
        leader.progress(42);
        rx.changed().await.expect("progress seen");
        assert_eq!(*rx.borrow(), 42);
        drop(leader);
        assert!(rx.changed().await.is_err(), "closed when the leader ends");
        assert!(
            matches!(claim(root, &d), Claim::Leader(_)),
            "the entry is gone"
        );
    }
}
