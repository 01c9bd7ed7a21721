//! Pushing an image from the store to a registry, as Docker does: each layer blob (three at a
//! time) is skipped when the registry has it ("Layer already exists"), mounted from another
//! repository of the same registry that is known to hold it ("Mounted from <repo>"), or
//! uploaded with progress ("Pushing", "Pushed"); then the config blob, then the manifest.
//!
//! Layer blobs are pushed exactly as stored, with their digests and sizes: a layer stored
//! uncompressed (a `docker load` of an uncompressed archive) goes up as
//! `application/vnd.docker.image.rootfs.diff.tar`. Compressing on the way would change the
//! blob digest on every arca version that compresses differently, cost CPU on each push and
//! need a second copy (or a digest map) in the store to say "Layer already exists" next
//! time; registries accept uncompressed layers and every client pulls them.
//!
//! The manifest is Docker schema 2 unless a layer is zstd-compressed (schema 2 has no media
//! type for that): then it is an OCI image manifest. Blob uploads go through `oci-client`
//! (`blob_exists`, `mount_blob`, `push_blob_stream` in monolithic mode so the request body is
//! the file itself, read as it is sent, `push_blob` for the config, `push_manifest_raw`).
//!
//! Authentication is settled first, for the push scope (`repository:<name>:pull,push`), so
//! a token server that refuses the credentials fails the push with its words (`oci-client`
//! would otherwise go on anonymously). A registry using tokens answers 401 when the token
//! lacks a right (`insufficient_scope`): Docker calls that `denied: requested access to the
//! resource is denied`; a Basic-auth registry's 401 stays `unauthorized: authentication
//! required`. A blob mount on such a registry needs a token for pull on the source
//! repository too, as Docker asks for (`auth::scoped_token`); without one the layer is
//! uploaded.

use std::sync::Arc;
use std::time::Instant;

use arca_model::{Digest, ErrorKind, Reference};
use arca_store::{Image, Layer, Store, StoreError};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::auth::{scoped_token, token_refusal};
use crate::blob::BACKOFF;
use crate::client::{client_with, oci_reference, registry_host};
use crate::error::request_reason;
use crate::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};
use crate::progress::{Reporter, Throttle};
use crate::{Credentials, Progress};

/// Layers uploaded at the same time (Docker's default `max-concurrent-uploads` is 5; we
/// use the pull's 3).
const PARALLEL_UPLOADS: usize = 3;
/// Bytes read from a blob file per chunk of the request body.
const CHUNK: usize = 256 * 1024;

const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// How to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Anonymous when `None`.
    pub auth: Option<Credentials>,
    /// Registries (`host:port`) spoken to over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
}

/// What a push produced.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The tag pushed.
    pub tag: String,
    /// The manifest digest, now recorded as a RepoDigest.
    pub digest: Digest,
    /// The manifest size in bytes.
    pub size: u64,
}

/// Everything [`crate::push`] can fail with; messages follow Docker's.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Docker's wording for a reference not in the store.
    #[error("An image does not exist locally with the tag: {0}")]
    NoSuchImage(String),
    /// The registry refused the credentials (or their absence): Docker shows the registry's
    /// error code and message (`unauthorized: authentication required`).
    #[error("{0}")]
    Denied(String),
    #[error("invalid reference {reference}: {reason}")]
    Reference { reference: String, reason: String },
    #[error("registry {registry} is unavailable: {reason}")]
    Unavailable { registry: String, reason: String },
    #[error("registry {registry} failed the request: {reason}")]
    Registry { registry: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the push's blocking task failed: {0}")]
    Task(String),
}

impl PushError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoSuchImage(_) | Self::Denied(_) => ErrorKind::NotFound,
            Self::Reference { .. } => ErrorKind::InvalidArgument,
            Self::Unavailable { .. } | Self::Registry { .. } => ErrorKind::Unavailable,
            Self::Store(e) => e.kind(),
            Self::Task(_) => ErrorKind::Internal,
        }
    }

    /// Whether trying the request again may succeed (connection trouble, 5xx, timeouts).
    fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Docker's words for a 401 from a registry that issues tokens: the token lacks the right.
