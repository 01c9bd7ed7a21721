//! `arca volume create|ls|inspect|rm|prune`, as the docker CLI 28 prints them: the created
//! name, the `DRIVER  VOLUME NAME` table (`-q` for names), inspect's JSON array, removed
//! names, and prune's "Deleted Volumes:" with the space reclaimed.
//!
//! Limits: `ls --format` takes `{{.Name}}`, `{{.Driver}}`, `{{.Mountpoint}}` only.

use std::io::Write;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};

use crate::client::{Cli, Plain, query_escape, raw_request};

#[derive(Args, Debug)]
pub struct VolumeArgs {
    #[command(subcommand)]
    command: VolumeCommand,
}

#[derive(Subcommand, Debug)]
enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long = "label")]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    name: Option<String>,
}

#[derive(Args, Debug)]
struct LsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
struct InspectArgs {
    #[arg(required = true)]
    volumes: Vec<String>,
}

#[derive(Args, Debug)]
struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    volumes: Vec<String>,
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

pub async fn volume(cli: &Cli, a: VolumeArgs) -> anyhow::Result<i32> {
    match a.command {
        VolumeCommand::Create(a) => create(cli, a).await,
        VolumeCommand::Ls(a) => ls(cli, a).await,
        VolumeCommand::Inspect(a) => inspect(cli, a).await,
        VolumeCommand::Rm(a) => rm(cli, a).await,
        VolumeCommand::Prune(a) => prune(cli, a).await,
    }
}

async fn call(
    cli: &Cli,
    method: hyper::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let raw = raw_request(&cli.socket, method, path, &[], body)
        .await?
        .collect()
        .await?
        .to_bytes();
    Ok(serde_json::from_slice(&raw).unwrap_or(Value::Null))
}

fn pairs(values: &[String]) -> Map<String, Value> {
    values
        .iter()
        .map(|v| {
            let (k, val) = v.split_once('=').unwrap_or((v, ""));
            (k.to_owned(), Value::String(val.to_owned()))
        })
        .collect()
}

fn filters(values: &[String]) -> anyhow::Result<String> {
    let mut map: Map<String, Value> = Map::new();
    for f in values {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            Plain::new(
                format!("bad format of filter (expected name=value): {f}"),
                1,
            )
        })?;
        let entry = map.entry(k.to_owned()).or_insert_with(|| json!({}));
        if let Some(o) = entry.as_object_mut() {
            o.insert(v.to_owned(), Value::Bool(true));
        }
    }
    Ok(if map.is_empty() {
        String::new()
    } else {
        format!("?filters={}", query_escape(&Value::Object(map).to_string()))
    })
}

async fn create(cli: &Cli, a: CreateArgs) -> anyhow::Result<i32> {
    let body = json!({
        "Name": a.name.unwrap_or_default(),
        "Driver": a.driver,
        "DriverOpts": pairs(&a.opt),
        "Labels": pairs(&a.label),
    });
    let v = call(cli, hyper::Method::POST, "/volumes/create", Some(body)).await?;
    println!("{}", v["Name"].as_str().unwrap_or_default());
    Ok(0)
}

async fn ls(cli: &Cli, a: LsArgs) -> anyhow::Result<i32> {
    let path = format!("/volumes{}", filters(&a.filter)?);
    let v = call(cli, hyper::Method::GET, &path, None).await?;
    let vols = v["Volumes"].as_array().cloned().unwrap_or_default();
    let field = |vol: &Value, k: &str| vol[k].as_str().unwrap_or_default().to_owned();
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for vol in &vols {
            writeln!(out, "{}", field(vol, "Name"))?;
        }
        return Ok(0);
    }
    if let Some(fmt) = a.format.as_deref().filter(|f| *f != "table") {
        for vol in &vols {
            let line = fmt
                .replace("{{.Name}}", &field(vol, "Name"))
                .replace("{{.Driver}}", &field(vol, "Driver"))
                .replace("{{.Mountpoint}}", &field(vol, "Mountpoint"))
                .replace("\\t", "\t");
            writeln!(out, "{line}")?;
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = vols
        .iter()
        .map(|vol| vec![field(vol, "Driver"), field(vol, "Name")])
        .collect();
    crate::format::table(&["DRIVER", "VOLUME NAME"], &rows);
    Ok(0)
}

async fn inspect(cli: &Cli, a: InspectArgs) -> anyhow::Result<i32> {
    let mut found = Vec::new();
    let mut status = 0;
    for name in &a.volumes {
        match call(
            cli,
            hyper::Method::GET,
            &format!("/volumes/{}", query_escape(name)),
            None,
        )
        .await
        {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("{}", crate::client::describe(&e, cli));
                status = 1;
            }
        }
    }
    let raw = Value::Array(found).to_string();
    println!("{}", crate::network::indent_json(raw.as_bytes(), "    "));
    Ok(status)
}

async fn rm(cli: &Cli, a: RmArgs) -> anyhow::Result<i32> {
    let mut status = 0;
    for name in &a.volumes {
        let path = format!(
            "/volumes/{}{}",
            query_escape(name),
            if a.force { "?force=1" } else { "" }
        );
        match call(cli, hyper::Method::DELETE, &path, None).await {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("{}", crate::client::describe(&e, cli));
                status = 1;
            }
        }
    }
    Ok(status)
}

async fn prune(cli: &Cli, a: PruneArgs) -> anyhow::Result<i32> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?"
        } else {
            "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?"
        };
        if !crate::format::confirm(warning)? {
            return Ok(0);
        }
    }
    let mut f = a.filter.clone();
    if a.all {
        f.push("all=true".into());
    }
    let path = format!("/volumes/prune{}", filters(&f)?);
    let v = call(cli, hyper::Method::POST, &path, None).await?;
    let deleted = v["VolumesDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Volumes:");
        for d in &deleted {
            println!("{}", d.as_str().unwrap_or_default());
        }
        println!();
    }
    let space = v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    println!(
        "Total reclaimed space: {}",
        crate::format::human_size(space)
    );
    Ok(0)
}
