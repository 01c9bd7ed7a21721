//! Volumes of the `local` driver: `<root>/volumes/<name>/_data` (the data, bind-mounted
//! into containers) and `<root>/volumes/<name>/volume.json` (versioned metadata, written
//! atomically after the directory exists, so a crash never leaves a listed volume without
//! data). A `-v name:/path` of a missing volume creates it, as Docker does. A volume made
//! without a name (an anonymous volume of a container, `docker volume create` without one)
//! gets a random 64-hex name and the `com.docker.volume.anonymous` label, as Docker 23+.
//!
//! Driver options (`-o type=tmpfs -o device=tmpfs -o o=size=10m`, `type=none,o=bind,
//! device=/dir`) are validated with Docker's rules and kept in the record; such a volume's
//! `_data` is mounted when the first container using it starts and unmounted when the last
//! one stops, at `volume rm` and at prune ([`local`]). Whether `_data` is mounted is always
//! read from `/proc/self/mountinfo`, so a restarted arcad finds the mounts it left.
//! [`seed`] fills a new (empty) volume with the image's content at its mount point.
//!
//! Limits:
//! - only the `local` driver; its `size` option needs quota support arca does not have (an
//!   error, as Docker without quota support);
//! - who holds a mounted volume lives in memory; a restarted arcad rebuilds it from the
//!   running containers (see `containers::mount_points`);
//! - data is never deleted through a mount: a volume whose `_data` cannot be unmounted is
//!   not removed;
//! - seeding happens at container create, on a temporary mount for a volume with mount
//!   options, as in Docker: a `type=tmpfs` volume therefore starts empty at each start;
//! - no `volume mount`/`unmount` events; `--mount` volume subpaths are refused; bind
//!   propagation is recorded and shown but binds are mounted `rprivate` (see
//!   `containers::mount_points`).

pub mod local;
pub mod seed;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

const VERSION: u32 = 1;

/// The label Docker puts on volumes made without a name.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub version: u32,
    pub name: String,
    pub driver: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    /// The driver options (`type`, `device`, `o`).
    #[serde(default)]
    pub options: HashMap<String, String>,
}

/// The volumes of this daemon: records on disk, and in memory who holds the mounted ones.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
    holders: Arc<local::Holders>,
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

/// Whether `name` looks like a volume made without a name.
pub fn is_anonymous(rec: &VolumeRecord) -> bool {
    rec.labels.contains_key(ANONYMOUS_LABEL)
        || (rec.name.len() == 64 && rec.name.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Prefix of a removed volume's directory while it is deleted (not a valid volume name).
const REMOVING: &str = ".removing-";

impl Volumes {
    pub fn new(root: &Path) -> Volumes {
        let v = Volumes {
            dir: root.join("volumes"),
            holders: Arc::default(),
        };
        v.sweep_removed();
        v
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
            Err(e) => Err(ApiError::from_internal(
                &format!("cannot read volume {name}"),
                &e,
            )),
        }
    }

    /// Creates `name` (a random, anonymous one when empty) with the driver's `options`; an
    /// existing volume is returned as is, as Docker does.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        mut labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> ApiResult<VolumeRecord> {
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or("local");
        if driver != "local" {
            return Err(ApiError::not_found(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                check_name(n)?;
                n.to_owned()
            }
            None => {
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
                arca_model::random_hex(32)
            }
        };
        local::validate_options(&options)
            .map_err(|why| ApiError::invalid(format!("create {name}: {why}")))?;
        if let Ok(existing) = self.get(&name) {
            return Ok(existing);
        }
        let data = self.data_dir(&name);
        std::fs::create_dir_all(&data)
            .map_err(|e| ApiError::from_internal(&format!("cannot create volume {name}"), &e))?;
        let rec = VolumeRecord {
            version: VERSION,
            name: name.clone(),
            driver: "local".into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels,
            options,
        };
        let bytes = serde_json::to_vec_pretty(&rec)
            .map_err(|e| ApiError::internal(format!("cannot encode the volume record: {e}")))?;
        crate::paths::write_atomic(&self.meta(&name), &bytes, true)
            .map_err(|e| ApiError::from_internal(&format!("cannot record volume {name}"), &e))?;
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

    /// Deletes a volume and its data: its `_data` unmounted first (never deleted through a
    /// mount), then the whole directory renamed out of the way in one step (the volume is
    /// gone: not listed, and a new volume of the same name starts empty), then deleted. What
    /// a failed or interrupted deletion leaves is removed when arcad starts. A volume a
    /// starting or running container holds mounted is not removed.
    pub fn remove(&self, name: &str) -> ApiResult<()> {
        self.get(name)?;
        let dir = self.dir.join(name);
        let trash = self
            .dir
            .join(format!("{REMOVING}{name}-{}", arca_model::random_hex(8)));
        let no_mounts = self.unmount_for_removal(name, &dir)?;
        std::fs::rename(&dir, &trash)
            .map_err(|e| ApiError::from_internal(&format!("cannot remove volume {name}"), &e))?;
        drop(no_mounts);
        if let Err(e) = std::fs::remove_dir_all(&trash) {
            tracing::warn!(volume = %name, error = %e, "the removed volume's data is deleted at the next start");
        }
        tracing::info!(volume = %name, "volume removed");
        Ok(())
    }

    /// Deletes what removals left behind (arcad stopped or failed halfway).
    fn sweep_removed(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(REMOVING)
                && let Err(err) = std::fs::remove_dir_all(e.path())
            {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot delete a removed volume's data");
            }
        }
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
        assert!(anon.labels.contains_key(ANONYMOUS_LABEL));
        assert!(is_anonymous(&anon));
        assert!(!is_anonymous(&a));
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

    #[test]
    fn driver_options_are_checked_and_recorded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let v = Volumes::new(tmp.path());
        let opts = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let err = v
            .create(Some("bad"), None, HashMap::new(), opts(&[("foo", "1")]))
            .expect_err("unknown key");
        assert_eq!(err.message, "create bad: invalid option: \"foo\"");
        let err = v
            .create(
                Some("bad"),
                None,
                HashMap::new(),
                opts(&[("type", "tmpfs")]),
            )
            .expect_err("type without device");
        assert_eq!(
            err.message,
            "create bad: missing required option: \"device\""
        );
        assert!(v.get("bad").is_err(), "nothing left behind");
        let rec = v
            .create(
                Some("tmp"),
                None,
                HashMap::new(),
                opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]),
            )
            .expect("create");
        assert_eq!(v.get("tmp").expect("get").options, rec.options);
        assert_eq!(rec.options["o"], "size=1m");
    }

    #[test]
    fn a_removed_volume_leaves_nothing_and_an_interrupted_removal_is_finished_at_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let v = Volumes::new(tmp.path());
        v.create(Some("gone"), None, HashMap::new(), HashMap::new())
            .expect("create");
        std::fs::write(v.data_dir("gone").join("f"), b"old").expect("write");
        v.remove("gone").expect("remove");
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("volumes"))
            .expect("dir")
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A new volume of the same name starts empty.
        v.create(Some("gone"), None, HashMap::new(), HashMap::new())
            .expect("again");
        assert!(!v.data_dir("gone").join("f").exists());
        // What a crash in the middle of a removal left is deleted at the next start.
        let trash = tmp.path().join("volumes").join(".removing-x-0123");
        std::fs::create_dir_all(trash.join("_data")).expect("mkdir");
        let v = Volumes::new(tmp.path());
        assert!(!trash.exists());
        assert!(v.get("gone").is_ok(), "other volumes untouched");
    }
}
