//! `arca exec`: run a command in a running container.

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use clap::Args;

use crate::client::Cli;
use crate::session::{self, Ended, RawTerminal, StdinOpts, terminal_size};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub async fn exec(cli: &Cli, a: ExecArgs) -> anyhow::Result<i32> {
    let attach = !a.detach;
    let created = cli
        .docker
        .create_exec(
            &a.container,
            CreateExecOptions::<String> {
                attach_stdin: Some(attach && a.interactive),
                attach_stdout: Some(attach),
                attach_stderr: Some(attach),
                tty: Some(a.tty),
                env: (!a.env.is_empty()).then(|| a.env.clone()),
                cmd: Some(a.command.clone()),
                privileged: Some(a.privileged),
                user: a.user.clone(),
                working_dir: a.workdir.clone(),
                detach_keys: a.detach_keys.clone(),
            },
        )
        .await?;
    let started = cli
        .docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: a.detach,
                tty: a.tty,
                output_capacity: None,
            }),
        )
        .await?;
    let StartExecResults::Attached { output, input } = started else {
        return Ok(0);
    };
    let _raw = (a.tty && a.interactive).then(RawTerminal::enable).flatten();
    if a.tty
        && let Some((rows, cols)) = terminal_size()
    {
        let _ = cli
            .docker
            .resize_exec(
                &created.id,
                bollard::query_parameters::ResizeExecOptionsBuilder::new()
                    .h(i32::from(rows))
                    .w(i32::from(cols))
                    .build(),
            )
            .await;
    }
    let stdin = a
        .interactive
        .then(|| StdinOpts::new(a.detach_keys.as_deref(), a.tty));
    if session::pump(output, input, stdin).await? == Ended::Detached {
        return Err(crate::attach::Detached.into());
    }
    let code = cli
        .docker
        .inspect_exec(&created.id)
        .await?
        .exit_code
        .unwrap_or(0);
    Ok(i32::try_from(code).unwrap_or(crate::EXIT_DAEMON))
}
