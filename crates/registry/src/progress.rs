//! Docker's pull progress messages (`JSONMessage`) and the throttle that keeps "Downloading"
//! updates to about ten a second per layer.
//!
//! Progress goes to an unbounded channel: a pull never waits for its reader, and a closed
//! channel (the client went away) is ignored, so progress can never stall or fail a pull.

use std::time::{Duration, Instant};

use arca_model::Digest;
use tokio::sync::mpsc::UnboundedSender;

/// Docker's JSONMessage, one per progress step, with Docker's exact status strings:
/// `Pulling from <repository path>` (id: the tag or digest), per layer (id: the first 12 hex
/// digits of the layer digest) `Pulling fs layer`, `Waiting`, `Downloading` (with detail
/// current/total), `Verifying Checksum`, `Download complete`, `Extracting`, `Pull complete`,
/// `Already exists`; at the end (no id) `Digest: sha256:…` and
/// `Status: Downloaded newer image for <ref>` or `Status: Image is up to date for <ref>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub id: Option<String>,
    pub status: String,
    /// (current, total) bytes; total 0 = unknown.
    pub detail: Option<(u64, u64)>,
}

/// The shortest gap between two "Downloading" messages of one layer.
pub(crate) const DOWNLOAD_INTERVAL: Duration = Duration::from_millis(100);

/// Sends progress messages; never blocks and never fails.
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    tx: UnboundedSender<Progress>,
}

impl Reporter {
    pub(crate) fn new(tx: UnboundedSender<Progress>) -> Self {
        Self { tx }
    }

    /// A message without a layer id (`Digest: …`, `Status: …`) or with a tag id.
    pub(crate) fn message(&self, id: Option<&str>, status: impl Into<String>) {
        self.send(Progress {
            id: id.map(str::to_owned),
            status: status.into(),
            detail: None,
        });
    }

    /// A per-layer message.
    pub(crate) fn layer(&self, layer: &Digest, status: &str) {
        self.message(Some(layer_id(layer)), status);
    }

    /// A per-layer message with byte counts.
    pub(crate) fn layer_bytes(&self, layer: &Digest, status: &str, current: u64, total: u64) {
        self.send(Progress {
            id: Some(layer_id(layer).to_owned()),
            status: status.to_owned(),
            detail: Some((current, total)),
        });
    }

    fn send(&self, p: Progress) {
        // A closed channel means nobody listens any more; the pull goes on regardless.
        let _ = self.tx.send(p);
    }
}

/// The id Docker shows for a layer: the first 12 hex digits of its digest.
pub(crate) fn layer_id(layer: &Digest) -> &str {
    layer.short()
}

/// Lets through at most one update per [`DOWNLOAD_INTERVAL`].
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    /// Whether an update at `now` may be sent (and if so, records it as sent).
    pub(crate) fn ready(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.duration_since(last) < DOWNLOAD_INTERVAL => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_allows_about_ten_updates_a_second() {
        let mut t = Throttle::default();
        let start = Instant::now();
        // 1000 chunks arriving over one simulated second.
        let sent = (0..1000)
            .filter(|i| t.ready(start + Duration::from_millis(*i)))
            .count();
        assert_eq!(sent, 10);
        assert!(t.ready(start + Duration::from_millis(1100)));
    }

    #[test]
    fn layer_messages_use_docker_short_ids() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let r = Reporter::new(tx);
        let d = Digest::of(b"layer");
        r.layer_bytes(&d, "Downloading", 5, 10);
        let p = rx.try_recv().expect("sent");
        assert_eq!(p.id.as_deref(), Some(&d.hex()[..12]));
        assert_eq!(p.detail, Some((5, 10)));
        drop(rx);
        // A closed channel is ignored.
        r.layer(&d, "Pull complete");
    }
}
