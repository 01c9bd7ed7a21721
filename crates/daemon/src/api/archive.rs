//! `HEAD|GET|PUT /containers/{id}/archive?path=` (`docker cp`): a path's stat in the
//! `X-Docker-Container-Path-Stat` header (base64 of its JSON), a tar of it, or a tar
//! extracted into a directory. The work is in [`crate::containers::archive`].

use arca_api::shim::ArchiveOp;
use axum::body::{Body, BodyDataStream};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::query::Q;

/// Docker's check: the path must be given.
fn path_of(q: &Q) -> ApiResult<String> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_owned()),
        _ => Err(ApiError::invalid("bad parameter: path cannot be empty")),
    }
}

fn with_stat(mut r: Response, stat: Option<String>) -> Response {
    if let Some(stat) = stat {
        let encoded = arca_api::b64::encode(stat.as_bytes());
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            r.headers_mut()
                .insert(arca_store::archive::PATH_STAT_HEADER, v);
        }
    }
    r
}

/// `HEAD /containers/{id}/archive`
pub async fn head(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    let path = path_of(&q)?;
    let c = st.containers.get(&id)?;
    let answer = st
        .containers
        .archive::<BodyDataStream>(&c, &id, ArchiveOp::Stat { path }, None)
        .await?;
    Ok(with_stat(Response::new(Body::empty()), answer.stat))
}

/// `GET /containers/{id}/archive`
pub async fn get(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    let path = path_of(&q)?;
    let c = st.containers.get(&id)?;
    let answer = st
        .containers
        .archive::<BodyDataStream>(&c, &id, ArchiveOp::Get { path }, None)
        .await?;
    let r = match answer.tar {
        Some(rx) => super::tar_stream::response(rx),
        None => Response::new(Body::empty()),
    };
    Ok(with_stat(r, answer.stat))
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`
pub async fn put(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
    body: Body,
) -> ApiResult<Response> {
    let mut body = body.into_data_stream();
    let checked = path_of(&q).and_then(|p| Ok((p, st.containers.get(&id)?)));
    let (path, c) = match checked {
        Ok(ok) => ok,
        Err(e) => {
            crate::containers::archive::drain(&mut body).await;
            return Err(e);
        }
    };
    let op = ArchiveOp::Put {
        path,
        no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir", false),
        owner_user: q.bool("copyUIDGID", false).then(String::new),
    };
    st.containers.archive(&c, &id, op, Some(body)).await?;
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}
