//! The protocol between `arcad` and `arca-shim`.
//!
//! ## Lifecycle
//! 1. arcad spawns `arca-shim` with stdin and stdout as pipes and writes one [`ShimConfig`]
//!    as JSON to its stdin, then closes it.
//! 2. The shim calls `setsid()` (it must outlive arcad), mounts the overlay rootfs, writes the
//!    OCI bundle, creates the container (its init blocks before exec), binds
//!    [`ShimConfig::socket`], and writes exactly one [`Ready`] JSON line to stdout, then
//!    closes stdout. On failure it writes a `Ready` with `error` set, cleans up and exits.
//! 3. Clients connect to the socket; each connection sends one [`Request`] as a JSON line and
//!    reads one [`Reply`] JSON line. After `Reply::Ok` to [`Request::Attach`] the connection
//!    carries the stream (see below).
//! 4. When the container's init exits the shim drains its output, writes [`ExitStatus`] to
//!    [`ShimConfig::exit_file`] atomically, detaches the rootfs (`MNT_DETACH`: the mount
//!    point is free at once), answers every `Wait` and closes every attach stream. Only
//!    then does it clean up, in this order: remove its socket, delete the container's
//!    cgroup, and **last** remove the runtime state directory `<state_root>/<id>`; then it
//!    exits (tearing down the detached overlay, which may sync the upper filesystem).
//!
//! ## Restarting a container
//! A client that saw `Exited` may remove the container's directories right away, but must
//! not start a new shim for the same ID until `<state_root>/<id>` no longer exists (poll it,
//! with a deadline): until then the old shim may still be removing the cgroup and could
//! remove the socket path. Once that directory is gone the old shim touches nothing of the
//! container's any more, except its own detached overlay mount (an unreachable superblock
//! on the same upper and work directories, released when the old shim exits). If the
//! shim failed to delete the container the directory stays (its diagnostics say why).
//!
//! ## Attach streams
//! Shim → client: without a TTY, Docker stdcopy frames (see [`crate::stdcopy`]) for stdout
//! and stderr; with a TTY, raw bytes. Client → shim: raw stdin bytes; a half-close (EOF)
//! closes the container's stdin if [`ProcessConfig::stdin_once`] is set.
//!
//! Every persisted or exchanged structure carries [`PROTOCOL_VERSION`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;

/// Everything the shim needs to run one container. Paths are absolute on the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub version: u32,
    /// The container ID (64 hex).
    pub id: String,
    /// Directory the shim owns for this container: it writes `config.json` there and mounts
    /// the rootfs at `<bundle>/rootfs`. Created by arcad.
    pub bundle: PathBuf,
    /// libcontainer's state root (the container's state lives in `<state_root>/<id>/`).
    pub state_root: PathBuf,
    /// The unix socket the shim listens on.
    pub socket: PathBuf,
    /// Where the shim writes [`ExitStatus`] (write to a temp file, then rename).
    pub exit_file: PathBuf,
    /// Docker json-file log the shim appends to: one JSON object per line,
    /// `{"log":"…\n","stream":"stdout","time":"<RFC 3339 nanos>"}`.
    pub log_path: PathBuf,
    /// Rotation of [`ShimConfig::log_path`]; absent in older configs → the defaults.
    #[serde(default)]
    pub log: LogConfig,
    /// File the shim's own diagnostics go to.
    pub shim_log: PathBuf,
    pub rootfs: RootfsConfig,
    pub process: ProcessConfig,
    pub hostname: String,
    /// Extra bind mounts (e.g. `/etc/hosts`), applied after the default mounts.
    pub mounts: Vec<MountConfig>,
    pub resources: ResourcesConfig,
    /// cgroup path relative to each hierarchy root, e.g. `/arca/<id>`.
    pub cgroup_path: String,
    pub network: NetworkConfig,
    pub security: SecurityConfig,
    /// Namespaces shared with the host (`--pid/--ipc/--uts host`) and user-namespace
    /// remapping (`--userns`). Absent in older configs → all private, no user namespace.
    #[serde(default)]
    pub namespaces: NamespacesConfig,
    /// Host devices to create in the container (`--device`), with cgroup access rules.
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    /// Size of the container's `/dev/shm` tmpfs in bytes (`--shm-size`); `None` → Docker's
    /// 64 MiB.
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// Run this init binary (host path) as PID 1 with the process as its child (`--init`):
    /// the shim bind-mounts it read-only at [`INIT_PATH_IN_CONTAINER`] and runs
    /// `[INIT_PATH_IN_CONTAINER, "--", args...]`.
    #[serde(default)]
    pub init: Option<PathBuf>,
}

