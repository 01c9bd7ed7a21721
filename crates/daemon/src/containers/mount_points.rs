//! A container's mount points (moby's `MountPoints`): decided once at create and recorded,
//! then mounted at each start, listed by inspect (`Mounts`) and `ps`, released at exit and
//! cleaned up by `rm -v`.
//!
//! At create ([`Containers::plan_mounts`], moby's `registerMountPoints` and
//! `createContainerVolumesOS`): the mount points of `--volumes-from` containers first,
//! then `Binds` and `Mounts` (which replace those at the same destination; two of them at
//! one destination is an error), then an anonymous volume for each `Config.Volumes` entry
//! (the image's `VOLUME`s and the request's, `-v /path` from the docker CLI) not mounted
//! otherwise. Then [`Containers::prepare_volumes`] creates the volumes and seeds the empty
//! ones with the image's content at their destination, unless `nocopy`.
//!
//! At start, volumes with driver mount options are mounted and held by the container; a
//! watcher ([`Containers::watch_volume_mounts`]) releases them when the container is no
//! longer running (its `die`), so the last user's exit unmounts them. Holders are kept in
//! memory and rebuilt from the running containers when arcad starts.
//!
//! Bind propagation (`rshared`, `rslave`…) is recorded, shown by inspect and given to the
//! shim. Limits: `--mount` volume subpaths are refused.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arca_api::docker::{self, ContainerConfig, HostConfig};
use arca_api::shim::{IdMaps, MountConfig};
use arca_model::{ContainerId, Digest};
use serde::{Deserialize, Serialize};

use super::binds::{self, clean};
use super::record::ContainerRecord;
use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};
use crate::volumes::{ANONYMOUS_LABEL, Volumes, local, seed};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Volume,
    Tmpfs,
}

/// One recorded mount point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    pub kind: MountKind,
    /// Cleaned, absolute.
    pub destination: String,
    /// A bind's host path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// A volume's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub rw: bool,
    /// Docker's `Mode`: `-v`'s options as given, `z` for a volume given none.
    #[serde(default)]
    pub mode: String,
    /// A bind's propagation (`rprivate` unless asked otherwise); empty for the others.
    #[serde(default)]
    pub propagation: String,
    /// A volume made for a container without a name: `rm -v` removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// A bind whose missing host directory is created at start (`-v`; `--mount` only with
    /// `CreateMountpoint`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_source: bool,
    /// A tmpfs's options (`size=…,mode=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<String>,
}

impl MountPoint {
    pub fn new(kind: MountKind, destination: String, rw: bool, mode: &str) -> Self {
        Self {
            kind,
            destination,
            source: String::new(),
            name: String::new(),
            rw,
            mode: mode.to_owned(),
            propagation: String::new(),
            anonymous: false,
            create_source: false,
            tmpfs: None,
        }
    }
}

/// A mount point as a create request asks for it, with what making its volume needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub point: MountPoint,
    /// Seed the volume with the image's content (not `nocopy`).
    pub copy_data: bool,
    /// An image or config volume: the image must not have a file there.
    pub must_be_dir: bool,
    /// `--mount`'s volume driver, labels and driver options, for a volume made for it.
    pub driver: Option<String>,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
}

impl Planned {
    pub fn new(point: MountPoint) -> Self {
        Self {
            point,
            copy_data: false,
            must_be_dir: false,
            driver: None,
            labels: HashMap::new(),
            options: HashMap::new(),
        }
    }
}

/// The container's mount points: recorded at create, or for a record older than that, read
/// from its host config (binds and `--mount`s).
pub fn of(rec: &ContainerRecord) -> Vec<MountPoint> {
    if let Some(m) = &rec.mount_points {
        return m.clone();
    }
    let h = &rec.host_config;
    let binds = h
        .binds
        .iter()
        .flatten()
        .filter_map(|b| binds::parse(b).ok());
    let mounts = h
        .mounts
        .iter()
        .flatten()
        .filter_map(|m| binds::parse_mount(m).ok());
    binds
        .chain(mounts)
        .map(|mut p| {
            if p.point.kind == MountKind::Volume && p.point.name.is_empty() {
                p.point.name = arca_model::random_hex(32);
            }
            p.point
        })
        .collect()
}

/// Docker's `MountPoint` objects of inspect and `ps`.
pub fn summaries(rec: &ContainerRecord, volumes: &Volumes) -> Vec<docker::MountPoint> {
    of(rec)
        .into_iter()
        .map(|p| {
            let volume = p.kind == MountKind::Volume;
            let source = match p.kind {
                MountKind::Bind => p.source.clone(),
                MountKind::Volume => volumes.data_dir(&p.name).display().to_string(),
                MountKind::Tmpfs => String::new(),
            };
            docker::MountPoint {
                typ: Some(
                    match p.kind {
                        MountKind::Bind => "bind",
                        MountKind::Volume => "volume",
                        MountKind::Tmpfs => "tmpfs",
                    }
                    .into(),
                ),
                name: volume.then(|| p.name.clone()),
                source: Some(source),
                destination: Some(p.destination),
                driver: volume.then(|| "local".into()),
                mode: Some(p.mode),
                rw: Some(p.rw),
                propagation: Some(p.propagation),
            }
        })
        .collect()
}

