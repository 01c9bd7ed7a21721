//! Port specifications of `-p/--publish` and `--expose`, parsed as the docker CLI does
//! (go-connections' `nat.ParsePortSpecs` and `ParsePortRange`, and the CLI's
//! `convertToStandardNotation` for the `published=…,target=…` form), with docker's error
//! messages. Ports are keyed `PORT/PROTO` (`80/tcp`); a host port range paired with one
//! container port stays a range (`8000-8010`) for the daemon to pick from.
//!
//! Addresses are checked only for syntax: an IPv6 host address (`[::1]:8080:80`) is
//! accepted here, as docker accepts it; whether it can be bound is the daemon's call.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use bollard::models::PortBinding;

/// Exposed ports and their bindings, in docker's create-body shapes.
#[derive(Debug, Default, PartialEq)]
pub struct PortSpecs {
    /// `Config.ExposedPorts` keys.
    pub exposed: BTreeSet<String>,
    /// `HostConfig.PortBindings`, bindings in the order given.
    pub bindings: BTreeMap<String, Vec<PortBinding>>,
}

/// Go's `strconv.ParseUint(s, 10, 16)`, with its error text.
pub fn parse_u16(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    match s.parse::<u16>() {
        Ok(n) => Ok(u64::from(n)),
        Err(_) => Err(format!(
            "strconv.ParseUint: parsing {s:?}: value out of range"
        )),
    }
}

/// `8000-9000` or `80` to its first and last port (`nat.ParsePortRange`). As there, only
/// the first two parts of a dashed value count.
pub fn parse_port_range(ports: &str) -> Result<(u64, u64), String> {
    if ports.is_empty() {
        return Err("empty string specified for ports".into());
    }
    if !ports.contains('-') {
        let p = parse_u16(ports)?;
        return Ok((p, p));
    }
    let mut parts = ports.split('-');
    let start = parse_u16(parts.next().unwrap_or(""))?;
    let end = parse_u16(parts.next().unwrap_or(""))?;
    if end < start {
        return Err(format!("invalid range specified for port: {ports}"));
    }
    Ok((start, end))
}

/// `80/udp` to (`udp`, `80`); a missing or empty protocol is `tcp` (`nat.SplitProtoPort`).
pub fn split_proto_port(raw: &str) -> (&str, &str) {
    let mut parts = raw.split('/');
    let port = parts.next().unwrap_or("");
    if raw.is_empty() || port.is_empty() {
        return ("", "");
    }
    match parts.next() {
        None | Some("") => ("tcp", port),
        Some(proto) => (proto, port),
    }
}

/// `nat.NewPort`: `80/tcp`, or `80-82/tcp` for a range.
fn new_port(proto: &str, port: &str) -> Result<String, String> {
    let (start, end) = if port.is_empty() {
        (0, 0)
    } else {
        parse_port_range(port)?
    };
    Ok(if start == end {
        format!("{start}/{proto}")
    } else {
        format!("{start}-{end}/{proto}")
    })
}

/// Splits `ip:host:container`; an IPv6 address keeps its colons (`nat.splitParts`).
fn split_parts(raw: &str) -> (String, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    match n {
        1 => (String::new(), "", container),
        2 => (String::new(), parts[0], container),
        _ => (parts[..n - 2].join(":"), parts[n - 2], container),
    }
}

