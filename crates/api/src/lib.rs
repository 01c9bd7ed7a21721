//! Wire contracts shared by two processes: the Docker Engine API types (bollard-stubs
//! models, re-exported as [`docker`]) and the protocol between `arcad` and `arca-shim`
//! ([`shim`]), plus Docker's stdout/stderr stream framing ([`stdcopy`]).

pub mod b64;
pub mod shim;
pub mod stdcopy;

/// Docker Engine API models (request and response bodies), generated from Moby's swagger.
pub use bollard_stubs::models as docker;

/// The API version arcad speaks, and the oldest it accepts.
pub const API_VERSION: &str = "1.51";
pub const MIN_API_VERSION: &str = "1.24";
