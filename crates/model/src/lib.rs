//! arca's vocabulary: identifiers, digests, image references, lifecycle states and the
//! error kinds every layer maps its errors to. No I/O lives here.

pub mod caps;
mod digest;
mod duration;
mod error;
mod id;
mod reference;
pub mod signal;
mod state;
pub mod ulimit;

pub use digest::{Digest, DigestError};
pub use duration::human_duration;
pub use error::ErrorKind;
pub use id::{ContainerId, IdError, random_hex};
pub use reference::{DEFAULT_DOMAIN, Reference, ReferenceError};
pub use state::{ContainerStatus, TransitionError};
