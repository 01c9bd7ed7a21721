//! The HostConfig fields that shape a container's process and namespaces beyond the
//! basics: `Ulimits`, `Devices`, `ShmSize`, `PidMode`/`IpcMode`/`UTSMode`/`UsernsMode`,
//! `GroupAdd` and `Init`.
//!
//! They are validated at create (a 400 whose message names the field, as Docker words it)
//! and turned into shim configuration at start, when the state of other containers
//! (`container:<name>` modes) and of the host (the init binary) is known.

use std::path::PathBuf;

use arca_api::docker::HostConfig;
use arca_api::shim::{DeviceConfig, IdMaps, NamespaceMode, NamespacesConfig, Rlimit};

use super::Containers;
use super::record::ContainerRecord;
use crate::error::{ApiError, ApiResult};

/// Docker's `/dev/shm` size when `ShmSize` is 0 or absent.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// One namespace's mode as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsMode<'a> {
    Private,
    Host,
    /// Join the namespace of this container (name or ID).
    Container(&'a str),
}

/// The namespace kinds a container can share, with Docker's names for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    Pid,
    Ipc,
    Uts,
}

impl NsKind {
    fn api_name(self) -> &'static str {
        match self {
            Self::Pid => "PID",
            Self::Ipc => "IPC",
            Self::Uts => "UTS",
        }
    }

    /// The file under `/proc/<pid>/ns/`.
    fn proc_name(self) -> &'static str {
        match self {
            Self::Pid => "pid",
            Self::Ipc => "ipc",
            Self::Uts => "uts",
        }
    }

    fn mode(self, h: &HostConfig) -> Option<&str> {
        match self {
            Self::Pid => h.pid_mode.as_deref(),
            Self::Ipc => h.ipc_mode.as_deref(),
            Self::Uts => h.uts_mode.as_deref(),
        }
    }
}

/// Parses `""`, `private`, `shareable`, `none` (IPC), `host` or `container:<name|id>`.
pub fn parse_ns_mode(kind: NsKind, value: &str) -> ApiResult<NsMode<'_>> {
    let bad = || ApiError::invalid(format!("invalid {} mode: {value}", kind.api_name()));
    match value {
        "" | "private" => Ok(NsMode::Private),
        // "shareable" and "none" only matter to IPC; other containers join ours by path.
        "shareable" | "none" if kind == NsKind::Ipc => Ok(NsMode::Private),
        "host" => Ok(NsMode::Host),
        v => match v.strip_prefix("container:") {
            Some(other) if !other.is_empty() => Ok(NsMode::Container(other)),
            _ => Err(bad()),
        },
    }
}

/// Create-time checks of the fields this module owns.
pub fn validate(h: &HostConfig) -> ApiResult<()> {
    for kind in [NsKind::Pid, NsKind::Ipc, NsKind::Uts] {
        parse_ns_mode(kind, kind.mode(h).unwrap_or(""))?;
    }
    match h.userns_mode.as_deref().unwrap_or("") {
        "" | "host" => {}
        other => {
            return Err(ApiError::invalid(format!("invalid USER mode: {other}")));
        }
    }
    if h.shm_size.is_some_and(|s| s < 0) {
        return Err(ApiError::invalid("SHM size can not be less than 0"));
    }
    rlimits(h)?;
    devices(h)?;
    for g in h.group_add.iter().flatten() {
        if g.is_empty() || g.contains(':') || g.contains('\0') {
            return Err(ApiError::invalid(format!("invalid GroupAdd entry: {g:?}")));
        }
    }
    Ok(())
}

