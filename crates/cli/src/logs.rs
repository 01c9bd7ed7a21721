//! `arca logs`: a container's log, as `docker logs`: `--since`/`--until` take RFC 3339
//! times, Unix timestamps or durations before now (converted here, as docker's client
//! does), `-t` adds timestamps, `--details` the log attributes, `-n` tails, `-f` follows.
//! The body is a raw stream for TTY containers and stdcopy frames otherwise.

use arca_api::stdcopy::StreamKind;
use clap::Args;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::client::{Cli, Plain, get_stream, query_escape};

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for
    /// 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m"
    /// for 42 minutes)
    #[arg(long)]
    until: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    details: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    container: String,
}

pub async fn logs(cli: &Cli, a: LogsArgs) -> anyhow::Result<i32> {
    // Resolve first, so an unknown container is reported as such, and learn about its TTY.
    let c = cli.docker.inspect_container(&a.container, None).await?;
    let id = c.id.clone().unwrap_or_else(|| a.container.clone());
    let tty = c.config.and_then(|c| c.tty).unwrap_or(false);
    let now = chrono::Local::now();
    let mut query = format!(
        "/containers/{id}/logs?stdout=1&stderr=1&tail={}",
        query_escape(&a.tail)
    );
    for (name, value) in [("since", &a.since), ("until", &a.until)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            let ts = crate::parse::timestamp(v, now)
                .map_err(|e| Plain::new(format!("invalid value for \"{name}\": {e}"), 1))?;
            query.push_str(&format!("&{name}={}", query_escape(&ts)));
        }
    }
    for (flag, on) in [
        ("follow", a.follow),
        ("timestamps", a.timestamps),
        ("details", a.details),
    ] {
        if on {
            query.push_str(&format!("&{flag}=1"));
        }
    }
    let mut body = get_stream(&cli.socket, &query).await?;
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    let mut demux = arca_api::stdcopy::Decoder::default();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if tty {
            stdout.write_all(&data).await?;
            stdout.flush().await?;
            continue;
        }
        for (stream, payload) in demux.push(&data) {
            // Engine errors (the system stream) go to stderr with the container's.
            if matches!(stream, StreamKind::Stderr | StreamKind::System) {
                stderr.write_all(&payload).await?;
                stderr.flush().await?;
            } else {
                stdout.write_all(&payload).await?;
                stdout.flush().await?;
            }
        }
    }
    Ok(0)
}
