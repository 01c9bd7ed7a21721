//! `/networks`: list, inspect, create, remove, prune, connect and disconnect, as Docker's
//! API shapes them (`NetworkResource`, `{"Id","Warning"}`, `{"NetworksDeleted"}`).

use std::collections::HashMap;

use arca_api::docker;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::networks::CreateRequest;
use crate::networks::record::NetworkRecord;
use crate::query::Q;

fn body_json(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

/// Whether a network passes `GET /networks` filters.
fn accepted(f: &crate::query::Filters, rec: &NetworkRecord) -> ApiResult<bool> {
    let dangling = match f
        .0
        .get("dangling")
        .and_then(|v| v.first())
        .map(String::as_str)
    {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "invalid filter 'dangling={other}'"
            )));
        }
    };
    for t in f.0.get("type").into_iter().flatten() {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::invalid(format!("invalid filter: 'type'='{t}'")));
        }
    }
    Ok(f.any("name", |n| rec.name.contains(n))
        && f.any("id", |i| rec.id.starts_with(i))
        && f.any("driver", |d| d == rec.driver.as_str())
        && f.any("scope", |s| s == "local")
        && f.any("type", |t| (t == "builtin") == rec.builtin)
        && f.labels_match(&rec.labels)
        && dangling.is_none_or(|d| d == (rec.endpoints.is_empty() && !rec.builtin)))
}

/// `GET /networks`
pub async fn list(
    State(st): State<AppState>,
    q: Q,
) -> ApiResult<Json<Vec<crate::networks::NetworkResource>>> {
    let f = q.filters(&["name", "id", "driver", "label", "type", "scope", "dangling"])?;
    let nets = &st.containers.networks;
    let mut out = Vec::new();
    for rec in nets.list() {
        if accepted(&f, &rec)? {
            // Docker's list leaves the containers out (inspect has them).
            out.push(nets.resource(&rec, false));
        }
    }
    Ok(Json(out))
}

/// `GET /networks/{id}`
pub async fn inspect(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<crate::networks::NetworkResource>> {
    let nets = &st.containers.networks;
    let rec = nets.get(&id)?;
    Ok(Json(nets.resource(&rec, true)))
}

fn strings(v: &Value) -> HashMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /networks/create`
pub async fn create(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let v = body_json(&body)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let configs = v
        .pointer("/IPAM/Config")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::invalid(
            "only one IPv4 address pool per network is supported",
        ));
    }
    if v.get("EnableIPv6").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::invalid("IPv6 networks are not supported yet"));
    }
    let ipam = configs.first();
    let field = |k: &str| {
        ipam.and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let req = CreateRequest {
        name: text("Name").unwrap_or_default(),
        driver: text("Driver"),
        internal: v.get("Internal").and_then(Value::as_bool).unwrap_or(false),
        attachable: v
            .get("Attachable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        labels: strings(v.get("Labels").unwrap_or(&Value::Null)),
        options: strings(v.get("Options").unwrap_or(&Value::Null)),
        subnet: field("Subnet"),
        gateway: field("Gateway"),
        ip_range: field("IPRange"),
    };
    let rec = st.containers.networks.create(req).await?;
    st.containers.events.publish(crate::events::Event::network(
        &rec.id,
        &rec.name,
        rec.driver.as_str(),
        "create",
    ));
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": rec.id, "Warning": ""})),
    )
        .into_response())
}

/// `DELETE /networks/{id}`
pub async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let rec = st.containers.networks.remove(&id).await?;
    st.containers.events.publish(crate::events::Event::network(
        &rec.id,
        &rec.name,
        rec.driver.as_str(),
        "destroy",
    ));
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /networks/prune`: user networks no container refers to.
pub async fn prune(State(st): State<AppState>, q: Q) -> ApiResult<Json<Value>> {
    let f = q.filters(&["until", "label", "label!"])?;
    // Docker's one `until` of every prune (timestamps, dates or Go durations such as `24h`).
    let until = super::prune::until_filter(&f)?;
    let containers = st.containers.clone();
    let in_use = |rec: &NetworkRecord| {
        containers.all().iter().any(|c| {
            let r = c.snapshot();
            let mode = r.host_config.network_mode.as_deref().unwrap_or("");
            mode == rec.name
                || mode == rec.id
                || r.endpoints_config
                    .keys()
                    .any(|k| *k == rec.name || *k == rec.id)
        })
    };
    let keep = |rec: &NetworkRecord| {
        let created = chrono::DateTime::parse_from_rfc3339(&rec.created)
            .map(|d| d.timestamp() as f64)
            .unwrap_or(0.0);
        !f.labels_match(&rec.labels)
            || super::prune::excluded_by_not_labels(&f, &rec.labels)
            || until.is_some_and(|u| created > u as f64)
    };
    let removed = st.containers.networks.prune(in_use, keep).await?;
    st.containers
        .events
        .publish(super::prune::prune_event("network", 0));
    Ok(Json(json!({ "NetworksDeleted": removed })))
}

/// `POST /networks/{id}/connect`
pub async fn connect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let v = body_json(&body)?;
    let container = v
        .get("Container")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid("a container is required"))?;
    let settings: docker::EndpointSettings = match v.get("EndpointConfig") {
        Some(e) if !e.is_null() => serde_json::from_value(e.clone())
            .map_err(|e| ApiError::invalid(format!("invalid EndpointConfig: {e}")))?,
        _ => docker::EndpointSettings::default(),
    };
    let c = st.containers.get(container)?;
    st.containers.connect(&c, &id, settings).await?;
    Ok(StatusCode::OK)
}

/// `POST /networks/{id}/disconnect`
pub async fn disconnect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let v = body_json(&body)?;
    let container = v
        .get("Container")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid("a container is required"))?;
    let force = v.get("Force").and_then(Value::as_bool).unwrap_or(false);
    let c = match st.containers.get(container) {
        Ok(c) => c,
        // Docker lets a forced disconnect clean up after a container that is gone.
        Err(_) if force => {
            let rec = st.containers.networks.get(&id)?;
            if let Some(cid) = rec
                .endpoints
                .iter()
                .find(|(cid, ep)| cid.starts_with(container) || ep.name == container)
                .map(|(cid, _)| cid.clone())
            {
                st.containers.networks.detach(&cid).await;
            }
            return Ok(StatusCode::OK);
        }
        Err(e) => return Err(e),
    };
    st.containers.disconnect(&c, &id).await?;
    Ok(StatusCode::OK)
}