fn invalid_error(e: seed::SeedError) -> ApiError {
    match e {
        seed::SeedError::Io { .. } | seed::SeedError::Extract { .. } => {
            ApiError::from_internal("failed to populate volume", &e)
        }
        other => ApiError::invalid(other.to_string()),
    }
}

/// Seeds the planned volume (already created) from the image if it is empty; a volume with
/// mount options is mounted for the copy, as Docker does.
fn seed_volume(
    volumes: &Volumes,
    layers: &[PathBuf],
    p: &Planned,
    id: &ContainerId,
    ids: Option<&IdMaps>,
) -> ApiResult<()> {
    let dir = match seed::lookup(layers, &p.point.destination).map_err(invalid_error)? {
        seed::ImagePath::Dir(d) => d,
        seed::ImagePath::Other if p.must_be_dir => {
            return Err(invalid_error(seed::SeedError::NotADirectory(
                p.point.destination.clone(),
            )));
        }
        _ => return Ok(()),
    };
    let holder = format!("seed:{id}");
    let data = volumes.acquire(&p.point.name, &holder)?;
    let copied = match seed::is_empty(&data) {
        Ok(true) => seed::copy_into(&dir, &data, ids).map_err(invalid_error),
        Ok(false) => Ok(()),
        Err(e) => Err(ApiError::from_internal("failed to populate volume", &e)),
    };
    volumes.release(&p.point.name, &holder);
    copied
}

