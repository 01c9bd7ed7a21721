//! The kinds of failure the API distinguishes. The daemon maps a kind to an HTTP status in
//! exactly one place; every library error exposes its kind.

/// What went wrong, as a client needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named object does not exist (404).
    NotFound,
    /// The request conflicts with the object's state or name (409).
    Conflict,
    /// The request is malformed or names an impossible value (400).
    InvalidArgument,
    /// Nothing to do: already started or stopped (304).
    NotModified,
    /// A dependency is not ready or reachable (503).
    Unavailable,
    /// A bug or a host failure (500).
    Internal,
    /// The operation exists but this configuration cannot do it, e.g. reading the logs of
    /// a container whose logging driver is `none` (501).
    NotImplemented,
    /// A registry refused the credentials (401, Docker's `errdefs.Unauthorized`).
    Unauthorized,
    /// The operation is never allowed on this object, e.g. removing a predefined network
    /// (403, Docker's `errdefs.Forbidden`).
    Forbidden,
}
