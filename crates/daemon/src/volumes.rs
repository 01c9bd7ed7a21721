//! Named volumes of the `local` driver: `<root>/volumes/<name>/_data` (the data, bind-mounted
//! into containers) and `<root>/volumes/<name>/volume.json` (versioned metadata, written
//! atomically after the directory exists, so a crash never leaves a listed volume without
//! data). A `-v name:/path` of a missing volume creates it, as Docker does.
//!
//! Limits (first slice of issue 6): no `type/device/o` mount options, no copy of the image's
//! content into a new volume, no anonymous volumes from `VOLUME`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub version: u32,
    pub name: String,
    pub driver: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub options: HashMap<String, String>,
}

/// The volumes of this daemon (on disk; no in-memory table to keep in sync).
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

/// Docker's volume name rule.
fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    name.len() >= 2
        && c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
}

pub fn check_name(name: &str) -> ApiResult<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }
}

impl Volumes {
    pub fn new(root: &Path) -> Volumes {
        Volumes {
            dir: root.join("volumes"),
        }
    }

    fn meta(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("volume.json")
    }

    /// Where a volume's data lives (its mount point).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> ApiResult<VolumeRecord> {
        if !valid_name(name) {
            return Err(ApiError::not_found(format!("get {name}: no such volume")));
        }
        match std::fs::read(self.meta(name)) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| ApiError::internal(format!("unreadable volume record {name}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ApiError::not_found(format!("get {name}: no such volume")))
            }
            Err(e) => Err(ApiError::from_internal("cannot read a volume", &e)),
        }
    }

    /// Creates `name` (a random one when empty); an existing volume is returned as is.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> ApiResult<VolumeRecord> {
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or("local");
        if driver != "local" {
            return Err(ApiError::not_found(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        if !options.is_empty() {
            return Err(ApiError::new(
                arca_model::ErrorKind::NotImplemented,
                "local volume options (type, device, o) are not supported yet",
            ));
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                check_name(n)?;
                n.to_owned()
            }
            None => arca_model::random_hex(32),
        };
        if let Ok(existing) = self.get(&name) {
            return Ok(existing);
        }
        let data = self.data_dir(&name);
        std::fs::create_dir_all(&data)
            .map_err(|e| ApiError::from_internal("cannot create the volume", &e))?;
        let rec = VolumeRecord {
            version: VERSION,
            name: name.clone(),
            driver: "local".into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels,
            options: HashMap::new(),
        };
        let bytes = serde_json::to_vec_pretty(&rec)
            .map_err(|e| ApiError::internal(format!("cannot encode the volume record: {e}")))?;
        crate::paths::write_atomic(&self.meta(&name), &bytes, true)
            .map_err(|e| ApiError::from_internal("cannot record the volume", &e))?;
        tracing::info!(volume = %name, "volume created");
        Ok(rec)
    }

    pub fn list(&self) -> Vec<VolumeRecord> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<VolumeRecord> = entries
            .flatten()
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Deletes a volume and its data: the record first (it is no longer listed), then the
    /// directory.
    pub fn remove(&self, name: &str) -> ApiResult<()> {
        self.get(name)?;
        std::fs::remove_file(self.meta(name))
            .map_err(|e| ApiError::from_internal("cannot remove the volume", &e))?;
        let dir = self.dir.join(name);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| ApiError::from_internal("cannot remove the volume's data", &e))?;
        tracing::info!(volume = %name, "volume removed");
        Ok(())
    }

    /// Docker's `Volume` object.
    pub fn view(&self, rec: &VolumeRecord) -> serde_json::Value {
        serde_json::json!({
            "CreatedAt": rec.created_at,
            "Driver": rec.driver,
            "Labels": rec.labels,
            "Mountpoint": self.data_dir(&rec.name).display().to_string(),
            "Name": rec.name,
            "Options": rec.options,
            "Scope": "local",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_created_once_listed_and_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let v = Volumes::new(tmp.path());
        let a = v
            .create(Some("data"), None, HashMap::new(), HashMap::new())
            .expect("create");
        std::fs::write(v.data_dir("data").join("f"), b"x").expect("write");
        let again = v
            .create(Some("data"), None, HashMap::new(), HashMap::new())
            .expect("idempotent");
        assert_eq!(a.created_at, again.created_at);
        assert!(v.data_dir("data").join("f").exists(), "data kept");
        let anon = v
            .create(None, None, HashMap::new(), HashMap::new())
            .expect("anonymous");
        assert_eq!(anon.name.len(), 64);
        assert_eq!(v.list().len(), 2);
        v.remove("data").expect("remove");
        assert!(v.get("data").is_err());
        assert!(!tmp.path().join("volumes/data").exists());
        assert!(
            v.create(Some("../x"), None, HashMap::new(), HashMap::new())
                .is_err()
        );
        assert!(v.get("../etc").is_err());
    }
}