/// Where `--init`'s binary appears inside the container (Docker's path).
pub const INIT_PATH_IN_CONTAINER: &str = "/sbin/docker-init";

/// One namespace's mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum NamespaceMode {
    /// A new namespace of the container's own.
    #[default]
    Private,
    /// The host's namespace (the shim's).
    Host,
    /// Join an existing namespace (e.g. `/proc/<pid>/ns/ipc` of another container).
    Path { path: PathBuf },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacesConfig {
    #[serde(default)]
    pub pid: NamespaceMode,
    #[serde(default)]
    pub ipc: NamespaceMode,
    #[serde(default)]
    pub uts: NamespaceMode,
    /// Run the container in a new user namespace with these maps (`--userns`); `None` → the
    /// host's user namespace.
    #[serde(default)]
    pub userns: Option<IdMaps>,
}

/// User-namespace ID maps: container ID `container_id..+size` is host ID `host_id..+size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMaps {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// A host device made available in the container (`--device /dev/x[:/dev/y][:rwm]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// The device node on the host; the shim reads its type and numbers.
    pub host_path: PathBuf,
    /// Where it appears in the container.
    pub container_path: String,
    /// cgroup access: a combination of `r`, `w`, `m`.
    pub permissions: String,
}

/// A resource limit (`--ulimit nofile=1024:2048`), overriding the inherited one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// Docker's name without the `RLIMIT_` prefix, lower case: `nofile`, `nproc`, `core`...
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// Rotation of the json-file log, like Docker's `--log-opt max-size=10m --log-opt max-file=3`
/// but on by default (Docker's json-file grows without bound unless asked).
///
/// When a line would make `<log>` exceed `max_size`, the shim renames `<log>.N` to
/// `<log>.N+1` (dropping `<log>.<max_files-1>`), `<log>` to `<log>.1`, and opens a fresh
/// `<log>`. A line is never split across files, so a single line longer than `max_size`
/// still lands whole in a file of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Rotate before a file exceeds this many bytes; 0 = unlimited (never rotate).
    pub max_size: u64,
    /// Files kept, counting `<log>` itself; at least 1 (1 = drop the old file on rotation).
    pub max_files: u32,
    /// Docker's `--log-driver none`: output goes only to attached clients, no log is written.
    #[serde(default)]
    pub disabled: bool,
}

impl LogConfig {
    pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
    pub const DEFAULT_MAX_FILES: u32 = 3;
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            max_size: Self::DEFAULT_MAX_SIZE,
            max_files: Self::DEFAULT_MAX_FILES,
            disabled: false,
        }
    }
}

/// An overlay root filesystem.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootfsConfig {
    /// Layer directories, **topmost first** (overlayfs `lowerdir` order).
    pub lower: Vec<PathBuf>,
    /// The container's writable layer (`upperdir`), created by arcad.
    pub upper: PathBuf,
    /// overlayfs `workdir`, same filesystem as `upper`, created by arcad.
    pub work: PathBuf,
    pub readonly: bool,
    /// Mount with overlayfs `volatile` (no syncs of the upper layer; its content is not
    /// guaranteed after a host crash). For containers removed when they exit, whose writes
    /// are thrown away anyway: it keeps their unmount from syncing the host filesystem.
    #[serde(default)]
    pub volatile: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessConfig {
    /// argv; `args[0]` is looked up in the container's `PATH` if it has no slash.
    pub args: Vec<String>,
    /// `KEY=value` entries, final (arcad has merged image and user environment).
    pub env: Vec<String>,
    /// Working directory inside the container; created if missing.
    pub cwd: String,
    /// Docker's `--user`: `""` (root), `name`, `uid`, `name:group`, `uid:gid`; resolved by
    /// the shim against the container's `/etc/passwd` and `/etc/group`.
    pub user: String,
    pub tty: bool,
    /// Give the container a stdin pipe (Docker's `OpenStdin`); otherwise stdin is `/dev/null`.
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client's stdin ends.
    pub stdin_once: bool,
    /// Initial terminal size `[rows, cols]`, if a TTY is used.
    pub console_size: Option<[u16; 2]>,
    /// Extra groups (`--group-add`): names resolved in the container's `/etc/group`, or
    /// numbers.
    #[serde(default)]
    pub group_add: Vec<String>,
    /// Limits set for the process (`--ulimit`); others are inherited from the shim.
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
}

