//! `docker commit`: the container's upper directory and configuration become a new image
//! (the store does the layer and config work, see `arca_store::Store::commit_container`).
//!
//! A running container is paused for the commit when asked (Docker's default), so its
//! files do not change while they are archived, and unpaused afterwards even if the commit
//! failed. The runtime's mount points (Docker's init layer, `diff::INIT_PATHS`) are left out
//! of the layer.

use std::sync::Arc;

use arca_model::{ContainerStatus, Reference};
use arca_store::{CommitOptions, Image};
use serde_json::{Map, Value};

use super::{Container, Containers, diff};
use crate::error::{ApiError, ApiResult};

/// What the client asked for (`POST /commit` parameters and body).
#[derive(Debug, Default)]
pub struct CommitRequest {
    pub reference: Option<Reference>,
    pub author: String,
    pub comment: String,
    pub changes: Vec<String>,
    /// The request body: container config fields that override the container's.
    pub overrides: Map<String, Value>,
    pub pause: bool,
}

impl Containers {
    /// Commits container `c` as a new image and emits the container's `commit` event.
    pub async fn commit(
        self: &Arc<Self>,
        c: &Arc<Container>,
        req: CommitRequest,
    ) -> ApiResult<Image> {
        let paused_here = req.pause && c.status() == ContainerStatus::Running;
        if paused_here {
            self.pause(c).await?;
        }
        let result = self.commit_paused(c, &req).await;
        if paused_here
            && c.status() == ContainerStatus::Paused
            && let Err(e) = self.unpause(c).await
        {
            tracing::warn!(id = %c.id, error = %e, "cannot unpause after commit");
        }
        let image = result?;
        let image_ref = req
            .reference
            .as_ref()
            .map(|r| r.clone().with_default_tag().to_string())
            .unwrap_or_default();
        self.emit(
            c,
            "commit",
            &[
                ("comment", req.comment.clone()),
                ("imageID", image.id.to_string()),
                ("imageRef", image_ref),
            ],
        );
        Ok(image)
    }

    async fn commit_paused(&self, c: &Arc<Container>, req: &CommitRequest) -> ApiResult<Image> {
        let rec = c.snapshot();
        let container_config = match serde_json::to_value(&rec.config) {
            Ok(Value::Object(m)) => m,
            Ok(_) => Map::new(),
            Err(e) => {
                return Err(ApiError::from_internal(
                    "cannot encode container config",
                    &e,
                ));
            }
        };
        let opts = CommitOptions {
            container_id: c.id.to_string(),
            container_config,
            overrides: req.overrides.clone(),
            changes: req.changes.clone(),
            author: req.author.clone(),
            comment: req.comment.clone(),
            reference: req.reference.clone(),
            exclude: diff::INIT_PATHS.iter().map(|p| (*p).to_owned()).collect(),
        };
        let store = self.store.clone();
        let upper = self.paths.upper_dir(&c.id);
        let base = rec.image_id.clone();
        tokio::task::spawn_blocking(move || store.commit_container(&base, &upper, &opts))
            .await
            .map_err(|e| ApiError::internal(format!("commit task failed: {e}")))?
            .map_err(ApiError::from)
    }
}
