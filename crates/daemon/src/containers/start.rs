//! Starting a container: write its hosts files, spawn its shim, connect waiting attach
//! sessions and the exit monitor, then let the process run.

use std::sync::Arc;

use arca_api::shim::{
    ExitStatus, MountConfig, NetworkConfig, PROTOCOL_VERSION, ProcessConfig, Reply, Request,
    RootfsConfig, SecurityConfig, ShimConfig,
};
use arca_model::{ContainerStatus, ErrorKind};

use super::record::{ContainerRecord, ZERO_TIME, now_rfc3339};
use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};
use crate::shim;

use arca_model::caps::{ALL as ALL_CAPS, DOCKER_DEFAULT as DEFAULT_CAPS};

/// What a `--security-opt` value asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum SecurityOpt {
    NoNewPrivileges(bool),
    Seccomp(bool),
    Ignored,
}

pub fn parse_security_opt(opt: &str) -> ApiResult<SecurityOpt> {
    let (k, v) = opt
        .split_once('=')
        .or_else(|| opt.split_once(':'))
        .unwrap_or((opt, ""));
    match k {
        "no-new-privileges" => match v {
            "" | "true" => Ok(SecurityOpt::NoNewPrivileges(true)),
            "false" => Ok(SecurityOpt::NoNewPrivileges(false)),
            _ => Err(ApiError::invalid(format!(
                "invalid --security-opt: {opt:?}"
            ))),
        },
        "seccomp" if v == "unconfined" => Ok(SecurityOpt::Seccomp(false)),
        "seccomp" => Err(ApiError::invalid(format!(
            "--security-opt {opt:?}: custom seccomp profiles are not supported yet"
        ))),
        "apparmor" | "label" => Ok(SecurityOpt::Ignored),
        _ => Err(ApiError::invalid(format!(
            "invalid --security-opt: {opt:?}"
        ))),
    }
}

fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The container's capability set. `unified_cgroup`: on cgroup v2 hosts the device
/// allow-list (an eBPF program) is not compiled into arca yet, so CAP_MKNOD is withheld:
/// without it a container cannot create a node for a host device it was not given.
fn capabilities(rec: &ContainerRecord, unified_cgroup: bool) -> ApiResult<Vec<String>> {
    let h = &rec.host_config;
    if h.privileged.unwrap_or(false) {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let caps = requested_capabilities(h)?;
    Ok(if unified_cgroup {
        caps.into_iter().filter(|c| c != "CAP_MKNOD").collect()
    } else {
        caps
    })
}

fn requested_capabilities(h: &arca_api::docker::HostConfig) -> ApiResult<Vec<String>> {
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for c in h.cap_drop.iter().flatten() {
        let c = cap_name(c);
        if c == "CAP_ALL" {
            caps.clear();
        } else if ALL_CAPS.contains(&c.as_str()) {
            caps.retain(|x| x != &c);
        } else {
            return Err(ApiError::invalid(format!("unknown capability: {c:?}")));
        }
    }
    for c in h.cap_add.iter().flatten() {
        let c = cap_name(c);
        if c == "CAP_ALL" {
            caps = ALL_CAPS.iter().map(|s| s.to_string()).collect();
        } else if ALL_CAPS.contains(&c.as_str()) {
            if !caps.contains(&c) {
                caps.push(c);
            }
        } else {
            return Err(ApiError::invalid(format!("unknown capability: {c:?}")));
        }
    }
    Ok(caps)
}

impl Containers {
    /// Docker's legacy links (`--link name[:alias]`): the linked container must run; its
    /// address on a network both share (the default bridge for classic links) goes into
    /// `/etc/hosts` under the alias, its name and its short ID.
    fn links_of(&self, rec: &ContainerRecord) -> ApiResult<Vec<(std::net::Ipv4Addr, String)>> {
        let mut out = Vec::new();
        for link in rec.host_config.links.iter().flatten() {
            let (name, alias) = match link.split_once(':') {
                Some((n, a)) => (n.trim_start_matches('/'), a.rsplit('/').next().unwrap_or(a)),
                None => (link.trim_start_matches('/'), link.trim_start_matches('/')),
            };
            let other = self.get(name).map_err(|_| {
                ApiError::invalid(format!(
                    "could not get container for {name}: No such container: {name}"
                ))
            })?;
            if !other.status().is_running() {
                return Err(ApiError::invalid(format!(
                    "cannot link to a non running container: /{} AS /{}/{alias}",
                    other.snapshot().name,
                    rec.name
                )));
            }
            let joined = self.networks.endpoints_of(other.id.as_str());
            // Classic links live on the default bridge; else any network it is on.
            let Some((_, ep)) = joined.get("bridge").or_else(|| joined.values().next()) else {
                continue;
            };
            let oname = other.snapshot().name;
            let mut names = vec![alias.to_owned()];
            if oname != alias {
                names.push(oname);
            }
            names.push(other.id.short().to_owned());
            out.push((ep.ip, names.join(" ")));
        }
        Ok(out)
    }

    fn network_for(
        &self,
        rec: &ContainerRecord,
        attachment: Option<&crate::networks::Attachment>,
    ) -> ApiResult<NetworkConfig> {
        if let Some(a) = attachment {
            return Ok(NetworkConfig::Path {
                path: a.netns.clone(),
            });
        }
        let mode = rec.host_config.network_mode.as_deref().unwrap_or("default");
        if mode == "host" {
            return Ok(NetworkConfig::Host);
        }
        if let Some(other) = mode.strip_prefix("container:") {
            let o = self.get(other)?;
            let pid = o.lock().state.pid;
            if !o.status().is_running() || pid <= 0 {
                return Err(ApiError::conflict(format!(
                    "cannot join network of a non running container: {other}"
                )));
            }
            return Ok(NetworkConfig::Path {
                path: format!("/proc/{pid}/ns/net").into(),
            });
        }
        // "none", or the default network when arcad runs without one (`--bridge none`):
        // a network namespace with loopback only.
        Ok(NetworkConfig::None)
    }

    fn shim_config(
        &self,
        rec: &ContainerRecord,
        lower: Vec<std::path::PathBuf>,
        mounts: Vec<MountConfig>,
        attachment: Option<&crate::networks::Attachment>,
    ) -> ApiResult<ShimConfig> {
        let p = &self.paths;
        let id = &rec.id;
        let h = &rec.host_config;
        let c = &rec.config;
        let mut no_new_privileges = false;
        let mut seccomp = !h.privileged.unwrap_or(false);
        for opt in h.security_opt.iter().flatten() {
            match parse_security_opt(opt)? {
                SecurityOpt::NoNewPrivileges(b) => no_new_privileges = b,
                SecurityOpt::Seccomp(b) => seccomp = b,
                SecurityOpt::Ignored => {}
            }
        }
        let dir = p.container_dir(id);
        let mut args = vec![rec.path.clone()];
        args.extend(rec.args.iter().cloned());
        let console_size = h
            .console_size
            .as_ref()
            .filter(|s| s.len() == 2 && s[0] > 0 && s[1] > 0)
            .map(|s| [s[0] as u16, s[1] as u16]);
        Ok(ShimConfig {
            version: PROTOCOL_VERSION,
            id: id.to_string(),
            bundle: p.run_dir(id).join("bundle"),
            state_root: p.runtime_state(),
            socket: p.shim_socket(id),
            exit_file: p.exit_file(id),
            log_path: p.log_file(id),
            log: super::log_config::parse(h.log_config.as_ref())?,
            shim_log: p.run_dir(id).join("shim.log"),
            rootfs: RootfsConfig {
                lower,
                upper: p.upper_dir(id),
                work: p.work_dir(id),
                readonly: h.readonly_rootfs.unwrap_or(false),
                volatile: h.auto_remove.unwrap_or(false),
            },
            process: ProcessConfig {
                args,
                env: c.env.clone().unwrap_or_default(),
                cwd: c
                    .working_dir
                    .clone()
                    .filter(|w| !w.is_empty())
                    .unwrap_or_else(|| "/".into()),
                user: c.user.clone().unwrap_or_default(),
                tty: c.tty.unwrap_or(false),
                open_stdin: c.open_stdin.unwrap_or(false),
                stdin_once: c.stdin_once.unwrap_or(false),
                console_size,
                group_add: h.group_add.clone().unwrap_or_default(),
                rlimits: super::spec::rlimits(h)?,
            },
            hostname: hostname_of(rec),
            mounts: [
                MountConfig {
                    source: dir.join("hostname"),
                    destination: "/etc/hostname".into(),
                    readonly: false,
                    tmpfs: None,
                    propagation: None,
                },
                MountConfig {
                    source: dir.join("hosts"),
                    destination: "/etc/hosts".into(),
                    readonly: false,
                    tmpfs: None,
                    propagation: None,
                },
                MountConfig {
                    source: dir.join("resolv.conf"),
                    destination: "/etc/resolv.conf".into(),
                    readonly: false,
                    tmpfs: None,
                    propagation: None,
                },
            ]
            .into_iter()
            .chain(mounts)
            .collect(),
            resources: super::limits::resources_of(h),
            cgroup_path: super::limits::cgroup_path(rec, &p.cgroup_parent),
            network: self.network_for(rec, attachment)?,
            security: SecurityConfig {
                capabilities: capabilities(rec, self.unified_cgroup)?,
                no_new_privileges,
                seccomp,
                privileged: h.privileged.unwrap_or(false),
            },
            namespaces: self.namespaces_for(rec)?,
            devices: super::spec::devices(h)?,
            shm_size: Some(super::spec::shm_size(h)),
            init: self.init_for(rec)?,
        })
    }

    /// `POST /containers/{id}/start`. A container that fails to start drops its waiting
    /// attach sessions, and is removed if it was created with auto-remove (`--rm`).
    pub async fn start(self: &Arc<Self>, c: &Arc<Container>) -> ApiResult<()> {
        self.start_with(c, true).await
    }

    /// A start by the restart policy: the container was not started by a user.
    pub(super) async fn start_keeping_count(self: &Arc<Self>, c: &Arc<Container>) -> ApiResult<()> {
        self.start_with(c, false).await
    }

    async fn start_with(self: &Arc<Self>, c: &Arc<Container>, manual: bool) -> ApiResult<()> {
        // In its own task: a client that hangs up must not cancel a start halfway (a shim
        // spawned, the record not updated).
        let this = self.clone();
        let task_c = c.clone();
        let result = tokio::spawn(async move { this.start_locked(&task_c, manual).await })
            .await
            .map_err(|e| ApiError::internal(format!("start task failed: {e}")))
            .and_then(|r| r);
        if let Err(e) = &result
            && e.kind != ErrorKind::NotModified
        {
            c.pending_attach
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            let auto_remove = c.lock().host_config.auto_remove.unwrap_or(false);
            if auto_remove
                && !c.status().is_running()
                && let Err(e) = self.remove(c, true).await
            {
                tracing::warn!(id = %c.id, error = %e, "cannot auto-remove container");
            }
        }
        result
    }

    async fn start_locked(self: &Arc<Self>, c: &Arc<Container>, manual: bool) -> ApiResult<()> {
        let _op = c.op.lock().await;
        let began = std::time::Instant::now();
        if c.life.borrow().removed {
            return Err(ApiError::not_found(format!("No such container: {}", c.id)));
        }
        let rec = c.snapshot();
        // A restart by the policy starts a container that is still `restarting`.
        let by_policy = !manual && rec.state.status == ContainerStatus::Restarting;
        if rec.state.status.is_running() && !by_policy {
            return Err(ApiError::not_modified());
        }
        if !by_policy {
            rec.state
                .status
                .can_start()
                .map_err(|e| ApiError::conflict(e.to_string()))?;
        }
        // One trip to the blocking pool: the image's layers (its record only), the previous
        // shim gone, the container's /etc files, its volumes.
        let result = match self.networks.attach(&rec).await {
            Ok(attachment) => {
                let r = self
                    .start_attached(c, &rec, attachment.as_ref(), manual, began)
                    .await;
                let up = matches!(
                    c.status(),
                    ContainerStatus::Running | ContainerStatus::Paused
                );
                if r.is_err() && attachment.is_some() && !up {
                    self.networks.detach(rec.id.as_str()).await;
                }
                if r.is_err() && !up && self.volumes.holds_any(rec.id.as_str()) {
                    // Volumes mounted for this start (driver options) are let go at once.
                    let (volumes, id) = (self.volumes.clone(), rec.id.to_string());
                    let _ = tokio::task::spawn_blocking(move || volumes.release_all(&id)).await;
                }
                r
            }
            Err(e) => Err(e),
        };
        if result.is_err() && by_policy && c.status() == ContainerStatus::Restarting {
            // A policy start that failed before the shim ran leaves the container exited,
            // not `restarting` for ever.
            let message = result
                .as_ref()
                .err()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            c.update(&self.paths, |r| {
                r.state.status = ContainerStatus::Exited;
                r.state.error = message;
            })
            .inspect_err(|_| tracing::warn!(id = %c.id, "container record not saved"))
            .ok();
        }
        result
    }

    async fn start_attached(
        self: &Arc<Self>,
        c: &Arc<Container>,
        rec: &ContainerRecord,
        attachment: Option<&crate::networks::Attachment>,
        manual: bool,
        began: std::time::Instant,
    ) -> ApiResult<()> {
        let rec = rec.clone();
        let (store, paths) = (self.store.clone(), self.paths.clone());
        let (image_id, id) = (rec.image_id.clone(), rec.id.clone());
        let mut etc = EtcFiles::of(&rec, attachment);
        etc.links = self.links_of(&rec)?;
        let (this, for_mounts) = (self.clone(), rec.clone());
        let (lower, mounts) = tokio::task::spawn_blocking(move || -> ApiResult<_> {
            let lower = store.lower_dirs(&image_id)?;
            wait_for_previous_shim(&paths, &id);
            write_etc_files(&paths, &id, &etc)
                .map_err(|e| ApiError::from_internal("cannot prepare container files", &e))?;
            // Volumes with driver options are mounted here (it may block).
            let mounts = this.shim_mounts(&for_mounts)?;
            Ok((lower, mounts))
        })
        .await
        .map_err(|e| ApiError::internal(format!("start task failed: {e}")))??;
        let config = self.shim_config(&rec, lower, mounts, attachment)?;
        // No `docker cp` helper still looks at a previous run's rootfs (see archive.rs).
        let _fs = c.fs_users.write().await;

        let prepared = began.elapsed();
        let ready = shim::spawn(&self.paths.shim_bin, &config)
            .await
            .map_err(|e| ApiError::from_internal("cannot start container", &e))?;
        let created = began.elapsed();
        let Some(pid) = ready.pid else {
            let message = ready
                .error
                .unwrap_or_else(|| "container creation failed".into());
            let code = ready.exit_code.unwrap_or(128);
            c.update(&self.paths, |r| {
                r.state.status = if r.state.started_at == ZERO_TIME {
                    ContainerStatus::Created
                } else {
                    ContainerStatus::Exited
                };
                r.state.exit_code = i64::from(code);
                r.state.error = message.clone();
            })?;
            let kind = if ready.exit_code.is_some() {
                ErrorKind::InvalidArgument
            } else {
                ErrorKind::Internal
            };
            return Err(ApiError::new(
                kind,
                format!("failed to create task for container: {message}"),
            ));
        };

        // Monitor and attach sessions connect before the process runs, so neither the
        // exit nor the first bytes of output can be missed.
        let monitor = match shim::wait_conn(&config.socket).await {
            Ok(m) => m,
            Err(e) => {
                abandon_shim(&config.socket, ready.shim_pid).await;
                return Err(ApiError::from_internal("cannot monitor container", &e));
            }
        };
        let pending =
            std::mem::take(&mut *c.pending_attach.lock().unwrap_or_else(|p| p.into_inner()));
        for p in pending {
            p.connect(&config.socket, super::attach::detach_mode(&rec))
                .await;
        }
        c.update(&self.paths, |r| {
            r.state.status = ContainerStatus::Running;
            if manual {
                r.state.manually_stopped = false;
            }
            r.state.pid = pid;
            r.state.shim_pid = ready.shim_pid;
            r.state.exit_code = 0;
            r.state.error.clear();
            r.state.oom_killed = false;
            r.state.started_at = now_rfc3339();
            r.state.finished_at = ZERO_TIME.into();
        })
        .inspect_err(|_| tracing::warn!(id = %c.id, "container record not saved"))
        .ok();
        // Attach sessions that arrived while the shim was being created.
        let late = std::mem::take(&mut *c.pending_attach.lock().unwrap_or_else(|p| p.into_inner()));
        for p in late {
            p.connect(&config.socket, super::attach::detach_mode(&rec))
                .await;
        }
        // Before the process runs, so that its `die` cannot come first.
        self.emit(c, "start", &[]);
        self.spawn_monitor(c.clone(), monitor);
        match shim::simple(&config.socket, &Request::Start).await {
            Ok(Reply::Ok { .. }) => {}
            Ok(Reply::Error { message }) => {
                // The monitor records the exit once the shim is gone.
                abandon_shim(&config.socket, ready.shim_pid).await;
                return Err(ApiError::internal(format!(
                    "cannot start container: {message}"
                )));
            }
            Ok(Reply::Exited(_)) => {}
            Err(e) => {
                abandon_shim(&config.socket, ready.shim_pid).await;
                return Err(ApiError::from_internal("cannot start container", &e));
            }
        }
        self.start_health(c, true);
        tracing::info!(id = %c.id, pid, "container started");
        tracing::debug!(
            id = %c.id,
            prepared_us = prepared.as_micros() as u64,
            created_us = created.as_micros() as u64,
            started_us = began.elapsed().as_micros() as u64,
            "start timings"
        );
        Ok(())
    }

    /// Waits for the shim's exit report on `conn` and records it.
    pub(super) fn spawn_monitor(self: &Arc<Self>, c: Arc<Container>, mut conn: shim::Conn) {
        let this = self.clone();
        tokio::spawn(async move {
            let status = match shim::read_reply(&mut conn.reader).await {
                Ok(Reply::Exited(s)) => s,
                other => {
                    // The shim died without reporting: take what it left on disk.
                    tracing::warn!(id = %c.id, reply = ?other.err(), "shim connection lost");
                    this.read_exit_file(&c)
                }
            };
            this.on_exit(&c, status).await;
        });
    }

    pub(super) fn read_exit_file(&self, c: &Container) -> ExitStatus {
        std::fs::read(self.paths.exit_file(&c.id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| ExitStatus {
                version: PROTOCOL_VERSION,
                exit_code: 255,
                finished_at: now_rfc3339(),
                oom_killed: false,
                error: "container shim disappeared".into(),
            })
    }

    pub(super) async fn on_exit(self: &Arc<Self>, c: &Arc<Container>, s: ExitStatus) {
        self.stop_health(c);
        // Its addresses, ports and veths are free again before anyone hears of the exit.
        self.networks.detach(c.id.as_str()).await;
        let result = c.update(&self.paths, |r| {
            r.state.status = ContainerStatus::Exited;
            r.state.pid = 0;
            r.state.shim_pid = 0;
            r.state.exit_code = i64::from(s.exit_code);
            r.state.oom_killed = s.oom_killed;
            r.state.error = s.error.clone();
            r.state.finished_at = s.finished_at.clone();
        });
        if let Err(e) = result {
            tracing::error!(id = %c.id, error = %e, "cannot record container exit");
        }
        c.mark_exited();
        if s.oom_killed {
            // Docker reports the OOM kill before the exit.
            self.emit(c, "oom", &[]);
        }
        self.emit(c, "die", &[("exitCode", s.exit_code.to_string())]);
        tracing::info!(id = %c.id, code = s.exit_code, "container exited");
        if super::restart::wants_restart(&c.snapshot()) {
            self.schedule_restart(c);
            return;
        }
        let auto_remove = c.lock().host_config.auto_remove.unwrap_or(false);
        let exits = c.life.borrow().exits;
        if auto_remove && let Err(e) = self.remove_inner(c, true, Some(exits)).await {
            tracing::error!(id = %c.id, error = %e, "cannot auto-remove container");
        }
    }
}

/// Ends a shim whose container could not be started: its init is killed (which makes the
/// shim report the exit and clean up), and the shim itself if it does not answer.
async fn abandon_shim(socket: &std::path::Path, shim_pid: i32) {
    let killed = matches!(
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            shim::simple(
                socket,
                &Request::Kill {
                    signal: libc::SIGKILL
                }
            ),
        )
        .await,
        Ok(Ok(Reply::Ok { .. }))
    );
    if !killed && shim_pid > 0 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(shim_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A shim answers `Wait` before it finishes cleaning up; the runtime state directory is
/// the last thing it removes. A restart must not begin before that (bounded wait).
fn wait_for_previous_shim(paths: &crate::paths::Paths, id: &arca_model::ContainerId) {
    let state = paths.runtime_state().join(id.as_str());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while state.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The container's hostname: its config's, else its short ID.
fn hostname_of(rec: &ContainerRecord) -> String {
    rec.config
        .hostname
        .clone()
        .unwrap_or_else(|| rec.id.short().to_owned())
}

/// What goes into a container's `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`.
#[derive(Debug, Clone, Default)]
struct EtcFiles {
    hostname: String,
    /// The container's own address on its first network (`127.0.1.1` without one).
    ip: Option<std::net::Ipv4Addr>,
    /// `--add-host` entries (`name:ip`, `host-gateway` resolved).
    extra_hosts: Vec<(String, String)>,
    /// `--link name:alias`: (address, "alias name") lines, Docker's legacy links.
    links: Vec<(std::net::Ipv4Addr, String)>,
    /// A nameserver replacing the host's (the embedded DNS of a user network).
    dns_server: Option<std::net::Ipv4Addr>,
    dns: Vec<String>,
    dns_search: Vec<String>,
    dns_options: Vec<String>,
}

impl EtcFiles {
    fn of(rec: &ContainerRecord, attachment: Option<&crate::networks::Attachment>) -> Self {
        let h = &rec.host_config;
        let gateway = attachment.and_then(|a| a.gateway);
        let extra_hosts = h
            .extra_hosts
            .iter()
            .flatten()
            .filter_map(|e| {
                let (name, ip) = e.split_once(':')?;
                let ip = if ip == "host-gateway" {
                    gateway.map(|g| g.to_string())?
                } else {
                    ip.to_owned()
                };
                Some((name.to_owned(), ip))
            })
            .collect();
        EtcFiles {
            hostname: hostname_of(rec),
            ip: attachment.map(|a| a.ip),
            extra_hosts,
            dns_server: attachment.and_then(|a| a.dns),
            dns: h.dns.clone().unwrap_or_default(),
            dns_search: h.dns_search.clone().unwrap_or_default(),
            dns_options: h.dns_options.clone().unwrap_or_default(),
            links: Vec::new(),
        }
    }

    fn hosts(&self) -> String {
        let mut s = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n",
        );
        for (name, ip) in &self.extra_hosts {
            s.push_str(&format!("{ip}\t{name}\n"));
        }
        for (ip, names) in &self.links {
            s.push_str(&format!("{ip}\t{names}\n"));
        }
        match self.ip {
            Some(ip) => s.push_str(&format!("{ip}\t{}\n", self.hostname)),
            None => s.push_str(&format!("127.0.1.1\t{}\n", self.hostname)),
        }
        s
    }

    fn resolv_conf(&self, host: &str) -> String {
        let base = resolv_conf_for_container(host);
        if self.dns.is_empty()
            && self.dns_search.is_empty()
            && self.dns_options.is_empty()
            && self.dns_server.is_none()
        {
            return base;
        }
        // Docker: given values replace the host's, the rest is kept.
        let mut servers: Vec<String> = if !self.dns.is_empty() {
            self.dns.clone()
        } else if let Some(s) = self.dns_server {
            vec![s.to_string()]
        } else {
            base.lines()
                .filter_map(|l| {
                    l.trim()
                        .strip_prefix("nameserver")
                        .map(|v| v.trim().to_owned())
                })
                .collect()
        };
        servers.dedup();
        let field = |key: &str| -> Vec<String> {
            base.lines()
                .filter_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()))
                .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect()
        };
        let search = if self.dns_search.is_empty() {
            field("search")
        } else {
            self.dns_search
                .iter()
                .filter(|s| s.as_str() != ".")
                .cloned()
                .collect()
        };
        let options = if self.dns_options.is_empty() {
            field("options")
        } else {
            self.dns_options.clone()
        };
        let mut out = String::new();
        for s in servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
        if !search.is_empty() {
            out.push_str(&format!("search {}\n", search.join(" ")));
        }
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        out
    }
}

/// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` for the container.
fn write_etc_files(
    paths: &crate::paths::Paths,
    id: &arca_model::ContainerId,
    etc: &EtcFiles,
) -> std::io::Result<()> {
    let dir = paths.container_dir(id);
    std::fs::create_dir_all(paths.run_dir(id).join("bundle"))?;
    if let Some(s) = paths.shim_socket(id).parent() {
        std::fs::create_dir_all(s)?;
    }
    std::fs::write(dir.join("hostname"), format!("{}\n", etc.hostname))?;
    std::fs::write(dir.join("hosts"), etc.hosts())?;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(dir.join("resolv.conf"), etc.resolv_conf(&host))?;
    let _ = std::fs::remove_file(paths.exit_file(id));
    Ok(())
}

/// The host's resolv.conf without loopback resolvers (unreachable from a container's own
/// network namespace); Google's public resolvers when nothing is left, as Docker does.
pub fn resolv_conf_for_container(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            if ns.starts_with("127.") || ns == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_files_carry_the_address_extra_hosts_links_and_dns_flags() {
        let etc = EtcFiles {
            hostname: "web".into(),
            ip: Some("10.1.0.2".parse().expect("ip")),
            extra_hosts: vec![("gw".into(), "10.1.0.1".into())],
            links: vec![("10.1.0.3".parse().expect("ip"), "db postgres abc".into())],
            dns_server: Some("10.1.0.1".parse().expect("ip")),
            ..Default::default()
        };
        let hosts = etc.hosts();
        assert!(
            hosts.contains("10.1.0.1\tgw\n10.1.0.3\tdb postgres abc\n10.1.0.2\tweb\n"),
            "{hosts}"
        );
        let host = "nameserver 10.0.0.2\nsearch corp\noptions ndots:2\n";
        // A user network's DNS replaces the host's servers; search and options are kept.
        assert_eq!(
            etc.resolv_conf(host),
            "nameserver 10.1.0.1\nsearch corp\noptions ndots:2\n"
        );
        // --dns, --dns-search and --dns-option replace what they name.
        let flags = EtcFiles {
            dns: vec!["192.0.2.53".into()],
            dns_search: vec!["example.test".into()],
            dns_options: vec!["timeout:1".into()],
            ..etc
        };
        assert_eq!(
            flags.resolv_conf(host),
            "nameserver 192.0.2.53\nsearch example.test\noptions timeout:1\n"
        );
        // Nothing asked: the host's file without loopback resolvers.
        assert_eq!(EtcFiles::default().resolv_conf(host), host);
    }

    #[test]
    fn loopback_resolvers_are_dropped() {
        let r = resolv_conf_for_container("search x\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n");
        assert_eq!(r, "search x\nnameserver 10.0.0.2\n");
        assert!(resolv_conf_for_container("nameserver 127.0.0.1\n").contains("8.8.8.8"));
    }

    fn record(host_config: arca_api::docker::HostConfig) -> ContainerRecord {
        ContainerRecord {
            version: 1,
            id: arca_model::ContainerId::generate(),
            name: "t".into(),
            created: String::new(),
            image: "busybox".into(),
            image_id: arca_model::Digest::of(b"x"),
            path: "true".into(),
            args: vec![],
            config: Default::default(),
            host_config,
            state: Default::default(),
            restart_count: 0,
            endpoints_config: Default::default(),
            primary_disconnected: false,
            mount_points: None,
        }
    }

    #[test]
    fn capabilities_follow_docker_defaults_and_flags() {
        let r = record(Default::default());
        assert_eq!(capabilities(&r, false).expect("caps").len(), 14);
        assert!(
            !capabilities(&r, true)
                .expect("caps")
                .contains(&"CAP_MKNOD".to_string())
        );
        let r = record(arca_api::docker::HostConfig {
            cap_add: Some(vec!["sys_admin".into()]),
            cap_drop: Some(vec!["NET_RAW".into()]),
            ..Default::default()
        });
        let caps = capabilities(&r, false).expect("caps");
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        let r = record(arca_api::docker::HostConfig {
            cap_add: Some(vec!["BOGUS".into()]),
            ..Default::default()
        });
        assert!(capabilities(&r, false).is_err());
        let r = record(arca_api::docker::HostConfig {
            privileged: Some(true),
            ..Default::default()
        });
        assert_eq!(capabilities(&r, true).expect("caps").len(), ALL_CAPS.len());
    }

    #[test]
    fn security_opts_parse() {
        assert_eq!(
            parse_security_opt("no-new-privileges").expect("ok"),
            SecurityOpt::NoNewPrivileges(true)
        );
        assert_eq!(
            parse_security_opt("seccomp=unconfined").expect("ok"),
            SecurityOpt::Seccomp(false)
        );
        assert!(parse_security_opt("bogus").is_err());
    }
}
