//! The container flags shared by `arca run` and `arca create`, and their translation into
//! the Docker create body exactly as the docker CLI builds it (`opts.go`'s `parse`): what
//! docker leaves unset stays unset, so the daemon applies its own defaults.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, HostConfigLogConfig};
use clap::Args;

use crate::network_opts::NetworkOpts;
use crate::parse;
use crate::session::terminal_size;

#[derive(Args, Debug)]
pub struct ContainerOpts {
    /// Bind mount a volume (HOST-DIR:CONTAINER-DIR[:OPTIONS])
    #[arg(short = 'v', long = "volume", value_name = "list")]
    volume: Vec<String>,
    /// Attach a filesystem mount to the container (type=bind|volume|tmpfs,source=…,target=…)
    #[arg(long = "mount", value_name = "mount")]
    mount: Vec<String>,
    /// Mount a tmpfs directory (PATH[:OPTIONS])
    #[arg(long = "tmpfs", value_name = "list")]
    tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s) (CONTAINER[:ro|:rw])
    #[arg(long = "volumes-from", value_name = "list")]
    volumes_from: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(long = "hostname", short = 'h')]
    pub hostname: Option<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[command(flatten)]
    pub net: NetworkOpts,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    /// Security options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long = "ulimit")]
    pub ulimits: Vec<String>,
    /// Add a host device to the container (host[:container[:perms]])
    #[arg(long = "device")]
    pub devices: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// User namespace to use
    #[arg(long)]
    pub userns: Option<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub init: Option<bool>,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", allow_negative_numbers = true)]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries
    /// countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opts: Vec<String>,
    /// Image to run
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// A flag value docker would reject, with pflag's wording.
pub(crate) fn invalid(value: &str, flag: &str, e: String) -> anyhow::Error {
    anyhow::anyhow!("invalid argument {value:?} for \"{flag}\" flag: {e}")
}

fn size(v: &Option<String>, flag: &str) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|s| parse::ram_in_bytes(s).map_err(|e| invalid(s, flag, e)))
        .transpose()
}

fn duration(v: &Option<String>, flag: &str) -> anyhow::Result<i64> {
    Ok(v.as_deref()
        .map(|s| parse::go_duration(s).map_err(|e| invalid(s, flag, e)))
        .transpose()?
        .unwrap_or(0))
}

/// Capabilities in canonical form (upper case, `CAP_` prefix but for `ALL`), unique and
/// sorted, as docker's API client sends them.
fn normalize_caps(caps: &[String]) -> Option<Vec<String>> {
    let set: std::collections::BTreeSet<String> = caps
        .iter()
        .map(|c| {
            let c = c.to_uppercase();
            if c == "ALL" || c.starts_with("CAP_") {
                c
            } else {
                format!("CAP_{c}")
            }
        })
        .collect();
    (!set.is_empty()).then(|| set.into_iter().collect())
}

