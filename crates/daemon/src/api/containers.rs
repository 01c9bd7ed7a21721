//! Container endpoints.

use std::sync::Arc;

use arca_api::docker::{ContainerCreateBody, ContainerWaitResponse};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::{ApiVersion, AppState};
use crate::containers::attach::AttachOpts;
use crate::containers::logs::{self, LogOpts};
use crate::containers::stop::{WaitCondition, parse_signal};
use crate::containers::{mount_points, view};
use crate::error::{ApiError, ApiResult};
use crate::query::Q;

fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => {
            let mut r = (status, b).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => ApiError::from_internal("cannot encode response", &e).into_response(),
    }
}

pub async fn create(State(st): State<AppState>, q: Q, body: Bytes) -> ApiResult<Response> {
    let body: ContainerCreateBody = if body.is_empty() {
        return Err(ApiError::invalid(
            "request body is empty: a container config is required",
        ));
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON in container config: {e}")))?
    };
    let c = st.containers.create(q.get("name"), body).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &serde_json::json!({"Id": c.id.to_string(), "Warnings": []}),
    ))
}

pub async fn list(State(st): State<AppState>, q: Q) -> ApiResult<Response> {
    let all = q.bool("all", false);
    let limit = q.int("limit")?.filter(|l| *l > 0);
    let f = q.filters(&[
        "id", "name", "label", "status", "ancestor", "exited", "health",
    ])?;
    let now = chrono::Utc::now();
    let mut recs: Vec<_> = st
        .containers
        .all()
        .iter()
        .map(|c| c.snapshot())
        .filter(|r| {
            all || limit.is_some() || f.0.contains_key("status") || r.state.status.is_running()
        })
        .filter(|r| {
            f.any("id", |v| r.id.as_str().starts_with(v))
                && f.any("name", |v| r.name.contains(v.trim_start_matches('/')))
                && f.any("status", |v| v == r.state.status.as_str())
                && f.any("ancestor", |v| {
                    r.image == v
                        || r.image_id.to_string().starts_with(v)
                        || r.image_id.hex().starts_with(v)
                        || v.parse::<arca_model::Reference>().is_ok_and(|want| {
                            r.image.parse::<arca_model::Reference>().is_ok_and(|have| {
                                have.with_default_tag() == want.clone().with_default_tag()
                            })
                        })
                })
                && f.any("exited", |v| {
                    r.state.status == arca_model::ContainerStatus::Exited
                        && v.parse::<i64>().is_ok_and(|n| n == r.state.exit_code)
                })
                && f.any("health", |v| v == view::health_status(r))
                && f.labels_match(&r.config.labels.clone().unwrap_or_default())
        })
        .collect();
    recs.sort_by(|a, b| b.created.cmp(&a.created));
    if let Some(l) = limit {
        recs.truncate(l as usize);
    }
    let nets = &st.containers.networks;
    let out: Vec<_> = recs
        .iter()
        .map(|r| {
            let mut s = view::summary(r, now);
            s.ports = Some(view::port_summaries(r, &nets.endpoints_of(r.id.as_str())));
            s.mounts = Some(mount_points::summaries(r, &st.containers.volumes));
            s
        })
        .collect();
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let rec = c.snapshot();
    let nets = &st.containers.networks;
    let mut v = serde_json::to_value(view::inspect(&rec, &st.containers.paths))
        .map_err(|e| ApiError::internal(format!("cannot render the container: {e}")))?;
    v["NetworkSettings"] = view::network_settings(&rec, &nets.endpoints_of(rec.id.as_str()), nets);
    v["Mounts"] = view::mounts(&rec, &st.containers.volumes);
    Ok(json_response(StatusCode::OK, &v))
}

