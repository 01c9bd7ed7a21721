//! arca-runtime: runs one container with youki's libcontainer, for `arca-shim`.
//!
//! Turns a [`arca_api::shim::ShimConfig`] into an overlay rootfs and an OCI runtime spec
//! shaped like Docker's ([`spec`], [`resources`]) plus Docker's seccomp profile
//! ([`seccomp`], compiled to BPF by [`bpf`]), creates and monitors the container
//! ([`shim`]), and writes Docker's json-file log ([`logfile`]).
//!
//! **Single-threaded only**: libcontainer clones the calling process, so this crate must be
//! used from a process with one thread and no async runtime (see `shim`).

pub mod archive;
pub mod bpf;
pub mod logfile;
pub mod resources;
pub mod rootfs;
pub mod seccomp;
pub mod shim;
pub mod spec;
mod sys;
pub mod timefmt;
pub mod user;