fn nonzero(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

impl ContainerOpts {
    /// `Config.Healthcheck`: `NONE` for `--no-healthcheck`, `CMD-SHELL` for `--health-cmd`,
    /// unset when no health flag is given (the image's check applies).
    fn healthcheck(&self) -> anyhow::Result<Option<HealthConfig>> {
        let interval = duration(&self.health_interval, "--health-interval")?;
        let timeout = duration(&self.health_timeout, "--health-timeout")?;
        let start_period = duration(&self.health_start_period, "--health-start-period")?;
        let start_interval = duration(&self.health_start_interval, "--health-start-interval")?;
        let retries = self.health_retries.unwrap_or(0);
        let have_settings = self.health_cmd.as_deref().is_some_and(|c| !c.is_empty())
            || interval != 0
            || timeout != 0
            || start_period != 0
            || retries != 0
            || start_interval != 0;
        if self.no_healthcheck {
            if have_settings {
                anyhow::bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }));
        }
        if !have_settings {
            return Ok(None);
        }
        for (v, flag) in [
            (interval, "--health-interval"),
            (timeout, "--health-timeout"),
            (retries, "--health-retries"),
            (start_period, "--health-start-period"),
            (start_interval, "--health-start-interval"),
        ] {
            if v < 0 {
                anyhow::bail!("{flag} cannot be negative");
            }
        }
        Ok(Some(HealthConfig {
            test: self
                .health_cmd
                .as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| vec!["CMD-SHELL".into(), c.clone()]),
            // Zero values are left out, as docker's `omitempty` fields are.
            interval: nonzero(interval),
            timeout: nonzero(timeout),
            retries: nonzero(retries),
            start_period: nonzero(start_period),
            start_interval: nonzero(start_interval),
        }))
    }

    /// The create body; `attach` says whether the client will attach (run without -d).
    pub fn body(&self, attach: bool) -> anyhow::Result<ContainerCreateBody> {
        let net = self.net.parts()?;
        let memory = size(&self.memory, "-m, --memory")?;
        let memory_swap = self
            .memory_swap
            .as_deref()
            .map(|s| parse::mem_swap_bytes(s).map_err(|e| invalid(s, "--memory-swap", e)))
            .transpose()?;
        let shm_size = size(&self.shm_size, "--shm-size")?;
        let nano_cpus = self.cpus.map(|c| (c * 1e9).round() as i64);
        let mut labels = HashMap::new();
        for l in &self.labels {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            labels.insert(k.to_owned(), v.to_owned());
        }
        // Like docker's UlimitOpt: the last value per name wins, sorted by name.
        let mut ulimits = BTreeMap::new();
        for u in &self.ulimits {
            let parsed = parse::ulimit(u).map_err(|e| invalid(u, "--ulimit", e))?;
            ulimits.insert(parsed.name.clone().unwrap_or_default(), parsed);
        }
        let devices = self
            .devices
            .iter()
            .map(|d| parse::device(d).map_err(|e| anyhow::anyhow!(e)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (flag, mode) in [
            ("pid", &self.pid),
            ("uts", &self.uts),
            ("userns", &self.userns),
        ] {
            parse::namespace_mode(flag, mode.as_deref().unwrap_or(""))
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        if let Some(s) = &self.stop_signal {
            parse::signal(s).map_err(|e| anyhow::anyhow!(e))?;
        }
        let restart_policy =
            parse::restart_policy(&self.restart).map_err(|e| anyhow::anyhow!(e))?;
        let restarts = !matches!(self.restart.split(':').next(), Some("" | "no"));
        if self.rm && restarts {
            anyhow::bail!("conflicting options: cannot specify both --restart and --rm");
        }
        let mut log_config = HashMap::new();
        for o in &self.log_opts {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid key-value pair for --log-opt: {o}"))?;
            log_config.insert(k.to_owned(), v.to_owned());
        }
        let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Ok(ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: (!self.command.is_empty()).then(|| self.command.clone()),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    vec![String::new()]
                } else {
                    vec![e.clone()]
                }
            }),
            env: (!self.env.is_empty()).then(|| {
                self.env
                    .iter()
                    .filter_map(|e| {
                        if e.contains('=') {
                            Some(e.clone())
                        } else {
                            std::env::var(e).ok().map(|v| format!("{e}={v}"))
                        }
                    })
                    .collect()
            }),
            working_dir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            attach_stdin: Some(attach && self.interactive),
            attach_stdout: Some(attach),
            attach_stderr: Some(attach),
            open_stdin: Some(self.interactive),
            stdin_once: Some(attach && self.interactive),
            tty: Some(self.tty),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            healthcheck: self.healthcheck()?,
            exposed_ports: net.exposed_ports,
            host_config: Some(HostConfig {
                memory,
                memory_swap,
                nano_cpus,
                cpu_shares: self.cpu_shares,
                pids_limit: self.pids_limit,
                auto_remove: Some(self.rm),
                network_mode: Some(net.network_mode),
                port_bindings: Some(net.port_bindings),
                publish_all_ports: Some(net.publish_all),
                dns: Some(net.dns),
                dns_search: Some(net.dns_search),
                dns_options: Some(net.dns_options),
                extra_hosts: net.extra_hosts,
                links: net.links,
                binds: some_vec(&binds(&self.volume)?),
                mounts: Some(mounts(&self.mount)?).filter(|m| !m.is_empty()),
                volumes_from: Some(self.volumes_from.clone()).filter(|v| !v.is_empty()),
                tmpfs: (!self.tmpfs.is_empty()).then(|| {
                    self.tmpfs
                        .iter()
                        .map(|t| {
                            let (p, o) = t.split_once(':').unwrap_or((t, ""));
                            (p.to_owned(), o.to_owned())
                        })
                        .collect()
                }),
                security_opt: some_vec(&self.security_opt),
                privileged: Some(self.privileged),
                readonly_rootfs: Some(self.read_only),
                cap_add: normalize_caps(&self.cap_add),
                cap_drop: normalize_caps(&self.cap_drop),
                ulimits: (!ulimits.is_empty()).then(|| ulimits.into_values().collect()),
                devices: (!devices.is_empty()).then_some(devices),
                shm_size,
                pid_mode: self.pid.clone(),
                ipc_mode: self.ipc.clone(),
                uts_mode: self.uts.clone(),
                userns_mode: self.userns.clone(),
                group_add: some_vec(&self.group_add),
                init: self.init,
                restart_policy: Some(restart_policy),
                log_config: (self.log_driver.is_some() || !log_config.is_empty()).then(|| {
                    HostConfigLogConfig {
                        typ: self.log_driver.clone(),
                        config: (!log_config.is_empty()).then_some(log_config),
                    }
                }),
                console_size: if self.tty {
                    terminal_size().map(|(r, c)| vec![r as usize, c as usize])
                } else {
                    None
                },
                ..Default::default()
            }),
            networking_config: Some(net.networking_config),
            ..Default::default()
        })
    }
}

