//! The OCI runtime spec for a [`ShimConfig`], shaped the way Docker shapes it (moby
//! `oci/defaults.go` and `daemon/oci_linux.go`).
//!
//! Deliberate differences from oci-spec's defaults: Docker's mounts, masked and read-only
//! paths, only the rlimits `--ulimit` names (the container inherits the shim's others, and a
//! hard limit above the shim's is lowered to it when the shim lacks `CAP_SYS_RESOURCE`), and
//! umask 0022 as runc applies.
//!
//! Seccomp and capabilities are **not** in the spec: the shim's executor applies them in
//! the container's init (see `shim::executor`). libcontainer only offers seccomp through
//! libseccomp (~7 ms per container to compile Docker's profile) and, without
//! `noNewPrivileges`, must install it before dropping capabilities. Without
//! `process.capabilities` libcontainer keeps the shim's own capabilities (effective =
//! permitted, also across the switch to a non-root user, with `PR_SET_KEEPCAPS`), so the
//! executor still holds `CAP_SYS_ADMIN` to install the filter and `CAP_SETPCAP` to shrink
//! the bounding set. [`capability_mask`] turns the config's names into what it applies.
//!
//! `noNewPrivileges` is written only when true, as Docker writes it (libcontainer 0.7 would
//! read a present `false` as a request to load a spec's seccomp filter late).
//!
//! Namespaces follow Docker's `--pid/--ipc/--uts`: `host` leaves that namespace out (and,
//! for UTS, the hostname: the host's stays), a path joins it. `--userns` adds a user
//! namespace with the config's ID maps; the rootfs is prepared for it by
//! [`crate::rootfs::mount_overlay`].

mod devices;
mod limits;
mod mounts;

use std::path::PathBuf;

use arca_api::shim::{IdMap, NamespaceMode, NamespacesConfig, NetworkConfig, ShimConfig};
use libcontainer::capabilities::CapabilityExt;
use oci_spec::runtime::{
    BoxBuilder, Capabilities, Capability, Linux, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxNamespace, LinuxNamespaceType, LinuxResources, PosixRlimit, Process, Root, Spec, User,
};

pub use self::devices::{DeviceError, HostDevice, resolve as resolve_devices};
pub use self::limits::{clamped_rlimits, rlimit_type, rlimits};
pub use self::mounts::{DEFAULT_SHM_SIZE, mounts, process_args};
use crate::user::ExecUser;

/// Paths hidden from unprivileged containers.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in unprivileged containers.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("unknown capability {0:?}")]
    Capability(String),
    #[error("unknown ulimit name {0:?}")]
    UnknownRlimit(String),
    #[error("ulimit {name}: soft limit {soft} is above the hard limit {hard}")]
    RlimitSoftAboveHard { name: String, soft: u64, hard: u64 },
    #[error("invalid shm size 0: it must be at least 1 byte")]
    ShmSize,
}

/// Everything the spec needs beyond the config itself, resolved by the shim.
pub struct SpecInput<'a> {
    pub config: &'a ShimConfig,
    pub user: &'a ExecUser,
    /// The final environment (with `HOME`).
    pub env: Vec<String>,
    /// Absolute path of the mounted rootfs.
    pub rootfs: PathBuf,
    pub resources: LinuxResources,
    /// `--device` nodes (their cgroup rules are already in `resources`).
    pub devices: &'a [HostDevice],
    /// `--ulimit`s, already checked (see [`rlimits`]).
    pub rlimits: Vec<PosixRlimit>,
}

/// Parses `CAP_*` names into a capability set.
pub fn capabilities(names: &[String]) -> Result<Capabilities, SpecError> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value::<Capability>(serde_json::Value::String(n.clone()))
                .map_err(|_| SpecError::Capability(n.clone()))
        })
        .collect()
}

/// The capability set named by `names` as a bit mask (bit `n` = capability number `n`).
pub fn capability_mask(names: &[String]) -> Result<u64, SpecError> {
    Ok(capabilities(names)?
        .iter()
        .fold(0, |mask, c| mask | 1u64 << c.to_cap().index()))
}

