//! Image endpoints. The store is synchronous; every call runs on the blocking pool.

use std::io::Read;

use arca_model::Reference;
use arca_store::{Image, RemoveItem, Store};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::Event;
use crate::query::{Q, glob};

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("image task failed: {e}")))?
}

fn json_ok(v: &Value) -> Response {
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn ndjson(status: StatusCode, lines: &[Value]) -> Response {
    let mut body = String::new();
    for l in lines {
        body.push_str(&l.to_string());
        body.push('\n');
    }
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Publishes an image event; `name` defaults to the image ID, as Docker's.
fn emit(st: &AppState, img: &Image, name: Option<&str>, action: &str) {
    let id = img.id.to_string();
    let labels = img.config.pointer("/config/Labels");
    let ev = Event::image(&id, name.unwrap_or(&id), labels, action);
    st.containers.events.publish(ev);
}

fn created_unix(img: &Image) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&img.created)
        .map(|d| d.timestamp())
        .unwrap_or(0)
}

fn summary(img: &Image, containers: i64) -> Value {
    json!({
        "Id": img.id.to_string(),
        "ParentId": "",
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Created": created_unix(img),
        "Size": img.size,
        "SharedSize": -1,
        "VirtualSize": img.size,
        "Labels": img.config.pointer("/config/Labels").cloned().filter(|v| !v.is_null()).unwrap_or(json!({})),
        "Containers": containers,
    })
}

fn inspect_json(img: &Image) -> Value {
    let c = &img.config;
    let config = c.get("config").cloned().unwrap_or(json!({}));
    json!({
        "Id": img.id.to_string(),
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Parent": "",
        "Comment": c.get("comment").cloned().unwrap_or(json!("")),
        "Created": img.created,
        // Compose v1 reads ContainerConfig on recreate; Docker dropped it in API 1.45.
        "Container": "",
        "ContainerConfig": {"Volumes": config.get("Volumes").cloned().unwrap_or(Value::Null)},
        "DockerVersion": "",
        "Author": c.get("author").cloned().unwrap_or(json!("")),
        "Config": config,
        "Architecture": c.get("architecture").cloned().unwrap_or(json!("amd64")),
        "Variant": c.get("variant").cloned(),
        "Os": c.get("os").cloned().unwrap_or(json!("linux")),
        "Size": img.size,
        "VirtualSize": img.size,
        "GraphDriver": {"Name": "overlay2", "Data": null},
        "RootFS": {"Type": "layers", "Layers": img.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
}

pub async fn list(State(st): State<AppState>, q: Q) -> ApiResult<Response> {
    let store = st.store.clone();
    let images = blocking(move || store.list().map_err(ApiError::from)).await?;
    let f = q.filters(&["dangling", "label", "reference"])?;
    let all_containers: Vec<_> = st
        .containers
        .all()
        .iter()
        .map(|c| c.snapshot().image_id)
        .collect();
    let out: Vec<Value> = images
        .iter()
        .filter(|i| {
            f.any("dangling", |v| {
                (v == "true" || v == "1") == i.repo_tags.is_empty()
            }) && f.any("reference", |pat| {
                i.repo_tags.iter().any(|t| {
                    let repo = t.rsplit_once(':').map_or(t.as_str(), |(r, _)| r);
                    glob(pat, t) || glob(pat, repo)
                })
            }) && f.labels_match(
                &i.config
                    .pointer("/config/Labels")
                    .and_then(|l| serde_json::from_value(l.clone()).ok())
                    .unwrap_or_default(),
            )
        })
        .map(|i| {
            summary(
                i,
                all_containers.iter().filter(|c| *c == &i.id).count() as i64,
            )
        })
        .collect();
    Ok(json_ok(&Value::Array(out)))
}

fn split_suffix<'a>(rest: &'a str, suffix: &str) -> Option<&'a str> {
    rest.strip_suffix(suffix).filter(|n| !n.is_empty())
}

pub async fn get_by_name(
    State(st): State<AppState>,
    Path(rest): Path<String>,
) -> ApiResult<Response> {
    if let Some(name) = split_suffix(&rest, "/history") {
        return super::image_ops::history(&st, name).await;
    }
    if let Some(name) = split_suffix(&rest, "/get") {
        return super::image_ops::save_one(&st, name).await;
    }
    let Some(name) = split_suffix(&rest, "/json") else {
        return Err(ApiError::not_found("page not found"));
    };
    let store = st.store.clone();
    let name = name.to_owned();
    let img = blocking(move || store.get(&name).map_err(ApiError::from)).await?;
    Ok(json_ok(&inspect_json(&img)))
}

pub async fn post_by_name(
    State(st): State<AppState>,
    Path(rest): Path<String>,
    q: Q,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(name) = split_suffix(&rest, "/tag") {
        let repo = q.get("repo").unwrap_or("").to_owned();
        let tag = q
            .get("tag")
            .filter(|t| !t.is_empty())
            .unwrap_or("latest")
            .to_owned();
        let reference = if repo.contains('@') {
            return Err(ApiError::invalid(
                "refusing to create a tag with a digest reference",
            ));
        } else {
            Reference::with_tag(&repo, &tag).map_err(|e| ApiError::invalid(e.to_string()))?
        };
        let store = st.store.clone();
        let name = name.to_owned();
        let tagged = reference.to_string();
        let img = blocking(move || {
            let img = store.get(&name)?;
            store.tag(&img.id, &reference)?;
            Ok(img)
        })
        .await?;
        emit(&st, &img, Some(&tagged), "tag");
        return Ok(StatusCode::CREATED.into_response());
    }
    if let Some(name) = split_suffix(&rest, "/push") {
        return super::push::push(&st, &q, &headers, name).await;
    }
    Err(ApiError::not_found("page not found"))
}

pub async fn remove(
    State(st): State<AppState>,
    Path(rest): Path<String>,
    q: Q,
) -> ApiResult<Response> {
    let force = q.bool("force", false);
    let store = st.store.clone();
    let containers = st.containers.clone();
    let (img, items) = blocking(move || {
        let img = store.get(&rest)?;
        let items = store.remove(&rest, force, &|id| containers.image_in_use(id))?;
        Ok((img, items))
    })
    .await?;
    for i in &items {
        match i {
            RemoveItem::Untagged(_) => emit(&st, &img, None, "untag"),
            RemoveItem::Deleted(_) => emit(&st, &img, None, "delete"),
        }
    }
    let out: Vec<Value> = items
        .iter()
        .map(|i| match i {
            RemoveItem::Untagged(t) => json!({"Untagged": t}),
            RemoveItem::Deleted(d) => json!({"Deleted": d.to_string()}),
        })
        .collect();
    Ok(json_ok(&Value::Array(out)))
}

/// Runs `f` on the blocking pool with the request body as a synchronous reader.
async fn with_body_reader<T: Send + 'static>(
    body: Body,
    f: impl FnOnce(&mut dyn Read) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let mut sync = tokio_util::io::SyncIoBridge::new(reader);
    blocking(move || f(&mut sync)).await
}

