//! Checking registry credentials, as `docker login` (`POST /auth`) does.
//!
//! `oci-client` runs the challenge flow: `GET /v2/` answers with a `WWW-Authenticate`
//! challenge; for a Bearer challenge the credentials are exchanged for a token at the realm
//! (the token server rejects bad ones: Docker shows `Get "<scheme>://<host>/v2/": ` and the
//! server's words, `unauthorized: incorrect username or password`, as the request that the
//! token was for failed); for a Basic challenge nothing is checked yet, so an
//! authenticated request follows (`GET /v2/_catalog?n=1`), which a Basic-protected registry
//! answers 401 for bad credentials. A registry without a challenge accepts anyone.
//!
//! Identity tokens (OAuth refresh tokens) are not requested: the answer's `IdentityToken` is
//! always empty and clients keep the password, as with most registries.
//!
//! [`scoped_token`] asks a registry's token server for several scopes at once, which
//! `oci-client` cannot (it asks for one repository): a cross-repository blob mount needs
//! push on the target and pull on the source in one token.

use arca_model::ErrorKind;
use oci_client::RegistryOperation;
use oci_client::errors::OciDistributionError;

use crate::Credentials;
use crate::client::{CONNECT_TIMEOUT, READ_TIMEOUT, client_with, plain_http};
use crate::error::request_reason;

/// The largest token answer accepted (real ones are a few KiB).
const MAX_TOKEN_ANSWER: usize = 1 << 20;

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
            Self::Unauthorized(_) => ErrorKind::Unauthorized,
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
            return Err(LoginError::Unauthorized(format!(
                "Get \"{scheme}://{host}/v2/\": {}",
                token_refusal(&reason)
            )));
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
pub(crate) fn token_refusal(body: &str) -> String {
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

/// Why [`scoped_token`] got no token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("request to {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered without a token")]
    NoToken { url: String },
}

/// A token for `scopes` (`repository:<name>:<actions>` each) from the token server that
/// `registry`'s `GET /v2/` challenge names, presenting `credentials` (anonymous when
/// `None`); `Ok(None)` when the registry does not challenge with Bearer.
pub(crate) async fn scoped_token(
    registry: &str,
    insecure: &[String],
    credentials: Option<&Credentials>,
    scopes: &[String],
) -> Result<Option<String>, TokenError> {
    let scheme = if plain_http(registry, insecure) {
        "http"
    } else {
        "https"
    };
    let ping = format!("{scheme}://{registry}/v2/");
    let failed = |url: &str, e: reqwest::Error| TokenError::Request {
        url: url.to_owned(),
        reason: request_reason(&e),
    };
    // `client_with` (the push's client) installed the crypto provider HTTPS needs.
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("arca/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| failed(&ping, e))?;
    let resp = client
        .get(&ping)
        .send()
        .await
        .map_err(|e| failed(&ping, e))?;
    let Some(challenge) = resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(bearer_challenge)
    else {
        return Ok(None);
    };
    let mut url = reqwest::Url::parse(&challenge.realm).map_err(|e| TokenError::Request {
        url: challenge.realm.clone(),
        reason: e.to_string(),
    })?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(service) = &challenge.service {
            q.append_pair("service", service);
        }
        for scope in scopes {
            q.append_pair("scope", scope);
        }
        if let Some(c) = credentials.filter(|c| !c.username.is_empty()) {
            q.append_pair("account", &c.username);
        }
    }
    let shown = url.to_string();
    let mut req = client.get(url);
    if let Some(c) = credentials.filter(|c| !c.username.is_empty()) {
        req = req.basic_auth(&c.username, Some(&c.password));
    }
    let mut resp = req.send().await.map_err(|e| failed(&shown, e))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(TokenError::Status {
            url: shown,
            status: resp.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| failed(&shown, e))? {
        if body.len() + chunk.len() > MAX_TOKEN_ANSWER {
            return Err(TokenError::NoToken { url: shown });
        }
        body.extend_from_slice(&chunk);
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| TokenError::NoToken { url: shown.clone() })?;
    ["token", "access_token"]
        .iter()
        .find_map(|k| answer.get(k).and_then(|t| t.as_str()))
        .filter(|t| !t.is_empty())
        .map(|t| Some(t.to_owned()))
        .ok_or(TokenError::NoToken { url: shown })
}

/// Where a Bearer challenge sends clients for tokens.
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    realm: String,
    service: Option<String>,
}

/// Reads `Bearer realm="…",service="…"[,scope="…"][,error="…"]` (RFC 6750 §3); `None` for
/// another scheme or a challenge without a realm.
fn bearer_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim_start();
    let (scheme, mut rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let (mut realm, mut service) = (None, None);
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                // A quoted string; `\` escapes the next character.
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next().map(|(_, c)| c)),
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end?..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            }
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            _ => {}
        }
        rest = after;
    }
    Some(Challenge {
        realm: realm?,
        service,
    })
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
    fn bearer_challenges_name_realm_and_service() {
        assert_eq!(
            bearer_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull",error="insufficient_scope""#
            ),
            Some(Challenge {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        assert_eq!(
            bearer_challenge(r#"bearer service=x, realm="http://h/t?a=1,2""#),
            Some(Challenge {
                realm: "http://h/t?a=1,2".into(),
                service: Some("x".into()),
            })
        );
        assert_eq!(
            bearer_challenge(r#"Bearer realm="a\"b""#).map(|c| c.realm),
            Some(r#"a"b"#.into())
        );
        assert_eq!(bearer_challenge(r#"Basic realm="registry""#), None);
        assert_eq!(bearer_challenge(r#"Bearer service="x""#), None);
        assert_eq!(bearer_challenge(r#"Bearer realm="unterminated"#), None);
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