/// `Ulimits` as shim rlimits; a negative value is Docker's "unlimited".
pub fn rlimits(h: &HostConfig) -> ApiResult<Vec<Rlimit>> {
    let value = |v: Option<i64>| v.map_or(u64::MAX, |n| u64::try_from(n).unwrap_or(u64::MAX));
    let mut out: Vec<Rlimit> = Vec::new();
    for u in h.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default().to_ascii_lowercase();
        if !arca_model::ulimit::is_ulimit_name(&name) {
            return Err(ApiError::invalid(format!("invalid ulimit type: {name}")));
        }
        let (soft, hard) = (value(u.soft), value(u.hard.or(u.soft)));
        if soft > hard {
            return Err(ApiError::invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        // A later entry for the same name wins, as in Docker.
        out.retain(|r| r.name != name);
        out.push(Rlimit { name, soft, hard });
    }
    Ok(out)
}

/// `Devices`: `PathInContainer` defaults to `PathOnHost`, permissions to `rwm`.
pub fn devices(h: &HostConfig) -> ApiResult<Vec<DeviceConfig>> {
    let mut out = Vec::new();
    for d in h.devices.iter().flatten() {
        let host = d.path_on_host.clone().unwrap_or_default();
        if !host.starts_with('/') {
            return Err(ApiError::invalid(format!(
                "invalid device PathOnHost {host:?}: it must be an absolute path"
            )));
        }
        let inside = d
            .path_in_container
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| host.clone());
        if !inside.starts_with('/') {
            return Err(ApiError::invalid(format!(
                "invalid device PathInContainer {inside:?}: it must be an absolute path"
            )));
        }
        let perms = d
            .cgroup_permissions
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rwm".into());
        if perms.len() > 3 || !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return Err(ApiError::invalid(format!(
                "invalid device CgroupPermissions {perms:?} for {host}: only r, w and m are allowed"
            )));
        }
        out.push(DeviceConfig {
            host_path: PathBuf::from(host),
            container_path: inside,
            permissions: perms,
        });
    }
    Ok(out)
}

/// The `/dev/shm` size in bytes (0 → Docker's 64 MiB).
pub fn shm_size(h: &HostConfig) -> u64 {
    h.shm_size
        .filter(|s| *s > 0)
        .map_or(DEFAULT_SHM_SIZE, |s| s as u64)
}

/// Parses arcad's `--userns-remap <uid>:<gid>:<size>`: container root is host `uid`.
pub fn parse_userns_remap(s: &str) -> Result<IdMaps, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let nums: Option<Vec<u32>> = (parts.len() == 3)
        .then(|| parts.iter().map(|p| p.parse().ok()).collect())
        .flatten();
    match nums.as_deref() {
        Some(&[uid, gid, size]) if size > 0 => Ok(IdMaps {
            uid: vec![arca_api::shim::IdMap {
                container_id: 0,
                host_id: uid,
                size,
            }],
            gid: vec![arca_api::shim::IdMap {
                container_id: 0,
                host_id: gid,
                size,
            }],
        }),
        _ => Err(format!(
            "invalid --userns-remap {s:?}: expected <uid>:<gid>:<size> (numbers, size > 0)"
        )),
    }
}

impl Containers {
    /// The namespaces of `rec`: `container:<x>` modes resolve to the running container's
    /// `/proc/<pid>/ns/<kind>` (409 if it is not running).
    pub(super) fn namespaces_for(&self, rec: &ContainerRecord) -> ApiResult<NamespacesConfig> {
        let h = &rec.host_config;
        let resolve = |kind: NsKind| -> ApiResult<NamespaceMode> {
            Ok(match parse_ns_mode(kind, kind.mode(h).unwrap_or(""))? {
                NsMode::Private => NamespaceMode::Private,
                NsMode::Host => NamespaceMode::Host,
                NsMode::Container(other) => {
                    let o = self.get(other)?;
                    let (running, pid) = {
                        let r = o.snapshot();
                        (r.state.status.is_running(), r.state.pid)
                    };
                    if !running || pid <= 0 {
                        return Err(ApiError::conflict(format!(
                            "cannot join {} of a non running container: {other}",
                            kind.api_name()
                        )));
                    }
                    NamespaceMode::Path {
                        path: format!("/proc/{pid}/ns/{}", kind.proc_name()).into(),
                    }
                }
            })
        };
        let userns = self.userns_of(h);
        Ok(NamespacesConfig {
            pid: resolve(NsKind::Pid)?,
            ipc: resolve(NsKind::Ipc)?,
            uts: resolve(NsKind::Uts)?,
            userns,
        })
    }

    /// The user namespace a container gets: arcad's `--userns-remap`, unless it asked for
    /// `--userns host`.
    pub(super) fn userns_of(
        &self,
        h: &arca_api::docker::HostConfig,
    ) -> Option<arca_api::shim::IdMaps> {
        match h.userns_mode.as_deref() {
            Some("host") => None,
            _ => self.settings.userns_remap.clone(),
        }
    }

