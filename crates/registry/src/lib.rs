//! Pulling images from OCI distribution registries (Docker Hub, GHCR, a private registry)
//! into arca's [`Store`].
//!
//! Contract of [`pull`]:
//! - Manifests: Docker v2 schema 2 and OCI image manifests; Docker manifest lists and OCI
//!   indexes, choosing the entry for `--platform os/arch[/variant]` (default: this host, with
//!   Go's architecture names); `name@sha256:` references are checked against the manifest's
//!   digest. Any other media type (manifest, config or layer) is refused, naming it.
//! - Layers (gzip, zstd or uncompressed) download three at a time, each streamed through the
//!   store's digest check ([`Store::write_blob`]); each is unpacked as soon as its blob has
//!   arrived, two or three at a time (every layer has a snapshot of its own, so order does
//!   not matter). A blob already in the store is never fetched again
//!   ("Already exists"), an existing snapshot never unpacked again.
//! - Transient failures (connection errors, 5xx, timeouts) are retried three times with
//!   back-off (200, 400, 800 ms), resuming with HTTP `Range` from the bytes already written.
//!   Connecting may take 10 s; a response silent for 30 s counts as failed.
//! - Nothing partial becomes visible: blobs are published only when verified, snapshots only
//!   when complete, the image record only after all of them (the store's guarantees). This
//!   also holds when the pull future is dropped.
//! - Registries on loopback (and those listed as insecure) are spoken to over plain HTTP,
//!   others over HTTPS with the system's roots. Anonymous pulls follow a registry's Bearer
//!   challenge; credentials, when given, are sent as Basic (or exchanged for a token).
//! - Progress: Docker's JSON progress messages (see [`Progress`]) on an unbounded channel, so a
//!   slow or gone reader never stalls the pull; "Downloading" at most 10 times a second per
//!   layer.
//!
//! [`push`] sends an image back (see its module docs); [`login`] checks credentials the way
//! `POST /auth` does.
//!
//! - Concurrent pulls into one store that need the same blob share one download (see
//!   `inflight`).
//! - Docker Hub images are pulled from the configured mirrors first ([`PullOptions::mirrors`]);
//!   a mirror that cannot resolve the manifest is skipped, the registry itself comes last.
//!   [`pull_all`] pulls every tag of a repository (`pull -a`).
//!
//! Limits: foreign (non-distributable) layers are refused.
//!
//! HTTP goes through `oci-client` (manifests with an `Accept` list, blob streams, Range
//! requests, the token flow); manifests are parsed here to word errors Docker's way.

mod auth;
mod blob;
mod client;
mod error;
mod inflight;
mod manifest;
mod progress;
mod pull;
mod push;
mod search;

use std::sync::Arc;

use arca_model::{Digest, Reference};
use arca_store::{Image, Store};

pub use auth::{DOCKER_HUB_SERVER, LoginError, login, server_host};
pub use error::PullError;
pub use progress::Progress;
pub use push::{PushError, PushOptions, Pushed};
pub use search::{SearchError, SearchOptions, SearchResult, search};

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `os/arch[/variant]` (Docker's `--platform`); `None` = this host's.
    pub platform: Option<String>,
    /// Anonymous when `None`.
    pub auth: Option<Credentials>,
    /// Registries (`host:port`) spoken to over plain HTTP besides loopback ones (127.0.0.0/8,
    /// `localhost`, `[::1]` always are, as Docker treats them as insecure).
    pub insecure_registries: Vec<String>,
    /// Registry mirrors tried, in order, before Docker Hub for Docker Hub images (Docker's
    /// `registry-mirrors`); a mirror that fails is skipped.
    pub mirrors: Vec<Mirror>,
    /// How long a registry response may stay silent before the request counts as failed
    /// (and is retried); `None` = 30 s.
    pub read_timeout: Option<std::time::Duration>,
}

/// A registry mirror (`http://127.0.0.1:5001`, `https://mirror.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `host[:port]`.
    pub host: String,
    /// `http://` mirrors are spoken to over plain HTTP.
    pub plain_http: bool,
}

impl std::str::FromStr for Mirror {
    type Err = String;

