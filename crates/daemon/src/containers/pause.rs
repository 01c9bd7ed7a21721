//! `docker pause` / `docker unpause`: the shim freezes and thaws the container's cgroup.
//!
//! A paused container is still running (`State.Running` and `State.Paused` are both true,
//! as in Docker); the status is persisted, so a restarted arcad knows it. Its health
//! checks stop while it is paused. Signals that end it (see `stop.rs`) thaw it first.

use std::sync::Arc;

use arca_api::shim::{Reply, Request};
use arca_model::ContainerStatus;

use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};
use crate::shim;

impl Containers {
    /// `POST /containers/{id}/pause`.
    pub async fn pause(self: &Arc<Self>, c: &Arc<Container>) -> ApiResult<()> {
        let _op = c.op.lock().await;
        match c.status() {
            ContainerStatus::Paused => {
                return Err(ApiError::conflict(format!(
                    "Container {} is already paused",
                    c.id
                )));
            }
            ContainerStatus::Restarting => {
                return Err(ApiError::conflict(format!(
                    "Container {} is restarting, wait until the container is running",
                    c.id
                )));
            }
            ContainerStatus::Running => {}
            _ => {
                return Err(ApiError::conflict(format!(
                    "Container {} is not running",
                    c.id
                )));
            }
        }
        self.shim_freeze(c, &Request::Pause, "pause").await?;
        self.stop_health(c);
        c.update(&self.paths, |r| r.state.status = ContainerStatus::Paused)?;
        self.emit(c, "pause", &[]);
        tracing::info!(id = %c.id, "container paused");
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(self: &Arc<Self>, c: &Arc<Container>) -> ApiResult<()> {
        let _op = c.op.lock().await;
        if c.status() != ContainerStatus::Paused {
            return Err(ApiError::conflict(format!(
                "Container {} is not paused",
                c.id
            )));
        }
        self.shim_freeze(c, &Request::Resume, "unpause").await?;
        self.mark_unpaused(c);
        Ok(())
    }

    /// Records a thawed container as running again (after `Resume` succeeded) and
    /// resumes its health checks.
    pub(super) fn mark_unpaused(self: &Arc<Self>, c: &Arc<Container>) {
        if self.record_thawed(c) {
            self.start_health(c, false);
        }
    }

    /// Records a thawed container as running again; false if it was not paused.
    pub(super) fn record_thawed(&self, c: &Container) -> bool {
        let mut changed = false;
        let saved = c.update(&self.paths, |r| {
            if r.state.status == ContainerStatus::Paused {
                r.state.status = ContainerStatus::Running;
                changed = true;
            }
        });
        if let Err(e) = saved {
            tracing::warn!(id = %c.id, error = %e, "unpause not saved");
        }
        if changed {
            self.emit(c, "unpause", &[]);
            tracing::info!(id = %c.id, "container unpaused");
        }
        changed
    }

    /// Sends `Pause` or `Resume` to the shim.
    pub(super) async fn shim_freeze(
        &self,
        c: &Container,
        req: &Request,
        verb: &str,
    ) -> ApiResult<()> {
        match shim::simple(&self.paths.shim_socket(&c.id), req).await {
            Ok(Reply::Ok { .. }) => Ok(()),
            Ok(Reply::Error { message }) => Err(ApiError::internal(format!(
                "Cannot {verb} container {}: {message}",
                c.id
            ))),
            Ok(Reply::Exited(_)) | Err(shim::ShimError::Connect(_)) => Err(ApiError::conflict(
                format!("Container {} is not running", c.id),
            )),
            Err(e) => Err(ApiError::from_internal(
                &format!("cannot {verb} container"),
                &e,
            )),
        }
    }
}
