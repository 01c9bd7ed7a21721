//! Rebuilding the container table when arcad starts: records from disk, running containers
//! reconnected to their shims, exits that happened while arcad was down recorded.
//!
//! A shim whose container is not recorded as running is left from a start that arcad did
//! not finish (it stopped between spawning the shim and recording the start): it holds a
//! created container, its rootfs and cgroup, and would keep the next start of that
//! container waiting. It is ended (its container killed) before anything else happens.

use std::sync::Arc;
use std::time::Duration;

use arca_api::shim::{Reply, Request};

use arca_model::ContainerStatus;

use super::record::{ContainerRecord, RECORD_VERSION};
use super::{Container, Containers};
use crate::shim;

impl Containers {
    /// Loads every container record and reattaches running containers.
    pub async fn recover(self: &Arc<Self>) -> std::io::Result<usize> {
        let dir = self.paths.containers_dir();
        std::fs::create_dir_all(&dir)?;
        let mut n = 0;
        let mut restarts = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".trash-") {
                // Removed before arcad stopped; finish the deletion.
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            }
            let Ok(id) = name.parse::<arca_model::ContainerId>() else {
                continue;
            };
            let file = self.paths.record_file(&id);
            let bytes = match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Created but never recorded (a crash inside create): not visible.
                    tracing::warn!(%id, "dropping container directory without a record");
                    let _ = std::fs::remove_dir_all(entry.path());
                    continue;
                }
                Err(e) => {
                    tracing::error!(%id, error = %e, "cannot read container record; skipping it");
                    continue;
                }
            };
            // The version decides how to read the rest; never delete what we cannot read.
            let version = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
            if version != Some(u64::from(RECORD_VERSION)) {
                tracing::error!(%id, ?version, "container record of unknown version or unreadable; skipping it");
                continue;
            }
            let rec: ContainerRecord = match serde_json::from_slice(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%id, error = %e, "unreadable container record; skipping it");
                    continue;
                }
            };
            // A restart that was pending when arcad stopped is decided afresh below.
            let mut rec = rec;
            if rec.state.status == ContainerStatus::Restarting {
                rec.state.status = ContainerStatus::Exited;
            }
            let running = rec.state.status.is_running();
            let restart = !running && super::restart::restart_on_daemon_start(&rec);
            let c = match self.insert(rec) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "skipping container");
                    continue;
                }
            };
            n += 1;
            if running {
                self.reattach(&c).await;
                continue;
            }
            self.end_stray_shim(&c).await;
            if restart {
                restarts.push(c);
            }
        }
        // Networks first: endpoints of containers that stopped while arcad was down are
        // released, the running ones' ports held again, the table restored to the live set.
        // Only then do restarts begin (each makes endpoints and rules of its own).
        let this = self.clone();
        self.networks
            .recover(move |id| this.get(id).is_ok_and(|c| c.status().is_running()))
            .await;
        for c in restarts {
            // `always`, and `unless-stopped` not stopped by a user, come back with arcad.
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.start_keeping_count(&c).await {
                    tracing::error!(id = %c.id, error = %e, "cannot restart container");
                }
            });
        }
        Ok(n)
    }

    /// Ends the shim of a container that is not recorded as running, if there is one.
    async fn end_stray_shim(&self, c: &Arc<Container>) {
        let socket = self.paths.shim_socket(&c.id);
        if !socket.exists() {
            return;
        }
        let kill = shim::simple(
            &socket,
            &Request::Kill {
                signal: libc::SIGKILL,
            },
        );
        match tokio::time::timeout(Duration::from_secs(5), kill).await {
            Ok(Ok(Reply::Ok { .. })) => {
                tracing::warn!(id = %c.id, "ended the shim of a start arcad did not finish");
                // The shim cleans up after its container; wait for it (bounded) so that a
                // start right after recovery finds the container's state gone.
                let state = self.paths.runtime_state().join(c.id.as_str());
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while state.exists() && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            _ => {
                // Nobody answers: a socket left by a shim that is gone.
                let _ = std::fs::remove_file(&socket);
            }
        }
    }

    async fn reattach(self: &Arc<Self>, c: &Arc<Container>) {
        match shim::wait_conn(&self.paths.shim_socket(&c.id)).await {
            Ok(conn) => {
                tracing::info!(id = %c.id, "reconnected to running container");
                self.spawn_monitor(c.clone(), conn);
                // Health checks resume where they were (a paused one stays stopped).
                if c.status() == ContainerStatus::Running {
                    self.start_health(c, false);
                }
            }
            Err(_) => {
                let status = self.read_exit_file(c);
                tracing::info!(id = %c.id, code = status.exit_code, "container exited while arcad was down");
                self.on_exit(c, status).await;
            }
        }
        debug_assert!(c.status() != ContainerStatus::Removing);
    }
}
