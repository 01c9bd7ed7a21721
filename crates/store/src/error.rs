//! The store's error type and its mapping to API error kinds.

use std::io;
use std::path::PathBuf;

use arca_model::{Digest, ErrorKind, ReferenceError};

use crate::hello::HelloError;
use crate::unpack::UnpackError;

/// Everything [`crate::Store`] can fail with. Messages of non-`Internal` kinds are shown to
/// API clients verbatim, so they never contain host paths.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Docker's exact wording: clients match on it.
    #[error("No such image: {0}")]
    NotFound(String),
    /// A Docker-style `conflict: …` message.
    #[error("{0}")]
    Conflict(String),
    #[error("multiple IDs found with provided prefix: {0}")]
    AmbiguousId(String),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("refusing to create a tag with a digest reference")]
    DigestTag,
    #[error("reference {0} has no digest")]
    NoDigest(String),
    #[error("invalid archive: {0}")]
    Archive(String),
    #[error("invalid image config {id}: {reason}")]
    Config { id: Digest, reason: String },
    #[error("blob {expected} has digest {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {0} is not in the content store")]
    MissingBlob(Digest),
    #[error("invalid change {line:?}: {reason}")]
    Change { line: String, reason: String },
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("failed to read the input stream")]
    Input(#[source] io::Error),
    #[error("failed to write the output stream")]
    Output(#[source] io::Error),
    #[error("failed to {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has unsupported format version {version}")]
    Version { path: PathBuf, version: u64 },
    #[error("failed to build the hello-world image")]
    Hello(#[from] HelloError),
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::AmbiguousId(_)
            | Self::Reference(_)
            | Self::DigestTag
            | Self::NoDigest(_)
            | Self::Archive(_)
            | Self::Config { .. }
            | Self::DigestMismatch { .. }
            | Self::MissingBlob(_)
            | Self::Change { .. }
            | Self::Input(_) => ErrorKind::InvalidArgument,
            Self::Unpack(e) => e.kind(),
            Self::Io { .. }
            | Self::Output(_)
            | Self::Corrupt { .. }
            | Self::Version { .. }
            | Self::Hello(_) => ErrorKind::Internal,
        }
    }

    /// An I/O error on `path` (builder for `map_err`).
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}