/// Creates the planned volumes and seeds them. All or nothing: on error the anonymous
/// volumes made here are removed again. Returns the names of the volumes it made.
fn prepare(
    volumes: &Volumes,
    layers: &[PathBuf],
    plan: &[Planned],
    id: &ContainerId,
    h: &HostConfig,
    ids: Option<&IdMaps>,
) -> ApiResult<Vec<String>> {
    let mut made = Vec::new();
    let mut run = || -> ApiResult<()> {
        for p in plan.iter().filter(|p| p.point.kind == MountKind::Volume) {
            let name = &p.point.name;
            let existed = volumes.get(name).is_ok();
            let mut labels = p.labels.clone();
            if p.point.anonymous {
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
            }
            let driver = p.driver.as_deref().or(h.volume_driver.as_deref());
            volumes.create(Some(name), driver, labels, p.options.clone())?;
            if !existed {
                made.push(name.clone());
                if let Some(ids) = ids {
                    // Docker's remapped root owns the volumes it makes.
                    let root = |m: &[arca_api::shim::IdMap]| {
                        m.iter().find(|m| m.container_id == 0).map(|m| m.host_id)
                    };
                    std::os::unix::fs::lchown(
                        volumes.data_dir(name),
                        root(&ids.uid),
                        root(&ids.gid),
                    )
                    .map_err(|e| {
                        ApiError::from_internal(
                            &format!("cannot give volume {name} to the container's root"),
                            &e,
                        )
                    })?;
                }
            }
            if p.copy_data {
                seed_volume(volumes, layers, p, id, ids)?;
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => Ok(made),
        Err(e) => {
            let anonymous: HashSet<&str> = plan
                .iter()
                .filter(|p| p.point.anonymous)
                .map(|p| p.point.name.as_str())
                .collect();
            for n in made.iter().filter(|n| anonymous.contains(n.as_str())) {
                let _ = volumes.remove(n);
            }
            Err(e)
        }
    }
}

impl Containers {
    /// The mount points of a create request, in moby's order; anonymous volumes get their
    /// random names here. Nothing is created.
    pub(super) fn plan_mounts(
        &self,
        h: &HostConfig,
        config: &ContainerConfig,
    ) -> ApiResult<Vec<Planned>> {
        let mut points: Vec<Planned> = Vec::new();
        let put = |points: &mut Vec<Planned>, p: Planned| {
            points.retain(|q| q.point.destination != p.point.destination);
            points.push(p);
        };
        for p in self.volumes_from(h)? {
            put(&mut points, Planned::new(p));
        }
        let tmpfs = binds::tmpfs_destinations(h);
        let mut explicit = HashSet::new();
        let requested = h
            .binds
            .iter()
            .flatten()
            .map(|b| binds::parse(b))
            .chain(h.mounts.iter().flatten().map(binds::parse_mount));
        for p in requested {
            let p = p?;
            let dest = p.point.destination.clone();
            if !explicit.insert(dest.clone()) || tmpfs.contains(&dest) {
                return Err(ApiError::invalid(format!("Duplicate mount point: {dest}")));
            }
            put(&mut points, p);
        }
        let mut volumes: Vec<&String> = config.volumes.iter().flatten().collect();
        volumes.sort();
        for v in volumes {
            let dest = clean(v);
            if !v.starts_with('/') || dest == "/" {
                return Err(ApiError::invalid(format!(
                    "invalid mount config for type \"volume\": invalid mount path: '{v}' mount path must be an absolute path other than /"
                )));
            }
            if points.iter().any(|p| p.point.destination == dest) || tmpfs.contains(&dest) {
                continue;
            }
            put(
                &mut points,
                Planned {
                    copy_data: true,
                    must_be_dir: true,
                    ..Planned::new(MountPoint {
                        anonymous: true,
                        ..MountPoint::new(MountKind::Volume, dest, true, "")
                    })
                },
            );
        }
        for p in &mut points {
            if p.point.kind == MountKind::Volume && p.point.name.is_empty() {
                p.point.name = arca_model::random_hex(32);
            }
        }
        Ok(points)
    }

    /// Creates and seeds the volumes of a new container (see [`prepare`]), and announces
    /// the volumes made.
    pub(super) async fn prepare_volumes(
        &self,
        c: &Container,
        image: &Digest,
        plan: Vec<Planned>,
    ) -> ApiResult<()> {
        if !plan.iter().any(|p| p.point.kind == MountKind::Volume) {
            return Ok(());
        }
        let h = c.snapshot().host_config;
        let ids = self.userns_of(&h);
        let (volumes, store) = (self.volumes.clone(), self.store.clone());
        let (image, id) = (image.clone(), c.id.clone());
        let made = tokio::task::spawn_blocking(move || {
            let layers = store.lower_dirs(&image)?;
            prepare(&volumes, &layers, &plan, &id, &h, ids.as_ref())
        })
        .await
        .map_err(|e| ApiError::internal(format!("volume task failed: {e}")))??;
        for name in made {
            self.events
                .publish(crate::events::Event::volume(&name, "create"));
        }
        Ok(())
    }

    /// The container's mounts for the shim (its mount points, then `--tmpfs`), parents
    /// before children: missing `-v` host directories and volumes are created, volumes with
    /// mount options mounted and held by the container.
    pub(super) fn shim_mounts(&self, rec: &ContainerRecord) -> ApiResult<Vec<MountConfig>> {
        let mut out = Vec::new();
        for p in of(rec) {
            let (source, tmpfs) = match p.kind {
                MountKind::Bind => {
                    let path = PathBuf::from(&p.source);
                    if !path.exists() {
                        if !p.create_source {
                            return Err(ApiError::invalid(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                p.source
                            )));
                        }
                        std::fs::create_dir_all(&path).map_err(|e| {
                            ApiError::invalid(format!(
                                "error while creating mount source path '{}': {e}",
                                p.source
                            ))
                        })?;
                    }
                    (path, None)
                }
                MountKind::Volume => {
                    // Made at create; made again only if it is really gone (a record that
                    // cannot be read must not be replaced by one without its options).
                    let gone = matches!(
                        self.volumes.get(&p.name),
                        Err(e) if e.kind == arca_model::ErrorKind::NotFound
                    );
                    if gone {
                        let mut labels = HashMap::new();
                        if p.anonymous {
                            labels.insert(ANONYMOUS_LABEL.to_owned(), String::new());
                        }
                        let driver = rec.host_config.volume_driver.as_deref();
                        self.volumes
                            .create(Some(&p.name), driver, labels, HashMap::new())?;
                    }
                    (self.volumes.acquire(&p.name, rec.id.as_str())?, None)
                }
                MountKind::Tmpfs => (PathBuf::from("tmpfs"), p.tmpfs.clone()),
            };
            // Docker's binds and volumes are `rprivate` unless asked otherwise.
            let propagation = match p.kind {
                MountKind::Tmpfs => None,
                _ if p.propagation.is_empty() => Some("rprivate".to_owned()),
                _ => Some(p.propagation.clone()),
            };
            out.push(MountConfig {
                source,
                destination: p.destination,
                readonly: !p.rw,
                tmpfs: tmpfs.or_else(|| (p.kind == MountKind::Tmpfs).then(String::new)),
                propagation,
            });
        }
        out.extend(binds::tmpfs_mounts(&rec.host_config)?);
        // moby's sortMounts: fewer path components first (stable).
        out.sort_by_key(|m| clean(&m.destination).matches('/').count());
        Ok(out)
    }

    /// The IDs of the containers (any state) whose mount points use volume `name`.
    /// How many containers (any state) use each volume, counted in one pass (list, prune
    /// and df ask for every volume at once).
    pub fn volume_refs(&self) -> HashMap<String, usize> {
        refs_of(self.all().iter().map(|c| c.snapshot()))
    }

    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.all()
            .iter()
            .filter(|c| {
                of(&c.snapshot())
                    .iter()
                    .any(|p| p.kind == MountKind::Volume && p.name == name)
            })
            .map(|c| c.id.to_string())
            .collect()
    }

    /// After a removal: the container's holds end, and with `anonymous` (`rm -v`, `--rm`)
    /// its anonymous volumes no other container uses are removed, as Docker does.
    pub(super) async fn release_volumes(&self, rec: &ContainerRecord, anonymous: bool) {
        let volumes = self.volumes.clone();
        let holder = rec.id.to_string();
        let names: Vec<String> = of(rec)
            .into_iter()
            .filter(|p| anonymous && p.kind == MountKind::Volume && p.anonymous)
            .map(|p| p.name)
            .filter(|n| self.volume_users(n).is_empty())
            .collect();
        let removed = tokio::task::spawn_blocking(move || {
            volumes.release_all(&holder);
            names
                .into_iter()
                .filter(|n| match volumes.remove(n) {
                    Ok(()) => true,
                    Err(e) => {
                        if e.kind != arca_model::ErrorKind::NotFound {
                            tracing::warn!(volume = %n, error = %e.message, "cannot remove anonymous volume");
                        }
                        false
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for name in removed {
            self.events
                .publish(crate::events::Event::volume(&name, "destroy"));
        }
    }

    /// Drops the holds of containers no longer running and unmounts what nobody holds.
    /// Returns whether a hold was kept only because its container is in the middle of a
    /// lifecycle operation (a start that may still fail).
    fn sweep_volume_mounts(&self, everything: bool) -> bool {
        let mut pending = false;
        self.volumes.sweep(
            |holder| {
                if holder.starts_with("seed:") {
                    return true;
                }
                let Ok(c) = self.get(holder) else {
                    return false;
                };
                if c.status().is_running() {
                    return true;
                }
                let busy = c.op.try_lock().is_err();
                pending |= busy;
                busy
            },
            everything,
        );
        pending
    }

    /// Starts the task that unmounts volumes with mount options once no running container
    /// holds them. Called once when arcad starts, after the containers are recovered: the
    /// running ones hold their volumes again, and mounts nobody holds any more (containers
    /// that stopped while arcad was down) are undone.
    pub fn watch_volume_mounts(self: &Arc<Self>) {
        for c in self.all() {
            let rec = c.snapshot();
            if !rec.state.status.is_running() {
                continue;
            }
            for p in of(&rec).iter().filter(|p| p.kind == MountKind::Volume) {
                if self
                    .volumes
                    .get(&p.name)
                    .is_ok_and(|v| local::needs_mount(&v))
                {
                    self.volumes.hold(&p.name, rec.id.as_str());
                }
            }
        }
        let (_, mut events) = self.events.subscribe(false, 0, None);
        let this = self.clone();
        tokio::spawn(async move {
            let mut everything = true;
            loop {
                let me = this.clone();
                let pending =
                    tokio::task::spawn_blocking(move || me.sweep_volume_mounts(everything))
                        .await
                        .unwrap_or(false);
                everything = false;
                let wake = async {
                    loop {
                        tokio::select! {
                            ev = events.recv() => match ev {
                                Ok(e) if e.kind == "container"
                                    && matches!(e.action.as_str(), "die" | "destroy") => return true,
                                Ok(_) => {}
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return true,
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                            },
                            () = this.volumes.held() => return true,
                        }
                    }
                };
                let go_on = if pending {
                    // A start in progress: look again shortly, it may fail.
                    tokio::time::timeout(Duration::from_millis(250), wake)
                        .await
                        .unwrap_or(true)
                } else {
                    wake.await
                };
                if !go_on {
                    return;
                }
            }
        });
    }
}

/// Volume name → how many of `records` use it (a container counts once per volume).
pub fn refs_of(records: impl IntoIterator<Item = ContainerRecord>) -> HashMap<String, usize> {
    let mut refs = HashMap::new();
    for r in records {
        let names: HashSet<String> = of(&r)
            .into_iter()
            .filter(|p| p.kind == MountKind::Volume)
            .map(|p| p.name)
            .collect();
        for n in names {
            *refs.entry(n).or_insert(0) += 1;
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_without_optional_fields_read_back() {
        let p: MountPoint = serde_json::from_value(serde_json::json!({
            "kind": "volume", "destination": "/data", "name": "v", "rw": true
        }))
        .expect("record");
        assert_eq!(p.mode, "");
        assert!(!p.anonymous && p.tmpfs.is_none());
        let back = serde_json::to_value(&p).expect("encode");
        assert!(back.get("anonymous").is_none() && back.get("source").is_none());
    }
}
