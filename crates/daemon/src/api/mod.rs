//! The Docker Engine API over HTTP: routing, version negotiation, common headers.

mod archive;
mod auth;
mod containers;
mod events;
mod exec;
mod export;
mod image_ops;
mod images;
mod networks;
mod observe;
mod prune;
pub mod pull;
mod push;
mod search;
mod system;
mod tar_stream;
mod volumes;

use std::sync::Arc;

use arca_api::{API_VERSION, MIN_API_VERSION};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::containers::Containers;
use crate::error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub containers: Arc<Containers>,
    pub store: Arc<arca_store::Store>,
    pub info: Arc<system::DaemonInfo>,
    pub registry: Arc<pull::RegistrySettings>,
}

impl AppState {
    pub fn new(
        containers: Arc<Containers>,
        root: &std::path::Path,
        registry: pull::RegistrySettings,
    ) -> Self {
        Self {
            store: containers.store.clone(),
            containers,
            info: Arc::new(system::DaemonInfo::new(root)),
            registry: Arc::new(registry),
        }
    }
}

/// The API minor version of a request (`/v1.41/...` → 41); unversioned = the latest.
#[derive(Debug, Clone, Copy)]
pub struct ApiVersion(pub u32);

fn minor(v: &str) -> Option<u32> {
    v.strip_prefix("1.")?.parse().ok()
}

/// Strips `/v1.xx` from the path (after checking the version) before routing.
async fn version_prefix(mut req: Request) -> Result<Request, Response> {
    let latest = minor(API_VERSION).unwrap_or(51);
    let oldest = minor(MIN_API_VERSION).unwrap_or(24);
    let path = req.uri().path().to_owned();
    let mut version = latest;
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !ver.is_empty() && ver.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let Some(m) = (ver.starts_with("1.")).then(|| minor(ver)).flatten() else {
                return Err(
                    ApiError::invalid(format!("invalid API version: {ver}")).into_response()
                );
            };
            if m > latest {
                return Err(ApiError::invalid(format!(
                    "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
                ))
                .into_response());
            }
            if m < oldest {
                return Err(ApiError::invalid(format!(
                    "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
                .into_response());
            }
            version = m;
            let new_path = if tail.is_empty() { "/" } else { tail };
            let pq = match req.uri().query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path.to_owned(),
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = pq.parse().ok();
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req.extensions_mut().insert(ApiVersion(version));
    Ok(req)
}

async fn common_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert(
        "Server",
        HeaderValue::from_str(&format!("Docker/{} (linux)", env!("CARGO_PKG_VERSION")))
            .unwrap_or(HeaderValue::from_static("Docker (linux)")),
    );
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// The whole API as one service: version prefix handling and common headers around the
/// router.
pub fn app(
    state: AppState,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    use tower::Layer;
    let router = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/auth", post(auth::auth))
        .route("/events", get(events::events))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(prune::containers))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/stats", get(observe::stats))
        .route("/containers/{id}/top", get(observe::top))
        .route("/containers/{id}/changes", get(observe::changes))
        .route("/containers/{id}/export", get(export::export))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .route("/images/get", get(image_ops::save_many))
        .route("/images/search", get(search::search))
        .route("/images/prune", post(image_ops::prune))
        .route("/commit", post(image_ops::commit))
        .route("/system/df", get(image_ops::system_df))
        .route("/build/prune", post(prune::build_cache))
        .route("/images/create", post(images::create))
        .route(
            "/images/{*rest}",
            get(images::get_by_name)
                .post(images::post_by_name)
                .delete(images::remove),
        )
        .fallback(not_found)
        .with_state(state);
    let versioned = axum::middleware::map_request(version_prefix).layer(router);
    axum::middleware::map_response(common_headers).layer(versioned)
}
