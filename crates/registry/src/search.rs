//! `docker search`: asking a registry's v1 search API (`GET /v1/search?q=TERM&n=LIMIT`) for
//! repositories matching a term, as moby does.
//!
//! The term names its registry the way an image reference does: an unqualified term
//! (`busybox`, `library/busybox`, `user/app`) goes to Docker Hub's index
//! (`https://index.docker.io`, with `library/` dropped from the term); `host[:port]/term`
//! (the first component has a `.` or a `:`, or is `localhost`) goes to that registry, over
//! plain HTTP when it is a loopback or configured-insecure one (the pull's rule), else
//! HTTPS. A term with a URL scheme is refused. Credentials, when given, are sent as Basic.
//!
//! Filtering (`is-official`, `stars`, …) is the caller's: the daemon applies moby's rules
//! to what this returns. Limits: no v2 token flow for identity tokens; no HTTPS-then-HTTP
//! fallback for registries that are neither loopback nor listed as insecure.

use std::time::Duration;

use arca_model::ErrorKind;
use serde::{Deserialize, Serialize};

use crate::Credentials;
use crate::client::{CONNECT_TIMEOUT, READ_TIMEOUT, plain_http};

/// moby's default number of results.
const DEFAULT_SEARCH_LIMIT: u32 = 25;
/// The most results a search may ask for.
const MAX_SEARCH_LIMIT: u32 = 100;

/// Docker Hub's index, where unqualified terms are searched.
const HUB_INDEX: &str = "https://index.docker.io";

/// The largest answer accepted (100 results need far less).
const MAX_BODY: usize = 8 << 20;

/// One search result, with Docker's field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: i64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

/// A registry's answer: `{"num_results":…,"query":…,"results":[…]}`.
#[derive(Debug, Deserialize)]
struct SearchResults {
    #[serde(default)]
    results: Option<Vec<SearchResult>>,
}

/// How to search.
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// At most this many results; `0` means [`DEFAULT_SEARCH_LIMIT`].
    pub limit: u32,
    /// Anonymous when `None`.
    pub auth: Option<Credentials>,
    /// Registries (`host:port`) spoken to over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
}

/// Why a search failed. Messages are shown to API clients verbatim.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// moby's wording.
    #[error("invalid repository name: repository name ({0}) should not have a scheme")]
    Scheme(String),
    /// moby's wording.
    #[error("limit {0} is outside the range of [1, 100]")]
    Limit(u32),
    #[error("invalid search term {term:?}: {reason}")]
    InvalidTerm { term: String, reason: String },
    /// Go's client error wording (`Get "URL": reason`), naming the registry.
    #[error("Get \"{url}\": {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Unexpected status code {status} from {url}")]
    Status { url: String, status: u16 },
    #[error("error decoding registry search results from {url}: {reason}")]
    Decode { url: String, reason: String },
}

impl SearchError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Scheme(_) | Self::Limit(_) | Self::InvalidTerm { .. } => {
                ErrorKind::InvalidArgument
            }
            Self::Unreachable { .. } | Self::Status { .. } | Self::Decode { .. } => {
                ErrorKind::Internal
            }
        }
    }
}

/// Where a term is searched: the registry's base URL and the term it is asked about.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    base: String,
    query: String,
}

/// moby's `splitReposSearchTerm` plus the scheme choice.
fn target(term: &str, insecure: &[String]) -> Result<Target, SearchError> {
    if term.contains("://") {
        return Err(SearchError::Scheme(term.to_owned()));
    }
    let (index, remote) = match term.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, term),
    };
    match index {
        None | Some("docker.io" | "index.docker.io") => Ok(Target {
            base: HUB_INDEX.to_owned(),
            // Official images are stored locally without `library/`.
            query: remote.strip_prefix("library/").unwrap_or(remote).to_owned(),
        }),
        Some(host) => {
            let scheme = if plain_http(host, insecure) {
                "http"
            } else {
                "https"
            };
            Ok(Target {
                base: format!("{scheme}://{host}"),
                query: remote.to_owned(),
            })
        }
    }
}

