//! Image management endpoints beyond list/inspect/tag/rmi: `POST /commit`,
//! `GET /images/{name}/history`, `GET /images/{name}/get` and `GET /images/get?names=`
//! (`docker save`, streamed), `POST /images/prune` and `GET /system/df`. Shapes follow
//! Docker's Engine API; the store does the work on the blocking pool.

use std::io::{self, Write};

use arca_model::Reference;
use arca_store::{Image, RemoveItem};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::prune::disk_usage;
use super::tar_stream::{self, ChannelWriter};
use crate::containers::commit::CommitRequest;
use crate::containers::mount_points;
use crate::error::{ApiError, ApiResult};
use crate::events::Event;
use crate::query::Q;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("image task failed: {e}")))?
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn emit_image(st: &AppState, img: &Image, name: &str, action: &str) {
    let id = img.id.to_string();
    let labels = img.config.pointer("/config/Labels");
    let name = if name.is_empty() { id.as_str() } else { name };
    st.containers
        .events
        .publish(Event::image(&id, name, labels, action));
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`
pub async fn commit(State(st): State<AppState>, q: Q, body: Bytes) -> ApiResult<Response> {
    let name = q.get("container").unwrap_or("");
    let c = st.containers.get(name)?;
    let reference = match q.get("repo").filter(|r| !r.is_empty()) {
        None => None,
        Some(repo) if repo.contains('@') => {
            return Err(ApiError::invalid(
                "refusing to create a tag with a digest reference",
            ));
        }
        Some(repo) => Some(
            match q.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => Reference::with_tag(repo, t),
                None => repo.parse::<Reference>().map(Reference::with_default_tag),
            }
            .map_err(|e| ApiError::invalid(e.to_string()))?,
        ),
    };
    let overrides = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => Map::new(),
            Ok(_) => return Err(ApiError::invalid("the commit body must be a JSON object")),
            Err(e) => return Err(ApiError::invalid(format!("invalid JSON body: {e}"))),
        }
    };
    let req = CommitRequest {
        reference,
        author: q.get("author").unwrap_or("").to_owned(),
        comment: q.get("comment").unwrap_or("").to_owned(),
        changes: q.all("changes"),
        overrides,
        pause: q.bool("pause", true),
    };
    let img = st.containers.commit(&c, req).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": img.id.to_string()}),
    ))
}

/// `GET /images/{name}/history`
pub async fn history(st: &AppState, name: &str) -> ApiResult<Response> {
    let store = st.store.clone();
    let name = name.to_owned();
    let items = blocking(move || store.history(&name).map_err(ApiError::from)).await?;
    let out: Vec<Value> = items
        .iter()
        .map(|h| {
            json!({
                "Id": h.id.as_ref().map_or_else(|| "<missing>".to_owned(), ToString::to_string),
                "Created": h.created,
                "CreatedBy": h.created_by,
                "Tags": if h.tags.is_empty() { Value::Null } else { json!(h.tags) },
                "Size": h.size,
                "Comment": h.comment,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

/// `GET /images/{name}/get`
pub async fn save_one(st: &AppState, name: &str) -> ApiResult<Response> {
    save(st, vec![name.to_owned()]).await
}

/// `GET /images/get?names=a&names=b`
pub async fn save_many(State(st): State<AppState>, q: Q) -> ApiResult<Response> {
    let names: Vec<String> = q
        .all("names")
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err(ApiError::invalid("no image names given"));
    }
    save(&st, names).await
}

async fn save(st: &AppState, names: Vec<String>) -> ApiResult<Response> {
    // Resolve every name first: a missing image is a clean 404, not a cut-off stream.
    let store = st.store.clone();
    let check = names.clone();
    let images = blocking(move || {
        check
            .iter()
            .map(|n| store.get(n).map_err(ApiError::from))
            .collect::<ApiResult<Vec<_>>>()
    })
    .await?;
    let (tx, response) = tar_stream::channel();
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx.clone());
        let result = store.save(&names, &mut w).and_then(|()| {
            w.flush()
                .map_err(|e| arca_store::StoreError::Output(io::Error::other(e)))
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "image save failed");
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    for img in &images {
        let name = img.repo_tags.first().cloned().unwrap_or_default();
        emit_image(st, img, &name, "save");
    }
    Ok(response)
}

/// Docker's `until` filter: a Unix timestamp, an RFC 3339 time, or a Go duration (`24h`,
/// `1h30m`) before now. Returns seconds since the epoch.
pub(super) fn until_timestamp(v: &str) -> Option<i64> {
    if let Ok(f) = v.parse::<f64>() {
        return Some(f as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp());
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if (c == 'm' || c == 'u' || c == 'n') && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(chrono::Utc::now().timestamp() - total as i64)
}

/// `POST /images/prune?filters=`
pub async fn prune(State(st): State<AppState>, q: Q) -> ApiResult<Response> {
    let f = q.filters(&["dangling", "until", "label", "label!"])?;
    let all = match f
        .0
        .get("dangling")
        .and_then(|v| v.first())
        .map(String::as_str)
    {
        None => false,
        Some("true" | "1") => false,
        Some("false" | "0") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "invalid filter 'dangling={other}'"
            )));
        }
    };
    let until = super::prune::until_filter(&f)?;
    let store = st.store.clone();
    let containers = st.containers.clone();
    let filter = f.clone();
    let (report, removed) = blocking(move || {
        let images = store.list()?;
        // Docker's rules: created at or before `until`, every `label`, not all `label!`.
        let accept = |i: &Image| {
            let labels: std::collections::HashMap<String, String> = i
                .config
                .pointer("/config/Labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            let created = chrono::DateTime::parse_from_rfc3339(&i.created)
                .map(|t| t.timestamp())
                .unwrap_or(0);
            until.is_none_or(|u| created <= u)
                && filter.labels_match(&labels)
                && !super::prune::excluded_by_not_labels(&filter, &labels)
        };
        let report = store.prune(all, &accept, &|id| containers.image_in_use(id))?;
        let removed: Vec<Image> = images
            .into_iter()
            .filter(|i| {
                report
                    .items
                    .iter()
                    .any(|it| matches!(it, RemoveItem::Deleted(d) if *d == i.id))
            })
            .collect();
        Ok((report, removed))
    })
    .await?;
    for img in &removed {
        emit_image(&st, img, "", "delete");
    }
    st.containers
        .events
        .publish(super::prune::prune_event("image", report.space_reclaimed));
    let items: Vec<Value> = report
        .items
        .iter()
        .map(|i| match i {
            RemoveItem::Untagged(t) => json!({"Untagged": t}),
            RemoveItem::Deleted(d) => json!({"Deleted": d.to_string()}),
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "ImagesDeleted": if items.is_empty() { Value::Null } else { Value::Array(items) },
            "SpaceReclaimed": report.space_reclaimed,
        }),
    ))
}

/// `GET /system/df?type=`: images (`LayersSize` counts each layer once), containers (with
/// `SizeRw` and their volume mounts), local volumes (with `UsageData`) and the (empty)
/// build cache, as Docker's `types.DiskUsage`.
pub async fn system_df(State(st): State<AppState>, q: Q) -> ApiResult<Response> {
    let types = q.all("type");
    if let Some(bad) = types
        .iter()
        .find(|t| !matches!(t.as_str(), "container" | "image" | "volume" | "build-cache"))
    {
        return Err(ApiError::invalid(format!("unknown object type: {bad}")));
    }
    let want = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
    let (want_images, want_containers) = (want("image"), want("container"));
    let (want_volumes, want_cache) = (want("volume"), want("build-cache"));
    let store = st.store.clone();
    let records: Vec<_> = st.containers.all().iter().map(|c| c.snapshot()).collect();
    let paths = st.containers.paths.clone();
    let vols = st.containers.volumes.clone();
    let out = blocking(move || {
        let mut out = Map::new();
        let usage = if want_images || want_containers {
            store.usage()?
        } else {
            Vec::new()
        };
        if want_images {
            out.insert("LayersSize".into(), json!(store.layers_size()?));
            let images: Vec<Value> = usage
                .iter()
                .map(|u| {
                    let i = &u.image;
                    let used = records.iter().filter(|r| r.image_id == i.id).count();
                    json!({
                        "Id": i.id.to_string(),
                        "ParentId": "",
                        "RepoTags": i.repo_tags,
                        "RepoDigests": i.repo_digests,
                        "Created": chrono::DateTime::parse_from_rfc3339(&i.created)
                            .map(|t| t.timestamp()).unwrap_or(0),
                        "Size": i.size,
                        "SharedSize": u.shared_size,
                        "VirtualSize": i.size,
                        "Labels": i.config.pointer("/config/Labels").cloned()
                            .filter(|v| !v.is_null()).unwrap_or(json!({})),
                        "Containers": used,
                    })
                })
                .collect();
            out.insert("Images".into(), Value::Array(images));
        }
        if want_containers {
            let now = chrono::Utc::now();
            let containers: Vec<Value> = records
                .iter()
                .map(|r| {
                    let rw = disk_usage(&paths.upper_dir(&r.id)).unwrap_or(0);
                    let image_size = usage
                        .iter()
                        .find(|u| u.image.id == r.image_id)
                        .map_or(0, |u| u.image.size);
                    let mut v = serde_json::to_value(crate::containers::view::summary(r, now))
                        .unwrap_or_else(|_| json!({}));
                    v["SizeRw"] = json!(rw);
                    v["SizeRootFs"] = json!(rw + image_size);
                    // The CLI's LOCAL VOLUMES column counts the `local` mounts.
                    v["Mounts"] = serde_json::to_value(mount_points::summaries(r, &vols))
                        .unwrap_or_else(|_| json!([]));
                    v
                })
                .collect();
            out.insert("Containers".into(), Value::Array(containers));
        }
        if want_volumes {
            // RefCount: the containers (any state) whose mount points use it, as `/volumes`
            // decides "in use".
            let refs = mount_points::refs_of(records.iter().cloned());
            // As Docker, volumes with driver options (mounted from elsewhere) are left out.
            let volumes: Vec<Value> = vols
                .list()
                .iter()
                .filter(|rec| rec.options.is_empty())
                .map(|rec| {
                    let mut v = vols.view(rec);
                    let size = disk_usage(&vols.data_dir(&rec.name)).map_or(-1, |s| s as i64);
                    let refs = refs.get(&rec.name).copied().unwrap_or(0);
                    v["UsageData"] = json!({"Size": size, "RefCount": refs});
                    v
                })
                .collect();
            out.insert("Volumes".into(), Value::Array(volumes));
        }
        if want_cache {
            out.insert("BuildCache".into(), json!([]));
        }
        Ok(Value::Object(out))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_accepts_timestamps_dates_and_durations() {
        assert_eq!(until_timestamp("1700000000"), Some(1_700_000_000));
        assert_eq!(until_timestamp("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        let now = chrono::Utc::now().timestamp();
        let d = until_timestamp("1h30m").expect("duration");
        assert!((now - 5400 - d).abs() <= 1);
        assert_eq!(until_timestamp("10x"), None);
        assert_eq!(until_timestamp("h"), None);
    }
}
