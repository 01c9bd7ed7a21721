//! `arca network create|ls|inspect|rm|prune|connect|disconnect`, as the docker CLI 28: the
//! same flags, the same requests (bodies carry the fields docker's Go types send, zero
//! values and nulls included), and the same output (the `NETWORK ID  NAME  DRIVER  SCOPE`
//! table with 12-character ids, inspect's raw JSON indented by four spaces in the daemon's
//! key order, created ids, removed names, `Deleted Networks:`).
//!
//! One file per verb group: `create.rs`, `ls.rs`, `inspect.rs`, `connect.rs` (with
//! `disconnect`); `rm` and `prune` live here with the helpers they share.
//!
//! Requests go through `client::raw_request` rather than bollard's network calls: bollard
//! leaves out the null and zero fields docker sends, and decodes inspect output into
//! structs, which would lose the daemon's key order that `network inspect` prints.
//!
//! `--format` and `inspect -f` take the template subset of `template.rs`; the `networksFormat`
//! of docker's config.json is not read.

mod connect;
mod create;
mod inspect;

pub(crate) use inspect::indent_json;
mod ls;

use std::collections::BTreeMap;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};

use crate::client::{Cli, Plain, query_escape, raw_request};
use crate::create_opts::invalid;

#[derive(Args, Debug)]
pub struct NetworkArgs {
    #[command(subcommand)]
    command: NetworkCommand,
}

#[derive(Subcommand, Debug)]
enum NetworkCommand {
    /// Create a network
    Create(create::CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(ls::LsArgs),
    /// Display detailed information on one or more networks
    Inspect(inspect::InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(connect::ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(connect::DisconnectArgs),
}

pub async fn network(cli: &Cli, a: NetworkArgs) -> anyhow::Result<i32> {
    match a.command {
        NetworkCommand::Create(a) => create::create(cli, a).await,
        NetworkCommand::Ls(a) => ls::ls(cli, a).await,
        NetworkCommand::Inspect(a) => inspect::inspect(cli, a).await,
        NetworkCommand::Rm(a) => rm(cli, a).await,
        NetworkCommand::Prune(a) => prune(cli, a).await,
        NetworkCommand::Connect(a) => connect::connect(cli, a).await,
        NetworkCommand::Disconnect(a) => connect::disconnect(cli, a).await,
    }
}

/// Go's URL path escaping of one path segment (`url.URL{Path: …}.String()`).
fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One API call; returns the response body.
async fn call(
    cli: &Cli,
    method: hyper::Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Bytes> {
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    Ok(raw_request(&cli.socket, method, path, &[], body)
        .await?
        .collect()
        .await?
        .to_bytes())
}

/// The daemon's status code of a failed call, if it was the daemon that refused.
fn daemon_status(e: &anyhow::Error) -> Option<u16> {
    match e.downcast_ref::<bollard::errors::Error>() {
        Some(bollard::errors::Error::DockerResponseServerError { status_code, .. }) => {
            Some(*status_code)
        }
        _ => None,
    }
}

/// Docker's message for a failed call: the daemon's error, prefixed as the Go client does.
fn daemon_message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<bollard::errors::Error>() {
        Some(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
            format!("Error response from daemon: {message}")
        }
        _ => format!("{e:#}"),
    }
}

/// The Go client's `trimID`: names are trimmed, and may not be empty.
fn trim_id(kind: &str, id: &str) -> Result<String, Plain> {
    let id = id.trim();
    if id.is_empty() {
        return Err(Plain::new(
            format!("invalid {kind} name or ID: value is empty"),
            1,
        ));
    }
    Ok(id.to_owned())
}

/// `key=value` filters as docker's query parameter: `{"key":{"value":true}}`.
fn filters_query(filters: &[String]) -> anyhow::Result<Option<String>> {
    let mut map: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for f in filters {
        if f.is_empty() {
            continue;
        }
        let (k, v) = f.split_once('=').ok_or_else(|| {
            invalid(
                f,
                "-f, --filter",
                "bad format of filter (expected name=value)".into(),
            )
        })?;
        map.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.trim().to_owned(), Value::Bool(true));
    }
    Ok((!map.is_empty()).then(|| query_escape(&json!(map).to_string())))
}

/// `key=value` pairs (docker's `MapOpts`): a value without `=` is a key with no value.
fn kv_map(values: &[String]) -> Map<String, Value> {
    values
        .iter()
        .map(|v| {
            let (k, val) = v.split_once('=').unwrap_or((v, ""));
            (k.to_owned(), Value::String(val.to_owned()))
        })
        .collect()
}

#[derive(Args, Debug)]
struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    networks: Vec<String>,
}

const INGRESS_WARNING: &str = "WARNING! Before removing the routing-mesh network, make sure all the nodes in your swarm run the same docker engine version. Otherwise, removal may not be effective and functionality of newly create ingress networks will be impaired.\nAre you sure you want to continue?";

async fn rm(cli: &Cli, a: RmArgs) -> anyhow::Result<i32> {
    let mut status = 0;
    for name in &a.networks {
        let id = match trim_id("network", name) {
            Ok(id) => id,
            Err(e) => {
                eprintln!("{e}");
                status = 1;
                continue;
            }
        };
        let path = format!("/networks/{}", path_escape(&id));
        // As docker: look first, to ask before removing a swarm's routing mesh.
        if let Ok(raw) = call(cli, hyper::Method::GET, &path, None).await {
            let v: Value = serde_json::from_slice(&raw).unwrap_or_default();
            if v.get("Ingress") == Some(&Value::Bool(true))
                && !crate::format::confirm(INGRESS_WARNING)?
            {
                continue;
            }
        }
        match call(cli, hyper::Method::DELETE, &path, None).await {
            Ok(_) => println!("{name}"),
            Err(e) if a.force && daemon_status(&e) == Some(404) => {}
            Err(e) if daemon_status(&e).is_some() => {
                eprintln!("{}", daemon_message(&e));
                status = 1;
            }
            Err(e) => return Err(e),
        }
    }
    if status != 0 {
        return Err(Plain::new(format!("exit status {status}"), status).into());
    }
    Ok(0)
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

async fn prune(cli: &Cli, a: PruneArgs) -> anyhow::Result<i32> {
    let query = filters_query(&a.filter)?;
    if !a.force
        && !crate::format::confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?",
        )?
    {
        // docker treats a declined prompt as a cancellation: no message, status 0.
        return Ok(0);
    }
    let mut path = "/networks/prune".to_owned();
    if let Some(q) = query {
        path.push_str(&format!("?filters={q}"));
    }
    let resp = call(cli, hyper::Method::POST, &path, None).await?;
    let v: Value = serde_json::from_slice(&resp)
        .map_err(|e| Plain::new(format!("Error retrieving network prune report: {e}"), 1))?;
    let deleted: Vec<&str> = v
        .get("NetworksDeleted")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !deleted.is_empty() {
        let mut out = String::from("Deleted Networks:\n");
        for id in deleted {
            out.push_str(id);
            out.push('\n');
        }
        println!("{out}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_match_go() {
        assert_eq!(path_escape("my net/x"), "my%20net/x");
        assert_eq!(
            filters_query(&["driver=bridge".into(), "Name = a".into()]).expect("filters"),
            Some(query_escape(
                r#"{"driver":{"bridge":true},"name":{"a":true}}"#
            ))
        );
        assert!(trim_id("network", "  ").is_err());
        assert_eq!(trim_id("network", " n ").expect("trimmed"), "n");
    }
}
