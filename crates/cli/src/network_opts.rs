//! The networking flags of `arca run` and `arca create` (`-p`, `-P`, `--expose`,
//! `--network`, `--ip`, `--network-alias`, `--dns*`, `--add-host`, `--link`,
//! `--mac-address`), validated and turned into the create body's networking fields exactly
//! as the docker CLI 28 does (`opts.go`'s `parse` and `parseNetworkOpts`):
//!
//! - `HostConfig.NetworkMode` is the first `--network` target, else `default`;
//! - `NetworkingConfig.EndpointsConfig` holds one endpoint per `--network` (none when a
//!   single network has no endpoint options), or a `default` endpoint without `--network`;
//!   `--ip`, `--ip6`, `--network-alias`, `--mac-address` and, on user-defined networks,
//!   `--link` apply to the first network;
//! - `Dns`, `DnsSearch`, `DnsOptions` and `PortBindings` are always sent (empty when not
//!   given), `ExposedPorts`, `ExtraHosts` and `Links` only when given.
//!
//! Values docker checks while parsing flags (`--dns`, `--dns-search`, `--add-host`,
//! `--link`, `--network name=…,alias=…`) are refused with pflag's wording.

use std::collections::HashMap;

use bollard::models::{EndpointIpamConfig, EndpointSettings, NetworkingConfig, PortBinding};
use clap::Args;

use crate::create_opts::invalid;
use crate::ports;

#[derive(Args, Debug, Default)]
pub struct NetworkOpts {
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub aliases: Vec<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip")]
    pub link_local_ips: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_options: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_hosts: Vec<String>,
    /// Add link to another container
    #[arg(long = "link")]
    pub links: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
}

/// The networking parts of a create body.
#[derive(Debug, Default)]
pub struct NetworkParts {
    /// `Config.ExposedPorts` (unset when empty).
    pub exposed_ports: Option<Vec<String>>,
    pub port_bindings: HashMap<String, Option<Vec<PortBinding>>>,
    pub publish_all: bool,
    pub network_mode: String,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub extra_hosts: Option<Vec<String>>,
    pub links: Option<Vec<String>>,
    pub networking_config: NetworkingConfig,
}

/// One `--network` value: a name, or the `name=…,alias=…,ip=…` form.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Attachment {
    pub target: String,
    pub aliases: Vec<String>,
    pub driver_opts: HashMap<String, String>,
    pub links: Vec<String>,
    pub ipv4: String,
    pub ipv6: String,
    pub link_local_ips: Vec<String>,
    pub mac: String,
    pub gw_priority: i64,
}

/// Go's `net.IP.String()` of a valid address (IPv4-mapped addresses print as IPv4), as
/// docker's `ValidateIPAddress` returns it.
pub fn validate_ip(val: &str) -> Result<String, String> {
    match ports::go_parse_ip(val.trim()) {
        Some(std::net::IpAddr::V6(v6)) => Ok(v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string())),
        Some(ip) => Ok(ip.to_string()),
        None => Err(format!("IP address is not correctly formatted: {val}")),
    }
}

