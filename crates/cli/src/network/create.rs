//! `arca network create`: docker's flags, the IPAM configuration its CLI builds from
//! `--subnet`, `--ip-range`, `--gateway` and `--aux-address` (refusing what it refuses),
//! and the `POST /networks/create` body of docker's `network.CreateRequest`.

use clap::Args;
use serde_json::{Map, Value, json};

use super::{call, kv_map};
use crate::client::{Cli, Plain};
use crate::create_opts::invalid;

#[derive(Args, Debug)]
pub(super) struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opts: Vec<String>,
    /// Set metadata on a network
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable or disable IPv4 address assignment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    ipv4: Option<bool>,
    /// Enable or disable IPv6 address assignment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    ipv6: Option<bool>,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Create swarm routing-mesh network
    #[arg(long)]
    ingress: bool,
    /// Control the network's scope
    #[arg(long, default_value = "", hide_default_value = true)]
    scope: String,
    /// Create a configuration only network
    #[arg(long = "config-only")]
    config_only: bool,
    /// The network from which to copy the configuration
    #[arg(long = "config-from", default_value = "", hide_default_value = true)]
    config_from: String,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    ipam_driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long = "subnet", value_delimiter = ',')]
    subnets: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_delimiter = ',')]
    ip_ranges: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long = "gateway", value_delimiter = ',')]
    gateways: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address")]
    aux_addresses: Vec<String>,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt")]
    ipam_opts: Vec<String>,
    name: String,
}

/// Go's `net.ParseCIDR`: the address and the network it names.
fn parse_cidr(s: &str) -> Result<(std::net::IpAddr, std::net::IpAddr, u8), String> {
    let bad = || format!("invalid CIDR address: {s}");
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let ip: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > bits {
        return Err(bad());
    }
    let net = match ip {
        std::net::IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - len)).unwrap_or(0);
            std::net::IpAddr::V4((u32::from(v4) & mask).into())
        }
        std::net::IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - len)).unwrap_or(0);
            std::net::IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    Ok((ip, net, len))
}

/// docker's `subnetMatches`: whether `data` (an address or a CIDR) lies in `subnet`.
fn subnet_matches(subnet: &str, data: &str) -> Result<bool, String> {
    let (_, net, len) = parse_cidr(subnet).map_err(|e| format!("invalid subnet: {e}"))?;
    let ip = if data.contains('/') {
        Some(parse_cidr(data)?.0)
    } else {
        data.parse::<std::net::IpAddr>().ok()
    };
    let Some(ip) = ip else { return Ok(false) };
    let ip = match ip {
        std::net::IpAddr::V6(v6) if net.is_ipv4() => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => return Ok(false),
        },
        ip => ip,
    };
    Ok(match (net, ip) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - len)).unwrap_or(0);
            u32::from(i) & mask == u32::from(n)
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - len)).unwrap_or(0);
            u128::from(i) & mask == u128::from(n)
        }
        _ => false,
    })
}

