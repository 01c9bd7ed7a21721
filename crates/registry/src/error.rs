//! The pull's error type and its mapping to API error kinds.

use arca_model::{Digest, ErrorKind};
use arca_store::StoreError;
use oci_client::errors::{OciDistributionError, OciErrorCode};

/// Everything [`crate::pull`] can fail with. Messages are shown to API clients verbatim: they
/// name the reference (and the layer for blob failures) and never contain host paths.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Docker's wording for a missing tag or digest.
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestNotFound { reference: String },
    /// Docker's wording when the registry refuses anonymous access (or the repository is
    /// missing on registries that do not tell the two apart).
    /// Moby appends the registry's own error (`: denied: requested access to the resource is
    /// denied`) when it sent one.
    #[error(
        "pull access denied for {repo}, repository does not exist or may require 'docker login'{}",
        reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
    )]
    AccessDenied {
        repo: String,
        reason: Option<String>,
    },
    #[error("unsupported media type {media_type} in the manifest of {reference}")]
    MediaType {
        reference: String,
        media_type: String,
    },
    #[error("invalid manifest for {reference}: {reason}")]
    InvalidManifest { reference: String, reason: String },
    #[error("manifest digest mismatch for {reference}: expected {expected}, got {actual}")]
    ManifestDigest {
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    /// The token server refused the credentials; Docker's wording
    /// (`Head "<manifest url>": unauthorized: incorrect username or password`).
    #[error("{0}")]
    Unauthorized(String),
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    InvalidPlatform(String),
    /// Docker's wording.
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { platform: String },
    #[error("failed to pull layer {layer}: the registry sent content with digest {actual}")]
    BlobDigest { layer: Digest, actual: Digest },
    #[error("failed to pull blob {blob}: {reason}")]
    Blob { blob: Digest, reason: String },
    /// The registry cannot be reached, answered 5xx, or stopped answering.
    #[error("registry {registry} is unavailable: {reason}")]
    Unavailable { registry: String, reason: String },
    /// Any other answer the registry should not have given.
    #[error("registry {registry} failed the request: {reason}")]
    Registry { registry: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the pull's blocking task failed: {0}")]
    Task(String),
}

impl PullError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ManifestNotFound { .. } | Self::AccessDenied { .. } => ErrorKind::NotFound,
            Self::MediaType { .. }
            | Self::InvalidManifest { .. }
            | Self::ManifestDigest { .. }
            | Self::InvalidPlatform(_)
            | Self::NoMatchingPlatform { .. }
            | Self::BlobDigest { .. } => ErrorKind::InvalidArgument,
            Self::Blob { .. } | Self::Unavailable { .. } | Self::Registry { .. } => {
                ErrorKind::Unavailable
            }
            Self::Store(e) => e.kind(),
            Self::Task(_) => ErrorKind::Internal,
            Self::Unauthorized(_) => ErrorKind::Unauthorized,
        }
    }

    /// Whether retrying the same request may succeed (connection trouble, 5xx, timeouts).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// What a registry request was for, to word its errors.
pub(crate) enum Target<'a> {
    /// A manifest of `reference` (familiar form) in repository `repo`.
    Manifest {
        reference: &'a str,
        repo: &'a str,
    },
    Blob(&'a Digest),
}

/// Translates an `oci-client` error into a [`PullError`].
pub(crate) fn from_oci(e: OciDistributionError, registry: &str, target: Target<'_>) -> PullError {
    let unavailable = |reason: String| PullError::Unavailable {
        registry: registry.to_owned(),
        reason,
    };
    let not_found = || match &target {
        Target::Manifest { reference, .. } => PullError::ManifestNotFound {
            reference: (*reference).to_owned(),
        },
        Target::Blob(blob) => PullError::Blob {
            blob: (*blob).clone(),
            reason: "blob unknown to registry".into(),
        },
    };
    let denied = |reason: Option<String>| match &target {
        Target::Manifest { repo, .. } => PullError::AccessDenied {
            repo: (*repo).to_owned(),
            reason,
        },
        Target::Blob(blob) => PullError::Blob {
            blob: (*blob).clone(),
            reason: "unauthorized".into(),
        },
    };
    match e {
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<_> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                not_found()
            } else if codes.contains(&&OciErrorCode::Toomanyrequests) {
                unavailable("too many requests".into())
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                // Docker's errcode text: the code in lower case, then the message.
                let reason = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", format!("{:?}", e.code).to_lowercase(), e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                denied(Some(reason).filter(|r| !r.is_empty()))
            } else {
                let reasons: Vec<_> = envelope.errors.iter().map(|e| e.message.clone()).collect();
                PullError::Registry {
                    registry: registry.to_owned(),
                    reason: reasons.join("; "),
                }
            }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
        OciDistributionError::DigestError(e) => match &target {
            Target::Manifest { reference, .. } => PullError::InvalidManifest {
                reference: (*reference).to_owned(),
                reason: e.to_string(),
            },
            Target::Blob(blob) => PullError::Blob {
                blob: (*blob).clone(),
                reason: e.to_string(),
            },
        },
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => denied(None),
        OciDistributionError::ServerError { code: 404, .. } => not_found(),
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => denied(None),
        OciDistributionError::ServerError { code, message, .. } if code >= 500 => {
            unavailable(format!("HTTP {code}: {}", message.trim()))
        }
        OciDistributionError::RequestError(e) => unavailable(request_reason(&e)),
        OciDistributionError::IoError(e) => unavailable(e.to_string()),
        other => PullError::Registry {
            registry: registry.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// A short reason for a failed HTTP request, with the underlying cause (reqwest's own
/// message is just "error sending request").
pub(crate) fn request_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_docker_wording_and_kinds() {
        let target = || Target::Manifest {
            reference: "127.0.0.1:5000/x:nope",
            repo: "127.0.0.1:5000/x",
        };
        let e = from_oci(
            OciDistributionError::ServerError {
                code: 404,
                url: "u".into(),
                message: String::new(),
            },
            "127.0.0.1:5000",
            target(),
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "manifest for 127.0.0.1:5000/x:nope not found: manifest unknown"
        );
        let e = from_oci(
            OciDistributionError::ServerError {
                code: 503,
                url: "u".into(),
                message: "busy".into(),
            },
            "127.0.0.1:5000",
            target(),
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_transient());
        let e = PullError::NoMatchingPlatform {
            platform: "linux/arm64".into(),
        };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/arm64 in the manifest list entries"
        );
    }
}
