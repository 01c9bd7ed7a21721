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

/// The networks a container is on, by network name: `(record, endpoint)` while it runs.
pub type Joined = std::collections::BTreeMap<
    String,
    (
        crate::networks::record::NetworkRecord,
        crate::networks::record::Endpoint,
    ),
>;

/// Docker's `NetworkSettings` of a container: its endpoints while it runs (the default
/// network's address also in the deprecated top-level fields, as Docker 28 still fills
/// them), the networks it is configured for otherwise; `Ports` with the published
/// bindings, exposed ports without one as `null`.
pub fn network_settings(
    rec: &ContainerRecord,
    joined: &Joined,
    networks: &crate::networks::Networks,
) -> serde_json::Value {
    use serde_json::{Value, json};
    let running = rec.state.status.is_running();
    let mut ports = serde_json::Map::new();
    for key in rec.config.exposed_ports.iter().flatten() {
        ports.insert(key.clone(), Value::Null);
    }
    let mut nets = serde_json::Map::new();
    let mut top = json!({
        "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
    });
    for (name, (net, ep)) in joined {
        let prefix = net.pool.as_ref().map_or(0, |p| p.subnet.prefix());
        let gateway = net.gateway().map(|g| g.to_string()).unwrap_or_default();
        let cfg = rec.endpoints_config.get(name);
        nets.insert(
            name.clone(),
            json!({
                "IPAMConfig": cfg.and_then(|c| c.ipam_config.clone()),
                "Links": null,
                "Aliases": cfg.and_then(|c| c.aliases.clone()),
                "MacAddress": ep.mac,
                "DriverOpts": null,
                "GwPriority": 0,
                "NetworkID": net.id,
                "EndpointID": ep.id,
                "Gateway": gateway,
                "IPAddress": ep.ip.to_string(),
                "IPPrefixLen": prefix,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "DNSNames": if net.builtin { Value::Null } else {
                    let mut n = vec![rec.name.clone()];
                    n.extend(ep.aliases.iter().cloned());
                    json!(n)
                },
            }),
        );
        if net.builtin && net.name == "bridge" {
            top = json!({
                "EndpointID": ep.id, "Gateway": gateway, "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "IPAddress": ep.ip.to_string(), "IPPrefixLen": prefix,
                "IPv6Gateway": "", "MacAddress": ep.mac,
            });
        }
        for p in &ep.ports {
            let key = format!("{}/{}", p.container_port, p.proto);
            let host_ip = if p.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                p.host_ip.as_str()
            };
            let entry = ports.entry(key).or_insert_with(|| json!([]));
            if !entry.is_array() {
                *entry = json!([]);
            }
            if let Some(a) = entry.as_array_mut() {
                a.push(json!({"HostIp": host_ip, "HostPort": p.host_port.to_string()}));
            }
        }
    }
    if !running || joined.is_empty() {
        // Configured networks, without addresses.
        let mode = rec.host_config.network_mode.as_deref().unwrap_or("default");
        let mut names: Vec<String> = Vec::new();
        match mode {
            _ if rec.primary_disconnected => {}
            "" | "default" => {
                if networks.get("bridge").is_ok() {
                    names.push("bridge".into());
                }
            }
            m if m.starts_with("container:") => {}
            m => names.push(m.to_owned()),
        }
        names.extend(
            rec.endpoints_config
                .keys()
                .filter(|k| k.as_str() != "default")
                .cloned(),
        );
        for name in names {
            if nets.contains_key(&name) {
                continue;
            }
            let id = networks.get(&name).map(|n| n.id).unwrap_or_default();
            let cfg = rec.endpoints_config.get(&name);
            nets.insert(
                name,
                json!({
                    "IPAMConfig": cfg.and_then(|c| c.ipam_config.clone()),
                    "Links": null, "Aliases": cfg.and_then(|c| c.aliases.clone()),
                    "MacAddress": "", "DriverOpts": null, "GwPriority": 0,
                    "NetworkID": id, "EndpointID": "", "Gateway": "", "IPAddress": "",
                    "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0, "DNSNames": null,
                }),
            );
        }
    }
    let sandbox = if running && !joined.is_empty() {
        networks.netns_path(rec.id.as_str()).display().to_string()
    } else {
        String::new()
    };
    let mut out = json!({
        "Bridge": "",
        "SandboxID": if sandbox.is_empty() { String::new() } else { rec.id.to_string() },
        "SandboxKey": sandbox,
        "Ports": ports,
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "Networks": nets,
    });
    if let (Some(o), Some(t)) = (out.as_object_mut(), top.as_object()) {
        for (k, v) in t {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

/// `ps`'s `Ports`: published bindings, and exposed ports without one.
pub fn port_summaries(
    rec: &ContainerRecord,
    joined: &Joined,
) -> Vec<arca_api::docker::PortSummary> {
    use arca_api::docker::{PortSummary, PortSummaryTypeEnum};
    let typ = |p: &str| match p {
        "udp" => PortSummaryTypeEnum::UDP,
        "sctp" => PortSummaryTypeEnum::SCTP,
        _ => PortSummaryTypeEnum::TCP,
    };
    let mut out = Vec::new();
    let mut bound = std::collections::HashSet::new();
    if rec.state.status.is_running() {
        for (_, ep) in joined.values() {
            for p in &ep.ports {
                bound.insert(format!("{}/{}", p.container_port, p.proto));
                out.push(PortSummary {
                    ip: Some(if p.host_ip.is_empty() {
                        "0.0.0.0".into()
                    } else {
                        p.host_ip.clone()
                    }),
                    private_port: p.container_port,
                    public_port: Some(p.host_port),
                    typ: Some(typ(&p.proto)),
                });
            }
        }
    }
    for key in rec.config.exposed_ports.iter().flatten() {
        if bound.contains(key) {
            continue;
        }
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        if let Ok(port) = port.parse() {
            out.push(PortSummary {
                ip: None,
                private_port: port,
                public_port: None,
                typ: Some(typ(proto)),
            });
        }
    }
    out
}

/// Docker's `Mounts` of a container: binds, volumes and `--mount` tmpfs mounts.
pub fn mounts(rec: &ContainerRecord, volumes: &crate::volumes::Volumes) -> serde_json::Value {
    serde_json::to_value(super::mount_points::summaries(rec, volumes))
        .unwrap_or_else(|_| serde_json::json!([]))
}