fn namespaces(network: &NetworkConfig, modes: &NamespacesConfig) -> Vec<LinuxNamespace> {
    let ns = |typ, path: Option<PathBuf>| {
        let mut n = LinuxNamespace::default();
        n.set_typ(typ);
        n.set_path(path);
        n
    };
    let mut v = Vec::with_capacity(7);
    for (typ, mode) in [
        (LinuxNamespaceType::Pid, &modes.pid),
        (LinuxNamespaceType::Uts, &modes.uts),
        (LinuxNamespaceType::Ipc, &modes.ipc),
    ] {
        match mode {
            NamespaceMode::Private => v.push(ns(typ, None)),
            NamespaceMode::Host => {}
            NamespaceMode::Path { path } => v.push(ns(typ, Some(path.clone()))),
        }
    }
    v.push(ns(LinuxNamespaceType::Mount, None));
    v.push(ns(LinuxNamespaceType::Cgroup, None));
    if modes.userns.is_some() {
        v.push(ns(LinuxNamespaceType::User, None));
    }
    match network {
        NetworkConfig::None => v.push(ns(LinuxNamespaceType::Network, None)),
        NetworkConfig::Host => {}
        NetworkConfig::Path { path } => {
            v.push(ns(LinuxNamespaceType::Network, Some(path.clone())));
        }
    }
    v
}

/// Builds the spec. The caller writes it to `<bundle>/config.json`.
pub fn build(input: SpecInput<'_>) -> Result<Spec, SpecError> {
    let cfg = input.config;

    let mut user = User::default();
    user.set_uid(input.user.uid);
    user.set_gid(input.user.gid);
    user.set_umask(Some(0o022));
    if !input.user.additional_gids.is_empty() {
        user.set_additional_gids(Some(input.user.additional_gids.clone()));
    }

    let mut process = Process::default();
    process
        .set_terminal(Some(cfg.process.tty))
        .set_user(user)
        .set_args(Some(process_args(cfg)))
        .set_env(Some(input.env))
        .set_cwd(PathBuf::from(&cfg.process.cwd))
        // Applied by the executor (see the module docs).
        .set_capabilities(None)
        .set_rlimits((!input.rlimits.is_empty()).then_some(input.rlimits))
        .set_no_new_privileges(cfg.security.no_new_privileges.then_some(true))
        .set_oom_score_adj(None);
    if let (true, Some([rows, cols])) = (cfg.process.tty, cfg.process.console_size) {
        let size = BoxBuilder::default()
            .height(u64::from(rows))
            .width(u64::from(cols))
            .build()
            .expect("every Box field has a default");
        process.set_console_size(Some(size));
    }

    let mut root = Root::default();
    root.set_path(input.rootfs);
    root.set_readonly(Some(cfg.rootfs.readonly));

    let privileged = cfg.security.privileged;
    let devices: Vec<_> = input.devices.iter().map(|d| d.device.clone()).collect();
    let mut linux = Linux::default();
    linux
        .set_cgroups_path(Some(PathBuf::from(&cfg.cgroup_path)))
        .set_resources(Some(input.resources))
        .set_namespaces(Some(namespaces(&cfg.network, &cfg.namespaces)))
        .set_devices((!devices.is_empty()).then_some(devices))
        .set_masked_paths((!privileged).then(|| owned(MASKED_PATHS)))
        .set_readonly_paths((!privileged).then(|| owned(READONLY_PATHS)))
        // Installed by the executor (see the module docs).
        .set_seccomp(None);
    if let Some(maps) = &cfg.namespaces.userns {
        linux
            .set_uid_mappings(Some(id_mappings(&maps.uid)))
            .set_gid_mappings(Some(id_mappings(&maps.gid)));
    }
    // Without a UTS namespace of its own the container has the host's (or the joined)
    // hostname; libcontainer refuses a hostname it could not set.
    let hostname = (cfg.namespaces.uts == NamespaceMode::Private).then(|| cfg.hostname.clone());

    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_owned())
        .set_root(Some(root))
        .set_hostname(hostname)
        .set_mounts(Some(mounts(cfg)?))
        .set_process(Some(process))
        .set_annotations(None)
        .set_linux(Some(linux));
    Ok(spec)
}

fn id_mappings(maps: &[IdMap]) -> Vec<LinuxIdMapping> {
    maps.iter()
        .map(|m| {
            LinuxIdMappingBuilder::default()
                .container_id(m.container_id)
                .host_id(m.host_id)
                .size(m.size)
                .build()
                .expect("every LinuxIdMapping field is set")
        })
        .collect()
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// `env` with `HOME` added (from the passwd entry, else `/`) when it is not set, and
/// `PATH` defaulted as Docker does.
pub fn final_env(env: &[String], home: Option<&str>) -> Vec<String> {
    let mut out = env.to_vec();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        out.push(format!("PATH={}", crate::rootfs::DEFAULT_PATH));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        out.push(format!("HOME={}", home.unwrap_or("/")));
    }
    out
}

