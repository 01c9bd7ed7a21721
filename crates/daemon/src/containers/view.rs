//! How containers look through the API: inspect and list entries.

use std::collections::HashMap;

use arca_api::docker::{
    self, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryHostConfig, ContainerSummaryStateEnum, DriverData,
};
use arca_model::ContainerStatus;

use super::record::ContainerRecord;
use crate::paths::Paths;

fn state_enum(s: ContainerStatus) -> ContainerStateStatusEnum {
    match s {
        ContainerStatus::Created => ContainerStateStatusEnum::CREATED,
        ContainerStatus::Running => ContainerStateStatusEnum::RUNNING,
        ContainerStatus::Paused => ContainerStateStatusEnum::PAUSED,
        ContainerStatus::Restarting => ContainerStateStatusEnum::RESTARTING,
        ContainerStatus::Removing => ContainerStateStatusEnum::REMOVING,
        ContainerStatus::Exited => ContainerStateStatusEnum::EXITED,
        ContainerStatus::Dead => ContainerStateStatusEnum::DEAD,
    }
}

fn summary_state(s: ContainerStatus) -> ContainerSummaryStateEnum {
    match s {
        ContainerStatus::Created => ContainerSummaryStateEnum::CREATED,
        ContainerStatus::Running => ContainerSummaryStateEnum::RUNNING,
        ContainerStatus::Paused => ContainerSummaryStateEnum::PAUSED,
        ContainerStatus::Restarting => ContainerSummaryStateEnum::RESTARTING,
        ContainerStatus::Removing => ContainerSummaryStateEnum::REMOVING,
        ContainerStatus::Exited => ContainerSummaryStateEnum::EXITED,
        ContainerStatus::Dead => ContainerSummaryStateEnum::DEAD,
    }
}

pub fn inspect(rec: &ContainerRecord, paths: &Paths) -> ContainerInspectResponse {
    let s = &rec.state;
    let dir = paths.container_dir(&rec.id);
    let mut host_config = rec.host_config.clone();
    if host_config
        .network_mode
        .as_deref()
        .is_none_or(str::is_empty)
    {
        host_config.network_mode = Some("default".into());
    }
    ContainerInspectResponse {
        id: Some(rec.id.to_string()),
        created: Some(rec.created.clone()),
        path: Some(rec.path.clone()),
        args: Some(rec.args.clone()),
        state: Some(ContainerState {
            status: Some(state_enum(s.status)),
            running: Some(s.status.is_running()),
            paused: Some(s.status == ContainerStatus::Paused),
            restarting: Some(s.status == ContainerStatus::Restarting),
            oom_killed: Some(s.oom_killed),
            dead: Some(s.status == ContainerStatus::Dead),
            pid: Some(i64::from(s.pid)),
            exit_code: Some(s.exit_code),
            error: Some(s.error.clone()),
            started_at: Some(s.started_at.clone()),
            finished_at: Some(s.finished_at.clone()),
            health: s.health.as_ref().and_then(super::health::view),
        }),
        image: Some(rec.image_id.to_string()),
        resolv_conf_path: Some(dir.join("resolv.conf").display().to_string()),
        hostname_path: Some(dir.join("hostname").display().to_string()),
        hosts_path: Some(dir.join("hosts").display().to_string()),
        log_path: Some(paths.log_file(&rec.id).display().to_string()),
        name: Some(format!("/{}", rec.name)),
        restart_count: Some(rec.restart_count),
        driver: Some("overlay2".into()),
        platform: Some("linux".into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        exec_ids: None,
        host_config: Some(host_config),
        graph_driver: Some(DriverData {
            name: "overlay2".into(),
            data: HashMap::from([
                (
                    "UpperDir".to_string(),
                    paths.upper_dir(&rec.id).display().to_string(),
                ),
                (
                    "WorkDir".to_string(),
                    paths.work_dir(&rec.id).display().to_string(),
                ),
                (
                    "MergedDir".to_string(),
                    paths
                        .run_dir(&rec.id)
                        .join("bundle/rootfs")
                        .display()
                        .to_string(),
                ),
            ]),
        }),
        mounts: Some(Vec::new()),
        config: Some(rec.config.clone()),
        network_settings: Some(docker::NetworkSettings {
            sandbox_key: Some(String::new()),
            ports: Some(HashMap::new()),
            networks: Some(HashMap::new()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Docker's `Status` column: "Up 2 minutes", "Exited (0) 3 seconds ago", "Created".
pub fn status_text(rec: &ContainerRecord, now: chrono::DateTime<chrono::Utc>) -> String {
    let since = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| {
                (now - d.with_timezone(&chrono::Utc))
                    .to_std()
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    let s = &rec.state;
    match s.status {
        ContainerStatus::Running => match &s.health {
            Some(h) if super::health::Probe::of(&rec.config).is_some() => format!(
                "Up {} {}",
                human_duration(since(&s.started_at)),
                super::health::ps_suffix(h)
            ),
            _ => format!("Up {}", human_duration(since(&s.started_at))),
        },
        ContainerStatus::Paused => format!("Up {} (Paused)", human_duration(since(&s.started_at))),
        ContainerStatus::Restarting => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human_duration(since(&s.finished_at))
        ),
        ContainerStatus::Created => "Created".into(),
        ContainerStatus::Removing => "Removal In Progress".into(),
        ContainerStatus::Dead => "Dead".into(),
        ContainerStatus::Exited => {
            if s.finished_at == super::record::ZERO_TIME {
                "Created".into()
            } else {
                format!(
                    "Exited ({}) {} ago",
                    s.exit_code,
                    human_duration(since(&s.finished_at))
                )
            }
        }
    }
}

use arca_model::human_duration;

/// The health status `ps --filter health=` matches: `starting`, `healthy`, `unhealthy`, or
/// `none` without a healthcheck.
pub fn health_status(rec: &ContainerRecord) -> &str {
    match &rec.state.health {
        Some(h) if super::health::Probe::of(&rec.config).is_some() => h.status.as_str(),
        _ => "none",
    }
}

fn command_line(rec: &ContainerRecord) -> String {
    let mut parts = vec![rec.path.clone()];
    parts.extend(rec.args.iter().cloned());
    // Moby joins without quoting; the CLI quotes the whole string.
    parts.join(" ")
}

pub fn summary(rec: &ContainerRecord, now: chrono::DateTime<chrono::Utc>) -> ContainerSummary {
    let created = chrono::DateTime::parse_from_rfc3339(&rec.created)
        .map(|d| d.timestamp())
        .unwrap_or(0);
    ContainerSummary {
        id: Some(rec.id.to_string()),
        names: Some(vec![format!("/{}", rec.name)]),
        image: Some(rec.image.clone()),
        image_id: Some(rec.image_id.to_string()),
        command: Some(command_line(rec)),
        created: Some(created),
        ports: Some(Vec::new()),
        labels: Some(rec.config.labels.clone().unwrap_or_default()),
        state: Some(summary_state(rec.state.status)),
        status: Some(status_text(rec, now)),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: Some(
                rec.host_config
                    .network_mode
                    .clone()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "default".into()),
            ),
            annotations: None,
        }),
        mounts: Some(Vec::new()),
        ..Default::default()
    }
}