/// A DNS label: alphanumerics, inner dashes.
fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// docker's `ValidateDNSSearch`: `.`, or a domain (returned without its trailing dot). The
/// colons allowed around labels are the quirk of docker's own expression (`(:?` groups).
pub fn validate_dns_search(val: &str) -> Result<String, String> {
    let val = val.trim_matches(' ');
    if val == "." {
        return Ok(val.to_owned());
    }
    let bad = || format!("{val} is not a valid domain");
    if !val.bytes().any(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let t = val.trim_end_matches(['\t', '\n', '\x0c', '\r', ' ']);
    let t = t.strip_suffix('.').unwrap_or(t);
    let segments: Vec<&str> = t.split('.').collect();
    let last = segments.len() - 1;
    let ok = segments.iter().enumerate().all(|(i, seg)| {
        let mut s = *seg;
        for _ in 0..if i == 0 { 2 } else { 1 } {
            s = s.strip_prefix(':').unwrap_or(s);
        }
        if i < last {
            s = s.strip_suffix(':').unwrap_or(s);
        }
        is_label(s)
    });
    if ok && t.len() < 255 {
        Ok(t.to_owned())
    } else {
        Err(bad())
    }
}

/// docker's `ValidateExtraHost`: `host:ip`, `host=ip`, `host:[v6]` or `host:host-gateway`,
/// normalized to `host:ip` for the daemon.
pub fn validate_extra_host(val: &str) -> Result<String, String> {
    let (k, v) = match val.split_once('=').or_else(|| val.split_once(':')) {
        Some((k, v)) if !k.is_empty() && !k.contains(':') => (k, v),
        _ => return Err(format!("bad format for add-host: {val:?}")),
    };
    let mut v = v;
    if v != "host-gateway" {
        if v.len() > 2 && v.starts_with('[') && v.ends_with(']') {
            v = &v[1..v.len() - 1];
        }
        if validate_ip(v).is_err() {
            return Err(format!("invalid IP address in add-host: {v:?}"));
        }
    }
    Ok(format!("{k}:{v}"))
}

/// docker's `ValidateLink`: `name` or `name:alias`.
pub fn validate_link(val: &str) -> Result<String, String> {
    if val.is_empty() {
        return Err("empty string specified for links".into());
    }
    if val.splitn(3, ':').count() > 2 {
        return Err(format!("bad format for links: {val}"));
    }
    Ok(val.to_owned())
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets separated by `:` or `-`, or groups of four hex
/// digits separated by `.`.
pub fn valid_mac(s: &str) -> bool {
    let s = s.trim();
    let hex = |g: &str, n: usize| g.len() == n && g.bytes().all(|c| c.is_ascii_hexdigit());
    let octets = |sep: char| {
        let groups: Vec<&str> = s.split(sep).collect();
        matches!(groups.len(), 6 | 8 | 20) && groups.iter().all(|g| hex(g, 2))
    };
    let dotted = || {
        let groups: Vec<&str> = s.split('.').collect();
        matches!(groups.len(), 3 | 4 | 10) && groups.iter().all(|g| hex(g, 4))
    };
    octets(':') || octets('-') || dotted()
}

/// Go's `encoding/csv` for one line: commas separate fields, double quotes quote them.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("extraneous or missing \" in quoted-field".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(_) => return Err("extraneous or missing \" in quoted-field".into()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in non-quoted-field".into()),
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

/// Whether a `--network` value uses the `key=value,…` form: docker's unanchored
/// `\w+=\w+` test.
fn long_syntax(value: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = value.as_bytes();
    (1..b.len().saturating_sub(1)).any(|i| b[i] == b'=' && word(b[i - 1]) && word(b[i + 1]))
}

/// One `--network` value (docker's `NetworkOpt.Set`). As docker does, the long form is
/// lower-cased, values included.
pub fn parse_attachment(value: &str) -> Result<Attachment, String> {
    if !long_syntax(value) {
        return Ok(Attachment {
            target: value.to_owned(),
            ..Default::default()
        });
    }
    let mut a = Attachment::default();
    for field in csv_fields(value)? {
        let lower = field.to_lowercase();
        let (key, val) = match lower.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k.trim(), v.trim()),
            _ => return Err(format!("invalid field {field}")),
        };
        match key {
            "name" => a.target = val.to_owned(),
            "alias" => a.aliases.push(val.to_owned()),
            "ip" => a.ipv4 = val.to_owned(),
            "ip6" => a.ipv6 = val.to_owned(),
            "mac-address" => a.mac = val.to_owned(),
            "link-local-ip" => a.link_local_ips.push(val.to_owned()),
            "driver-opt" => match val.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    a.driver_opts
                        .insert(k.trim().to_owned(), v.trim().to_owned());
                }
                _ => return Err("invalid key value pair format in driver options".into()),
            },
            "gw-priority" => {
                a.gw_priority = val.parse::<i64>().map_err(|e| {
                    let why = match e.kind() {
                        std::num::IntErrorKind::PosOverflow
                        | std::num::IntErrorKind::NegOverflow => "value out of range",
                        _ => "invalid syntax",
                    };
                    format!("invalid gw-priority ({val}): {why}")
                })?;
            }
            _ => return Err(format!("invalid field key {key}")),
        }
    }
    if a.target.is_empty() {
        return Err("network name/id is not specified".into());
    }
    Ok(a)
}

fn is_container_mode(mode: &str) -> bool {
    mode.split_once(':').is_some_and(|(k, _)| k == "container")
}

