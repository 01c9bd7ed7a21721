//! Image management verbs: `commit`, `history`, `save`, `image prune` and `system df`, with
//! docker's flags and output.

use std::io::{IsTerminal, Write};

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
fn ellipsis(s: &str, max: usize) -> String {
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
        ImageCommand::Prune(p) => prune(cli, p).await,
    }
}

async fn prune(cli: &Cli, a: PruneArgs) -> anyhow::Result<i32> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        print!("{warning}\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Ok(0);
        }
    }
    let mut filters: serde_json::Map<String, Value> = serde_json::Map::new();
    for f in &a.filters {
        let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
        let (k, v) = match k.strip_suffix('!') {
            Some(base) => (format!("{base}!"), v),
            None => (k.to_owned(), v),
        };
        filters
            .entry(k)
            .or_insert_with(|| Value::Object(serde_json::Map::new()))
            .as_object_mut()
            .map(|m| m.insert(v.to_owned(), Value::Bool(true)));
    }
    filters.insert(
        "dangling".into(),
        serde_json::json!({ (!a.all).to_string(): true }),
    );
    let q = format!(
        "/images/prune?filters={}",
        query_escape(&Value::Object(filters).to_string())
    );
    let v = request_json(cli, hyper::Method::POST, &q).await?;
    let items = v["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !items.is_empty() {
        println!("Deleted Images:");
        for i in &items {
            if let Some(t) = i["Untagged"].as_str() {
                println!("untagged: {t}");
            }
            if let Some(d) = i["Deleted"].as_str() {
                println!("deleted: {d}");
            }
        }
        println!();
    }
    let reclaimed = v["SpaceReclaimed"].as_u64().unwrap_or(0);
    println!("Total reclaimed space: {}", human_size(reclaimed as f64));
    Ok(0)
}

#[derive(Args, Debug)]
pub struct SystemArgs {
    #[command(subcommand)]
    command: SystemCommand,
}

#[derive(Subcommand, Debug)]
enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
}

#[derive(Args, Debug)]
struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    verbose: bool,
}

pub async fn system(cli: &Cli, a: SystemArgs) -> anyhow::Result<i32> {
    match a.command {
        SystemCommand::Df(d) => df(cli, d).await,
    }
}

/// `RECLAIMABLE`: the size and its share of the total, as docker prints it.
fn reclaimable(part: u64, total: u64) -> String {
    if total == 0 {
        return human_size(part as f64);
    }
    format!(
        "{} ({}%)",
        human_size(part as f64),
        (part as f64 * 100.0 / total as f64) as u64
    )
}

async fn df(cli: &Cli, a: DfArgs) -> anyhow::Result<i32> {
    let v = request_json(cli, hyper::Method::GET, "/system/df").await?;
    let images = v["Images"].as_array().cloned().unwrap_or_default();
    let containers = v["Containers"].as_array().cloned().unwrap_or_default();
    let layers = v["LayersSize"].as_u64().unwrap_or(0);
    let active_images = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .count();
    // Reclaimable: the unique bytes of images no container uses.
    let unused: u64 = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) == 0)
        .map(|i| {
            let size = i["Size"].as_u64().unwrap_or(0);
            size.saturating_sub(i["SharedSize"].as_u64().unwrap_or(0))
        })
        .sum();
    let rw: u64 = containers
        .iter()
        .map(|c| c["SizeRw"].as_u64().unwrap_or(0))
        .sum();
    let running = |c: &Value| matches!(c["State"].as_str(), Some("running" | "paused"));
    let active_containers = containers.iter().filter(|c| running(c)).count();
    let idle_rw: u64 = containers
        .iter()
        .filter(|c| !running(c))
        .map(|c| c["SizeRw"].as_u64().unwrap_or(0))
        .sum();
    let rows = vec![
        vec![
            "Images".into(),
            images.len().to_string(),
            active_images.to_string(),
            human_size(layers as f64),
            reclaimable(unused.min(layers), layers),
        ],
        vec![
            "Containers".into(),
            containers.len().to_string(),
            active_containers.to_string(),
            human_size(rw as f64),
            reclaimable(idle_rw, rw),
        ],
        vec![
            "Local Volumes".into(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
        vec![
            "Build Cache".into(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
    ];
    table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows);
    if a.verbose {
        println!("\nImages space usage:\n");
        let rows: Vec<Vec<String>> = images
            .iter()
            .map(|i| {
                let tag = i["RepoTags"][0].as_str().unwrap_or("<none>:<none>");
                let (repo, tag) = tag.rsplit_once(':').unwrap_or((tag, "<none>"));
                let id = i["Id"].as_str().unwrap_or("");
                let id = id.strip_prefix("sha256:").unwrap_or(id);
                let size = i["Size"].as_u64().unwrap_or(0);
                let shared = i["SharedSize"].as_u64().unwrap_or(0);
                vec![
                    repo.to_owned(),
                    tag.to_owned(),
                    id.chars().take(12).collect(),
                    ago(i["Created"].as_i64().unwrap_or(0)),
                    human_size(size as f64),
                    human_size(shared as f64),
                    human_size(size.saturating_sub(shared) as f64),
                    i["Containers"].as_i64().unwrap_or(0).to_string(),
                ]
            })
            .collect();
        table(
            &[
                "REPOSITORY",
                "TAG",
                "IMAGE ID",
                "CREATED",
                "SIZE",
                "SHARED SIZE",
                "UNIQUE SIZE",
                "CONTAINERS",
            ],
            &rows,
        );
    }
    Ok(0)
}