/// One `-p` value to (port, binding) pairs (`nat.ParsePortSpec`).
fn parse_port_spec(raw: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let (mut ip, host_port, container) = split_parts(raw);
    let (proto, container_port) = split_proto_port(container);
    if let Some(inner) = ip.strip_prefix('[') {
        ip = match inner.strip_suffix(']') {
            Some(addr) if !addr.contains(['[', ']']) => addr.to_owned(),
            _ => {
                return Err(format!(
                    "invalid IP address {ip}: address {ip}:: missing ']' in address"
                ));
            }
        };
    }
    if !ip.is_empty() && go_parse_ip(&ip).is_none() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container_port.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let (start, end) = parse_port_range(container_port)
        .map_err(|_| format!("invalid containerPort: {container_port}"))?;
    let (host_start, host_end) = if host_port.is_empty() {
        (0, 0)
    } else {
        parse_port_range(host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?
    };
    if !host_port.is_empty() && end - start != host_end - host_start && end != start {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {container_port} and {host_port}"
        ));
    }
    let proto_lower = proto.to_lowercase();
    if !matches!(proto_lower.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let mut out = Vec::new();
    for i in 0..=(end - start) {
        let mut host = String::new();
        if !host_port.is_empty() {
            host = (host_start + i).to_string();
        }
        // One container port with a host range: the daemon picks a port in the range.
        if start == end && host_start != host_end {
            host = format!("{host}-{host_end}");
        }
        let port = new_port(&proto_lower, &(start + i).to_string())?;
        out.push((
            port,
            PortBinding {
                host_ip: Some(ip.clone()),
                host_port: Some(host),
            },
        ));
    }
    Ok(out)
}

/// The `published=8080,target=80[,protocol=udp]` form to `8080:80/udp`, other values
/// unchanged (the CLI's `convertToStandardNotation`).
fn standard_notation(spec: &str) -> Result<String, String> {
    if !spec.contains('=') {
        return Ok(spec.to_owned());
    }
    let mut params = BTreeMap::from([("protocol", "tcp")]);
    for param in spec.split(',') {
        match param.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                params.insert(k, v);
            }
            _ => {
                return Err(format!(
                    "invalid publish opts format (should be name=value but got '{param}')"
                ));
            }
        }
    }
    let get = |k: &str| params.get(k).copied().unwrap_or("");
    Ok(format!(
        "{}:{}/{}",
        get("published"),
        get("target"),
        get("protocol")
    ))
}

/// All `-p` and `--expose` values: docker's `ExposedPorts` and `PortBindings`.
pub fn parse(publish: &[String], expose: &[String]) -> Result<PortSpecs, String> {
    let mut specs = PortSpecs::default();
    let publish = publish
        .iter()
        .map(|p| standard_notation(p))
        .collect::<Result<Vec<_>, _>>()?;
    for raw in &publish {
        for (port, binding) in parse_port_spec(raw)? {
            specs.exposed.insert(port.clone());
            specs.bindings.entry(port).or_default().push(binding);
        }
    }
    for e in expose {
        if e.contains(':') {
            return Err(format!("invalid port format for --expose: {e}"));
        }
        let (proto, port) = split_proto_port(e);
        let (start, end) = parse_port_range(port)
            .map_err(|err| format!("invalid range format for --expose: {e}, error: {err}"))?;
        for p in start..=end {
            specs.exposed.insert(new_port(proto, &p.to_string())?);
        }
    }
    Ok(specs)
}

