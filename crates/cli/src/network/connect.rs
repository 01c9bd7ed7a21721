//! `arca network connect` and `disconnect`: the bodies of docker's
//! `network.ConnectOptions` (an `EndpointSettings` with every field docker sends) and
//! `network.DisconnectOptions`.

use clap::Args;
use serde_json::{Map, Value, json};

use super::{call, path_escape, trim_id};
use crate::client::{Cli, Plain};
use crate::create_opts::invalid;
use crate::network_opts::validate_link;

#[derive(Args, Debug)]
pub(super) struct ConnectArgs {
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long, default_value = "", hide_default_value = true)]
    ip: String,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long, default_value = "", hide_default_value = true)]
    ip6: String,
    /// Add link to another container
    #[arg(long = "link")]
    links: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "alias", value_delimiter = ',')]
    aliases: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip", value_delimiter = ',')]
    link_local_ips: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt", value_delimiter = ',')]
    driver_opts: Vec<String>,
    /// Highest gw-priority provides the default gateway. Accepts positive and negative
    /// values.
    #[arg(
        long = "gw-priority",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    gw_priority: i64,
    network: String,
    container: String,
}

/// The body of `POST /networks/{id}/connect`, with every field docker's
/// `EndpointSettings` sends.
fn connect_body(a: &ConnectArgs) -> anyhow::Result<Value> {
    for l in &a.links {
        validate_link(l).map_err(|e| invalid(l, "--link", e))?;
    }
    let mut driver_opts = Map::new();
    for o in &a.driver_opts {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        let k = k.trim();
        if !o.contains('=') || k.is_empty() {
            return Err(Plain::new("invalid key/value pair format in driver options", 1).into());
        }
        driver_opts.insert(k.to_owned(), Value::String(v.trim().to_owned()));
    }
    let mut ipam = Map::new();
    if !a.ip.is_empty() {
        ipam.insert("IPv4Address".into(), json!(a.ip));
    }
    if !a.ip6.is_empty() {
        ipam.insert("IPv6Address".into(), json!(a.ip6));
    }
    if !a.link_local_ips.is_empty() {
        ipam.insert("LinkLocalIPs".into(), json!(a.link_local_ips));
    }
    Ok(json!({
        "Container": trim_id("container", &a.container)?,
        "EndpointConfig": {
            "IPAMConfig": ipam,
            "Links": if a.links.is_empty() { Value::Null } else { json!(a.links) },
            "Aliases": a.aliases,
            "MacAddress": "",
            "DriverOpts": driver_opts,
            "GwPriority": a.gw_priority,
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": null,
        },
    }))
}

pub(super) async fn connect(cli: &Cli, a: ConnectArgs) -> anyhow::Result<i32> {
    let body = connect_body(&a)?;
    let network = trim_id("network", &a.network)?;
    let path = format!("/networks/{}/connect", path_escape(&network));
    call(cli, hyper::Method::POST, &path, Some(&body)).await?;
    Ok(0)
}

#[derive(Args, Debug)]
pub(super) struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    force: bool,
    network: String,
    container: String,
}

pub(super) async fn disconnect(cli: &Cli, a: DisconnectArgs) -> anyhow::Result<i32> {
    let network = trim_id("network", &a.network)?;
    let body = json!({"Container": trim_id("container", &a.container)?, "Force": a.force});
    let path = format!("/networks/{}/disconnect", path_escape(&network));
    call(cli, hyper::Method::POST, &path, Some(&body)).await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ConnectArgs,
    }

    fn args(args: &[&str]) -> ConnectArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).expect("parse").a
    }

    #[test]
    fn connect_body_carries_docker_endpoint_fields() {
        let a = args(&[
            "--ip", "10.0.0.5", "--alias", "a,b", "--link", "db:d", "net", " c1 ",
        ]);
        let b = connect_body(&a).expect("body");
        assert_eq!(b["Container"], "c1");
        let ep = &b["EndpointConfig"];
        assert_eq!(ep["IPAMConfig"], json!({"IPv4Address": "10.0.0.5"}));
        assert_eq!(ep["Aliases"], json!(["a", "b"]));
        assert_eq!(ep["Links"], json!(["db:d"]));
        assert_eq!(ep["DriverOpts"], json!({}));
        assert_eq!(ep["DNSNames"], Value::Null);
    }
}