/// A mount of the container: a bind of `source`, or, with `tmpfs`, a tmpfs with those
/// mount options (`source` unused).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountConfig {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
    /// tmpfs mount options (`size=64m,mode=1777`); `None` = a bind mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<String>,
    /// A bind's propagation (`rprivate`, `rshared`, `rslave`, `private`, `shared`,
    /// `slave`), set by the shim in the created container. `None`: left as libcontainer
    /// attaches it (like the container's root: `rslave`); arcad names `rprivate`, Docker's
    /// default, for user binds and volumes, and `None` for its own `/etc` files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
}

/// Limits; `None` means unlimited / inherited.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResourcesConfig {
    /// Bytes.
    pub memory: Option<i64>,
    /// Bytes of memory + swap; `-1` unlimited.
    pub memory_swap: Option<i64>,
    /// CPU quota in billionths of a CPU (Docker's `NanoCpus`; `--cpus 1.5` = 1.5e9).
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum NetworkConfig {
    /// A new network namespace with only loopback (`--network none`).
    None,
    /// The host's network namespace.
    Host,
    /// Join an existing network namespace (a bind-mounted nsfs file).
    Path { path: PathBuf },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityConfig {
    /// Capabilities, as `CAP_*` names. Docker's default set unless the user changed it.
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    /// Apply Docker's default seccomp profile (false = unconfined).
    pub seccomp: bool,
    pub privileged: bool,
}

/// The shim's one line on stdout once the container is created (or failed to be).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    pub version: u32,
    /// PID of the shim itself.
    pub shim_pid: i32,
    /// PID of the container's init (in the host PID namespace), when created.
    pub pid: Option<i32>,
    /// Why creation failed; set when `pid` is `None`.
    pub error: Option<String>,
    /// `126` (cannot invoke) or `127` (not found) when the error is about the command,
    /// as Docker reports them.
    pub exit_code: Option<i32>,
}

/// One request per connection, as a JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Let the created container run its process. Reply: `Ok { pid }`.
    Start,
    /// Stream output (and optionally take stdin) until the container exits.
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Send a signal (number) to the container's init. Reply: `Ok`.
    Kill { signal: i32 },
    /// Reply `Exited` when the container exits (at once if it already has).
    Wait,
    /// Set the TTY size. Reply: `Ok`.
    Resize { rows: u16, cols: u16 },
    /// Run an extra process in the running container (`docker exec`), joining its
    /// namespaces and cgroup, with the container's seccomp filter; capabilities are the
    /// container's, or all of them when `privileged`. `process.user` empty means the
    /// container's user. Reply `Ok { pid }` (or `Error` with `exit_code` semantics in the
    /// message: "executable file not found" → 127, "permission denied" → 126); then the
    /// connection carries the process's stream exactly as for `Attach` with stdout and
    /// stderr (stdin too when `process.open_stdin`; a half-close closes the process's
    /// stdin). The shim closes the connection once the process has exited and its output is
    /// drained. Exec output is not written to the container's log.
    Exec {
        exec_id: String,
        process: ProcessConfig,
        privileged: bool,
    },
    /// Reply `Exited` once the exec has exited (at once if it has); `Error` if the shim
    /// does not know `exec_id`. The status is kept until the container exits.
    ExecWait { exec_id: String },
    /// Set an exec's TTY size. Reply: `Ok`.
    ExecResize {
        exec_id: String,
        rows: u16,
        cols: u16,
    },
    /// Freeze every process of the container (cgroup freezer) and reply `Ok` once the
    /// cgroup reports FROZEN. `Error` if the container is not running.
    Pause,
    /// Thaw a paused container. Reply: `Ok`.
    Resume,
    /// Change the running container's limits; only the fields that are `Some` change.
    /// Reply `Ok`, or `Error` naming the limit the kernel refused (e.g. a memory limit below
    /// current usage: "memory limit 4MiB is below the container's current usage 9MiB").
    Update { resources: ResourcesConfig },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "lowercase")]
