//! Persisted formats: image records (`images/<config-hex>.json`) and the reference table
//! (`refs.json`). Both carry `"version"`; [`read_versioned`] is the migration point.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use arca_model::{Digest, Reference};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::image::Layer;
use crate::layout::atomic_write;

/// The current version of both formats.
pub(crate) const VERSION: u64 = 1;

/// An image as persisted: its layers and total unpacked size. The config lives in the content
/// store as blob `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub version: u64,
    pub id: Digest,
    pub layers: Vec<Layer>,
    /// Sum of the layers' unpacked sizes.
    pub size: u64,
}

/// `refs.json`: full reference (`docker.io/library/busybox:latest` or `…@sha256:…`) → image ID.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefsFile {
    pub version: u64,
    pub refs: BTreeMap<String, Digest>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u64,
}

/// Reads a versioned JSON file. `None` if it does not exist. Only version 1 exists so far;
/// a future version 2 converts older documents here.
pub(crate) fn read_versioned<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", path)(e)),
    };
    let corrupt = |source| StoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    // Parsed once: the version decides whether the rest may be read.
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(corrupt)?;
    let v: VersionOnly = serde_json::from_value(value.clone()).map_err(corrupt)?;
    if v.version != VERSION {
        return Err(StoreError::Version {
            path: path.to_path_buf(),
            version: v.version,
        });
    }
    serde_json::from_value(value).map(Some).map_err(corrupt)
}

/// Writes a JSON document atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    atomic_write(path, &bytes)
}

/// The key under which a reference is stored: the full repository plus `:tag` or `@digest`.
/// A reference without either means `:latest`.
pub(crate) fn ref_key(r: &Reference) -> String {
    let r = r.clone().with_default_tag();
    match (r.digest(), r.tag()) {
        (Some(d), _) => format!("{}@{d}", r.full_repo()),
        (None, Some(t)) => format!("{}:{t}", r.full_repo()),
        (None, None) => r.full_repo(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_keys_are_fully_qualified() {
        let r: Reference = "busybox".parse().expect("ref");
        assert_eq!(ref_key(&r), "docker.io/library/busybox:latest");
        let r: Reference = "localhost:5000/a/b:1".parse().expect("ref");
        assert_eq!(ref_key(&r), "localhost:5000/a/b:1");
        let key = ref_key(&"busybox:latest".parse().expect("ref"));
        let back: Reference = key.parse().expect("keys parse back");
        assert_eq!(back.to_string(), "busybox:latest");
    }

    #[test]
    fn future_versions_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("refs.json");
        fs::write(&path, r#"{"version":2,"refs":{}}"#).expect("write");
        let err = read_versioned::<RefsFile>(&path).expect_err("v2");
        assert!(matches!(err, StoreError::Version { version: 2, .. }));
        write_json(
            &path,
            &RefsFile {
                version: VERSION,
                refs: BTreeMap::new(),
            },
        )
        .expect("write");
        assert!(read_versioned::<RefsFile>(&path).expect("read").is_some());
    }
}