/// Go's `net.ParseIP`: IPv4 dotted quads and IPv6, no zones.
pub fn go_parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        }
    }

    fn one(spec: &str) -> Result<Vec<(String, PortBinding)>, String> {
        parse_port_spec(spec)
    }

    #[test]
    fn publish_forms_parse_like_nat() {
        assert_eq!(one("8080:80"), Ok(vec![("80/tcp".into(), b("", "8080"))]));
        assert_eq!(
            one("127.0.0.1:8080:80"),
            Ok(vec![("80/tcp".into(), b("127.0.0.1", "8080"))])
        );
        assert_eq!(
            one("127.0.0.1::80"),
            Ok(vec![("80/tcp".into(), b("127.0.0.1", ""))])
        );
        assert_eq!(one("80"), Ok(vec![("80/tcp".into(), b("", ""))]));
        assert_eq!(
            one("8080:80/UDP"),
            Ok(vec![("80/udp".into(), b("", "8080"))])
        );
        assert_eq!(one("80/"), Ok(vec![("80/tcp".into(), b("", ""))]));
        assert_eq!(
            one("[::1]:8080:80"),
            Ok(vec![("80/tcp".into(), b("::1", "8080"))])
        );
        assert_eq!(
            one("::1:8080:80"),
            Ok(vec![("80/tcp".into(), b("::1", "8080"))])
        );
        assert_eq!(one("08080:080"), Ok(vec![("80/tcp".into(), b("", "8080"))]));
    }

    #[test]
    fn ranges_pair_up_or_leave_the_host_port_to_the_daemon() {
        assert_eq!(
            one("8000-8002:80-82"),
            Ok(vec![
                ("80/tcp".into(), b("", "8000")),
                ("81/tcp".into(), b("", "8001")),
                ("82/tcp".into(), b("", "8002")),
            ])
        );
        assert_eq!(
            one("8000-8010:80"),
            Ok(vec![("80/tcp".into(), b("", "8000-8010"))])
        );
        assert_eq!(
            one("80-81"),
            Ok(vec![
                ("80/tcp".into(), b("", "")),
                ("81/tcp".into(), b("", ""))
            ])
        );
        assert_eq!(
            one("8000-8001:80-82"),
            Err(
                "invalid ranges specified for container and host Ports: 80-82 and 8000-8001".into()
            )
        );
    }

    #[test]
    fn bad_specs_get_docker_messages() {
        let err = |s: &str| one(s).expect_err(s);
        assert_eq!(err("8080:x"), "invalid containerPort: x");
        assert_eq!(err("x:80"), "invalid hostPort: x");
        assert_eq!(err("8080:80/xyz"), "invalid proto: xyz");
        assert_eq!(err("8080:70000"), "invalid containerPort: 70000");
        assert_eq!(err("82-80"), "invalid containerPort: 82-80");
        assert_eq!(err("1.2.3:8080:80"), "invalid IP address: 1.2.3");
        assert_eq!(err("8080:"), "no port specified: 8080:<empty>");
        assert_eq!(err("+80"), "invalid containerPort: +80");
        assert!(err("[::1:8080:80").starts_with("invalid IP address [::1"));
    }

    #[test]
    fn specs_merge_exposed_ports_and_bindings() {
        let s = parse(
            &[
                "8080:80".into(),
                "8081:80".into(),
                "127.0.0.1::53/udp".into(),
            ],
            &["9000-9001".into(), "80".into(), "7/udp".into()],
        )
        .expect("valid");
        let exposed: Vec<&str> = s.exposed.iter().map(String::as_str).collect();
        assert_eq!(
            exposed,
            ["53/udp", "7/udp", "80/tcp", "9000/tcp", "9001/tcp"]
        );
        assert_eq!(s.bindings["80/tcp"], vec![b("", "8080"), b("", "8081")]);
        assert_eq!(s.bindings["53/udp"], vec![b("127.0.0.1", "")]);
        assert_eq!(s.bindings.len(), 2);
    }

    #[test]
    fn long_publish_form_and_bad_expose_values() {
        let s = parse(&["published=8080,target=80,protocol=udp".into()], &[]).expect("valid");
        assert_eq!(s.bindings["80/udp"], vec![b("", "8080")]);
        assert_eq!(
            parse(&["target".into(), "a=b,c".into()], &[]),
            Err("invalid publish opts format (should be name=value but got 'c')".into())
        );
        assert_eq!(
            parse(&[], &["1:2".into()]),
            Err("invalid port format for --expose: 1:2".into())
        );
        assert_eq!(
            parse(&[], &["x".into()]),
            Err(
                "invalid range format for --expose: x, error: strconv.ParseUint: parsing \"x\": invalid syntax"
                    .into()
            )
        );
        assert_eq!(
            parse(&[], &["90-80".into()]),
            Err("invalid range format for --expose: 90-80, error: invalid range specified for port: 90-80".into())
        );
    }

    #[test]
    fn every_port_and_protocol_round_trips() {
        for port in [0u32, 1, 80, 1023, 1024, 49151, 65535] {
            for proto in ["tcp", "udp", "sctp"] {
                let spec = format!("{port}:{port}/{proto}");
                let parsed = one(&spec).expect("valid");
                assert_eq!(
                    parsed,
                    vec![(format!("{port}/{proto}"), b("", &port.to_string()))]
                );
            }
        }
        assert!(one("65536").is_err());
    }
}
