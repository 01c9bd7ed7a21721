//! Image management verbs: `commit`, `history`, `save`, `image prune`, and the `system`
//! verb (`df`, `prune`), with docker's flags and output.

use std::io::IsTerminal;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::client::{Cli, Plain, query_escape};
use crate::format::{ago, human_size, table};

/// Sends a request to arcad and returns the successful response body (streamed); a
/// failure status becomes the daemon's message.
async fn request(
    cli: &Cli,
    method: hyper::Method,
    path_and_query: &str,
    body: Bytes,
) -> anyhow::Result<hyper::body::Incoming> {
    crate::client::raw_request(&cli.socket, method, path_and_query, &[], body).await
}

async fn request_json(
    cli: &Cli,
    method: hyper::Method,
    path_and_query: &str,
) -> anyhow::Result<Value> {
    let body = request(cli, method, path_and_query, Bytes::new())
        .await?
        .collect()
        .await?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    changes: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pause: bool,
    container: String,
    /// Repository and optional tag for the image
    reference: Option<String>,
}

pub async fn commit(cli: &Cli, a: CommitArgs) -> anyhow::Result<i32> {
    let mut q = format!("/commit?container={}", query_escape(&a.container));
    if let Some(r) = &a.reference {
        let last_slash = r.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match r[last_slash..].rfind(':') {
            Some(i) => (&r[..last_slash + i], &r[last_slash + i + 1..]),
            None => (r.as_str(), ""),
        };
        q.push_str(&format!(
            "&repo={}&tag={}",
            query_escape(repo),
            query_escape(tag)
        ));
    }
    if let Some(m) = &a.message {
        q.push_str(&format!("&comment={}", query_escape(m)));
    }
    if let Some(au) = &a.author {
        q.push_str(&format!("&author={}", query_escape(au)));
    }
    for c in &a.changes {
        q.push_str(&format!("&changes={}", query_escape(c)));
    }
    if !a.pause {
        q.push_str("&pause=0");
    }
    let body = request(cli, hyper::Method::POST, &q, Bytes::new())
        .await?
        .collect()
        .await?
        .to_bytes();
    let v: Value = serde_json::from_slice(&body)?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format (no `-H`: that is `--host` here)
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    image: String,
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub(crate) fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_owned();
    }
    let mut out: String = chars[..max - 1].iter().collect();
    out.push('…');
    out
}

pub async fn history(cli: &Cli, a: HistoryArgs) -> anyhow::Result<i32> {
    let path = format!("/images/{}/history", a.image);
    let items = request_json(cli, hyper::Method::GET, &path).await?;
    let items = items.as_array().cloned().unwrap_or_default();
    let id_of = |v: &Value| {
        let id = v["Id"].as_str().unwrap_or("<missing>");
        if a.no_trunc || id == "<missing>" {
            id.to_owned()
        } else {
            let hex = id.strip_prefix("sha256:").unwrap_or(id);
            hex.chars().take(12).collect()
        }
    };
    if a.quiet {
        for i in &items {
            println!("{}", id_of(i));
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let created = i["Created"].as_i64().unwrap_or(0);
            let size = i["Size"].as_i64().unwrap_or(0);
            let by = i["CreatedBy"].as_str().unwrap_or("").replace('\t', " ");
            vec![
                id_of(i),
                if a.human {
                    ago(created)
                } else {
                    chrono::DateTime::from_timestamp(created, 0)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                },
                if a.no_trunc { by } else { ellipsis(&by, 45) },
                if a.human {
                    human_size(size as f64)
                } else {
                    size.to_string()
                },
                i["Comment"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    table(
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &rows,
    );
    Ok(0)
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<std::path::PathBuf>,
    #[arg(required = true)]
    images: Vec<String>,
}

pub async fn save(cli: &Cli, a: SaveArgs) -> anyhow::Result<i32> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        return Err(Plain::new(
            "Cowardly refusing to save to a terminal. Use the -o flag or redirect",
            1,
        )
        .into());
    }
    let names: Vec<String> = a
        .images
        .iter()
        .map(|n| format!("names={}", query_escape(n)))
        .collect();
    let body = request(
        cli,
        hyper::Method::GET,
        &format!("/images/get?{}", names.join("&")),
        Bytes::new(),
    )
    .await?;
    crate::client::write_body(body, a.output.as_deref(), "save image").await?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Remove unused images
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
}

pub async fn image(cli: &Cli, a: ImageArgs) -> anyhow::Result<i32> {
    match a.command {
        ImageCommand::Prune(p) => crate::prune::image_prune(cli, &p.filters, p.all, p.force).await,
    }
}

#[derive(Args, Debug)]
pub struct SystemArgs {
    #[command(subcommand)]
    command: SystemCommand,
}

#[derive(Subcommand, Debug)]
enum SystemCommand {
    /// Show docker disk usage
    Df(crate::df::DfArgs),
    /// Remove unused data
    Prune(crate::prune::SystemPruneArgs),
}

pub async fn system(cli: &Cli, a: SystemArgs) -> anyhow::Result<i32> {
    match a.command {
        SystemCommand::Df(d) => crate::df::df(cli, d).await,
        SystemCommand::Prune(p) => crate::prune::system_prune(cli, p).await,
    }
}