    /// The init binary for `--init`, checked to exist.
    pub(super) fn init_for(&self, rec: &ContainerRecord) -> ApiResult<Option<PathBuf>> {
        if !rec.host_config.init.unwrap_or(false) {
            return Ok(None);
        }
        let path = &self.settings.init_path;
        if !path.is_file() {
            tracing::error!(path = %path.display(), "--init requested but the init binary is missing");
            return Err(ApiError::internal(
                "cannot run --init: arcad's init binary (arca-init) is not installed; \
                 install it next to arcad or set arcad --init-path",
            ));
        }
        Ok(Some(path.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_api::docker::{DeviceMapping, ResourcesUlimits};

    #[test]
    fn namespace_modes_parse_like_docker() {
        assert_eq!(parse_ns_mode(NsKind::Pid, "").expect("ok"), NsMode::Private);
        assert_eq!(
            parse_ns_mode(NsKind::Pid, "host").expect("ok"),
            NsMode::Host
        );
        assert_eq!(
            parse_ns_mode(NsKind::Ipc, "container:web").expect("ok"),
            NsMode::Container("web")
        );
        assert_eq!(
            parse_ns_mode(NsKind::Ipc, "shareable").expect("ok"),
            NsMode::Private
        );
        assert!(parse_ns_mode(NsKind::Pid, "shareable").is_err());
        assert!(parse_ns_mode(NsKind::Uts, "container:").is_err());
        assert_eq!(
            parse_ns_mode(NsKind::Pid, "bogus")
                .expect_err("invalid")
                .message,
            "invalid PID mode: bogus"
        );
    }

    #[test]
    fn ulimits_become_rlimits_and_bad_ones_are_refused() {
        let h = HostConfig {
            ulimits: Some(vec![
                ResourcesUlimits {
                    name: Some("nofile".into()),
                    soft: Some(1024),
                    hard: Some(2048),
                },
                ResourcesUlimits {
                    name: Some("core".into()),
                    soft: Some(-1),
                    hard: Some(-1),
                },
            ]),
            ..Default::default()
        };
        let r = rlimits(&h).expect("valid");
        assert_eq!(r[0].soft, 1024);
        assert_eq!(r[1].hard, u64::MAX);
        let bad = |name: &str, soft, hard| HostConfig {
            ulimits: Some(vec![ResourcesUlimits {
                name: Some(name.into()),
                soft: Some(soft),
                hard: Some(hard),
            }]),
            ..Default::default()
        };
        assert!(validate(&bad("bogus", 1, 1)).is_err());
        assert!(validate(&bad("nofile", 10, 5)).is_err());
    }

    #[test]
    fn devices_default_their_container_path_and_permissions() {
        let h = HostConfig {
            devices: Some(vec![DeviceMapping {
                path_on_host: Some("/dev/null".into()),
                path_in_container: None,
                cgroup_permissions: None,
            }]),
            ..Default::default()
        };
        let d = devices(&h).expect("valid");
        assert_eq!(d[0].container_path, "/dev/null");
        assert_eq!(d[0].permissions, "rwm");
        let h = HostConfig {
            devices: Some(vec![DeviceMapping {
                path_on_host: Some("/dev/null".into()),
                path_in_container: Some("/dev/x".into()),
                cgroup_permissions: Some("rx".into()),
            }]),
            ..Default::default()
        };
        assert!(devices(&h).is_err());
    }

    #[test]
    fn shm_size_zero_means_docker_default() {
        assert_eq!(shm_size(&HostConfig::default()), DEFAULT_SHM_SIZE);
        let h = HostConfig {
            shm_size: Some(1 << 20),
            ..Default::default()
        };
        assert_eq!(shm_size(&h), 1 << 20);
        let h = HostConfig {
            shm_size: Some(-1),
            ..Default::default()
        };
        assert!(validate(&h).is_err());
    }

    #[test]
    fn userns_modes_and_remap_parse() {
        let h = HostConfig {
            userns_mode: Some("private".into()),
            ..Default::default()
        };
        assert!(validate(&h).is_err());
        let m = parse_userns_remap("100000:100000:65536").expect("valid");
        assert_eq!(m.uid[0].host_id, 100000);
        assert_eq!(m.gid[0].size, 65536);
        assert!(parse_userns_remap("1:2").is_err());
        assert!(parse_userns_remap("1:2:0").is_err());
    }
}