/// Searches `term`'s registry (see the module docs) and returns its results unfiltered.
pub async fn search(term: &str, opts: &SearchOptions) -> Result<Vec<SearchResult>, SearchError> {
    let limit = match opts.limit {
        0 => DEFAULT_SEARCH_LIMIT,
        n if n > MAX_SEARCH_LIMIT => return Err(SearchError::Limit(n)),
        n => n,
    };
    let t = target(term, &opts.insecure_registries)?;
    let mut url = reqwest::Url::parse(&format!("{}/v1/search", t.base)).map_err(|e| {
        SearchError::InvalidTerm {
            term: term.to_owned(),
            reason: e.to_string(),
        }
    })?;
    url.query_pairs_mut()
        .append_pair("q", &t.query)
        .append_pair("n", &limit.to_string());
    let shown = url.to_string();
    let unreachable = |reason: String| SearchError::Unreachable {
        url: shown.clone(),
        reason,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("arca/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| unreachable(reason(&e)))?;
    // moby's v1 session: the token header asks the index to accept Basic credentials.
    let mut req = client.get(url).header("X-Docker-Token", "true");
    if let Some(c) = opts.auth.as_ref().filter(|c| !c.username.is_empty()) {
        req = req.basic_auth(&c.username, Some(&c.password));
    }
    let mut resp = req.send().await.map_err(|e| unreachable(reason(&e)))?;
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        return Err(SearchError::Status {
            url: shown,
            status: status.as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(reason(&e)))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(SearchError::Decode {
                url: shown,
                reason: format!("answer larger than {MAX_BODY} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    let parsed: SearchResults = serde_json::from_slice(&body).map_err(|e| SearchError::Decode {
        url: shown.clone(),
        reason: e.to_string(),
    })?;
    Ok(parsed.results.unwrap_or_default())
}

/// The causes of a failed request without reqwest's own "error sending request for url
/// (…)" (the URL is already in the message).
fn reason(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        if e.is_timeout() {
            return "timed out".into();
        }
        return e.to_string();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(term: &str) -> Target {
        target(term, &[]).expect("target")
    }

    #[test]
    fn unqualified_terms_go_to_docker_hub_without_library() {
        for (term, query) in [
            ("busybox", "busybox"),
            ("library/busybox", "busybox"),
            ("user/app", "user/app"),
            ("docker.io/library/nginx", "nginx"),
            ("index.docker.io/user/app", "user/app"),
        ] {
            assert_eq!(
                t(term),
                Target {
                    base: HUB_INDEX.into(),
                    query: query.into()
                },
                "{term}"
            );
        }
    }

    #[test]
    fn qualified_terms_go_to_their_registry_over_the_pulls_scheme() {
        assert_eq!(t("127.0.0.1:5000/busy").base, "http://127.0.0.1:5000");
        assert_eq!(t("127.0.0.1:5000/busy").query, "busy");
        assert_eq!(t("localhost/a/b").base, "http://localhost");
        assert_eq!(t("localhost/a/b").query, "a/b");
        assert_eq!(
            t("registry.example.com/x").base,
            "https://registry.example.com"
        );
        let insecure = ["10.0.0.1:5000".to_owned()];
        assert_eq!(
            target("10.0.0.1:5000/x", &insecure).expect("t").base,
            "http://10.0.0.1:5000"
        );
        assert!(matches!(
            target("https://example.com/x", &[]),
            Err(SearchError::Scheme(_))
        ));
    }

    #[tokio::test]
    async fn limits_outside_one_to_a_hundred_are_refused_before_any_request() {
        let opts = SearchOptions {
            limit: 101,
            ..Default::default()
        };
        let err = search("127.0.0.1:1/x", &opts).await.expect_err("limit");
        assert_eq!(
            err.to_string(),
            "limit 101 is outside the range of [1, 100]"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_named_in_the_error() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let err = search(&format!("127.0.0.1:{port}/busy"), &SearchOptions::default())
            .await
            .expect_err("unreachable");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "Get \"http://127.0.0.1:{port}/v1/search?q=busy&n=25\": "
            )),
            "{msg}"
        );
        assert_eq!(err.kind(), ErrorKind::Internal);
    }
}
