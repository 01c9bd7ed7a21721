//! `POST /containers/create`: validate the request, merge it with the image's defaults, and
//! record a new container (state `created`; nothing runs yet).

use std::collections::HashMap;
use std::sync::Arc;

use arca_api::docker::{ContainerConfig, ContainerCreateBody, HostConfig};
use arca_model::ContainerId;

use super::record::{ContainerRecord, RECORD_VERSION, StateRecord, now_rfc3339};
use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};

impl Containers {
    pub async fn create(
        self: &Arc<Self>,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> ApiResult<Arc<Container>> {
        let image_name = body
            .image
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::invalid("config.Image is required"))?;
        let store = self.store.clone();
        let lookup = image_name.clone();
        let image = tokio::task::spawn_blocking(move || store.get(&lookup))
            .await
            .map_err(|e| ApiError::internal(format!("image lookup failed: {e}")))??;

        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => validate_name(n)?,
            None => self.random_name(),
        };
        let mut host_config = body.host_config.clone().unwrap_or_default();
        host_config.log_config = Some(super::log_config::with_defaults(
            host_config.log_config.take(),
            &self.settings.log_config,
        ));
        validate_host_config(&host_config)?;
        validate_config(&body)?;
        crate::networks::check_ports(&host_config, body.exposed_ports.as_ref())?;
        let endpoints_config: std::collections::BTreeMap<_, _> = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        // An unknown network is a 400, not a 404: the docker CLI takes a 404 from create
        // for a missing image and would try to pull it.
        let unknown = |e: ApiError| match e.kind {
            arca_model::ErrorKind::NotFound => ApiError::invalid(e.message),
            _ => e,
        };
        let mode = host_config.network_mode.as_deref().unwrap_or("default");
        if !mode.starts_with("container:") {
            self.networks.mode_network(mode).map_err(unknown)?;
        }
        for net in endpoints_config.keys() {
            if !matches!(net.as_str(), "default" | "bridge" | "host" | "none") {
                self.networks.get(net).map_err(unknown)?;
            }
        }

        let id = ContainerId::generate();
        let config = merge_config(&body, &image.config, &id)?;
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(ApiError::invalid("no command specified"));
        }
        let path = argv.remove(0);
        let plan = self.plan_mounts(&host_config, &config)?;

        let record = ContainerRecord {
            version: RECORD_VERSION,
            id: id.clone(),
            name,
            created: now_rfc3339(),
            image: image_name,
            image_id: image.id.clone(),
            path,
            args: argv,
            config,
            host_config,
            state: StateRecord::default(),
            restart_count: 0,
            endpoints_config,
            primary_disconnected: false,
            mount_points: Some(plan.iter().map(|p| p.point.clone()).collect()),
        };
        let c = self.insert(record)?;
        let paths = self.paths.clone();
        let cid = id.clone();
        let made = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(paths.upper_dir(&cid))?;
            std::fs::create_dir_all(paths.work_dir(&cid))?;
            Ok(())
        })
        .await
        .map_err(|e| ApiError::internal(format!("create task failed: {e}")))?;
        let result = match made {
            Ok(()) => self.prepare_volumes(&c, &image.id, plan).await,
            Err(e) => Err(ApiError::from_internal(
                "cannot create container directories",
                &e,
            )),
        }
        .and_then(|()| c.update(&self.paths, |_| {}));
        if let Err(e) = result {
            self.forget(&c);
            let _ = std::fs::remove_dir_all(self.paths.container_dir(&id));
            return Err(e);
        }
        self.emit(&c, "create", &[]);
        tracing::info!(id = %id, "container created");
        Ok(c)
    }

    fn random_name(&self) -> String {
        const LEFT: &[&str] = &[
            "brave", "calm", "eager", "fervent", "gentle", "happy", "jolly", "keen", "lucid",
            "modest", "nifty", "quirky", "serene", "tender", "vibrant", "zealous",
        ];
        const RIGHT: &[&str] = &[
            "archimedes",
            "babbage",
            "curie",
            "dijkstra",
            "euler",
            "feynman",
            "hopper",
            "kepler",
            "lamarr",
            "lovelace",
            "noether",
            "pascal",
            "ritchie",
            "shannon",
            "thompson",
            "turing",
        ];
        // Like Docker: a few tries at a plain name, then with a number appended; the
        // ID-derived fallback cannot collide.
        for attempt in 0..32 {
            let l = LEFT[rand_index(LEFT.len())];
            let r = RIGHT[rand_index(RIGHT.len())];
            let n = if attempt < 4 {
                format!("{l}_{r}")
            } else {
                format!("{l}_{r}{}", rand_index(10_000))
            };
            if !self.table().names.contains_key(&n) {
                return n;
            }
        }
        format!("arca_{}", arca_model::random_hex(8))
    }
}

