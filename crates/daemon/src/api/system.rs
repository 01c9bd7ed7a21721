//! `/_ping`, `/version`, `/info`.

use std::path::Path;

use arca_api::{API_VERSION, MIN_API_VERSION};
use arca_model::ContainerStatus;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use crate::cgroups::CgroupVersion;

/// Host facts read once at startup.
pub struct DaemonInfo {
    pub id: String,
    pub hostname: String,
    pub root: String,
    pub kernel: String,
    pub os: String,
    pub ncpu: usize,
    pub mem_total: u64,
    pub cgroup: CgroupVersion,
}

impl DaemonInfo {
    pub fn new(root: &Path) -> Self {
        let uts = nix::sys::utsname::uname().ok();
        let kernel = uts
            .as_ref()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let hostname = uts
            .as_ref()
            .map(|u| u.nodename().to_string_lossy().into_owned())
            .unwrap_or_default();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| "Linux".into());
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        let id = std::fs::read_to_string(root.join("engine-id"))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                let id = arca_model::random_hex(16);
                let _ = crate::paths::write_atomic(&root.join("engine-id"), id.as_bytes(), true);
                id
            });
        Self {
            id,
            hostname,
            root: root.display().to_string(),
            kernel,
            os,
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_total,
            cgroup: CgroupVersion::detect(Path::new("/sys/fs/cgroup")),
        }
    }
}

pub async fn ping() -> Response {
    let mut r = "OK".into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    r
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn version(State(st): State<AppState>) -> Json<Value> {
    let v = env!("CARGO_PKG_VERSION");
    let details = json!({
        "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": "rust", "Os": "linux", "Arch": arch(), "KernelVersion": st.info.kernel,
        "Experimental": "false", "BuildTime": "",
    });
    Json(json!({
        "Platform": {"Name": "arca"},
        "Components": [{"Name": "Engine", "Version": v, "Details": details}],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": st.info.kernel,
        "Experimental": false,
        "BuildTime": "",
    }))
}

/// Docker's `RegistryConfig`: the Docker Hub index with its mirrors, the insecure registries
/// as index entries (`docker info` lists them under "Insecure Registries") and loopback.
fn registry_config(r: &super::pull::RegistrySettings) -> Value {
    let mirrors: Vec<String> = r.mirrors.iter().map(ToString::to_string).collect();
    let mut indexes = serde_json::Map::new();
    indexes.insert(
        "docker.io".into(),
        json!({"Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true}),
    );
    for host in &r.insecure_registries {
        indexes.insert(
            host.clone(),
            json!({"Name": host, "Mirrors": [], "Secure": false, "Official": false}),
        );
    }
    json!({
        "IndexConfigs": indexes,
        "InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"],
        "Mirrors": mirrors,
    })
}

pub async fn info(State(st): State<AppState>) -> Json<Value> {
    let all = st.containers.all();
    let count = |s: ContainerStatus| all.iter().filter(|c| c.status() == s).count();
    let running = count(ContainerStatus::Running);
    let paused = count(ContainerStatus::Paused);
    let images = {
        let store = st.store.clone();
        tokio::task::spawn_blocking(move || store.list().map(|l| l.len()).unwrap_or(0))
            .await
            .unwrap_or(0)
    };
    let i = &st.info;
    Json(json!({
        "ID": i.id,
        "Containers": all.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": all.len() - running - paused,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["null", "host"], "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": i.cgroup.swap_limit,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": crate::containers::record::now_rfc3339(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": i.cgroup.version_string(),
        "NEventsListener": 0,
        "KernelVersion": i.kernel,
        "OperatingSystem": i.os,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(&st.registry),
        "NCPU": i.ncpu,
        "MemTotal": i.mem_total,
        "DockerRootDir": i.root,
        "Name": i.hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"arca": {"path": "arca-shim"}},
        "DefaultRuntime": "arca",
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
        "Warnings": [],
    }))
}