/// `-v` values as the docker CLI sends them: a relative host path (`./www:/www`) made
/// absolute; anything else passed on for the daemon to check.
fn binds(volumes: &[String]) -> anyhow::Result<Vec<String>> {
    volumes
        .iter()
        .map(|v| {
            if v.starts_with('.')
                && let Some((src, rest)) = v.split_once(':')
            {
                let abs = std::env::current_dir()?.join(src);
                return Ok(format!("{}:{rest}", abs.display()));
            }
            Ok(v.clone())
        })
        .collect()
}

/// `--mount` values, parsed as docker's `opts.MountOpt` (CSV `key=value`).
fn mounts(values: &[String]) -> anyhow::Result<Vec<bollard::models::Mount>> {
    use bollard::models::{
        Mount, MountBindOptions, MountTmpfsOptions, MountType, MountVolumeOptions,
        MountVolumeOptionsDriverConfig,
    };
    let mut out = Vec::new();
    for v in values {
        let mut m = Mount::default();
        let mut tmpfs = MountTmpfsOptions::default();
        let mut bind: Option<MountBindOptions> = None;
        let mut volume: Option<MountVolumeOptions> = None;
        for field in v.split(',') {
            let (k, val) = match field.split_once('=') {
                Some((k, val)) => (k.trim().to_ascii_lowercase(), Some(val.trim())),
                None => (field.trim().to_ascii_lowercase(), None),
            };
            let bad = || {
                invalid(
                    v,
                    "--mount",
                    format!("invalid field '{field}' must be a key=value pair"),
                )
            };
            match k.as_str() {
                "type" => {
                    m.typ = Some(match val {
                        Some("bind") => MountType::BIND,
                        Some("volume") => MountType::VOLUME,
                        Some("tmpfs") => MountType::TMPFS,
                        Some(other) => {
                            return Err(invalid(
                                v,
                                "--mount",
                                format!("invalid mount type: {other}"),
                            ));
                        }
                        None => return Err(bad()),
                    })
                }
                "source" | "src" => m.source = Some(val.ok_or_else(bad)?.to_owned()),
                "target" | "destination" | "dst" => {
                    m.target = Some(val.ok_or_else(bad)?.to_owned())
                }
                "readonly" | "ro" => {
                    m.read_only = Some(!matches!(val, Some("false" | "0")));
                }
                "tmpfs-size" => {
                    let s = val.ok_or_else(bad)?;
                    tmpfs.size_bytes =
                        Some(crate::parse::ram_in_bytes(s).map_err(|e| invalid(v, "--mount", e))?);
                }
                "tmpfs-mode" => {
                    let s = val.ok_or_else(bad)?;
                    tmpfs.mode = Some(i64::from_str_radix(s, 8).map_err(|_| {
                        invalid(v, "--mount", format!("invalid value for tmpfs-mode: {s}"))
                    })?);
                }
                "bind-propagation" => {
                    let p = val.ok_or_else(bad)?.to_ascii_lowercase();
                    bind.get_or_insert_default().propagation = Some(p.parse().map_err(|_| {
                        invalid(v, "--mount", format!("invalid propagation mode: {p}"))
                    })?);
                }
                "volume-nocopy" => {
                    volume.get_or_insert_default().no_copy =
                        Some(!matches!(val, Some("false" | "0")));
                }
                "volume-opt" => {
                    let (ok, ov) = val.and_then(|o| o.split_once('=')).ok_or_else(|| {
                        invalid(
                            v,
                            "--mount",
                            format!("invalid value for volume-opt: {}", val.unwrap_or("")),
                        )
                    })?;
                    volume
                        .get_or_insert_default()
                        .driver_config
                        .get_or_insert_with(MountVolumeOptionsDriverConfig::default)
                        .options
                        .get_or_insert_default()
                        .insert(ok.to_owned(), ov.to_owned());
                }
                "consistency" | "bind-recursive" => {}
                _ => {
                    return Err(invalid(
                        v,
                        "--mount",
                        format!("unexpected key '{k}' in '{field}'"),
                    ));
                }
            }
        }
        if m.typ.is_none() {
            m.typ = Some(MountType::VOLUME);
        }
        if m.target.is_none() {
            return Err(invalid(v, "--mount", "target is required".into()));
        }
        if tmpfs.size_bytes.is_some() || tmpfs.mode.is_some() {
            m.tmpfs_options = Some(tmpfs);
        }
        m.bind_options = bind;
        m.volume_options = volume;
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        o: ContainerOpts,
    }

    fn body(args: &[&str]) -> anyhow::Result<ContainerCreateBody> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).expect("flags parse").o.body(false)
    }

    #[test]
    fn security_and_limit_flags_map_to_host_config() {
        let b = body(&[
            "--cap-add=net_admin",
            "--cap-add",
            "CAP_SYS_TIME",
            "--cap-drop=ALL",
            "--ulimit",
            "nproc=20",
            "--ulimit",
            "nofile=1024:2048",
            "--device",
            "/dev/null:/dev/mynull:r",
            "--shm-size",
            "128m",
            "--pid",
            "host",
            "--group-add",
            "10",
            "--memory-swap",
            "-1",
            "-c",
            "512",
            "--init",
            "--restart",
            "on-failure:2",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "3",
            "busybox",
            "sleep",
            "1",
        ])
        .expect("valid");
        let h = b.host_config.expect("host config");
        assert_eq!(
            h.cap_add,
            Some(vec!["CAP_NET_ADMIN".to_owned(), "CAP_SYS_TIME".to_owned()])
        );
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_owned()]));
        let ul = h.ulimits.expect("ulimits");
        assert_eq!(ul[0].name.as_deref(), Some("nofile"));
        assert_eq!((ul[0].soft, ul[0].hard), (Some(1024), Some(2048)));
        assert_eq!(ul[1].name.as_deref(), Some("nproc"));
        let dev = &h.devices.expect("devices")[0];
        assert_eq!(dev.path_in_container.as_deref(), Some("/dev/mynull"));
        assert_eq!(h.shm_size, Some(128 << 20));
        assert_eq!(h.pid_mode.as_deref(), Some("host"));
        assert_eq!(h.group_add, Some(vec!["10".to_owned()]));
        assert_eq!(h.memory_swap, Some(-1));
        assert_eq!(h.cpu_shares, Some(512));
        assert_eq!(h.init, Some(true));
        assert_eq!(
            h.restart_policy.and_then(|p| p.maximum_retry_count),
            Some(2)
        );
        assert_eq!(b.stop_signal.as_deref(), Some("SIGUSR1"));
        assert_eq!(b.stop_timeout, Some(3));
        assert_eq!(b.cmd, Some(vec!["sleep".to_owned(), "1".to_owned()]));
    }

    #[test]
    fn unset_flags_stay_unset() {
        let b = body(&["busybox"]).expect("valid");
        assert!(b.healthcheck.is_none() && b.stop_timeout.is_none());
        let h = b.host_config.expect("host config");
        assert!(h.init.is_none() && h.cap_add.is_none() && h.ulimits.is_none());
        assert!(h.log_config.is_none());
    }

    #[test]
    fn health_flags_build_docker_healthcheck() {
        let b = body(&[
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "1s",
            "--health-timeout=500ms",
            "--health-retries",
            "2",
            "busybox",
        ])
        .expect("valid");
        let h = b.healthcheck.expect("healthcheck");
        assert_eq!(
            h.test,
            Some(vec!["CMD-SHELL".to_owned(), "test -e /tmp/ok".to_owned()])
        );
        assert_eq!(h.interval, Some(1_000_000_000));
        assert_eq!(h.timeout, Some(500_000_000));
        assert_eq!(h.retries, Some(2));
        assert_eq!(h.start_period, None);

        let b = body(&["--no-healthcheck", "busybox"]).expect("valid");
        assert_eq!(
            b.healthcheck.and_then(|h| h.test),
            Some(vec!["NONE".to_owned()])
        );
        let e =
            body(&["--no-healthcheck", "--health-retries", "1", "busybox"]).expect_err("conflict");
        assert_eq!(
            e.to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );
        let e = body(&["--health-retries", "-1", "busybox"]).expect_err("negative");
        assert_eq!(e.to_string(), "--health-retries cannot be negative");
        let e = body(&["--health-interval", "5", "busybox"]).expect_err("no unit");
        assert!(e.to_string().contains("missing unit"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected_with_docker_messages() {
        let e = body(&["--rm", "--restart", "always", "busybox"]).expect_err("conflict");
        assert_eq!(
            e.to_string(),
            "conflicting options: cannot specify both --restart and --rm"
        );
        assert!(body(&["--rm", "--restart", "no", "busybox"]).is_ok());
        let e = body(&["--ulimit", "nofile=9:1", "busybox"]).expect_err("bad ulimit");
        assert!(
            e.to_string()
                .starts_with("invalid argument \"nofile=9:1\" for \"--ulimit\" flag")
        );
        let e = body(&["-m", "lots", "busybox"]).expect_err("bad size");
        assert_eq!(
            e.to_string(),
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"
        );
        assert!(body(&["--pid", "bogus", "busybox"]).is_err());
        assert!(body(&["--stop-signal", "SIGNOPE", "busybox"]).is_err());
        assert!(body(&["--device", "/dev/null:x", "busybox"]).is_err());
    }

    #[test]
    fn volumes_from_and_mount_options_reach_the_host_config() {
        use bollard::models::MountBindOptionsPropagationEnum;
        let b = body(&[
            "--volumes-from",
            "data:ro",
            "--mount",
            "type=bind,src=/x,dst=/y,bind-propagation=rslave",
            "--mount",
            "type=volume,dst=/v,volume-nocopy,volume-opt=type=tmpfs",
            "busybox",
        ])
        .expect("body");
        let h = b.host_config.expect("host config");
        assert_eq!(h.volumes_from, Some(vec!["data:ro".to_string()]));
        let m = h.mounts.expect("mounts");
        assert_eq!(
            m[0].bind_options.as_ref().and_then(|o| o.propagation),
            Some(MountBindOptionsPropagationEnum::RSLAVE)
        );
        let v = m[1].volume_options.as_ref().expect("volume options");
        assert_eq!(v.no_copy, Some(true));
        let opts = v.driver_config.as_ref().and_then(|d| d.options.as_ref());
        assert_eq!(
            opts.and_then(|o| o.get("type")).map(String::as_str),
            Some("tmpfs")
        );
        assert!(
            body(&[
                "--mount",
                "type=bind,src=/x,dst=/y,bind-propagation=odd",
                "busybox"
            ])
            .is_err()
        );
    }
}