fn rand_index(n: usize) -> usize {
    let hex = arca_model::random_hex(4);
    usize::from_str_radix(&hex, 16).unwrap_or(0) % n
}

/// Docker's container name rule `/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`, relaxed to accept
/// one-character names (`--name x`), which Docker refuses for no stated reason.
pub(super) fn validate_name(n: &str) -> ApiResult<String> {
    let n = n.strip_prefix('/').unwrap_or(n);
    let b = n.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(n.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

fn validate_host_config(h: &HostConfig) -> ApiResult<()> {
    if let Some(m) = h.memory.filter(|m| *m != 0) {
        super::limits::check_memory(m)?;
    }
    if let (Some(m), Some(s)) = (h.memory, h.memory_swap)
        && s > 0
        && m > 0
        && s < m
    {
        return Err(ApiError::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if let Some(n) = h.nano_cpus.filter(|n| *n != 0) {
        super::limits::check_nano_cpus(n)?;
        if h.cpu_quota.is_some_and(|q| q != 0) || h.cpu_period.is_some_and(|p| p != 0) {
            return Err(ApiError::invalid(
                "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
            ));
        }
    }
    if let Some(q) = h.cpu_quota.filter(|q| *q != 0) {
        let period = h
            .cpu_period
            .filter(|p| *p != 0)
            .unwrap_or(super::limits::DEFAULT_CPU_PERIOD);
        super::limits::check_cpu_quota(q, period)?;
    }
    if let Some(parent) = h.cgroup_parent.as_deref().filter(|p| !p.is_empty()) {
        let ok = parent.split('/').all(|c| c != ".." && c != ".")
            && !parent.contains('\0')
            && parent.len() < 512;
        if !ok {
            return Err(ApiError::invalid(format!(
                "invalid cgroup parent: {parent:?}"
            )));
        }
    }
    if let Some(p) = h.pids_limit
        && p < -1
    {
        return Err(ApiError::invalid(format!("invalid pids limit: {p}")));
    }
    super::restart::validate(h)?;
    for opt in h.security_opt.iter().flatten() {
        super::start::parse_security_opt(opt)?;
    }
    super::log_config::parse(h.log_config.as_ref())?;
    super::spec::validate(h)?;
    super::binds::validate(h.binds.as_ref())?;
    super::binds::validate_mounts(h)?;
    Ok(())
}

/// Checks of the container config proper (not the host config).
fn validate_config(body: &ContainerCreateBody) -> ApiResult<()> {
    if let Some(s) = body.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        super::stop::parse_signal(s)?;
    }
    if let Some(t) = body.stop_timeout
        && t < -1
    {
        return Err(ApiError::invalid(format!("invalid StopTimeout: {t}")));
    }
    if let Some(h) = &body.healthcheck {
        super::health::validate(h)?;
    }
    Ok(())
}

fn strings(v: &serde_json::Value, key: &str) -> Option<Vec<String>> {
    v.get(key)?.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    })
}

fn string(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The image's `Volumes` and the request's (`-v /path` from the docker CLI), as Docker
/// merges them.
fn merge_volumes(body: Option<&Vec<String>>, img: &serde_json::Value) -> Option<Vec<String>> {
    let mut v: Vec<String> = img
        .get("Volumes")
        .and_then(|v| v.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for p in body.into_iter().flatten() {
        if !v.contains(p) {
            v.push(p.clone());
        }
    }
    (!v.is_empty()).then_some(v)
}

/// The effective config: the request's values over the image's defaults, as Docker merges
/// them (an explicit entrypoint drops the image's cmd; env merges by key).
fn merge_config(
    body: &ContainerCreateBody,
    image_config: &serde_json::Value,
    id: &ContainerId,
) -> ApiResult<ContainerConfig> {
    let img = image_config
        .get("config")
        .cloned()
        .unwrap_or(serde_json::Value::Null);

    let mut env: Vec<String> = strings(&img, "Env").unwrap_or_default();
    for e in body.env.iter().flatten() {
        let key = e.split('=').next().unwrap_or(e);
        if !e.contains('=') {
            // `-e NAME` without a value and no such variable on the client: dropped.
            continue;
        }
        if key.is_empty() {
            return Err(ApiError::invalid(format!(
                "invalid environment variable: {e}"
            )));
        }
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }

    let user_entrypoint = body.entrypoint.clone();
    let user_cmd = body.cmd.clone().filter(|c| !c.is_empty());
    let (entrypoint, cmd) = match user_entrypoint {
        // `--entrypoint ""` clears the image's entrypoint.
        Some(ep) => (
            Some(ep).filter(|e| !e.is_empty() && e != &[String::new()]),
            user_cmd,
        ),
        None => (
            strings(&img, "Entrypoint").filter(|e| !e.is_empty()),
            user_cmd.or_else(|| strings(&img, "Cmd")),
        ),
    };

    let mut labels: HashMap<String, String> = img
        .get("Labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    labels.extend(body.labels.clone().unwrap_or_default());

    let mut exposed: Vec<String> = img
        .get("ExposedPorts")
        .and_then(|p| p.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for p in body.exposed_ports.iter().flatten() {
        if !exposed.contains(p) {
            exposed.push(p.clone());
        }
    }

    let image_ref = body.image.clone().unwrap_or_default();
    Ok(ContainerConfig {
        hostname: body
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| Some(id.short().to_owned())),
        domainname: body.domainname.clone().or(Some(String::new())),
        user: body
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| string(&img, "User"))
            .or(Some(String::new())),
        attach_stdin: Some(body.attach_stdin.unwrap_or(false)),
        attach_stdout: Some(body.attach_stdout.unwrap_or(false)),
        attach_stderr: Some(body.attach_stderr.unwrap_or(false)),
        exposed_ports: Some(exposed).filter(|e| !e.is_empty()),
        tty: Some(body.tty.unwrap_or(false)),
        open_stdin: Some(body.open_stdin.unwrap_or(false)),
        stdin_once: Some(body.stdin_once.unwrap_or(false)),
        env: Some(env),
        cmd,
        healthcheck: super::health::merge(
            body.healthcheck.clone(),
            img.get("Healthcheck")
                .and_then(|h| serde_json::from_value(h.clone()).ok()),
        ),
        args_escaped: None,
        image: Some(image_ref),
        volumes: merge_volumes(body.volumes.as_ref(), &img),
        working_dir: body
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or_else(|| string(&img, "WorkingDir"))
            .or(Some(String::new())),
        entrypoint,
        network_disabled: body.network_disabled,
        on_build: strings(&img, "OnBuild"),
        labels: Some(labels),
        stop_signal: body
            .stop_signal
            .clone()
            .or_else(|| string(&img, "StopSignal")),
        stop_timeout: body.stop_timeout,
        shell: body.shell.clone().or_else(|| strings(&img, "Shell")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> ContainerCreateBody {
        serde_json::from_value(json).expect("body")
    }

    #[test]
    fn user_cmd_replaces_image_cmd_and_keeps_entrypoint() {
        let img = serde_json::json!({"config": {"Entrypoint": ["/ep"], "Cmd": ["a"], "Env": ["A=1", "PATH=/x"]}});
        let c = merge_config(
            &body(serde_json::json!({"Image": "x", "Cmd": ["b"], "Env": ["A=2"]})),
            &img,
            &ContainerId::generate(),
        )
        .expect("merge");
        assert_eq!(c.entrypoint, Some(vec!["/ep".to_string()]));
        assert_eq!(c.cmd, Some(vec!["b".to_string()]));
        assert_eq!(c.env, Some(vec!["PATH=/x".to_string(), "A=2".to_string()]));
    }

    #[test]
    fn explicit_entrypoint_drops_image_cmd() {
        let img = serde_json::json!({"config": {"Cmd": ["sh"]}});
        let c = merge_config(
            &body(serde_json::json!({"Image": "x", "Entrypoint": ["echo"]})),
            &img,
            &ContainerId::generate(),
        )
        .expect("merge");
        assert_eq!(c.entrypoint, Some(vec!["echo".to_string()]));
        assert_eq!(c.cmd, None);
        assert!(c.env.expect("env")[0].starts_with("PATH="));
    }

    #[test]
    fn names_follow_docker_rules() {
        assert_eq!(validate_name("/web").expect("ok"), "web");
        assert_eq!(validate_name("x").expect("one character is fine"), "x");
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
    }

    #[test]
    fn tiny_memory_limits_are_rejected() {
        let h = HostConfig {
            memory: Some(1024),
            ..Default::default()
        };
        assert_eq!(
            validate_host_config(&h).expect_err("too small").message,
            "Minimum memory limit allowed is 6MB"
        );
    }
}
