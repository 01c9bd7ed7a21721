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
        }
    }
}

/// Current time as Docker prints it (RFC 3339, nanoseconds, UTC).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