/// docker's `createIPAMConfig`: subnets with their ranges, gateways and auxiliary
/// addresses, in the order the subnets were given.
fn ipam_config(a: &CreateArgs) -> Result<Vec<Value>, String> {
    if a.subnets.len() < a.ip_ranges.len() || a.subnets.len() < a.gateways.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    struct Cfg {
        subnet: String,
        range: String,
        gateway: String,
        aux: Map<String, Value>,
    }
    let mut cfgs: Vec<Cfg> = Vec::new();
    for s in &a.subnets {
        for c in &cfgs {
            if subnet_matches(s, &c.subnet)? || subnet_matches(&c.subnet, s)? {
                return Err("multiple overlapping subnet configuration is not supported".into());
            }
        }
        cfgs.push(Cfg {
            subnet: s.clone(),
            range: String::new(),
            gateway: String::new(),
            aux: Map::new(),
        });
    }
    for r in &a.ip_ranges {
        let mut matched = false;
        for c in &mut cfgs {
            parse_cidr(r)?;
            if !subnet_matches(&c.subnet, r)? {
                continue;
            }
            if !c.range.is_empty() {
                return Err(format!(
                    "cannot configure multiple ranges ({r}, {}) on the same subnet ({})",
                    c.range, c.subnet
                ));
            }
            c.range = r.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in &a.gateways {
        let mut matched = false;
        for c in &mut cfgs {
            if !subnet_matches(&c.subnet, g)? {
                continue;
            }
            if !c.gateway.is_empty() {
                return Err(format!(
                    "cannot configure multiple gateways ({g}, {}) for the same subnet ({})",
                    c.gateway, c.subnet
                ));
            }
            c.gateway = g.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    for (key, aa) in kv_map(&a.aux_addresses) {
        let aa = aa.as_str().unwrap_or_default().to_owned();
        let mut matched = false;
        for c in &mut cfgs {
            if subnet_matches(&c.subnet, &aa)? {
                c.aux.insert(key.clone(), Value::String(aa.clone()));
                matched = true;
            }
        }
        if !matched {
            return Err(format!("no matching subnet for aux-address {aa}"));
        }
    }
    Ok(cfgs
        .into_iter()
        .map(|c| {
            // The Go type's `omitempty` fields.
            let mut m = Map::new();
            for (k, v) in [
                ("Subnet", c.subnet),
                ("IPRange", c.range),
                ("Gateway", c.gateway),
            ] {
                if !v.is_empty() {
                    m.insert(k.into(), Value::String(v));
                }
            }
            if !c.aux.is_empty() {
                m.insert("AuxiliaryAddresses".into(), Value::Object(c.aux));
            }
            Value::Object(m)
        })
        .collect())
}

/// docker's `ValidateLabel`.
fn validate_label(value: &str) -> Result<(), String> {
    let key = value.split_once('=').map_or(value, |(k, _)| k);
    let key = key.trim_start_matches([' ', '\t']);
    if key.is_empty() {
        return Err(format!("invalid label '{value}': empty name"));
    }
    if key.contains([' ', '\t']) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(())
}

pub(super) async fn create(cli: &Cli, a: CreateArgs) -> anyhow::Result<i32> {
    for l in &a.labels {
        validate_label(l).map_err(|e| invalid(l, "--label", e))?;
    }
    let config = ipam_config(&a).map_err(|e| Plain::new(e, 1))?;
    let mut body = json!({
        "Driver": a.driver,
        "Scope": a.scope,
        "IPAM": {"Driver": a.ipam_driver, "Options": kv_map(&a.ipam_opts), "Config": config},
        "Internal": a.internal,
        "Attachable": a.attachable,
        "Ingress": a.ingress,
        "ConfigOnly": a.config_only,
        "ConfigFrom": if a.config_from.is_empty() { Value::Null } else { json!({"Network": a.config_from}) },
        "Options": kv_map(&a.opts),
        "Labels": kv_map(&a.labels),
        "Name": a.name,
    });
    if let Some(m) = body.as_object_mut() {
        if let Some(v4) = a.ipv4 {
            m.insert("EnableIPv4".into(), Value::Bool(v4));
        }
        if let Some(v6) = a.ipv6 {
            m.insert("EnableIPv6".into(), Value::Bool(v6));
        }
    }
    let resp = call(cli, hyper::Method::POST, "/networks/create", Some(&body)).await?;
    let v: Value = serde_json::from_slice(&resp)?;
    println!(
        "{}",
        v.get("Id").and_then(Value::as_str).unwrap_or_default()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CreateArgs,
    }

    fn args(args: &[&str]) -> CreateArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).expect("parse").a
    }

    #[test]
    fn ipam_config_pairs_ranges_and_gateways_with_subnets() {
        let a = args(&[
            "--subnet",
            "10.1.0.0/16",
            "--subnet=10.2.0.0/16",
            "--gateway",
            "10.2.0.1",
            "--ip-range",
            "10.1.128.0/17",
            "--aux-address",
            "h=10.1.0.5",
            "n",
        ]);
        assert_eq!(
            ipam_config(&a).expect("valid"),
            vec![
                json!({"Subnet": "10.1.0.0/16", "IPRange": "10.1.128.0/17", "AuxiliaryAddresses": {"h": "10.1.0.5"}}),
                json!({"Subnet": "10.2.0.0/16", "Gateway": "10.2.0.1"}),
            ]
        );
        let err = |a: &[&str]| ipam_config(&args(a)).expect_err("invalid");
        assert_eq!(
            err(&["--gateway", "10.0.0.1", "n"]),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            err(&["--subnet", "10.0.0.0/8", "--gateway", "11.0.0.1", "n"]),
            "no matching subnet for gateway 11.0.0.1"
        );
        assert_eq!(
            err(&["--subnet", "10.0.0.0/8", "--subnet", "10.1.0.0/16", "n"]),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            err(&["--subnet", "10.0.0.0/8", "--subnet", "10.0.0/8", "n"]),
            "invalid subnet: invalid CIDR address: 10.0.0/8"
        );
        // As docker, a lone subnet is left for the daemon to check.
        assert!(ipam_config(&args(&["--subnet", "10.0.0/8", "n"])).is_ok());
        assert!(subnet_matches("fd00::/64", "fd00::1").expect("v6"));
        assert!(!subnet_matches("fd00::/64", "10.0.0.1").expect("mixed"));
    }

    #[test]
    fn labels_are_validated_like_docker() {
        assert!(validate_label("a=b").is_ok());
        assert_eq!(
            validate_label("=b"),
            Err("invalid label '=b': empty name".into())
        );
        assert_eq!(
            validate_label("a b=c"),
            Err("label 'a b' contains whitespaces".into())
        );
    }
}
