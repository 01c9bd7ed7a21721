//! `/volumes`: create, list, inspect, remove and prune volumes (the `local` driver, with
//! its `type`/`device`/`o` options), with Docker's shapes (`{"Volumes","Warnings"}`,
//! `{"VolumesDeleted","SpaceReclaimed"}`) and errors (a volume used by a container cannot
//! be removed: 409; an unknown driver option: 400).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::query::Q;
use crate::volumes::VolumeRecord;

/// The containers (any state) whose mount points use volume `name`.
fn users(st: &AppState, name: &str) -> Vec<String> {
    st.containers.volume_users(name)
}

fn strings(v: Option<&Value>) -> HashMap<String, String> {
    v.and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /volumes/create`
pub async fn create(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?
    };
    let vols = st.containers.volumes.clone();
    let name = v.get("Name").and_then(Value::as_str).map(str::to_owned);
    let driver = v.get("Driver").and_then(Value::as_str).map(str::to_owned);
    let (labels, opts) = (strings(v.get("Labels")), strings(v.get("DriverOpts")));
    let rec = tokio::task::spawn_blocking(move || {
        vols.create(name.as_deref(), driver.as_deref(), labels, opts)
            .map(|r| (vols.view(&r), r))
    })
    .await
    .map_err(|e| ApiError::internal(format!("volume task failed: {e}")))??;
    st.containers
        .events
        .publish(crate::events::Event::volume(&rec.1.name, "create"));
    Ok((StatusCode::CREATED, Json(rec.0)).into_response())
}

/// `GET /volumes`
pub async fn list(State(st): State<AppState>, q: Q) -> ApiResult<Json<Value>> {
    let f = q.filters(&["name", "label", "dangling", "driver"])?;
    let dangling = match f
        .0
        .get("dangling")
        .and_then(|v| v.first())
        .map(String::as_str)
    {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(o) => return Err(ApiError::invalid(format!("invalid filter 'dangling={o}'"))),
    };
    let vols = st.containers.volumes.clone();
    let refs = st.containers.volume_refs();
    let mut out = Vec::new();
    for rec in vols.list() {
        let ok = f.any("name", |n| rec.name.contains(n))
            && f.any("driver", |d| d == rec.driver)
            && f.labels_match(&rec.labels)
            && dangling.is_none_or(|d| d != refs.contains_key(&rec.name));
        if ok {
            out.push(vols.view(&rec));
        }
    }
    Ok(Json(json!({"Volumes": out, "Warnings": []})))
}

/// `GET /volumes/{name}`
pub async fn inspect(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let vols = &st.containers.volumes;
    let rec = vols.get(&name)?;
    Ok(Json(vols.view(&rec)))
}

/// `DELETE /volumes/{name}`
pub async fn remove(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Q,
) -> ApiResult<StatusCode> {
    let vols = st.containers.volumes.clone();
    if let Err(e) = vols.get(&name) {
        // `docker volume rm -f` of a missing volume is not an error.
        return if q.bool("force", false) {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(e)
        };
    }
    let used = users(&st, &name);
    if !used.is_empty() {
        return Err(ApiError::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            used.join(", ")
        )));
    }
    let n = name.clone();
    tokio::task::spawn_blocking(move || vols.remove(&n))
        .await
        .map_err(|e| ApiError::internal(format!("volume task failed: {e}")))??;
    st.containers
        .events
        .publish(crate::events::Event::volume(&name, "destroy"));
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`: unused anonymous volumes (all unused ones with `all=true`), as
/// Docker 23 and later; like Docker, volumes with mount options are left alone (nothing to
/// reclaim on this disk) and the `prune` event reports the space.
pub async fn prune(State(st): State<AppState>, q: Q) -> ApiResult<Json<Value>> {
    let f = q.filters(&["label", "label!", "all"])?;
    let all =
        f.0.get("all")
            .and_then(|v| v.first())
            .is_some_and(|v| v == "true" || v == "1");
    let vols = st.containers.volumes.clone();
    let refs = st.containers.volume_refs();
    let candidates: Vec<VolumeRecord> = vols
        .list()
        .into_iter()
        .filter(|r| (all || crate::volumes::is_anonymous(r)) && f.labels_match(&r.labels))
        .filter(|r| !super::prune::excluded_by_not_labels(&f, &r.labels))
        .filter(|r| r.options.is_empty())
        .filter(|r| !refs.contains_key(&r.name))
        .collect();
    let (deleted, space) = tokio::task::spawn_blocking(move || {
        let mut deleted = Vec::new();
        let mut space = 0u64;
        for r in candidates {
            let size = super::prune::disk_usage(&vols.data_dir(&r.name)).unwrap_or(0);
            match vols.remove(&r.name) {
                Ok(()) => {
                    space += size;
                    deleted.push(r.name);
                }
                Err(e) => {
                    tracing::warn!(volume = %r.name, error = %e.message, "cannot prune volume")
                }
            }
        }
        (deleted, space)
    })
    .await
    .map_err(|e| ApiError::internal(format!("volume task failed: {e}")))?;
    for name in &deleted {
        st.containers
            .events
            .publish(crate::events::Event::volume(name, "destroy"));
    }
    st.containers
        .events
        .publish(super::prune::prune_event("volume", space));
    Ok(Json(
        json!({"VolumesDeleted": deleted, "SpaceReclaimed": space}),
    ))
}
