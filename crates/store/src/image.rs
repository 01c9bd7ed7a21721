//! The image types the store hands out.

use arca_model::Digest;
use serde::{Deserialize, Serialize};

/// An image: its config and layers, plus the references that point at it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Image {
    /// The config digest.
    pub id: Digest,
    /// The raw image config, unmodified (Docker extras such as `Healthcheck` survive).
    pub config: serde_json::Value,
    /// Tags in familiar form (`busybox:latest`), sorted.
    pub repo_tags: Vec<String>,
    /// Digest references in familiar form (`busybox@sha256:…`), sorted.
    pub repo_digests: Vec<String>,
    /// The config's `created` (RFC 3339), or empty.
    pub created: String,
    /// Sum of the unpacked layer sizes, in bytes.
    pub size: u64,
    /// Bottom layer first.
    pub layers: Vec<Layer>,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// SHA-256 of the uncompressed tar; names the snapshot.
    pub diff_id: Digest,
    /// Digest of the blob as stored (possibly compressed).
    pub blob: Digest,
    pub media_type: String,
    /// Blob size in bytes.
    pub size: u64,
}

/// One line of Docker's `DELETE /images/{name}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RemoveItem {
    Untagged(String),
    Deleted(Digest),
}

/// A layer blob to build an image from (see [`crate::Store::create_image`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// A blob already in the content store.
    pub digest: Digest,
    /// Its media type; empty means "detect from the magic bytes".
    pub media_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_items_serialize_like_docker() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&[
            RemoveItem::Untagged("busybox:latest".into()),
            RemoveItem::Deleted(d.clone()),
        ])
        .expect("json");
        assert_eq!(
            json,
            format!(r#"[{{"Untagged":"busybox:latest"}},{{"Deleted":"{d}"}}]"#)
        );
    }
}
