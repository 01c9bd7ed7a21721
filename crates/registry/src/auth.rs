//! Checking registry credentials, as `docker login` (`POST /auth`) does.
//!
//! `oci-client` runs the challenge flow: `GET /v2/` answers with a `WWW-Authenticate`
//! challenge; for a Bearer challenge the credentials are exchanged for a token at the realm
//! (the token server rejects bad ones); for a Basic challenge nothing is checked yet, so an
//! authenticated request follows (`GET /v2/_catalog?n=1`), which a Basic-protected registry
//! answers 401 for bad credentials. A registry without a challenge accepts anyone.
//!
//! Identity tokens (OAuth refresh tokens) are not requested: the answer's `IdentityToken` is
//! always empty and clients keep the password, as with most registries.

use arca_model::ErrorKind;
use oci_client::RegistryOperation;
use oci_client::errors::OciDistributionError;

use crate::Credentials;
use crate::client::{client_with, plain_http};
use crate::error::request_reason;

/// Docker Hub's server address as the docker CLI names it.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The registry refused the credentials; Docker's wording.
    #[error("{0}")]
    Unauthorized(String),
    #[error("registry {registry} is unavailable: {reason}")]
    Unavailable { registry: String, reason: String },
}

impl LoginError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            // The daemon answers 401 for this one itself (no kind maps to it).
            Self::Unauthorized(_) => ErrorKind::InvalidArgument,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
        }
    }
}

/// The registry host (`host[:port]`) a login server address names, as Docker's
/// `ConvertToHostname`: the scheme and any path are dropped; Docker Hub's addresses become
/// the host its API lives on.
pub fn server_host(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => "index.docker.io".into(),
        h => h.to_owned(),
    }
}

/// Checks `credentials` against the registry at `server` (a host, `host:port`, a URL, or
/// Docker Hub's `https://index.docker.io/v1/`).
pub async fn login(
    server: &str,
    credentials: &Credentials,
    insecure: &[String],
) -> Result<(), LoginError> {
    let host = server_host(server);
    let (client, auth) = client_with(&host, insecure, Some(credentials), false);
    // Only the token scope depends on the repository; any name will do.
    let probe = oci_client::Reference::with_tag(
        host.clone(),
        "library/hello-world".into(),
        "latest".into(),
    );
    let scheme = if plain_http(&host, insecure) {
        "http"
    } else {
        "https"
    };
    let unavailable = |reason: String| LoginError::Unavailable {
        registry: host.clone(),
        reason,
    };
    let refused = || {
        LoginError::Unauthorized(format!(
            "login attempt to {scheme}://{host}/v2/ failed with status: 401 Unauthorized"
        ))
    };
    match client.auth(&probe, &auth, RegistryOperation::Pull).await {
        // A token was issued for these credentials.
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(OciDistributionError::AuthenticationFailure(reason)) => {
            return Err(LoginError::Unauthorized(token_refusal(&reason)));
        }
        Err(OciDistributionError::RequestError(e)) => return Err(unavailable(request_reason(&e))),
        Err(e) => return Err(unavailable(e.to_string())),
    }
    match client.catalog(&probe, &auth, Some(1), None).await {
        Ok(_) => Ok(()),
        Err(OciDistributionError::UnauthorizedError { .. }) => Err(refused()),
        Err(OciDistributionError::ServerError { code: 401, .. }) => Err(refused()),
        Err(OciDistributionError::RegistryError { envelope, .. })
            if envelope
                .errors
                .iter()
                .any(|e| e.code == oci_client::errors::OciErrorCode::Unauthorized) =>
        {
            Err(refused())
        }
        Err(OciDistributionError::RequestError(e)) => match e.status() {
            Some(s) if s.as_u16() == 401 => Err(refused()),
            _ => Err(unavailable(request_reason(&e))),
        },
        Err(OciDistributionError::ServerError { code, message, .. }) if code >= 500 => {
            Err(unavailable(format!("HTTP {code}: {}", message.trim())))
        }
        // Past authentication (the catalog may just be unsupported or forbidden).
        Err(e) => {
            tracing::debug!(registry = %host, error = %e, "login probe answered an error");
            Ok(())
        }
    }
}

/// A token server's refusal in Docker's words (`unauthorized: incorrect username or
/// password` on Docker Hub): its JSON `details`/`message` when it sent one.
fn token_refusal(body: &str) -> String {
    let v: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = v.as_ref().and_then(|v| {
        v.get("details")
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .or_else(|| {
                let e = v.pointer("/errors/0")?;
                Some(e.get("message")?.as_str()?.to_owned())
            })
    });
    format!(
        "unauthorized: {}",
        text.unwrap_or_else(|| "incorrect username or password".into())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_name_their_registry_host() {
        assert_eq!(server_host(DOCKER_HUB_SERVER), "index.docker.io");
        assert_eq!(server_host("docker.io"), "index.docker.io");
        assert_eq!(server_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(server_host("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(server_host("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn token_refusals_use_the_servers_words() {
        assert_eq!(
            token_refusal(r#"{"details":"incorrect username or password"}"#),
            "unauthorized: incorrect username or password"
        );
        assert_eq!(
            token_refusal("nope"),
            "unauthorized: incorrect username or password"
        );
    }
}
