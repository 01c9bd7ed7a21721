//! `GET /containers/{id}/export` (`docker export`): the container's whole filesystem as a
//! tar stream, merged in userspace from its upper directory and its image's layers
//! (`arca_store::write_merged_tar`), so created, running and exited containers all export
//! without mounting anything.
//!
//! The container and its image's layers are resolved before the response starts: a missing
//! container is a clean 404 ("No such container: X"), a dead or departing one a 409, as
//! Docker's. The runtime's mount points (`diff::INIT_PATHS`) are left out, as `commit`
//! leaves them out. A failure once the stream has started cuts the response short (the
//! client sees a truncated body); the container's `export` event follows a complete stream.

use std::io;

use arca_model::ContainerStatus;
use axum::extract::{Path, State};
use axum::response::Response;

use super::AppState;
use super::tar_stream::{self, ChannelWriter};
use crate::containers::diff;
use crate::error::{ApiError, ApiResult};

/// `GET /containers/{id}/export`
pub async fn export(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let rec = c.snapshot();
    match rec.state.status {
        ContainerStatus::Dead => {
            return Err(ApiError::conflict(format!(
                "You cannot export container {} which is Dead",
                c.id
            )));
        }
        ContainerStatus::Removing => {
            return Err(ApiError::conflict(format!(
                "You cannot export container {} which is being removed",
                c.id
            )));
        }
        _ => {}
    }
    let store = st.store.clone();
    let image_id = rec.image_id.clone();
    let lower = tokio::task::spawn_blocking(move || store.lower_dirs(&image_id))
        .await
        .map_err(|e| ApiError::internal(format!("export task failed: {e}")))??;
    let upper = st.containers.paths.upper_dir(&c.id);
    let exclude: Vec<String> = diff::INIT_PATHS.iter().map(|p| (*p).to_owned()).collect();

    let (tx, response) = tar_stream::channel();
    let store = st.store.clone();
    let containers = st.containers.clone();
    tokio::task::spawn_blocking(move || {
        // No garbage-collection sweep may delete the image's snapshots while they are read.
        let _lease = store.lease();
        let w = ChannelWriter::new(tx.clone());
        match arca_store::write_merged_tar(&upper, &exclude, &lower, w) {
            Ok(_) => containers.emit(&c, "export", &[]),
            Err(e) if e.is_disconnect() => {
                tracing::debug!(id = %c.id, "export client went away");
            }
            Err(e) => {
                let err = ApiError::from_internal("container export failed", &e);
                let _ = tx.blocking_send(Err(io::Error::other(err.message)));
            }
        }
    });
    Ok(response)
}
