//! Containers: the table of known containers, their persisted records and their lifecycle.
//!
//! Each container has one [`Container`] entry. Its record is guarded by a short-lived std
//! mutex (never held across `.await`); lifecycle operations on one container (start, stop,
//! remove) are serialised by its `op` lock, an async mutex held for the whole operation.
//! Changes of state are broadcast on a `watch` channel so waiters never poll.

pub mod archive;
pub mod attach;
pub mod binds;
pub mod commit;
pub mod create;
pub mod detach;
pub mod diff;
pub mod exec;
pub mod health;
pub mod limits;
pub mod log_config;
pub mod logs;
pub mod mount_points;
pub mod network;
pub mod pause;
pub mod record;
pub mod recover;
pub mod restart;
pub mod spec;
pub mod start;
pub mod stats;
pub mod stop;
pub mod top;
pub mod update;
pub mod view;
pub mod volumes_from;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arca_model::{ContainerId, ContainerStatus};
use arca_store::Store;
use tokio::sync::watch;

use crate::error::{ApiError, ApiResult};
use crate::paths::{Paths, write_atomic};
use record::ContainerRecord;

/// What waiters watch: the status, how many times the container has exited, and whether
/// it is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Life {
    pub status: ContainerStatus,
    pub exits: u64,
    pub exit_code: i64,
    pub removed: bool,
}

pub struct Container {
    pub id: ContainerId,
    record: Mutex<ContainerRecord>,
    life: watch::Sender<Life>,
    /// Serialises lifecycle operations on this container.
    pub op: tokio::sync::Mutex<()>,
    /// Held (shared) by `docker cp` helpers looking at the running container's rootfs; a
    /// start takes it exclusively before mounting the container's upper directory again.
    pub fs_users: tokio::sync::RwLock<()>,
    /// Attach sessions made before start; `start` connects them before the process runs.
    pending_attach: Mutex<Vec<attach::PendingAttach>>,
    /// The restart policy's current back-off (in memory: a restarted arcad starts over).
    backoff: Mutex<Option<std::time::Duration>>,
    /// The running health-check task, if the container has a healthcheck and runs.
    health_task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Container {
    fn new(record: ContainerRecord) -> Arc<Self> {
        let life = Life {
            status: record.state.status,
            exits: 0,
            exit_code: record.state.exit_code,
            removed: false,
        };
        Arc::new(Self {
            id: record.id.clone(),
            record: Mutex::new(record),
            life: watch::Sender::new(life),
            op: tokio::sync::Mutex::new(()),
            fs_users: tokio::sync::RwLock::new(()),
            pending_attach: Mutex::new(Vec::new()),
            backoff: Mutex::new(None),
            health_task: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ContainerRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current record.
    pub fn snapshot(&self) -> ContainerRecord {
        self.lock().clone()
    }

    pub fn status(&self) -> ContainerStatus {
        self.lock().state.status
    }

    pub fn subscribe(&self) -> watch::Receiver<Life> {
        self.life.subscribe()
    }

    /// Applies `f` to the record, persists it and publishes the new state.
    fn update(&self, paths: &Paths, f: impl FnOnce(&mut ContainerRecord)) -> ApiResult<()> {
        let (data, status, code) = {
            let mut rec = self.lock();
            f(&mut rec);
            let data = serde_json::to_vec(&*rec)
                .map_err(|e| ApiError::from_internal("cannot encode container record", &e))?;
            (data, rec.state.status, rec.state.exit_code)
        };
        // Waiters always learn the new state, even if saving it fails: memory is the
        // truth while arcad runs; a failed save is reported to the caller.
        let saved = write_atomic(&paths.record_file(&self.id), &data, false);
        self.life.send_modify(|l| {
            l.status = status;
            l.exit_code = code;
        });
        saved.map_err(|e| ApiError::from_internal("cannot save container record", &e))
    }

    /// Applies `f` to the record in memory only (health results: frequent, best effort on
    /// disk, saved with the next state change as Docker does).
    fn update_in_memory(&self, f: impl FnOnce(&mut ContainerRecord)) {
        f(&mut self.lock());
    }

    fn mark_exited(&self) {
        self.life.send_modify(|l| l.exits += 1);
    }

    fn mark_removed(&self) {
        self.life.send_modify(|l| l.removed = true);
    }
}

#[derive(Default)]
struct Table {
    by_id: HashMap<ContainerId, Arc<Container>>,
    names: HashMap<String, ContainerId>,
}

/// Daemon-wide options that shape containers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The binary `--init` runs as PID 1 (arcad's `--init-path`).
    pub init_path: std::path::PathBuf,
    /// Default detach keys of attach and exec sessions (arcad's `--detach-keys`).
    pub detach_keys: String,
    /// Daemon-wide user-namespace remapping (arcad's `--userns-remap`); containers with
    /// `--userns host` opt out.
    pub userns_remap: Option<arca_api::shim::IdMaps>,
    /// The logging driver and options of containers that name none (arcad's
    /// `--log-driver` / `--log-opt`).
    pub log_config: arca_api::docker::HostConfigLogConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            init_path: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("arca-init")))
                .unwrap_or_else(|| "arca-init".into()),
            detach_keys: detach::DEFAULT_DETACH_KEYS.into(),
            userns_remap: None,
            log_config: arca_api::docker::HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: None,
            },
        }
    }
}

