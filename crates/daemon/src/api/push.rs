//! `POST /images/{name}/push?tag=`: pushes an image to its registry (`arca_registry::push`)
//! with Docker's JSON progress, credentials from `X-Registry-Auth`.
//!
//! An image missing from the store is a 404 before anything streams ("An image does not
//! exist locally with the tag: …"); registry failures (401 included) end the stream with an
//! `errorDetail` line, as Docker's. On success the last line is Docker's `aux` object (tag,
//! digest, size) and an image `push` event is published. An empty `tag` on a name without
//! one pushes every tag of that repository (`docker push --all-tags`).

use arca_model::Reference;
use arca_registry::{Progress, PushOptions, Pushed};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::AppState;
use super::pull::{Job, credentials_of, line, message, progress_response};
use crate::error::{ApiError, ApiResult};
use crate::events::Event;
use crate::query::Q;

fn not_local(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "An image does not exist locally with the tag: {name}"
    ))
}

/// The references to push: `name:tag`, or every tag of the repository when both are empty.
async fn targets(st: &AppState, name: &str, tag: Option<&str>) -> ApiResult<Vec<Reference>> {
    let named: Reference = name
        .parse()
        .map_err(|e: arca_model::ReferenceError| ApiError::invalid(e.to_string()))?;
    if named.digest().is_some() {
        return Err(ApiError::invalid(format!(
            "cannot push a digest reference: {name}"
        )));
    }
    let repo = named.familiar_repo();
    let store = st.store.clone();
    match (named.tag(), tag.filter(|t| !t.is_empty())) {
        (Some(_), _) => one(st, named, &repo).await,
        (None, Some(t)) => {
            let r = Reference::with_tag(&named.full_repo(), t)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            one(st, r, &repo).await
        }
        (None, None) => {
            let images = tokio::task::spawn_blocking(move || store.list())
                .await
                .map_err(|e| ApiError::internal(format!("image task failed: {e}")))??;
            let mut refs = Vec::new();
            for tagged in images.iter().flat_map(|i| &i.repo_tags) {
                if let Ok(r) = tagged.parse::<Reference>()
                    && r.familiar_repo() == repo
                {
                    refs.push(r);
                }
            }
            refs.sort_by_key(|r| r.to_string());
            if refs.is_empty() {
                return Err(not_local(&repo));
            }
            Ok(refs)
        }
    }
}

async fn one(st: &AppState, r: Reference, repo: &str) -> ApiResult<Vec<Reference>> {
    let (store, key) = (st.store.clone(), r.to_string());
    let found = tokio::task::spawn_blocking(move || store.get(&key).is_ok())
        .await
        .map_err(|e| ApiError::internal(format!("image task failed: {e}")))?;
    if !found {
        return Err(not_local(repo));
    }
    Ok(vec![r])
}

fn api_error(e: &arca_registry::PushError) -> ApiError {
    match e.kind() {
        arca_model::ErrorKind::Internal => ApiError::from_internal("image push failed", e),
        kind => ApiError::new(kind, e.to_string()),
    }
}

fn is_preamble(p: &Progress) -> bool {
    p.status.starts_with("The push refers to repository")
}

pub async fn push(st: &AppState, q: &Q, headers: &HeaderMap, name: &str) -> ApiResult<Response> {
    let refs = targets(st, name, q.get("tag")).await?;
    let opts = PushOptions {
        auth: credentials_of(headers),
        insecure_registries: st.registry.insecure_registries.clone(),
    };
    tracing::info!(references = ?refs.iter().map(ToString::to_string).collect::<Vec<_>>(), "pushing image");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let store = st.store.clone();
    let pushed_refs = refs.clone();
    let job = Job::spawn(async move {
        let mut done = Vec::new();
        for r in &pushed_refs {
            let p = arca_registry::push(store.clone(), r, &opts, tx.clone())
                .await
                .map_err(|e| api_error(&e))?;
            done.push((r.clone(), p));
        }
        Ok(done)
    });
    let shown = refs[0].clone();
    let st = st.clone();
    progress_response(
        rx,
        job,
        move |p| message(p, &shown),
        is_preamble,
        move |done: Vec<(Reference, Pushed)>| {
            let mut out = Vec::new();
            for (r, p) in done {
                let name = r.to_string();
                st.containers
                    .events
                    .publish(Event::image(&name, &name, None, "push"));
                out.push(line(&json!({
                    "progressDetail": {},
                    "aux": {"Tag": p.tag, "Digest": p.digest.to_string(), "Size": p.size},
                })));
            }
            Some(out.concat().into())
        },
    )
    .await
}
