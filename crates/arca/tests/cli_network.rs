//! The networking flags of `arca create` against a test arcad, with the real docker CLI as
//! the reference: the same flags through both clients must leave the same `Config` and
//! `HostConfig` networking fields in the created containers. `--network none` keeps the
//! check independent of bridge and user networks.

mod common;

use common::{Daemon, assert_ok, stderr, stdout};
use serde_json::{Value, json};

fn inspect(d: &Daemon, name: &str) -> Value {
    let out = d.arca(&["inspect", name]);
    assert_ok(&out, "arca inspect");
    let v: Value = serde_json::from_str(&stdout(&out)).expect("inspect json");
    v[0].clone()
}

#[test]
fn publish_dns_and_host_flags_reach_the_config_as_docker_sends_them() {
    let d = Daemon::start();
    d.load_busybox();
    let flags = [
        "--network",
        "none",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1:8081:81/udp",
        "-p",
        "127.0.0.1::82",
        "-p",
        "83",
        "-p",
        "8000-8001:90-91",
        "--expose",
        "5000-5001",
        "--expose",
        "6000/udp",
        "-P",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.com",
        "--dns-option",
        "ndots:2",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "db=192.0.2.9",
    ];
    let create = |client: &dyn Fn(&[&str]) -> std::process::Output, name: &str| {
        let mut args = vec!["create", "--name", name];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["busybox", "true"]);
        let out = client(&args);
        assert_ok(&out, &format!("create {name}"));
    };
    create(&|a| d.arca(a), "ours");
    create(&|a| d.docker(a), "theirs");
    let (a, b) = (inspect(&d, "ours"), inspect(&d, "theirs"));

    assert_eq!(
        a["HostConfig"]["PortBindings"]["80/tcp"],
        json!([{"HostIp": "", "HostPort": "8080"}])
    );
    assert_eq!(
        a["HostConfig"]["PortBindings"]["81/udp"],
        json!([{"HostIp": "127.0.0.1", "HostPort": "8081"}])
    );
    assert_eq!(
        a["HostConfig"]["PortBindings"]["91/tcp"][0]["HostPort"],
        "8001"
    );
    assert_eq!(a["HostConfig"]["NetworkMode"], "none");
    assert_eq!(a["HostConfig"]["PublishAllPorts"], true);
    assert_eq!(a["HostConfig"]["Dns"], json!(["192.0.2.53"]));
    assert_eq!(
        a["HostConfig"]["ExtraHosts"],
        json!(["gw:host-gateway", "db:192.0.2.9"])
    );
    let exposed = a["Config"]["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    for p in [
        "80/tcp", "81/udp", "82/tcp", "83/tcp", "5000/tcp", "6000/udp",
    ] {
        assert!(exposed.iter().any(|e| e == p), "{p} exposed: {exposed:?}");
    }

    assert_eq!(
        a["Config"]["ExposedPorts"], b["Config"]["ExposedPorts"],
        "Config.ExposedPorts"
    );
    for field in [
        "PortBindings",
        "PublishAllPorts",
        "NetworkMode",
        "Dns",
        "DnsSearch",
        "DnsOptions",
        "ExtraHosts",
        "Links",
    ] {
        assert_eq!(
            a["HostConfig"][field], b["HostConfig"][field],
            "HostConfig.{field}"
        );
    }
}

#[test]
fn invalid_port_specs_are_refused_before_reaching_the_daemon() {
    let d = Daemon::start();
    // With the image there, a create that reached the daemon would leave a container.
    d.load_busybox();
    for (spec, message) in [
        ("8080:x", "invalid containerPort: x"),
        ("x:80", "invalid hostPort: x"),
        ("8080:80/icmp", "invalid proto: icmp"),
    ] {
        let out = d.arca(&["create", "-p", spec, "busybox"]);
        assert_eq!(out.status.code(), Some(125), "{spec}");
        assert!(stderr(&out).contains(message), "{spec}: {}", stderr(&out));
    }
    let out = d.arca(&["ps", "-aq"]);
    assert_eq!(stdout(&out), "", "nothing was created");
}
