//! Observation endpoints: stats, top, changes (what `docker stats/top/diff` call). `docker
//! port` needs no endpoint: the CLI reads inspect's `NetworkSettings.Ports`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::AppState;
use crate::containers::limits::cgroup_path;
use crate::containers::stats::StatsOpts;
use crate::containers::{diff, top};
use crate::error::{ApiError, ApiResult};
use crate::query::Q;

fn json(v: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => {
            let mut r = (StatusCode::OK, b).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => ApiError::from_internal("cannot encode response", &e).into_response(),
    }
}

/// `GET /containers/{id}/stats?stream=&one-shot=`
pub async fn stats(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let stream = q.bool("stream", true);
    let one_shot = q.bool("one-shot", false);
    if stream && one_shot {
        return Err(ApiError::invalid(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(Arc::clone(&st.containers).stats(c, StatsOpts { stream, one_shot }, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    })
    .boxed();
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// `GET /containers/{id}/top?ps_args=`
pub async fn top(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let rec = c.snapshot();
    if rec.state.status == arca_model::ContainerStatus::Restarting {
        return Err(ApiError::conflict(format!(
            "Container {} is restarting, wait until the container is running",
            c.id
        )));
    }
    if !rec.state.status.is_running() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let path = cgroup_path(&rec, &st.containers.paths.cgroup_parent);
    let ps_args = q.get("ps_args").unwrap_or("").to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let pids = crate::cgroups::procs(std::path::Path::new("/sys/fs/cgroup"), &path);
        top::top_blocking(&pids, &ps_args)
    })
    .await
    .map_err(|e| ApiError::internal(format!("top task failed: {e}")))??;
    st.containers.emit(&c, "top", &[]);
    Ok(json(&out))
}

/// `GET /containers/{id}/changes`
pub async fn changes(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let rec = c.snapshot();
    let store = st.store.clone();
    let upper = st.containers.paths.upper_dir(&c.id);
    let image_id = rec.image_id.clone();
    let out = tokio::task::spawn_blocking(move || {
        let layers = store.lower_dirs(&image_id)?;
        diff::changes(&upper, &layers)
            .map_err(|e| ApiError::from_internal("cannot compute container changes", &e))
    })
    .await
    .map_err(|e| ApiError::internal(format!("changes task failed: {e}")))??;
    Ok(json(&out))
}
