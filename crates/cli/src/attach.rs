//! `arca attach` and `arca start [-a] [-i]`: connect the local terminal to a container's
//! streams, as the docker CLI does: the exit wait is registered first, the terminal goes
//! raw for TTY sessions (and follows window changes), signals are forwarded without a TTY,
//! and the detach keys end the session while the container keeps running.

use bollard::query_parameters::AttachContainerOptionsBuilder;
use clap::Args;

use crate::client::{Cli, Plain, wait_registered};
use crate::run::spawn_signal_proxy;
use crate::session::{self, Ended, RawTerminal, StdinOpts, terminal_size};

/// The error docker returns when the user detaches from `attach` or `exec`: it prints
/// "read escape sequence" and exits with status 1.
pub struct Detached;

impl From<Detached> for anyhow::Error {
    fn from(_: Detached) -> Self {
        Plain::new("read escape sequence", 1).into()
    }
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    container: String,
}

/// Docker's refusals to attach to a container that is not running.
fn check_state(c: &bollard::models::ContainerInspectResponse) -> anyhow::Result<()> {
    let state = c.state.clone().unwrap_or_default();
    if !state.running.unwrap_or(false) {
        return Err(Plain::new(
            "You cannot attach to a stopped container, start it first",
            1,
        )
        .into());
    }
    if state.paused.unwrap_or(false) {
        return Err(Plain::new(
            "You cannot attach to a paused container, unpause it first",
            1,
        )
        .into());
    }
    if state.restarting.unwrap_or(false) {
        return Err(Plain::new(
            "You cannot attach to a restarting container, wait until it is running",
            1,
        )
        .into());
    }
    Ok(())
}

/// Docker's check that a TTY session reads from a terminal.
fn check_tty(stdin_attached: bool, tty: bool) -> anyhow::Result<()> {
    if stdin_attached && tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(Plain::new("the input device is not a TTY", 1).into());
    }
    Ok(())
}

async fn resize(cli: &Cli, id: &str, rows: u16, cols: u16) {
    let opts = bollard::query_parameters::ResizeContainerTTYOptionsBuilder::new()
        .h(i32::from(rows))
        .w(i32::from(cols))
        .build();
    let _ = cli.docker.resize_container_tty(id, opts).await;
}

pub async fn attach(cli: &Cli, a: AttachArgs) -> anyhow::Result<i32> {
    // Registered before anything else, so that an exit during the session is not missed.
    let exit = wait_registered(&cli.socket, &a.container, "not-running").await;
    let c = cli.docker.inspect_container(&a.container, None).await?;
    check_state(&c)?;
    let exit = exit?;
    let id = c.id.clone().unwrap_or_else(|| a.container.clone());
    let config = c.config.clone().unwrap_or_default();
    let tty = config.tty.unwrap_or(false);
    let with_stdin = !a.no_stdin && config.open_stdin.unwrap_or(false);
    check_tty(with_stdin, tty)?;

    let mut opts = AttachContainerOptionsBuilder::new()
        .stream(true)
        .stdin(with_stdin)
        .stdout(true)
        .stderr(true);
    if let Some(k) = &a.detach_keys {
        opts = opts.detach_keys(k);
    }
    spawn_signal_proxy(cli, &id, tty, a.sig_proxy);
    let session = cli.docker.attach_container(&id, Some(opts.build())).await?;
    // The container may have stopped between the first check and the attach.
    check_state(&cli.docker.inspect_container(&id, None).await?)?;

    if tty && let Some((rows, cols)) = terminal_size() {
        // As docker: a different size first, so that the program redraws on re-attach.
        resize(cli, &id, rows + 1, cols + 1).await;
        resize(cli, &id, rows, cols).await;
    }
    let raw = (tty && with_stdin).then(RawTerminal::enable).flatten();
    let stdin = with_stdin.then(|| StdinOpts::new(a.detach_keys.as_deref(), tty));
    let ended = session::pump(session.output, session.input, stdin).await?;
    drop(raw);
    if ended == Ended::Detached {
        return Err(Detached.into());
    }
    let code = exit.await?;
    Ok(i32::try_from(code).unwrap_or(1))
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn start(cli: &Cli, a: StartArgs) -> anyhow::Result<i32> {
    if !(a.attach || a.interactive) {
        return start_detached(cli, &a.containers).await;
    }
    if a.containers.len() > 1 {
        return Err(
            Plain::new("you cannot start and attach multiple containers at once", 1).into(),
        );
    }
    let c = cli.docker.inspect_container(&a.containers[0], None).await?;
    let id = c.id.clone().unwrap_or_else(|| a.containers[0].clone());
    let config = c.config.clone().unwrap_or_default();
    let tty = config.tty.unwrap_or(false);
    let with_stdin = a.interactive && config.open_stdin.unwrap_or(false);
    check_tty(with_stdin, tty)?;
    let auto_remove = c
        .host_config
        .as_ref()
        .and_then(|h| h.auto_remove)
        .unwrap_or(false);

    spawn_signal_proxy(cli, &id, tty, true);
    let mut opts = AttachContainerOptionsBuilder::new()
        .stream(true)
        .stdin(with_stdin)
        .stdout(true)
        .stderr(true);
    if let Some(k) = &a.detach_keys {
        opts = opts.detach_keys(k);
    }
    let session = cli.docker.attach_container(&id, Some(opts.build())).await?;
    let condition = if auto_remove { "removed" } else { "next-exit" };
    let exit = wait_registered(&cli.socket, &id, condition).await?;
    cli.docker.start_container(&id, None).await?;
    if tty && let Some((rows, cols)) = terminal_size() {
        resize(cli, &id, rows, cols).await;
    }
    let raw = (tty && with_stdin).then(RawTerminal::enable).flatten();
    let stdin = with_stdin.then(|| StdinOpts::new(a.detach_keys.as_deref(), tty));
    let ended = session::pump(session.output, session.input, stdin).await?;
    drop(raw);
    if ended == Ended::Detached {
        // Like `run`, and unlike `attach`, docker's `start` detaches silently.
        return Ok(0);
    }
    let code = exit.await?;
    Ok(i32::try_from(code).unwrap_or(1))
}

/// Starts each container, printing its name, or the error; then docker's summary line.
async fn start_detached(cli: &Cli, names: &[String]) -> anyhow::Result<i32> {
    let mut failed = Vec::new();
    for n in names {
        match cli.docker.start_container(n, None).await {
            Ok(()) => println!("{n}"),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                eprintln!("Error response from daemon: {message}");
                failed.push(n.as_str());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(Plain::new(
            format!("Error: failed to start containers: {}", failed.join(", ")),
            1,
        )
        .into())
    }
}
