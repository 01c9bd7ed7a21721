//! `arca run`: create (the image must be present), attach, wait, start, stream, exit with
//! the container's status, in the order the docker CLI uses.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use clap::Args;

use crate::client::{Cli, start_error_code, wait_registered};
use crate::format::parse_bytes;
use crate::session::{self, RawTerminal, terminal_size};

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
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
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Connect a container to a network (none, host)
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
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
    /// Image to run
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

impl RunArgs {
    fn body(&self) -> anyhow::Result<ContainerCreateBody> {
        let memory = match &self.memory {
            Some(m) => Some(parse_bytes(m).map_err(|e| {
                anyhow::anyhow!("invalid argument {m:?} for \"-m, --memory\" flag: {e}")
            })?),
            None => None,
        };
        let nano_cpus = self.cpus.map(|c| (c * 1e9).round() as i64);
        let mut labels = HashMap::new();
        for l in &self.labels {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            labels.insert(k.to_owned(), v.to_owned());
        }
        let attach = !self.detach;
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
            host_config: Some(HostConfig {
                memory,
                nano_cpus,
                pids_limit: self.pids_limit,
                auto_remove: Some(self.rm),
                network_mode: Some(self.network.clone().unwrap_or_else(|| "default".into())),
                security_opt: (!self.security_opt.is_empty()).then(|| self.security_opt.clone()),
                privileged: Some(self.privileged),
                readonly_rootfs: Some(self.read_only),
                console_size: if self.tty {
                    terminal_size().map(|(r, c)| vec![r as usize, c as usize])
                } else {
                    None
                },
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

pub async fn run(cli: &Cli, a: RunArgs) -> anyhow::Result<i32> {
    let body = a.body()?;
    let mut opts = CreateContainerOptionsBuilder::new();
    if let Some(n) = &a.name {
        opts = opts.name(n);
    }
    let created = match cli.docker.create_container(Some(opts.build()), body).await {
        Ok(c) => c,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        }) if message.starts_with("No such image") => {
            let shown = message.trim_start_matches("No such image: ");
            eprintln!("Unable to find image '{shown}' locally");
            anyhow::bail!(
                "arca: image {shown} is not present and arca cannot pull from registries yet.\n\
                 Load it with `arca load -i image.tar` or import a root filesystem with `arca import`."
            );
        }
        Err(e) => return Err(e.into()),
    };
    let id = created.id;

    if a.detach {
        cli.docker
            .start_container(&id, None)
            .await
            .map_err(|e| start_failed(e, &id))?;
        println!("{id}");
        return Ok(0);
    }

    let attach = cli
        .docker
        .attach_container(
            &id,
            Some(
                AttachContainerOptionsBuilder::new()
                    .stream(true)
                    .stdin(a.interactive)
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        )
        .await?;
    let condition = if a.rm { "removed" } else { "next-exit" };
    let exit = wait_registered(&cli.socket, &id, condition).await?;
    if let Err(e) = cli.docker.start_container(&id, None).await {
        return Err(start_failed(e, &id));
    }

    // In a TTY session the local terminal goes raw, so keys reach the container as typed.
    let _raw = (a.tty && a.interactive).then(RawTerminal::enable).flatten();
    if a.tty
        && let Some((rows, cols)) = terminal_size()
    {
        let _ = cli
            .docker
            .resize_container_tty(
                &id,
                bollard::query_parameters::ResizeContainerTTYOptionsBuilder::new()
                    .h(i32::from(rows))
                    .w(i32::from(cols))
                    .build(),
            )
            .await;
    }
    spawn_signal_proxy(cli, &id, a.tty);
    session::pump(attach.output, attach.input, a.interactive).await?;
    let code = exit.await?;
    Ok(i32::try_from(code).unwrap_or(crate::EXIT_DAEMON))
}

fn start_failed(e: bollard::errors::Error, _id: &str) -> anyhow::Error {
    if let bollard::errors::Error::DockerResponseServerError { message, .. } = &e {
        let code = start_error_code(message);
        if code != crate::EXIT_DAEMON {
            return anyhow::anyhow!("Error response from daemon: {message}");
        }
    }
    e.into()
}

/// Like docker's `--sig-proxy` (on by default): SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2
/// received by `arca run` go to the container (without a TTY; with one, the terminal
/// sends keys instead), and with a TTY, window changes resize it.
fn spawn_signal_proxy(cli: &Cli, id: &str, tty: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let docker = cli.docker.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        let mut winch = signal(SignalKind::window_change()).ok();
        let mut proxied = Vec::new();
        if !tty {
            for (kind, name) in [
                (SignalKind::interrupt(), "SIGINT"),
                (SignalKind::terminate(), "SIGTERM"),
                (SignalKind::hangup(), "SIGHUP"),
                (SignalKind::quit(), "SIGQUIT"),
                (SignalKind::user_defined1(), "SIGUSR1"),
                (SignalKind::user_defined2(), "SIGUSR2"),
            ] {
                if let Ok(s) = signal(kind) {
                    proxied.push((s, name));
                }
            }
        }
        let have_proxied = !proxied.is_empty();
        loop {
            let next =
                async {
                    if have_proxied {
                        // select_all panics on an empty list: only used when there are signals.
                        futures_util::future::select_all(proxied.iter_mut().map(|(s, name)| {
                            Box::pin(async move { s.recv().await.map(|_| *name) })
                        }))
                        .await
                        .0
                    } else {
                        std::future::pending().await
                    }
                };
            let resize = async {
                match winch.as_mut() {
                    Some(w) if tty => w.recv().await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                sig = next => {
                    let Some(name) = sig else { return };
                    let opts = bollard::query_parameters::KillContainerOptionsBuilder::new()
                        .signal(name)
                        .build();
                    let _ = docker.kill_container(&id, Some(opts)).await;
                }
                Some(()) = resize => {
                    if let Some((rows, cols)) = terminal_size() {
                        let opts = bollard::query_parameters::ResizeContainerTTYOptionsBuilder::new()
                            .h(i32::from(rows))
                            .w(i32::from(cols))
                            .build();
                        let _ = docker.resize_container_tty(&id, opts).await;
                    }
                }
                else => return,
            }
        }
    });
}
