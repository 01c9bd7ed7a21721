//! The OCI runtime spec for a [`ShimConfig`], shaped the way Docker shapes it (moby
//! `oci/defaults.go` and `daemon/oci_linux.go`).
//!
//! Deliberate differences from oci-spec's defaults: Docker's mounts, masked and read-only
//! paths, no rlimits at all (the container inherits the shim's, which never exceed the hard
//! limits: this host has no `CAP_SYS_RESOURCE`), and umask 0022 as runc applies.
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

use std::path::{Path, PathBuf};

use arca_api::shim::{NetworkConfig, ShimConfig};
use libcontainer::capabilities::CapabilityExt;
use oci_spec::runtime::{
    BoxBuilder, Capabilities, Capability, Linux, LinuxNamespace, LinuxNamespaceType,
    LinuxResources, Mount, Process, Root, Spec, User,
};

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
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_owned()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|o| (*o).to_owned()).collect()));
    m
}

/// Docker's default mounts, then the config's bind mounts (which replace a default mount
/// with the same destination).
pub fn mounts(config: &ShimConfig) -> Vec<Mount> {
    let privileged = config.security.privileged;
    let sys_mode = if privileged { "rw" } else { "ro" };
    let defaults = [
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &[sys_mode, "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[sys_mode, "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ];
    let overridden = |m: &Mount| {
        config
            .mounts
            .iter()
            .any(|u| Path::new(&u.destination) == m.destination())
    };
    let mut out: Vec<Mount> = defaults.into_iter().filter(|m| !overridden(m)).collect();
    for u in &config.mounts {
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(&u.destination));
        m.set_typ(Some("bind".to_owned()));
        m.set_source(Some(u.source.clone()));
        let mode = if u.readonly { "ro" } else { "rw" };
        m.set_options(Some(vec!["rbind".into(), "rprivate".into(), mode.into()]));
        out.push(m);
    }
    out
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

fn namespaces(network: &NetworkConfig) -> Vec<LinuxNamespace> {
    let ns = |typ, path: Option<PathBuf>| {
        let mut n = LinuxNamespace::default();
        n.set_typ(typ);
        n.set_path(path);
        n
    };
    let mut v = vec![
        ns(LinuxNamespaceType::Pid, None),
        ns(LinuxNamespaceType::Mount, None),
        ns(LinuxNamespaceType::Uts, None),
        ns(LinuxNamespaceType::Ipc, None),
        ns(LinuxNamespaceType::Cgroup, None),
    ];
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
        .set_args(Some(cfg.process.args.clone()))
        .set_env(Some(input.env))
        .set_cwd(PathBuf::from(&cfg.process.cwd))
        // Applied by the executor (see the module docs).
        .set_capabilities(None)
        .set_rlimits(None)
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
    let mut linux = Linux::default();
    linux
        .set_cgroups_path(Some(PathBuf::from(&cfg.cgroup_path)))
        .set_resources(Some(input.resources))
        .set_namespaces(Some(namespaces(&cfg.network)))
        .set_devices(None)
        .set_masked_paths((!privileged).then(|| owned(MASKED_PATHS)))
        .set_readonly_paths((!privileged).then(|| owned(READONLY_PATHS)))
        // Installed by the executor (see the module docs).
        .set_seccomp(None);

    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_owned())
        .set_root(Some(root))
        .set_hostname(Some(cfg.hostname.clone()))
        .set_mounts(Some(mounts(cfg)))
        .set_process(Some(process))
        .set_annotations(None)
        .set_linux(Some(linux));
    Ok(spec)
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
            namespaces(n)
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
}