    /// Docker's rules (`ValidateMirror`): an `http` or `https` URL with a host and nothing
    /// after it but an optional `/`.
    fn from_str(s: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid mirror: {why}: {s}");
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| invalid("no scheme specified"))?;
        let plain_http = match scheme {
            "http" => true,
            "https" => false,
            _ => return Err(invalid("unsupported scheme (use http or https)")),
        };
        let host = rest.strip_suffix('/').unwrap_or(rest);
        if host.is_empty() {
            return Err(invalid("no host specified"));
        }
        if host.contains(['/', '?', '#', '@']) {
            return Err(invalid("path, query, fragment or credentials in the URL"));
        }
        Ok(Mirror {
            host: host.to_owned(),
            plain_http,
        })
    }
}

impl std::fmt::Display for Mirror {
    /// The normalised URL (`https://host/`), as Docker lists mirrors in `info`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.plain_http { "http" } else { "https" };
        write!(f, "{scheme}://{}/", self.host)
    }
}

/// A registry user name and password (or token).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log a password.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What a pull produced.
#[derive(Debug)]
pub struct Pulled {
    /// What was pulled (with its tag or digest).
    pub reference: Reference,
    pub image: Image,
    /// The manifest digest (the index's for a multi-platform image): what `name@sha256:` pins
    /// and what is recorded as a RepoDigest.
    pub digest: Digest,
    /// Nothing was downloaded: the image was already in the store under this reference.
    pub up_to_date: bool,
}

/// Pulls `reference` (`:latest` when it has neither tag nor digest) into `store`, tags it
/// with the reference (unless pinned by digest) and records `repo@digest`. Progress goes to
/// `progress`; a closed channel is ignored. Cancel-safe: dropping the future leaves no
/// visible partial state.
pub async fn pull(
    store: Arc<Store>,
    reference: &Reference,
    opts: &PullOptions,
    progress: tokio::sync::mpsc::UnboundedSender<Progress>,
) -> Result<Pulled, PullError> {
    pull::pull(store, reference, opts, progress).await
}

/// Pulls every tag of `repository` (a name without tag or digest; Docker's `pull -a`), one
/// after the other, each as [`pull`] does but with a single `Status:` line at the end.
pub async fn pull_all(
    store: Arc<Store>,
    repository: &Reference,
    opts: &PullOptions,
    progress: tokio::sync::mpsc::UnboundedSender<Progress>,
) -> Result<Vec<Pulled>, PullError> {
    pull::pull_all(store, repository, opts, progress).await
}

/// Pushes `reference` (`:latest` when it has no tag) from `store` to its registry with
/// Docker's progress messages, then records `repo@digest` for the image. See the `push`
/// module for the contract.
pub async fn push(
    store: Arc<Store>,
    reference: &Reference,
    opts: &PushOptions,
    progress: tokio::sync::mpsc::UnboundedSender<Progress>,
) -> Result<Pushed, PushError> {
    push::push(store, reference, opts, progress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon runs pulls with `tokio::spawn`, which needs a `Send` future.
    #[test]
    fn mirrors_parse_as_docker_validates_them() {
        let m: Mirror = "http://127.0.0.1:5001/".parse().expect("mirror");
        assert_eq!(
            m,
            Mirror {
                host: "127.0.0.1:5001".into(),
                plain_http: true
            }
        );
        assert_eq!(m.to_string(), "http://127.0.0.1:5001/");
        let m: Mirror = "https://mirror.example.com".parse().expect("mirror");
        assert!(!m.plain_http);
        for bad in [
            "mirror.example.com",
            "ftp://x",
            "https://",
            "https://x/path",
            "https://x?q",
        ] {
            assert!(bad.parse::<Mirror>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pull_future_is_send() {
        fn check<T: Send>(_: &T) {}
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(tmp.path()).expect("store"));
        let reference: Reference = "127.0.0.1:1/x".parse().expect("ref");
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let opts = PullOptions::default();
        let fut = pull(store.clone(), &reference, &opts, tx);
        check(&fut);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        check(&pull_all(store, &reference, &opts, tx));
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let store = Arc::new(Store::open(tmp.path()).expect("store"));
        let opts = PushOptions::default();
        check(&push(store, &reference, &opts, tx));
    }
}
