//! `POST /auth`: checks registry credentials (`docker login`). The body is Docker's
//! `AuthConfig` (`username`, `password`, `serveraddress`; an empty address is Docker Hub).
//! Success is `{"Status":"Login Succeeded","IdentityToken":""}`; refused credentials are a 401
//! (`ErrorKind::Unauthorized`) with the registry's reason, as Docker answers. Nothing is stored: clients keep the
//! credentials themselves (`config.json`).

use arca_registry::{Credentials, DOCKER_HUB_SERVER};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiError, ApiResult};

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub async fn auth(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid auth configuration: {e}")))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let server = match field("serveraddress") {
        s if s.is_empty() => DOCKER_HUB_SERVER.to_owned(),
        s => s,
    };
    let credentials = Credentials {
        username: field("username"),
        password: field("password"),
    };
    tracing::info!(server = %server, username = %credentials.username, "checking registry login");
    match arca_registry::login(&server, &credentials, &st.registry.insecure_registries).await {
        Ok(()) => Ok(json_response(
            StatusCode::OK,
            &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        )),
        Err(e) => Err(ApiError::new(e.kind(), e.to_string())),
    }
}
