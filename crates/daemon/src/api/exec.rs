//! Exec endpoints: create, start (hijacked or detached), inspect, resize.

use arca_api::docker::{ExecConfig, ExecStartConfig};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiVersion, AppState};
use crate::error::{ApiError, ApiResult};
use crate::query::Q;

fn parse<T: serde::de::DeserializeOwned + Default>(body: &[u8], what: &str) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON in {what}: {e}")))
}

fn json(status: StatusCode, v: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub async fn create(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let config: ExecConfig = parse(&body, "exec config")?;
    let e = st.containers.create_exec(&c, config)?;
    let action = format!("exec_create: {}", e.command());
    st.containers.emit(&c, action, &[("execID", e.id.clone())]);
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": e.id }),
    ))
}

pub async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let e = st.containers.execs.get(&id)?;
    Ok(json(StatusCode::OK, &e.inspect()))
}

pub async fn resize(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<StatusCode> {
    let e = st.containers.execs.get(&id)?;
    let rows =
        u16::try_from(q.int("h")?.unwrap_or(0)).map_err(|_| ApiError::invalid("invalid height"))?;
    let cols =
        u16::try_from(q.int("w")?.unwrap_or(0)).map_err(|_| ApiError::invalid("invalid width"))?;
    st.containers.resize_exec(&e, rows, cols).await?;
    Ok(StatusCode::OK)
}

pub async fn start(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(v): Extension<ApiVersion>,
    req: Request,
) -> ApiResult<Response> {
    let e = st.containers.execs.get(&id)?;
    let (mut parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::invalid(format!("cannot read request body: {e}")))?;
    let start: ExecStartConfig = parse(&body, "exec start config")?;
    let tty = start.tty.or(e.config.tty).unwrap_or(false);
    if start.detach.unwrap_or(false) {
        st.containers.start_exec_detached(&e, tty).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"tcp"));
    if !upgrade {
        return Err(ApiError::invalid(
            "exec start needs a connection upgrade (send Connection: Upgrade and Upgrade: tcp)",
        ));
    }
    let state = e.state();
    if state.started {
        return Err(ApiError::conflict(format!(
            "Exec {} has already been started",
            e.id
        )));
    }
    let c = st.containers.get(e.container.as_str())?;
    if !c.status().is_running() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let console = start
        .console_size
        .or_else(|| e.config.console_size.clone())
        .filter(|s| s.len() == 2 && s[0] > 0 && s[1] > 0)
        .map(|s| [s[0] as u16, s[1] as u16]);
    let on_upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::invalid("this connection cannot be upgraded"))?;
    let containers = st.containers.clone();
    tokio::spawn(async move {
        if let Ok(io) = on_upgrade.await {
            containers.start_exec_attached(e, tty, console, io).await;
        }
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    let ct = if !tty && v.0 >= 42 {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    Ok(r)
}