const DENIED: &str = "denied: requested access to the resource is denied";
/// Docker's words for a 401 from a registry that takes Basic credentials.
const UNAUTHORIZED: &str = "unauthorized: authentication required";

/// Translates an `oci-client` error of a push request; `bearer` says the registry issues
/// tokens (its 401s then mean a missing right).
pub(crate) fn from_oci(e: OciDistributionError, registry: &str, bearer: bool) -> PushError {
    let registry_err = |reason: String| PushError::Registry {
        registry: registry.to_owned(),
        reason,
    };
    let unauthorized = || PushError::Denied(if bearer { DENIED } else { UNAUTHORIZED }.into());
    match e {
        OciDistributionError::UnauthorizedError { .. } => unauthorized(),
        // The token server refused the credentials.
        OciDistributionError::AuthenticationFailure(reason) => {
            PushError::Denied(envelope_text(&reason).unwrap_or_else(|| token_refusal(&reason)))
        }
        OciDistributionError::RegistryError { envelope, .. } => registry_err(
            envelope
                .errors
                .iter()
                .map(|e| format!("{}: {}", code_text(&e.code), e.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        OciDistributionError::ServerError { code, message, .. } => {
            let text = envelope_text(&message);
            match code {
                // The body says UNAUTHORIZED either way; the challenge (which `oci-client`
                // does not pass on) says `insufficient_scope`.
                401 if bearer => unauthorized(),
                401 => PushError::Denied(text.unwrap_or_else(|| UNAUTHORIZED.into())),
                403 => PushError::Denied(text.unwrap_or_else(|| DENIED.into())),
                500.. => PushError::Unavailable {
                    registry: registry.to_owned(),
                    reason: text.unwrap_or_else(|| format!("HTTP {code}: {}", message.trim())),
                },
                _ => registry_err(text.unwrap_or_else(|| format!("HTTP {code}"))),
            }
        }
        OciDistributionError::RequestError(e) => match e.status().map(|s| s.as_u16()) {
            Some(401) => unauthorized(),
            Some(403) => PushError::Denied(DENIED.into()),
            _ => PushError::Unavailable {
                registry: registry.to_owned(),
                reason: request_reason(&e),
            },
        },
        OciDistributionError::IoError(e) => PushError::Unavailable {
            registry: registry.to_owned(),
            reason: e.to_string(),
        },
        other => registry_err(other.to_string()),
    }
}

/// Docker's rendering of a registry error body: `<code in lower case>: <message>`.
fn envelope_text(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let errors = v.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .filter_map(|e| {
            let code = e.get("code")?.as_str()?.to_ascii_lowercase();
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            Some(format!("{code}: {message}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn code_text(code: &oci_client::errors::OciErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| format!("{code:?}").to_ascii_lowercase())
}

/// See [`crate::push`].
pub(crate) async fn push(
    store: Arc<Store>,
    reference: &Reference,
    opts: &PushOptions,
    progress: mpsc::UnboundedSender<Progress>,
) -> Result<Pushed, PushError> {
    let report = Reporter::new(progress);
    let reference = reference.clone().with_default_tag();
    let tag = reference.tag().unwrap_or("latest").to_owned();
    let image = {
        let (s, name) = (store.clone(), reference.to_string());
        tokio::task::spawn_blocking(move || s.get(&name))
            .await
            .map_err(|e| PushError::Task(e.to_string()))?
            .map_err(|e| match e {
                StoreError::NotFound(_) => PushError::NoSuchImage(reference.familiar_repo()),
                e => e.into(),
            })?
    };
    report.message(
        None,
        format!("The push refers to repository [{}]", reference.full_repo()),
    );
    let registry = registry_host(&reference);
    let (client, auth) = client_with(
        &registry,
        &opts.insecure_registries,
        opts.auth.as_ref(),
        true,
    );
    let target = oci_reference(&reference);
    // A token for the push scope now (cached for the uploads): `Some` means the registry
    // issues tokens. Anonymous clients get one too, usually without rights.
    let bearer = client
        .auth(&target, &auth, RegistryOperation::Push)
        .await
        .map_err(|e| from_oci(e, &registry, false))?
        .is_some();
    let sources = mount_sources(&image, &reference);
    let mount_from = mount_clients(&client, &target, &registry, bearer, opts, sources).await;
    let remote = Remote {
        client,
        target,
        registry,
        bearer,
        store: store.clone(),
        mount_from,
    };

    // One upload per distinct blob, bottom layer first (Docker lists them top first; the
    // order of the messages does not matter to clients, each keyed by its layer id).
    let mut layers: Vec<&Layer> = Vec::new();
    for l in &image.layers {
        if !layers.iter().any(|x| x.blob == l.blob) {
            layers.push(l);
        }
    }
    for l in &layers {
        report.layer(&l.diff_id, "Preparing");
    }
    for l in layers.iter().skip(PARALLEL_UPLOADS) {
        report.layer(&l.diff_id, "Waiting");
    }
    // Built eagerly: a lazy `map` closure would make the future non-`Send` (see pull.rs).
    let uploads: Vec<_> = layers
        .iter()
        .map(|l| remote.push_layer(l, &report))
        .collect();
    let mut s = stream::iter(uploads).buffer_unordered(PARALLEL_UPLOADS);
    while let Some(r) = s.next().await {
        r?;
    }
    drop(s);

    let config = {
        let (s, img) = (store.clone(), image.clone());
        tokio::task::spawn_blocking(move || s.image_config(&img))
            .await
            .map_err(|e| PushError::Task(e.to_string()))??
    };
    let config_digest = image.id.to_string();
    let has_config = remote
        .client
        .blob_exists(&remote.target, &config_digest)
        .await
        .map_err(|e| remote.err(e))?;
    if !has_config {
        remote
            .client
            .push_blob(&remote.target, config.clone(), &config_digest)
            .await
            .map_err(|e| remote.err(e))?;
    }

    let (media_type, body) = manifest(&image, config.len() as u64);
    let content_type = media_type
        .parse()
        .map_err(|_| PushError::Task("manifest media type is not a header value".into()))?;
    remote
        .client
        .push_manifest_raw(&remote.target, body.clone(), content_type)
        .await
        .map_err(|e| remote.err(e))?;
    let digest = Digest::of(&body);
    let repo_digest: Reference = format!("{}@{digest}", reference.full_repo())
        .parse()
        .map_err(|e: arca_model::ReferenceError| PushError::Reference {
            reference: reference.to_string(),
            reason: e.to_string(),
        })?;
    let (s, id) = (store.clone(), image.id.clone());
    tokio::task::spawn_blocking(move || s.add_repo_digest(&id, &repo_digest))
        .await
        .map_err(|e| PushError::Task(e.to_string()))??;
    let size = body.len() as u64;
    report.message(None, format!("{tag}: digest: {digest} size: {size}"));
    tracing::info!(reference = %reference, %digest, "pushed image");
    Ok(Pushed { tag, digest, size })
}

/// Repositories on the target registry that hold this image's blobs, as far as the store
/// knows (its RepoDigests: where it was pulled from or pushed to), other than the target.
fn mount_sources(image: &Image, target: &Reference) -> Vec<oci_client::Reference> {
    let registry = registry_host(target);
    let target_repo = oci_reference(target).repository().to_owned();
    image
        .repo_digests
        .iter()
        .filter_map(|d| d.parse::<Reference>().ok())
        .map(|r| oci_reference(&r))
        .filter(|r| r.resolve_registry() == registry && r.repository() != target_repo)
        .collect()
}

/// A client to mount blobs from each source with: the push's own, or on a registry that
/// issues tokens one holding a token for push on the target and pull on the source (the
/// push's token covers the target only, and the registry checks both). A source without
/// such a token is dropped: its mounts would be refused.
async fn mount_clients(
    push: &Client,
    target: &oci_client::Reference,
    registry: &str,
    bearer: bool,
    opts: &PushOptions,
    sources: Vec<oci_client::Reference>,
) -> Vec<(oci_client::Reference, Client)> {
    let mut out = Vec::new();
    for source in sources {
        if !bearer {
            out.push((source, push.clone()));
            continue;
        }
        let scopes = [
            format!("repository:{}:pull,push", target.repository()),
            format!("repository:{}:pull", source.repository()),
        ];
        let insecure = &opts.insecure_registries;
        match scoped_token(registry, insecure, opts.auth.as_ref(), &scopes).await {
            Ok(Some(token)) => {
                let (client, _) = client_with(registry, insecure, None, true);
                // Stores the token for the target's push operations (no request).
                let stored = client
                    .auth(
                        target,
                        &RegistryAuth::Bearer(token),
                        RegistryOperation::Push,
                    )
                    .await;
                match stored {
                    Ok(_) => out.push((source, client)),
                    Err(e) => tracing::debug!(from = %source, error = %e, "mount token unusable"),
                }
            }
            Ok(None) => out.push((source, push.clone())),
            Err(e) => tracing::debug!(from = %source, error = %e, "no token for blob mounts"),
        }
    }
    out
}

/// The registry side of one push.
struct Remote {
    client: Client,
    target: oci_client::Reference,
    registry: String,
    /// The registry issues tokens.
    bearer: bool,
    store: Arc<Store>,
    /// Repositories blobs may be mounted from, with the client to ask with.
    mount_from: Vec<(oci_client::Reference, Client)>,
}

impl Remote {
    fn err(&self, e: OciDistributionError) -> PushError {
        from_oci(e, &self.registry, self.bearer)
    }

    /// Makes sure the registry has one layer blob, reporting Docker's per-layer messages.
    async fn push_layer(&self, l: &Layer, report: &Reporter) -> Result<(), PushError> {
        let digest = l.blob.to_string();
        let exists = self
            .client
            .blob_exists(&self.target, &digest)
            .await
            .map_err(|e| self.err(e))?;
        if exists {
            report.layer(&l.diff_id, "Layer already exists");
            return Ok(());
        }
        for (source, client) in &self.mount_from {
            match client.mount_blob(&self.target, source, &digest).await {
                Ok(()) => {
                    report.layer(&l.diff_id, &format!("Mounted from {}", source.repository()));
                    return Ok(());
                }
                // The registry may not have it there (or refuse mounts): upload instead.
                Err(e) => {
                    tracing::debug!(blob = %digest, from = %source, error = %e, "mount failed")
                }
            }
        }
        let mut attempt = 0;
        loop {
            match self.upload(l, &digest, report).await {
                Ok(()) => break,
                // Each retry is a new upload session from the start of the blob (the
                // registry discards the failed one).
                Err(e) if e.is_transient() && attempt < BACKOFF.len() => {
                    tracing::debug!(blob = %digest, error = %e, "retrying blob upload");
                    report.layer(&l.diff_id, "Retrying");
                    tokio::time::sleep(BACKOFF[attempt]).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        report.layer(&l.diff_id, "Pushed");
        Ok(())
    }

    /// One upload of a layer blob, streamed from its file.
    async fn upload(&self, l: &Layer, digest: &str, report: &Reporter) -> Result<(), PushError> {
        let (s, blob) = (self.store.clone(), l.blob.clone());
        let (file, size) = tokio::task::spawn_blocking(move || s.open_blob_read(&blob))
            .await
            .map_err(|e| PushError::Task(e.to_string()))??;
        let body = file_stream(
            tokio::fs::File::from_std(file),
            report.clone(),
            l.diff_id.clone(),
            size,
        );
        self.client
            .push_blob_stream(&self.target, body, digest, Some(size))
            .await
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

/// The blob file as a request body, reporting "Pushing" (throttled) as it is read. A read
/// error is passed on once (failing the upload) and ends the stream.
fn file_stream(
    file: tokio::fs::File,
    report: Reporter,
    id: Digest,
    total: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, OciDistributionError>> + Send + 'static {
    let state = Some((file, 0u64, Throttle::default()));
    stream::unfold(state, move |state| {
        let (report, id) = (report.clone(), id.clone());
        async move {
            let (mut file, sent, mut throttle) = state?;
            let mut buf = BytesMut::with_capacity(CHUNK);
            match file.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    let sent = sent + n as u64;
                    if throttle.ready(Instant::now()) || sent == total {
                        report.layer_bytes(&id, "Pushing", sent, total);
                    }
                    Some((Ok(buf.freeze()), Some((file, sent, throttle))))
                }
                Err(e) => Some((Err(OciDistributionError::IoError(e)), None)),
            }
        }
    })
}

/// The manifest for `image`: its media type and body (Docker's 3-space indentation).
fn manifest(image: &Image, config_size: u64) -> (&'static str, Vec<u8>) {
    let oci = image.layers.iter().any(|l| l.media_type.contains("zstd"));
    let (media_type, config_type) = if oci {
        (OCI_MANIFEST, OCI_CONFIG)
    } else {
        (DOCKER_MANIFEST, DOCKER_CONFIG)
    };
    let layers: Vec<serde_json::Value> = image
        .layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": layer_type(&l.media_type, oci),
                "size": l.size,
                "digest": l.blob.to_string(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": config_type,
            "size": config_size,
            "digest": image.id.to_string(),
        },
        "layers": layers,
    });
    let mut body = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut body, fmt);
    serde::Serialize::serialize(&doc, &mut ser).expect("a JSON value always serializes");
    (media_type, body)
}

/// A stored layer media type in the manifest flavour being pushed.
fn layer_type(stored: &str, oci: bool) -> &'static str {
    let gzip = stored.ends_with("gzip");
    let zstd = stored.ends_with("zstd");
    match (oci, gzip, zstd) {
        (true, _, true) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (true, true, _) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (true, false, false) => "application/vnd.oci.image.layer.v1.tar",
        (false, true, _) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (false, false, _) => "application/vnd.docker.image.rootfs.diff.tar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_types_follow_the_manifest_flavour() {
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(
            layer_type(gz, false),
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_eq!(
            layer_type("application/vnd.oci.image.layer.v1.tar", false),
            "application/vnd.docker.image.rootfs.diff.tar"
        );
        assert_eq!(
            layer_type("application/vnd.docker.image.rootfs.diff.tar.gzip", true),
            gz
        );
    }

    #[test]
    fn registry_errors_read_like_docker() {
        let e = from_oci(
            OciDistributionError::ServerError {
                code: 401,
                url: "u".into(),
                message: r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#.into(),
            },
            "127.0.0.1:5000",
            false,
        );
        assert_eq!(e.to_string(), "unauthorized: authentication required");
        let e = PushError::NoSuchImage("127.0.0.1:5000/x".into());
        assert_eq!(
            e.to_string(),
            "An image does not exist locally with the tag: 127.0.0.1:5000/x"
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn a_token_registry_s_401_is_a_missing_right_and_a_refused_login_its_words() {
        let unauthorized = || OciDistributionError::UnauthorizedError { url: "u".into() };
        assert_eq!(
            from_oci(unauthorized(), "r", true).to_string(),
            "denied: requested access to the resource is denied"
        );
        assert_eq!(
            from_oci(unauthorized(), "r", false).to_string(),
            "unauthorized: authentication required"
        );
        let refused = OciDistributionError::AuthenticationFailure(
            r#"{"details":"incorrect username or password"}"#.into(),
        );
        assert_eq!(
            from_oci(refused, "r", false).to_string(),
            "unauthorized: incorrect username or password"
        );
    }
}