/// A network of the user's (not `default`, `bridge`, `host`, `none` or `container:…`).
pub fn is_user_defined(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !is_container_mode(mode)
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// docker's `parseNetworkAttachmentOpt`.
fn endpoint(a: &Attachment) -> anyhow::Result<EndpointSettings> {
    if a.target.trim().is_empty() {
        anyhow::bail!("no name set for network");
    }
    if !is_user_defined(&a.target) {
        if !a.aliases.is_empty() {
            anyhow::bail!("network-scoped aliases are only supported for user-defined networks");
        }
        if !a.links.is_empty() {
            anyhow::bail!("links are only supported for user-defined networks");
        }
    }
    let has_ip = !a.ipv4.is_empty() || !a.ipv6.is_empty() || !a.link_local_ips.is_empty();
    if !a.mac.is_empty() && !valid_mac(&a.mac) {
        anyhow::bail!("{} is not a valid mac address", a.mac);
    }
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(EndpointSettings {
        aliases: non_empty(&a.aliases),
        driver_opts: (!a.driver_opts.is_empty()).then(|| a.driver_opts.clone()),
        links: non_empty(&a.links),
        ipam_config: has_ip.then(|| EndpointIpamConfig {
            ipv4_address: text(&a.ipv4),
            ipv6_address: text(&a.ipv6),
            link_local_ips: non_empty(&a.link_local_ips),
        }),
        mac_address: text(&a.mac),
        gw_priority: (a.gw_priority != 0).then_some(a.gw_priority),
        ..Default::default()
    })
}

impl NetworkOpts {
    fn ip(&self) -> &str {
        self.ip.as_deref().unwrap_or("")
    }

    fn ip6(&self) -> &str {
        self.ip6.as_deref().unwrap_or("")
    }

    fn mac(&self) -> &str {
        self.mac_address.as_deref().unwrap_or("")
    }

    /// docker's `applyContainerOptions`: the flags that configure the first network.
    fn apply_to(&self, n: &mut Attachment) -> anyhow::Result<()> {
        let conflict =
            |what: &str| anyhow::anyhow!("conflicting options: cannot specify both {what}");
        if !n.aliases.is_empty() && !self.aliases.is_empty() {
            return Err(conflict("--network-alias and per-network alias"));
        }
        if !n.links.is_empty() && !self.links.is_empty() {
            return Err(conflict("--link and per-network links"));
        }
        if !n.ipv4.is_empty() && !self.ip().is_empty() {
            return Err(conflict("--ip and per-network IPv4 address"));
        }
        if !n.ipv6.is_empty() && !self.ip6().is_empty() {
            return Err(conflict("--ip6 and per-network IPv6 address"));
        }
        if !n.mac.is_empty() && !self.mac().is_empty() {
            return Err(conflict("--mac-address and per-network MAC address"));
        }
        if !n.link_local_ips.is_empty() && !self.link_local_ips.is_empty() {
            return Err(conflict(
                "--link-local-ip and per-network link-local IP addresses",
            ));
        }
        if !self.aliases.is_empty() {
            n.aliases = self.aliases.clone();
        }
        // On a user-defined network a link is an endpoint alias; on the default bridge it
        // is a legacy link (HostConfig.Links only).
        if is_user_defined(&n.target) && !self.links.is_empty() {
            n.links = self.links.clone();
        }
        if !self.ip().is_empty() {
            n.ipv4 = self.ip().to_owned();
        }
        if !self.ip6().is_empty() {
            n.ipv6 = self.ip6().to_owned();
        }
        if !self.mac().is_empty() {
            n.mac = self.mac().to_owned();
        }
        if !self.link_local_ips.is_empty() {
            n.link_local_ips = self.link_local_ips.clone();
        }
        Ok(())
    }

    /// docker's `parseNetworkOpts`: the endpoints to create.
    fn endpoints(
        &self,
        attachments: &[Attachment],
    ) -> anyhow::Result<HashMap<String, EndpointSettings>> {
        let mut endpoints = HashMap::new();
        if attachments.is_empty() {
            let mut n = Attachment {
                target: "default".into(),
                ..Default::default()
            };
            self.apply_to(&mut n)?;
            endpoints.insert("default".to_owned(), endpoint(&n)?);
        }
        let (mut user_defined, mut builtin) = (false, false);
        for (i, n) in attachments.iter().enumerate() {
            if is_user_defined(&n.target) {
                user_defined = true;
            } else {
                builtin = true;
            }
            let mut n = n.clone();
            if i == 0 {
                self.apply_to(&mut n)?;
            }
            let ep = endpoint(&n)?;
            if endpoints.contains_key(&n.target) {
                anyhow::bail!("network {:?} is specified multiple times", n.target);
            }
            // A single network without endpoint options sends no endpoint (the daemon
            // creates it anyway), as docker does.
            if i == 0 && attachments.len() == 1 && ep == EndpointSettings::default() {
                continue;
            }
            endpoints.insert(n.target.clone(), ep);
        }
        if user_defined && builtin {
            anyhow::bail!(
                "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
            );
        }
        Ok(endpoints)
    }

    /// Validates the flags and builds the body's networking fields.
    pub fn parts(&self) -> anyhow::Result<NetworkParts> {
        // What pflag checks while reading the command line.
        let each = |vals: &[String], flag: &str, f: fn(&str) -> Result<String, String>| {
            vals.iter()
                .map(|v| f(v).map_err(|e| invalid(v, flag, e)))
                .collect::<anyhow::Result<Vec<String>>>()
        };
        let dns = each(&self.dns, "--dns", validate_ip)?;
        let dns_search = each(&self.dns_search, "--dns-search", validate_dns_search)?;
        let extra_hosts = each(&self.add_hosts, "--add-host", validate_extra_host)?;
        let links = each(&self.links, "--link", validate_link)?;
        let attachments = self
            .network
            .iter()
            .map(|v| parse_attachment(v).map_err(|e| invalid(v, "--network", e)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !self.mac().is_empty() && !valid_mac(self.mac()) {
            anyhow::bail!("{} is not a valid mac address", self.mac());
        }
        let specs = ports::parse(&self.publish, &self.expose).map_err(|e| anyhow::anyhow!(e))?;
        let networking = self.endpoints(&attachments)?;
        Ok(NetworkParts {
            exposed_ports: (!specs.exposed.is_empty()).then(|| specs.exposed.into_iter().collect()),
            port_bindings: specs
                .bindings
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect(),
            publish_all: self.publish_all,
            network_mode: attachments
                .first()
                .map_or_else(|| "default".to_owned(), |a| a.target.clone()),
            dns,
            dns_search,
            dns_options: self.dns_options.clone(),
            extra_hosts: non_empty(&extra_hosts),
            links: non_empty(&links),
            networking_config: NetworkingConfig {
                endpoints_config: Some(networking),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        n: NetworkOpts,
    }

    fn parts(args: &[&str]) -> anyhow::Result<NetworkParts> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).expect("flags parse").n.parts()
    }

    fn endpoints(p: &NetworkParts) -> &HashMap<String, EndpointSettings> {
        p.networking_config
            .endpoints_config
            .as_ref()
            .expect("endpoints")
    }

    #[test]
    fn without_network_the_default_endpoint_is_sent() {
        let p = parts(&[]).expect("valid");
        assert_eq!(p.network_mode, "default");
        assert_eq!(
            endpoints(&p).get("default"),
            Some(&EndpointSettings::default())
        );
        assert!(p.dns.is_empty() && p.port_bindings.is_empty());
        assert!(p.exposed_ports.is_none() && p.extra_hosts.is_none() && p.links.is_none());
    }

    #[test]
    fn a_plain_network_sends_no_endpoint_and_options_go_to_the_first() {
        let p = parts(&["--network", "none"]).expect("valid");
        assert_eq!(p.network_mode, "none");
        assert!(endpoints(&p).is_empty());

        let p = parts(&[
            "--net",
            "mynet",
            "--ip",
            "172.30.0.9",
            "--network-alias",
            "web",
            "--link",
            "db:database",
        ])
        .expect("valid");
        assert_eq!(p.network_mode, "mynet");
        let ep = &endpoints(&p)["mynet"];
        assert_eq!(
            ep.ipam_config
                .as_ref()
                .and_then(|c| c.ipv4_address.as_deref()),
            Some("172.30.0.9")
        );
        assert_eq!(ep.aliases, Some(vec!["web".to_owned()]));
        assert_eq!(ep.links, Some(vec!["db:database".to_owned()]));
        assert_eq!(p.links, Some(vec!["db:database".to_owned()]));

        let p = parts(&["--link", "db", "--mac-address", "02:42:ac:11:00:02"]).expect("valid");
        let ep = &endpoints(&p)["default"];
        assert_eq!(ep.links, None, "a legacy link is no endpoint option");
        assert_eq!(ep.mac_address.as_deref(), Some("02:42:ac:11:00:02"));
    }

    #[test]
    fn long_network_syntax_and_conflicts() {
        let a = parse_attachment("name=MyNet,alias=A1,alias=a2,ip=10.0.0.2,driver-opt=k=v")
            .expect("valid");
        assert_eq!(a.target, "mynet");
        assert_eq!(a.aliases, vec!["a1", "a2"]);
        assert_eq!(a.ipv4, "10.0.0.2");
        assert_eq!(a.driver_opts["k"], "v");
        assert_eq!(parse_attachment("plain").expect("valid").target, "plain");
        assert_eq!(
            parse_attachment("alias=x"),
            Err("network name/id is not specified".into())
        );
        assert_eq!(
            parse_attachment("name=x,bogus=1"),
            Err("invalid field key bogus".into())
        );
        let e =
            parts(&["--network", "name=n1,alias=x", "--network-alias", "y"]).expect_err("conflict");
        assert_eq!(
            e.to_string(),
            "conflicting options: cannot specify both --network-alias and per-network alias"
        );
        let e = parts(&["--network", "n1", "--network", "host"]).expect_err("mix");
        assert!(e.to_string().contains("user-defined and non-user-defined"));
        let e = parts(&["--network", "n1", "--network", "n1"]).expect_err("twice");
        assert_eq!(e.to_string(), "network \"n1\" is specified multiple times");
        let e = parts(&["--network-alias", "x"]).expect_err("alias on default");
        assert_eq!(
            e.to_string(),
            "network-scoped aliases are only supported for user-defined networks"
        );
        let e = parts(&["--network", "container:web", "--network-alias", "x"])
            .expect_err("alias on container mode");
        assert!(e.to_string().contains("only supported for user-defined"));
    }

    #[test]
    fn flag_values_are_validated_like_docker() {
        let p = parts(&[
            "--dns",
            "1.1.1.1",
            "--dns",
            "::ffff:8.8.8.8",
            "--dns-search",
            "example.com.",
            "--dns-search",
            ".",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "h1:10.0.0.1",
            "--add-host",
            "h2=host-gateway",
            "--add-host",
            "h3:[::1]",
        ])
        .expect("valid");
        assert_eq!(p.dns, vec!["1.1.1.1", "8.8.8.8"]);
        assert_eq!(p.dns_search, vec!["example.com", "."]);
        assert_eq!(p.dns_options, vec!["ndots:2"]);
        assert_eq!(
            p.extra_hosts,
            Some(vec![
                "h1:10.0.0.1".to_owned(),
                "h2:host-gateway".to_owned(),
                "h3:::1".to_owned()
            ])
        );
        let err = |args: &[&str]| parts(args).expect_err("invalid").to_string();
        assert_eq!(
            err(&["--dns", "x"]),
            "invalid argument \"x\" for \"--dns\" flag: IP address is not correctly formatted: x"
        );
        assert_eq!(
            err(&["--dns-search=-bad-"]),
            "invalid argument \"-bad-\" for \"--dns-search\" flag: -bad- is not a valid domain"
        );
        assert_eq!(
            err(&["--add-host", "nohost"]),
            "invalid argument \"nohost\" for \"--add-host\" flag: bad format for add-host: \"nohost\""
        );
        assert_eq!(
            err(&["--add-host", "h:1.2.3"]),
            "invalid argument \"h:1.2.3\" for \"--add-host\" flag: invalid IP address in add-host: \"1.2.3\""
        );
        assert_eq!(
            err(&["--link", "a:b:c"]),
            "invalid argument \"a:b:c\" for \"--link\" flag: bad format for links: a:b:c"
        );
        assert_eq!(
            err(&["--mac-address", "zz"]),
            "zz is not a valid mac address"
        );
        assert_eq!(err(&["-p", "8080:x"]), "invalid containerPort: x");
        assert_eq!(err(&["-p", "x:80"]), "invalid hostPort: x");
        assert_eq!(err(&["-p", "1:2/icmp"]), "invalid proto: icmp");
    }

    #[test]
    fn ports_fill_exposed_ports_and_bindings() {
        let p = parts(&["-p", "8080:80", "-P", "--expose", "9000-9001/udp"]).expect("valid");
        assert!(p.publish_all);
        assert_eq!(
            p.exposed_ports,
            Some(vec![
                "80/tcp".to_owned(),
                "9000/udp".to_owned(),
                "9001/udp".to_owned()
            ])
        );
        let b = p.port_bindings["80/tcp"].as_ref().expect("bindings");
        assert_eq!(b[0].host_port.as_deref(), Some("8080"));
        assert_eq!(b[0].host_ip.as_deref(), Some(""));
    }

    #[test]
    fn domains_and_macs_follow_docker_rules() {
        for ok in [
            "example.com",
            "a",
            "a-b.c",
            "x1.y2.",
            ":a.b",
            "::a.b",
            "a:.b",
        ] {
            assert!(validate_dns_search(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1.2", "-a", "a-", "a..b", ":::a", "a b"] {
            assert!(validate_dns_search(bad).is_err(), "{bad}");
        }
        for ok in ["02:42:ac:11:00:02", "02-42-AC-11-00-02", "0242.ac11.0002"] {
            assert!(valid_mac(ok), "{ok}");
        }
        for bad in ["02:42:ac:11:00", "0242ac110002", "02:42:ac:11:00:0g"] {
            assert!(!valid_mac(bad), "{bad}");
        }
        assert_eq!(
            csv_fields("a,\"b,c\",d").expect("csv"),
            vec!["a", "b,c", "d"]
        );
    }
}