/// All containers of this daemon.
pub struct Containers {
    table: Mutex<Table>,
    pub store: Arc<Store>,
    pub paths: Paths,
    pub execs: exec::Execs,
    /// Lifecycle events for `GET /events`.
    pub events: crate::events::Events,
    /// The host has a unified (v2-only) cgroup hierarchy. arca is built without the eBPF
    /// device filter libcgroups needs there, so device access is restricted by other means.
    unified_cgroup: bool,
    pub settings: Settings,
    pub networks: Arc<crate::networks::Networks>,
    pub volumes: crate::volumes::Volumes,
}

impl Containers {
    pub fn new(
        store: Arc<Store>,
        paths: Paths,
        settings: Settings,
        networks: Arc<crate::networks::Networks>,
    ) -> Arc<Self> {
        Arc::new(Self {
            volumes: crate::volumes::Volumes::new(&paths.root),
            networks,
            table: Mutex::new(Table::default()),
            store,
            paths,
            settings,
            execs: exec::Execs::default(),
            events: crate::events::Events::default(),
            unified_cgroup: crate::cgroups::CgroupVersion::detect(std::path::Path::new(
                "/sys/fs/cgroup",
            ))
            .layout
                == crate::cgroups::Layout::V2,
        })
    }

    /// Publishes a container event (`extra`: attributes beyond labels, name and image).
    pub fn emit(&self, c: &Container, action: impl Into<String>, extra: &[(&str, String)]) {
        let ev = crate::events::Event::container(&c.lock(), action, extra);
        self.events.publish(ev);
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds a container by full ID, name (with or without `/`) or unique ID prefix.
    pub fn get(&self, key: &str) -> ApiResult<Arc<Container>> {
        let t = self.table();
        let not_found = || ApiError::not_found(format!("No such container: {key}"));
        if key.is_empty() {
            return Err(not_found());
        }
        if let Ok(id) = key.parse::<ContainerId>()
            && let Some(c) = t.by_id.get(&id)
        {
            return Ok(c.clone());
        }
        if let Some(id) = t.names.get(key.trim_start_matches('/'))
            && let Some(c) = t.by_id.get(id)
        {
            return Ok(c.clone());
        }
        let mut found = t
            .by_id
            .iter()
            .filter(|(id, _)| id.as_str().starts_with(key));
        match (found.next(), found.next()) {
            (Some((_, c)), None) => Ok(c.clone()),
            (Some(_), Some(_)) => Err(ApiError::invalid(format!(
                "multiple containers found with provided prefix: {key}"
            ))),
            _ => Err(not_found()),
        }
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.table().by_id.values().cloned().collect()
    }

    /// Whether any container uses the image.
    pub fn image_in_use(&self, image: &arca_model::Digest) -> bool {
        self.table()
            .by_id
            .values()
            .any(|c| &c.lock().image_id == image)
    }

    /// Registers a new container; fails with 409 if the name is taken.
    fn insert(&self, record: ContainerRecord) -> ApiResult<Arc<Container>> {
        let mut t = self.table();
        if let Some(other) = t.names.get(&record.name) {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"/{}\" is already in use by container \"{}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                record.name, other
            )));
        }
        let c = Container::new(record);
        let rec = c.lock();
        t.names.insert(rec.name.clone(), c.id.clone());
        drop(rec);
        t.by_id.insert(c.id.clone(), c.clone());
        Ok(c)
    }

    /// `POST /containers/{id}/rename`: 409 if the new name is taken.
    pub fn rename(&self, c: &Container, new: &str) -> ApiResult<()> {
        let new = create::validate_name(new)?;
        let old = {
            let mut t = self.table();
            if let Some(other) = t.names.get(&new) {
                if other == &c.id {
                    return Err(ApiError::invalid(
                        "Renaming a container with the same name as its current name",
                    ));
                }
                return Err(ApiError::conflict(format!(
                    "Conflict. The container name \"/{new}\" is already in use by container \"{other}\". \
                     You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            let old = c.lock().name.clone();
            t.names.remove(&old);
            t.names.insert(new.clone(), c.id.clone());
            old
        };
        if let Err(e) = c.update(&self.paths, |r| r.name = new.clone()) {
            tracing::warn!(id = %c.id, error = %e, "rename not saved");
        }
        self.emit(c, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    fn forget(&self, c: &Container) {
        let mut t = self.table();
        t.by_id.remove(&c.id);
        t.names.retain(|_, id| id != &c.id);
    }

    /// Removes a container: kills it first when `force`, then deletes its files.
    pub async fn remove(self: &Arc<Self>, c: &Arc<Container>, force: bool) -> ApiResult<()> {
        self.remove_with_volumes(c, force, false).await
    }

    /// [`Containers::remove`], and with `volumes` (`rm -v`) its anonymous volumes too.
    pub async fn remove_with_volumes(
        self: &Arc<Self>,
        c: &Arc<Container>,
        force: bool,
        volumes: bool,
    ) -> ApiResult<()> {
        // Lifecycle work runs in its own task: a client that hangs up must not cancel it
        // halfway.
        let this = self.clone();
        let c = c.clone();
        tokio::spawn(async move { this.remove_full(&c, force, None, volumes).await })
            .await
            .map_err(|e| ApiError::internal(format!("remove task failed: {e}")))?
    }

    /// Removes a container, but only if it has not run again since exit number
    /// `only_after_exit` (auto-remove must not remove a container restarted meanwhile).
    pub(super) async fn remove_inner(
        self: &Arc<Self>,
        c: &Arc<Container>,
        force: bool,
        only_after_exit: Option<u64>,
    ) -> ApiResult<()> {
        self.remove_full(c, force, only_after_exit, false).await
    }

    /// The removal. A `--rm` container's anonymous volumes go with it, as Docker does.
    async fn remove_full(
        self: &Arc<Self>,
        c: &Arc<Container>,
        force: bool,
        only_after_exit: Option<u64>,
        volumes: bool,
    ) -> ApiResult<()> {
        if force {
            self.cancel_restart(c);
        }
        let status = c.status();
        if status.is_running() {
            if !force {
                return Err(ApiError::conflict(format!(
                    "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                    c.lock().name,
                    status
                )));
            }
            self.kill_and_wait(c, libc::SIGKILL).await?;
        }
        let _op = c.op.lock().await;
        let life = *c.life.borrow();
        if life.removed {
            return Ok(());
        }
        if let Some(n) = only_after_exit
            && (life.exits != n || life.status.is_running())
        {
            return Ok(());
        }
        if life.status.is_running() {
            // Started again while this removal waited for the lock.
            return Err(ApiError::conflict(format!(
                "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                c.lock().name,
                life.status
            )));
        }
        // Renaming is atomic and quick; the files go in the background (and at the next
        // start of arcad if it stops first), so `--rm` does not wait for the deletion.
        let dir = self.paths.container_dir(&c.id);
        let trash = self.paths.trash_dir(&c.id);
        if let Err(e) = std::fs::rename(&dir, &trash)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(ApiError::from_internal("cannot delete container files", &e));
        }
        self.forget(c);
        self.execs.forget_container(&c.id);
        // Anything a failed start left on a network (normally released at exit).
        if !self.networks.endpoints_of(c.id.as_str()).is_empty() {
            self.networks.detach(c.id.as_str()).await;
        }
        let run = self.paths.run_dir(&c.id);
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(run);
            let _ = std::fs::remove_dir_all(trash);
        });
        c.mark_removed();
        self.emit(c, "destroy", &[]);
        tracing::info!(id = %c.id, "container removed");
        let rec = c.snapshot();
        let anonymous = volumes || rec.host_config.auto_remove.unwrap_or(false);
        self.release_volumes(&rec, anonymous).await;
        Ok(())
    }
}
