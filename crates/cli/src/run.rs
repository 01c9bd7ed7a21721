//! `arca run`: create (pulling a missing image), attach, wait, start, stream, exit with
//! the container's status, in the order the docker CLI uses.

use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use clap::Args;

use crate::client::{Cli, start_error_code, wait_registered};
use crate::create_opts::ContainerOpts;
use crate::pull::{PullFlags, PullPolicy, pull_missing};
use crate::session::{self, Ended, RawTerminal, StdinOpts, terminal_size};

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub opts: ContainerOpts,
    #[command(flatten)]
    pub pull: PullFlags,
}

/// `POST /containers/create`, pulling the image first as `--pull` asks: `always`, or
/// `missing` (the default) when the daemon does not have it, as docker does.
pub async fn create(
    cli: &Cli,
    opts: &ContainerOpts,
    attach: bool,
    pull: &PullFlags,
) -> anyhow::Result<String> {
    if pull.pull == PullPolicy::Always {
        pull_missing(cli, &opts.image, pull).await?;
    }
    let body = opts.body(attach)?;
    match create_once(cli, opts, body.clone(), pull).await {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        }) if message.starts_with("No such image")
            && pull.pull == PullPolicy::Missing
            && !is_full_id(&opts.image) =>
        {
            pull_missing(cli, &opts.image, pull).await?;
            Ok(create_once(cli, opts, body, pull).await?)
        }
        r => Ok(r?),
    }
}

/// An image named by its full ID cannot be pulled (docker's ParseAnyReference rule).
fn is_full_id(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    hex.len() == 64 && arca_model::Reference::looks_like_id(hex)
}

async fn create_once(
    cli: &Cli,
    opts: &ContainerOpts,
    body: bollard::models::ContainerCreateBody,
    pull: &PullFlags,
) -> Result<String, bollard::errors::Error> {
    let mut create_opts = CreateContainerOptionsBuilder::new();
    if let Some(n) = &opts.name {
        create_opts = create_opts.name(n);
    }
    if let Some(p) = pull.platform.as_deref().filter(|p| !p.is_empty()) {
        create_opts = create_opts.platform(p);
    }
    Ok(cli
        .docker
        .create_container(Some(create_opts.build()), body)
        .await?
        .id)
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    pub opts: ContainerOpts,
    #[command(flatten)]
    pub pull: PullFlags,
}

/// `arca create`: prints the new container's ID. Bad flags exit 125, daemon errors 1, as
/// docker.
pub async fn create_cmd(cli: &Cli, a: CreateArgs) -> anyhow::Result<i32> {
    // docker create fills the attach fields as for an attached run (-a defaults), so
    // that a later `start -ai` behaves like `run -i`: stdin closes at the client's EOF.
    if let Err(e) = a.opts.body(true) {
        return Err(crate::client::Plain::new(
            format!("arca: {e}\n\nRun 'arca create --help' for more information"),
            crate::EXIT_DAEMON,
        )
        .into());
    }
    let id = create(cli, &a.opts, true, &a.pull).await?;
    println!("{id}");
    Ok(0)
}

pub async fn run(cli: &Cli, a: RunArgs) -> anyhow::Result<i32> {
    // docker run reports a failed create or pull with its own status, 125.
    let id = create(cli, &a.opts, !a.detach, &a.pull)
        .await
        .map_err(|e| match e.downcast::<crate::client::Plain>() {
            Ok(p) => crate::client::Plain::new(p.message, crate::EXIT_DAEMON).into(),
            Err(e) => e,
        })?;
    let o = &a.opts;

    if a.detach {
        cli.docker
            .start_container(&id, None)
            .await
            .map_err(|e| start_failed(e, &id))?;
        println!("{id}");
        return Ok(0);
    }

    let mut attach_opts = AttachContainerOptionsBuilder::new()
        .stream(true)
        .stdin(o.interactive)
        .stdout(true)
        .stderr(true);
    if let Some(k) = &a.detach_keys {
        attach_opts = attach_opts.detach_keys(k);
    }
    let attach = cli
        .docker
        .attach_container(&id, Some(attach_opts.build()))
        .await?;
    let condition = if o.rm { "removed" } else { "next-exit" };
    let exit = wait_registered(&cli.socket, &id, condition).await?;
    if let Err(e) = cli.docker.start_container(&id, None).await {
        return Err(start_failed(e, &id));
    }

    // In a TTY session the local terminal goes raw, so keys reach the container as typed.
    let _raw = (o.tty && o.interactive).then(RawTerminal::enable).flatten();
    if o.tty
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
    spawn_signal_proxy(cli, &id, o.tty, a.sig_proxy);
    let stdin = o
        .interactive
        .then(|| StdinOpts::new(a.detach_keys.as_deref(), o.tty));
    if session::pump(attach.output, attach.input, stdin).await? == Ended::Detached {
        // As docker: detaching from `run` is a success, and says nothing.
        return Ok(0);
    }
    let code = exit.await?;
    Ok(i32::try_from(code).unwrap_or(crate::EXIT_DAEMON))
}

pub fn start_failed(e: bollard::errors::Error, _id: &str) -> anyhow::Error {
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
pub fn spawn_signal_proxy(cli: &Cli, id: &str, tty: bool, proxy: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let docker = cli.docker.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        let mut winch = signal(SignalKind::window_change()).ok();
        let mut proxied = Vec::new();
        if !tty && proxy {
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