pub async fn load(State(st): State<AppState>, body: Body) -> ApiResult<Response> {
    // `quiet` only hides progress bars; the "Loaded image" lines are always sent (the
    // docker CLI sets quiet whenever its output is not a terminal).
    let store = st.store.clone();
    let (lines, loaded) = with_body_reader(body, move |r| {
        let mut lines = Vec::new();
        store
            .load(r, &mut |l| lines.push(l))
            .map_err(ApiError::from)?;
        // The images named by the "Loaded image[ ID]: x" lines, for `load` events.
        let loaded: Vec<(Image, String)> = lines
            .iter()
            .filter_map(|l| l.split_once(": ").map(|(_, n)| n))
            .filter_map(|n| Some((store.get(n).ok()?, n.to_owned())))
            .collect();
        Ok((lines, loaded))
    })
    .await?;
    for (img, name) in &loaded {
        emit(&st, img, Some(name), "load");
    }
    let msgs: Vec<Value> = lines
        .iter()
        .map(|l| json!({"stream": format!("{l}\n")}))
        .collect();
    Ok(ndjson(StatusCode::OK, &msgs))
}

pub async fn create(
    State(st): State<AppState>,
    q: Q,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return Err(ApiError::invalid(format!(
                "importing from a URL ({src}) is not supported: send the archive in the request body (fromSrc=-)"
            )));
        }
        let reference = match q.get("repo").filter(|r| !r.is_empty()) {
            None => None,
            Some(repo) => {
                let tag = q.get("tag").filter(|t| !t.is_empty());
                Some(
                    match tag {
                        Some(t) => Reference::with_tag(repo, t),
                        None => repo.parse::<Reference>().map(Reference::with_default_tag),
                    }
                    .map_err(|e| ApiError::invalid(e.to_string()))?,
                )
            }
        };
        let changes: Vec<String> = q.all("changes");
        let message = q.get("message").map(str::to_owned);
        let store: std::sync::Arc<Store> = st.store.clone();
        let img = with_body_reader(body, move |r| {
            store
                .import(r, reference.as_ref(), &changes, message.as_deref())
                .map_err(ApiError::from)
        })
        .await?;
        emit(&st, &img, None, "import");
        return Ok(ndjson(
            StatusCode::OK,
            &[json!({"status": img.id.to_string()})],
        ));
    }
    if let Some(image) = q.get("fromImage").filter(|i| !i.is_empty()) {
        return super::pull::pull(&st, &q, &headers, image).await;
    }
    Err(ApiError::invalid("fromImage or fromSrc is required"))
}