/// The value of `key` in a `KEY=value` list (the last one wins, as in a shell).
pub fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[cfg(test)]
pub(crate) mod tests {
    use arca_api::shim::{
        MountConfig, PROTOCOL_VERSION, ProcessConfig, ResourcesConfig, RootfsConfig, SecurityConfig,
    };

    use std::path::Path;

    use arca_api::shim::INIT_PATH_IN_CONTAINER;

    use super::*;

    pub(crate) fn config() -> ShimConfig {
        ShimConfig {
            version: PROTOCOL_VERSION,
            id: "c".repeat(64),
            bundle: "/run/b".into(),
            state_root: "/run/s".into(),
            socket: "/run/b/sock".into(),
            exit_file: "/run/b/exit".into(),
            log_path: "/run/b/log".into(),
            log: Default::default(),
            shim_log: "/run/b/shim.log".into(),
            rootfs: RootfsConfig {
                lower: vec!["/l".into()],
                upper: "/u".into(),
                work: "/w".into(),
                readonly: false,
                volatile: false,
            },
            process: ProcessConfig {
                args: vec!["sh".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                user: String::new(),
                tty: false,
                open_stdin: false,
                stdin_once: false,
                console_size: None,
                group_add: Vec::new(),
                rlimits: Vec::new(),
            },
            hostname: "box".into(),
            mounts: vec![MountConfig {
                source: "/var/lib/arca/c/hosts".into(),
                destination: "/etc/hosts".into(),
                readonly: true,
                tmpfs: None,
                propagation: None,
            }],
            resources: ResourcesConfig::default(),
            cgroup_path: "/arca/c".into(),
            network: NetworkConfig::None,
            security: SecurityConfig {
                capabilities: vec!["CAP_CHOWN".into(), "CAP_KILL".into()],
                no_new_privileges: false,
                seccomp: true,
                privileged: false,
            },
            namespaces: Default::default(),
            devices: Vec::new(),
            shm_size: None,
            init: None,
        }
    }

    fn build_for(cfg: &ShimConfig) -> Spec {
        let user = ExecUser {
            uid: 1,
            gid: 2,
            additional_gids: vec![3],
            home: None,
        };
        build(SpecInput {
            config: cfg,
            user: &user,
            env: final_env(&cfg.process.env, None),
            rootfs: "/run/b/rootfs".into(),
            resources: LinuxResources::default(),
            devices: &[],
            rlimits: Vec::new(),
        })
        .expect("spec")
    }

    #[test]
    fn spec_has_dockers_mounts_and_the_bind_mounts_last() {
        let spec = build_for(&config());
        let dests: Vec<String> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm",
                "/etc/hosts"
            ]
        );
        let hosts = spec.mounts().iter().flatten().last().expect("bind");
        assert_eq!(hosts.typ().as_deref(), Some("bind"));
        assert!(hosts.options().iter().flatten().any(|o| o == "ro"));
        let sys = &spec.mounts().as_ref().expect("mounts")[3];
        assert!(sys.options().iter().flatten().any(|o| o == "ro"));
    }

    #[test]
    fn binds_are_rprivate_unless_another_propagation_is_asked() {
        let opts = |cfg: &ShimConfig| -> Vec<String> {
            let spec = build_for(cfg);
            let bind = spec.mounts().iter().flatten().last().expect("bind").clone();
            bind.options().clone().unwrap_or_default()
        };
        let mut cfg = config();
        assert_eq!(opts(&cfg), ["rbind", "rprivate", "ro"]);
        cfg.mounts[0].propagation = Some("rslave".into());
        assert_eq!(opts(&cfg), ["rbind", "rslave", "ro"]);
    }

    #[test]
    fn unprivileged_spec_masks_paths_and_leaves_security_to_the_executor() {
        let spec = build_for(&config());
        let linux = spec.linux().as_ref().expect("linux");
        assert!(
            linux
                .masked_paths()
                .iter()
                .flatten()
                .any(|p| p == "/proc/kcore")
        );
        assert!(
            linux
                .masked_paths()
                .iter()
                .flatten()
                .any(|p| p == "/sys/devices/virtual/powercap")
        );
        assert!(
            linux
                .readonly_paths()
                .iter()
                .flatten()
                .any(|p| p == "/proc/sys")
        );
        // Both applied by the executor, not libcontainer.
        assert!(linux.seccomp().is_none());
        let process = spec.process().as_ref().expect("process");
        assert!(process.capabilities().is_none());
        assert!(process.rlimits().is_none());
        assert_eq!(process.no_new_privileges(), None);
        assert_eq!(process.user().uid(), 1);
        assert_eq!(process.user().additional_gids().as_deref(), Some(&[3][..]));
        assert_eq!(spec.hostname().as_deref(), Some("box"));
    }

    #[test]
    fn privileged_spec_has_no_masks_and_writable_sysfs() {
        let mut cfg = config();
        cfg.security.privileged = true;
        cfg.security.seccomp = false;
        let spec = build_for(&cfg);
        let linux = spec.linux().as_ref().expect("linux");
        assert!(linux.masked_paths().is_none());
        assert!(linux.readonly_paths().is_none());
        assert!(linux.seccomp().is_none());
        let sys = &spec.mounts().as_ref().expect("mounts")[3];
        assert!(sys.options().iter().flatten().any(|o| o == "rw"));
    }

    #[test]
    fn namespaces_follow_the_network_mode() {
        let types = |n: &NetworkConfig| -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
            namespaces(n, &NamespacesConfig::default())
                .into_iter()
                .map(|ns| (ns.typ(), ns.path().clone()))
                .collect()
        };
        let none = types(&NetworkConfig::None);
        assert_eq!(none.len(), 6);
        assert!(none.contains(&(LinuxNamespaceType::Network, None)));
        assert!(none.contains(&(LinuxNamespaceType::Cgroup, None)));
        assert!(
            !types(&NetworkConfig::Host)
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::Network)
        );
        let joined = types(&NetworkConfig::Path {
            path: "/run/netns/x".into(),
        });
        assert!(joined.contains(&(LinuxNamespaceType::Network, Some("/run/netns/x".into()))));
    }

    #[test]
    fn env_gets_home_and_path_defaults() {
        let env = final_env(&["A=1".into()], Some("/root"));
        assert!(env.contains(&"HOME=/root".to_owned()));
        assert!(env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin")));
        let env = final_env(&["HOME=/x".into(), "PATH=/y".into()], Some("/root"));
        assert_eq!(env, ["HOME=/x", "PATH=/y"]);
        assert_eq!(env_value(&env, "PATH"), Some("/y"));
        assert_eq!(final_env(&[], None)[1], "HOME=/");
    }

    #[test]
    fn unknown_capabilities_are_rejected() {
        assert!(matches!(
            capabilities(&["CAP_BOGUS".into()]),
            Err(SpecError::Capability(_))
        ));
        assert_eq!(
            capabilities(&["CAP_SYS_ADMIN".into()])
                .map(|c| c.len())
                .ok(),
            Some(1)
        );
        assert!(matches!(
            capability_mask(&["CAP_BOGUS".into()]),
            Err(SpecError::Capability(_))
        ));
    }

    #[test]
    fn capability_mask_uses_kernel_bit_numbers() {
        let docker = arca_model::caps::to_strings(arca_model::caps::DOCKER_DEFAULT);
        // What /proc/<pid>/status shows as CapBnd for Docker's default set.
        assert_eq!(capability_mask(&docker).ok(), Some(0xa80425fb));
        assert_eq!(capability_mask(&[]).ok(), Some(0));
        assert_eq!(
            capability_mask(&["CAP_CHECKPOINT_RESTORE".into()]).ok(),
            Some(1 << 40)
        );
    }

    #[test]
    fn spec_serializes_without_rlimits_and_with_oci_version() {
        let spec = build_for(&config());
        let v = serde_json::to_value(&spec).expect("json");
        assert!(v["process"].get("rlimits").is_none());
        assert!(
            v["ociVersion"]
                .as_str()
                .is_some_and(|s| s.starts_with("1."))
        );
        assert_eq!(v["linux"]["cgroupsPath"], "/arca/c");
    }

    fn types_of(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        let linux = spec.linux().as_ref().expect("linux");
        linux
            .namespaces()
            .iter()
            .flatten()
            .map(|ns| (ns.typ(), ns.path().clone()))
            .collect()
    }

    #[test]
    fn host_namespaces_are_left_out_and_paths_joined() {
        let mut cfg = config();
        cfg.namespaces.pid = NamespaceMode::Host;
        cfg.namespaces.ipc = NamespaceMode::Path {
            path: "/proc/42/ns/ipc".into(),
        };
        cfg.namespaces.uts = NamespaceMode::Host;
        let spec = build_for(&cfg);
        let types = types_of(&spec);
        assert!(!types.iter().any(|(t, _)| *t == LinuxNamespaceType::Pid));
        assert!(!types.iter().any(|(t, _)| *t == LinuxNamespaceType::Uts));
        assert!(types.contains(&(LinuxNamespaceType::Ipc, Some("/proc/42/ns/ipc".into()))));
        assert!(types.contains(&(LinuxNamespaceType::Mount, None)));
        assert!(!types.iter().any(|(t, _)| *t == LinuxNamespaceType::User));
        // The host's hostname stays: libcontainer refuses a hostname without a UTS namespace.
        assert_eq!(spec.hostname(), &None);
        let private = build_for(&config());
        assert_eq!(types_of(&private).len(), 6);
        assert_eq!(private.hostname().as_deref(), Some("box"));
    }

    #[test]
    fn userns_adds_the_namespace_and_id_maps() {
        let mut cfg = config();
        let map = vec![IdMap {
            container_id: 0,
            host_id: 100_000,
            size: 65_536,
        }];
        cfg.namespaces.userns = Some(arca_api::shim::IdMaps {
            uid: map.clone(),
            gid: map,
        });
        let spec = build_for(&cfg);
        assert!(types_of(&spec).contains(&(LinuxNamespaceType::User, None)));
        let v = serde_json::to_value(&spec).expect("json");
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 100_000);
        assert_eq!(v["linux"]["gidMappings"][0]["size"], 65_536);
        // Its own network namespace: sysfs can be mounted.
        assert_eq!(v["mounts"][3]["type"], "sysfs");
        cfg.network = NetworkConfig::Host;
        let v = serde_json::to_value(build_for(&cfg)).expect("json");
        assert_eq!(v["mounts"][3]["type"], "bind");
        assert_eq!(v["mounts"][3]["source"], "/sys");
    }

    #[test]
    fn init_is_bind_mounted_read_only_and_runs_the_command() {
        let mut cfg = config();
        cfg.process.args = vec!["sleep".into(), "1".into()];
        assert_eq!(process_args(&cfg), ["sleep", "1"]);
        cfg.init = Some("/usr/libexec/arca-init".into());
        let spec = build_for(&cfg);
        let init = spec.mounts().iter().flatten().last().expect("init mount");
        assert_eq!(init.destination(), Path::new(INIT_PATH_IN_CONTAINER));
        assert_eq!(
            init.source().as_deref(),
            Some(Path::new("/usr/libexec/arca-init"))
        );
        assert!(init.options().iter().flatten().any(|o| o == "ro"));
        let args = spec.process().as_ref().and_then(|p| p.args().clone());
        assert_eq!(
            args.expect("args"),
            [INIT_PATH_IN_CONTAINER, "--", "sleep", "1"]
        );
    }

    #[test]
    fn devices_and_rlimits_reach_the_spec() {
        let cfg = config();
        let devices = resolve_devices(
            &[arca_api::shim::DeviceConfig {
                host_path: "/dev/zero".into(),
                container_path: "/dev/myzero".into(),
                permissions: "r".into(),
            }],
            false,
        )
        .expect("devices");
        let user = ExecUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![0],
            home: None,
        };
        let (rl, _) = rlimits(
            &[arca_api::shim::Rlimit {
                name: "nofile".into(),
                soft: 100,
                hard: 200,
            }],
            |_| None,
        )
        .expect("rlimits");
        let spec = build(SpecInput {
            config: &cfg,
            user: &user,
            env: Vec::new(),
            rootfs: "/r".into(),
            resources: LinuxResources::default(),
            devices: &devices,
            rlimits: rl,
        })
        .expect("spec");
        let v = serde_json::to_value(&spec).expect("json");
        assert_eq!(v["linux"]["devices"][0]["path"], "/dev/myzero");
        assert_eq!(v["linux"]["devices"][0]["type"], "c");
        assert_eq!(v["linux"]["devices"][0]["major"], 1);
        assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(v["process"]["rlimits"][0]["hard"], 200);
    }
}