pub async fn start(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    st.containers.start(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    let _op = c.op.lock().await;
    st.containers
        .stop(&c, q.get("signal").filter(|s| !s.is_empty()), q.int("t")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn restart(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    {
        let _op = c.op.lock().await;
        match st
            .containers
            .stop(&c, q.get("signal").filter(|s| !s.is_empty()), q.int("t")?)
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind == arca_model::ErrorKind::NotModified => {}
            Err(e) => return Err(e),
        }
    }
    st.containers.start(&c).await?;
    st.containers.emit(&c, "restart", &[]);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kill(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    let sig = parse_signal(
        q.get("signal")
            .filter(|s| !s.is_empty())
            .unwrap_or("SIGKILL"),
    )?;
    st.containers.kill(&c, sig).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    st.containers
        .remove_with_volumes(&c, q.bool("force", false), q.bool("v", false))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Headers go out at once (the docker CLI waits for them before it starts the container);
/// the body follows when the condition is met.
pub async fn wait(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let cond = WaitCondition::parse(q.get("condition"))?;
    // Registered now, before the headers go out: "next-exit" means after this request.
    let waiter = st.containers.wait(&c, cond);
    let fut = async move {
        let code = waiter.await;
        let err = {
            let e = c.snapshot().state.error;
            (!e.is_empty()).then_some(arca_api::docker::ContainerWaitExitError { message: Some(e) })
        };
        let body = ContainerWaitResponse {
            status_code: code,
            error: err,
        };
        let mut v = serde_json::to_vec(&body).unwrap_or_default();
        v.push(b'\n');
        Ok::<_, std::io::Error>(Bytes::from(v))
    };
    let mut r = Response::new(Body::from_stream(futures_util::stream::once(fut)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn stream_content_type(tty: bool, v: ApiVersion) -> &'static str {
    if !tty && v.0 >= 42 {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

pub async fn attach(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(v): Extension<ApiVersion>,
    q: Q,
    mut req: Request,
) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let tty = c.snapshot().config.tty.unwrap_or(false);
    let keys = q
        .get("detachKeys")
        .filter(|k| !k.is_empty())
        .unwrap_or(&st.containers.settings.detach_keys);
    let opts = AttachOpts {
        stdin: q.bool("stdin", false),
        stdout: q.bool("stdout", false),
        stderr: q.bool("stderr", false),
        detach_keys: crate::containers::detach::parse_keys(keys)?,
    };
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"tcp"));
    if !upgrade {
        return Err(ApiError::invalid(
            "attach needs a connection upgrade (send Connection: Upgrade and Upgrade: tcp)",
        ));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    st.containers.attach(&c, opts, on_upgrade)?;
    st.containers.emit(&c, "attach", &[]);
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stream_content_type(tty, v)),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    Ok(r)
}

pub async fn resize(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    let rows = q.int("h")?.unwrap_or(0);
    let cols = q.int("w")?.unwrap_or(0);
    if !c.status().is_running() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let req = arca_api::shim::Request::Resize {
        rows: u16::try_from(rows).map_err(|_| ApiError::invalid("invalid height"))?,
        cols: u16::try_from(cols).map_err(|_| ApiError::invalid("invalid width"))?,
    };
    match crate::shim::simple(&st.containers.paths.shim_socket(&c.id), &req).await {
        Ok(arca_api::shim::Reply::Error { message }) => Err(ApiError::invalid(message)),
        Ok(_) => Ok(StatusCode::OK),
        Err(e) => Err(ApiError::from_internal("cannot resize", &e)),
    }
}

/// `since`/`until` of the logs endpoint: Unix seconds (with a fraction) or RFC 3339, parsed
/// as `/events` parses them; `0` means unset.
fn time_arg(q: &Q, key: &str) -> ApiResult<Option<f64>> {
    match q.get(key).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => {
            let nanos = crate::events::parse_time(v)
                .map_err(|_| ApiError::invalid(format!("invalid value for {key}: {v:?}")))?;
            Ok((nanos != 0).then(|| nanos as f64 / 1e9))
        }
    }
}

pub async fn logs(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(v): Extension<ApiVersion>,
    q: Q,
) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let rec = c.snapshot();
    let tty = rec.config.tty.unwrap_or(false);
    if rec
        .host_config
        .log_config
        .as_ref()
        .and_then(|l| l.typ.as_deref())
        == Some("none")
    {
        return Err(ApiError::new(
            arca_model::ErrorKind::NotImplemented,
            "configured logging driver does not support reading",
        ));
    }
    let (stdout, stderr) = (q.bool("stdout", false), q.bool("stderr", false));
    if !stdout && !stderr {
        return Err(ApiError::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        t => Some(
            t.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("invalid tail: {t:?}")))?,
        )
        .filter(|n| *n >= 0)
        .map(|n| n as usize),
    };
    let opts = LogOpts {
        stdout,
        stderr,
        follow: q.bool("follow", false),
        timestamps: q.bool("timestamps", false),
        tail,
        since: time_arg(&q, "since")?,
        until: time_arg(&q, "until")?,
        raw: tty,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let path = st.containers.paths.log_file(&c.id);
    tokio::spawn(logs::stream(path, Arc::clone(&c), opts, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    })
    .boxed();
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stream_content_type(tty, v)),
    );
    Ok(r)
}

pub async fn rename(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("Neither old nor new names may be empty"))?;
    st.containers.rename(&c, name)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn pause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    st.containers.pause(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unpause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    st.containers.unpause(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn update(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let body: arca_api::docker::ContainerUpdateBody = if body.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON in update config: {e}")))?
    };
    let warnings = st.containers.update_container(&c, body).await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "Warnings": warnings }),
    ))
}