pub enum Reply {
    Ok { pid: Option<i32> },
    Error { message: String },
    Exited(ExitStatus),
}

/// How the container ended; also the content of [`ShimConfig::exit_file`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub version: u32,
    /// Docker's exit code: the status, or 128 + signal.
    pub exit_code: i32,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
    pub oom_killed: bool,
    /// An engine-side error (empty when the process just exited).
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json_lines() {
        let j = serde_json::to_string(&Request::Kill { signal: 15 }).expect("json");
        assert_eq!(j, r#"{"op":"kill","signal":15}"#);
        let r: Request = serde_json::from_str(r#"{"op":"start"}"#).expect("parse");
        assert!(matches!(r, Request::Start));
    }

    #[test]
    fn exited_reply_flattens_status() {
        let r = Reply::Exited(ExitStatus {
            version: PROTOCOL_VERSION,
            exit_code: 3,
            finished_at: "t".into(),
            oom_killed: false,
            error: String::new(),
        });
        let j = serde_json::to_string(&r).expect("json");
        assert!(j.contains(r#""reply":"exited""#) && j.contains(r#""exit_code":3"#));
    }
}

/// `arca-shim archive <request JSON>`: one look into a container's filesystem for the
/// archive API (`docker cp`), from a short-lived process of its own.
///
/// The helper makes a private mount namespace, puts the container's root there (the running
/// container's mounted rootfs, or the overlay of a stopped one, mounted afresh), adds the
/// container's binds and volumes (read-only ones read-only; its tmpfs mounts are in its
/// memory, out of reach: a put there is refused), `chroot`s into it and only then touches
/// any path the request names: symlinks inside the container cannot lead out of it.
/// Everything it mounted vanishes with it.
///
/// Stdout carries one [`ArchiveReply`] JSON line first; after a successful
/// [`ArchiveOp::Get`] the tar stream follows. For [`ArchiveOp::Put`] the first reply says
/// the target is a writable directory (or why not); then stdin carries the tar stream and a
/// second reply says whether it was extracted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveRequest {
    pub version: u32,
    pub op: ArchiveOp,
    pub root: ArchiveRoot,
    /// The container's binds, volumes and tmpfs mounts, as the shim gets them (tmpfs ones
    /// only name destinations a put must not write to).
    pub mounts: Vec<MountConfig>,
    /// `--read-only`: the root is mounted read-only.
    pub readonly_rootfs: bool,
    /// The container's user namespace, if any: host IDs on disk are container IDs mapped.
    pub userns: Option<IdMaps>,
}

/// What to do, with `path` as the client gave it (inside the container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ArchiveOp {
    /// `HEAD /containers/{id}/archive`.
    Stat { path: String },
    /// `GET /containers/{id}/archive`: the stat, then a tar of the resource.
    Get { path: String },
    /// `PUT /containers/{id}/archive`: extract stdin's tar into the directory `path`.
    Put {
        path: String,
        no_overwrite_dir_non_dir: bool,
        /// `copyUIDGID`: the container's `--user` (`""` = root), whose IDs every extracted
        /// entry gets; `None` keeps the archive's IDs.
        owner_user: Option<String>,
    },
}

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArchiveRoot {
    /// A running container: its rootfs is mounted here (by its shim).
    Mounted { path: PathBuf },
    /// A stopped container: the helper mounts this overlay at `mount_point` (created and
    /// removed by the helper) in its private namespace. The caller keeps the container from
    /// starting meanwhile.
    Overlay {
        rootfs: RootfsConfig,
        mount_point: PathBuf,
    },
}

/// The helper's first stdout line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArchiveReply {
    /// `X-Docker-Container-Path-Stat`'s JSON (before base64), for `Stat` and `Get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ArchiveError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveError {
    pub kind: ArchiveErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveErrorKind {
    /// The path does not exist in the container.
    NotFound,
    /// Bad request: not a directory, read-only target, an archive entry escaping, ...
    Invalid,
    /// The running container's rootfs is no longer mounted (it exited meanwhile): ask again
    /// as for a stopped container.
    Gone,
    Internal,
}
