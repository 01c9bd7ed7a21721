//! The persisted form of a container (`containers/<id>/config.v1.json`), versioned.

use arca_api::docker;
use arca_model::{ContainerId, ContainerStatus, Digest};
use serde::{Deserialize, Serialize};

pub const RECORD_VERSION: u32 = 1;
/// Docker's "never" timestamp.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub version: u32,
    pub id: ContainerId,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: Digest,
    pub path: String,
    pub args: Vec<String>,
    /// The effective configuration (image defaults merged with the request).
    pub config: docker::ContainerConfig,
    pub host_config: docker::HostConfig,
    pub state: StateRecord,
    pub restart_count: i64,
    /// The networks asked for besides `NetworkMode` and their settings (aliases, a fixed
    /// address), by network name: from `NetworkingConfig` at create and from
    /// `network connect`. Added within version 1: absent in older records.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub endpoints_config: std::collections::BTreeMap<String, docker::EndpointSettings>,
    /// `network disconnect` took the container off its `NetworkMode` network (the mode
    /// stays, as Docker's does); `network connect` to it again clears this. Added within
    /// version 1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub primary_disconnected: bool,
    /// What is mounted where, decided at create (binds, volumes including anonymous ones,
    /// `--volumes-from`, `--mount` tmpfs). Added within version 1: absent in older records,
    /// whose mounts are read from the host config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_points: Option<Vec<super::mount_points::MountPoint>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateRecord {
    pub status: ContainerStatus,
    /// Stopped or killed through the API: restart policies leave it alone.
    #[serde(default)]
    pub manually_stopped: bool,
    pub pid: i32,
    pub shim_pid: i32,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// The healthcheck's state, once the container has run with a healthcheck. Added
    /// within version 1: absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthRecord>,
}

/// `State.Health`: Docker's status (`starting`, `healthy`, `unhealthy`), the number of
/// consecutive failures and the last few probe results, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRecord {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<ProbeRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// RFC 3339 with nanoseconds.
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

impl Default for StateRecord {
    fn default() -> Self {
        Self {
            status: ContainerStatus::Created,
            manually_stopped: false,
            pid: 0,
            shim_pid: 0,
            exit_code: 0,
            error: String::new(),
            oom_killed: false,
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            health: None,
        }
    }
}

/// Current time as Docker prints it (RFC 3339, nanoseconds, UTC).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
