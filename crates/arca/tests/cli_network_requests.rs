//! `arca network …` and the networking flags of `arca create` against the real docker CLI,
//! without a daemon: a fake Docker Engine on a unix socket records every request and answers
//! with canned, Docker-shaped JSON. Each command runs once through docker and once through
//! arca; the requests (method, path without the `/v1.xx` prefix, query parameters as a set,
//! JSON body) and what the clients print must be the same.

mod common;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use common::fake_engine::{ARCA, Answer, FakeEngine, Ran, Request};
use common::{DOCKER, stderr};

const NET_ID: &str = "3f5e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

/// A network as dockerd 28 returns it (compact, in its key order, with a newline).
fn network_json(name: &str, id: &str, driver: &str) -> String {
    format!(
        r#"{{"Name":"{name}","Id":"{id}","Created":"2025-01-02T03:04:05.123456789Z","Scope":"local","Driver":"{driver}","EnableIPv4":true,"EnableIPv6":false,"IPAM":{{"Driver":"default","Options":{{}},"Config":[{{"Subnet":"172.30.0.0/16","Gateway":"172.30.0.1"}}]}},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{{"Network":""}},"ConfigOnly":false,"Containers":{{}},"Options":{{"com.docker.network.bridge.name":"br-3f5e"}},"Labels":{{"team":"web"}}}}"#
    )
}

/// A request as compared: the body as JSON (the clients order keys and space differently).
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    method: String,
    /// The path without the API version prefix.
    path: String,
    query: BTreeSet<(String, String)>,
    body: Option<Value>,
}

impl From<Request> for Sent {
    fn from(r: Request) -> Self {
        Self {
            body: (!r.body.is_empty())
                .then(|| serde_json::from_slice(&r.body).expect("request body is JSON")),
            method: r.method,
            path: r.path,
            query: r.query,
        }
    }
}

/// The answer to a request.
fn answer(r: &Request) -> Answer {
    let net = network_json("mynet", NET_ID, "bridge");
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/version") => Answer::json(
            200,
            r#"{"Version":"28.2.2","ApiVersion":"1.51","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}"#,
        ),
        ("GET", "/networks") => Answer::json(
            200,
            format!(
                "[{net},{},{}]\n",
                network_json("host", &"b".repeat(64), "host"),
                network_json("bridge", &"a".repeat(64), "bridge")
            ),
        ),
        ("POST", "/networks/create") => Answer::json(
            201,
            format!(r#"{{"Id":"{}","Warning":""}}"#, "c".repeat(64)),
        ),
        ("POST", "/networks/prune") => Answer::json(200, r#"{"NetworksDeleted":["old1","old2"]}"#),
        ("POST", "/containers/create") => Answer::json(
            201,
            format!(r#"{{"Id":"{}","Warnings":[]}}"#, "d".repeat(64)),
        ),
        (_, p) if p.starts_with("/networks/nope") => {
            Answer::json(404, r#"{"message":"network nope not found"}"#)
        }
        ("POST", p) if p.ends_with("/connect") || p.ends_with("/disconnect") => {
            Answer::json(200, "")
        }
        ("GET", p) if p.starts_with("/networks/") => Answer::json(200, format!("{net}\n")),
        ("DELETE", p) if p.starts_with("/networks/") => Answer::json(204, ""),
        _ => Answer::json(404, r#"{"message":"page not found"}"#),
    }
}

/// The fake engine with [`answer`]; requests compared as [`Sent`].
struct Fake(FakeEngine);

impl Fake {
    fn start() -> Self {
        Self(FakeEngine::start(answer))
    }

    /// Runs a client with `args` and returns its output and the requests it made.
    fn run(&self, prog: &str, args: &[&str]) -> Ran<Sent> {
        self.0.run(prog, args, None)
    }

    /// Runs `args` through docker and arca; returns (docker's, arca's) for more checks.
    fn same(&self, args: &[&str]) -> (Ran<Sent>, Ran<Sent>) {
        self.0.same(args, None)
    }
}

#[test]
fn network_ls_matches_docker() {
    let f = Fake::start();
    let (theirs, _) = f.same(&["network", "ls"]);
    assert!(
        String::from_utf8_lossy(&theirs.0.stdout)
            .starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"),
        "docker's table"
    );
    f.same(&["network", "ls", "-q"]);
    f.same(&["network", "list", "--no-trunc"]);
    f.same(&["network", "ls", "--format", "json"]);
    f.same(&["network", "ls", "--no-trunc", "--format", "{{json .}}"]);
    f.same(&[
        "network",
        "ls",
        "--format",
        "table {{.Name}}\\t{{.Driver}}\\t{{.Label \"team\"}}",
    ]);
    f.same(&[
        "network",
        "ls",
        "--format",
        "{{.Name}}: {{.ID}} {{.IPv4}} {{.CreatedAt}} {{.Labels}}",
    ]);
    let (theirs, _) = f.same(&[
        "network",
        "ls",
        "--filter",
        "driver=bridge",
        "-f",
        "name=my",
        "-f",
        "name=br",
    ]);
    assert_eq!(theirs.1[0].query.len(), 1, "one filters parameter");
}

#[test]
fn network_inspect_matches_docker() {
    let f = Fake::start();
    f.same(&["network", "inspect", "mynet"]);
    f.same(&["network", "inspect", "mynet", "mynet"]);
    f.same(&["network", "inspect", "--format", "json", "mynet"]);
    f.same(&["network", "inspect", "-v", "mynet"]);
    f.same(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} via {{.Gateway}}{{end}} {{json .Labels}} {{.Labels}} {{index .Options \"com.docker.network.bridge.name\"}} {{json .IPAM}} {{json .ConfigFrom}}",
        "mynet",
    ]);
    let (theirs, ours) = f.same(&["network", "inspect", "mynet", "nope"]);
    assert_eq!(stderr(&ours.0), stderr(&theirs.0));
    let (theirs, ours) = f.same(&["network", "inspect", "nope"]);
    assert_eq!(stderr(&ours.0), stderr(&theirs.0));
    let (theirs, ours) = f.same(&["network", "inspect", "-f", "{{.Name", "mynet"]);
    assert_eq!(theirs.0.status.code(), Some(64));
    assert!(stderr(&ours.0).starts_with("template parsing error:"));
}

#[test]
fn network_create_sends_docker_body() {
    let f = Fake::start();
    let (theirs, _) = f.same(&[
        "network",
        "create",
        "--driver",
        "bridge",
        "--subnet",
        "172.30.0.0/16",
        "--gateway",
        "172.30.0.1",
        "--ip-range",
        "172.30.5.0/24",
        "--aux-address",
        "router=172.30.0.2",
        "--label",
        "team=web",
        "--label",
        "bare",
        "--internal",
        "--attachable",
        "-o",
        "com.docker.network.bridge.name=br-test",
        "--opt",
        "mtu=1400",
        "--ipam-opt",
        "x=y",
        "mynet",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&theirs.0.stdout),
        format!("{}\n", "c".repeat(64))
    );
    assert_eq!(theirs.1.len(), 1);
    f.same(&["network", "create", "plain"]);
    f.same(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--ipv6",
        "--ipv4=false",
        "--scope",
        "local",
        "--config-from",
        "base",
        "v6",
    ]);
    let (theirs, ours) = f.same(&[
        "network",
        "create",
        "--subnet",
        "10.0.0.0/8",
        "--gateway",
        "11.0.0.1",
        "bad",
    ]);
    assert_eq!(stderr(&ours.0), stderr(&theirs.0));
    assert!(theirs.1.is_empty(), "refused before any request");
    let (theirs, ours) = f.same(&["network", "create", "--ip-range", "10.0.0.0/8", "bad"]);
    assert_eq!(stderr(&ours.0), stderr(&theirs.0));
}

#[test]
fn network_rm_prune_connect_disconnect_match_docker() {
    let f = Fake::start();
    let (theirs, _) = f.same(&["network", "rm", "mynet", "other"]);
    assert_eq!(String::from_utf8_lossy(&theirs.0.stdout), "mynet\nother\n");
    let (theirs, ours) = f.same(&["network", "rm", "mynet", "nope"]);
    assert_eq!(stderr(&ours.0), stderr(&theirs.0));
    assert_eq!(theirs.0.status.code(), Some(1));
    f.same(&["network", "remove", "-f", "nope"]);

    let (theirs, _) = f.same(&["network", "prune", "-f"]);
    assert_eq!(
        String::from_utf8_lossy(&theirs.0.stdout),
        "Deleted Networks:\nold1\nold2\n\n"
    );
    f.same(&[
        "network",
        "prune",
        "--force",
        "--filter",
        "until=24h",
        "--filter",
        "label=a=b",
    ]);
    // Without -f and with nothing on stdin the prompt is declined: nothing is removed.
    let (theirs, _) = f.same(&["network", "prune"]);
    assert!(theirs.1.is_empty());

    let (theirs, _) = f.same(&[
        "network",
        "connect",
        "--ip",
        "172.30.0.5",
        "--alias",
        "web",
        "--alias",
        "www,w3",
        "--link",
        "db:database",
        "--driver-opt",
        "k=v",
        "mynet",
        "c1",
    ]);
    assert_eq!(theirs.1[0].path, "/networks/mynet/connect");
    f.same(&["network", "connect", "mynet", "c1"]);
    f.same(&["network", "disconnect", "mynet", "c1"]);
    f.same(&["network", "disconnect", "-f", "mynet", "c1"]);
}

/// A create body's networking fields, with null, empty-string, zero and false values
/// dropped: arca (through bollard) leaves out what docker's Go types send as zeros.
fn networking_fields(body: &Value) -> Value {
    fn strip(v: &Value) -> Option<Value> {
        match v {
            Value::Null | Value::Bool(false) => None,
            Value::String(s) if s.is_empty() => None,
            Value::Number(n) if n.as_f64() == Some(0.0) => None,
            Value::Object(m) => Some(Value::Object(
                m.iter()
                    .filter_map(|(k, v)| strip(v).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            v => Some(v.clone()),
        }
    }
    let h = &body["HostConfig"];
    let picked = json!({
        "ExposedPorts": body["ExposedPorts"],
        "MacAddress": body["MacAddress"],
        "PortBindings": h["PortBindings"],
        "PublishAllPorts": h["PublishAllPorts"],
        "NetworkMode": h["NetworkMode"],
        "Dns": h["Dns"],
        "DnsSearch": h["DnsSearch"],
        "DnsOptions": h["DnsOptions"],
        "ExtraHosts": h["ExtraHosts"],
        "Links": h["Links"],
        "NetworkingConfig": body["NetworkingConfig"],
    });
    strip(&picked).unwrap_or(Value::Null)
}

#[test]
fn create_networking_flags_build_docker_body() {
    let f = Fake::start();
    let cases: &[&[&str]] = &[
        &["create", "busybox"],
        &[
            "create",
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
            "8000-8002:90-92",
            "-p",
            "9000-9010:99",
            "-p",
            "[::1]:8443:443",
            "-p",
            "published=7000,target=70,protocol=sctp",
            "--expose",
            "5000-5001",
            "--expose",
            "6000/udp",
            "-P",
            "--dns",
            "1.1.1.1",
            "--dns",
            "::ffff:8.8.8.8",
            "--dns-search",
            "example.com.",
            "--dns-option",
            "ndots:2",
            "--dns-opt",
            "timeout:1",
            "--add-host",
            "gw:host-gateway",
            "--add-host",
            "db=10.0.0.9",
            "--add-host",
            "v6:[::1]",
            "--link",
            "db:database",
            "--mac-address",
            "02:42:ac:11:00:02",
            "busybox",
        ],
        &[
            "create",
            "--network",
            "mynet",
            "--ip",
            "172.30.0.9",
            "--network-alias",
            "web",
            "--net-alias",
            "www",
            "--link",
            "db",
            "busybox",
        ],
        &[
            "create",
            "--net",
            "name=mynet,alias=a1,ip=172.30.0.10",
            "busybox",
        ],
        &["create", "--network", "n1", "--network", "n2", "busybox"],
        &["create", "--network", "host", "busybox"],
        &["create", "--network", "container:web", "busybox"],
        &[
            "create",
            "--network",
            "bridge",
            "--ip",
            "172.17.0.9",
            "busybox",
        ],
    ];
    for args in cases {
        let theirs = f.run(DOCKER, args);
        let ours = f.run(ARCA, args);
        assert!(
            theirs.0.status.success(),
            "docker {args:?}: {}",
            stderr(&theirs.0)
        );
        assert!(
            ours.0.status.success(),
            "arca {args:?}: {}",
            stderr(&ours.0)
        );
        let body = |r: &[Sent]| {
            let c = r
                .iter()
                .find(|q| q.path == "/containers/create")
                .expect("a create request");
            networking_fields(c.body.as_ref().expect("create body"))
        };
        assert_eq!(body(&ours.1), body(&theirs.1), "create body of {args:?}");
    }
}

#[test]
fn bad_networking_flags_are_refused_like_docker() {
    let f = Fake::start();
    for (flags, message) in [
        (&["-p", "8080:x"][..], "invalid containerPort: x"),
        (&["-p", "x:80"][..], "invalid hostPort: x"),
        (&["-p", "8080:80/icmp"][..], "invalid proto: icmp"),
        (
            &["-p", "8000-8001:80-82"][..],
            "invalid ranges specified for container and host Ports: 80-82 and 8000-8001",
        ),
        (
            &["--expose", "1:2"][..],
            "invalid port format for --expose: 1:2",
        ),
        (
            &["--dns", "nope"][..],
            "IP address is not correctly formatted: nope",
        ),
        (
            &["--add-host", "nohost"][..],
            "bad format for add-host: \"nohost\"",
        ),
        (&["--link", "a:b:c"][..], "bad format for links: a:b:c"),
        (
            &["--mac-address", "zz"][..],
            "zz is not a valid mac address",
        ),
        (
            &["--network-alias", "x"][..],
            "network-scoped aliases are only supported for user-defined networks",
        ),
        (
            &["--network", "n1", "--network", "host"][..],
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes",
        ),
    ] {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.push("busybox");
        let theirs = f.run(DOCKER, &args);
        let ours = f.run(ARCA, &args);
        assert!(
            theirs.1.is_empty() && ours.1.is_empty(),
            "{flags:?}: no create request"
        );
        assert!(
            stderr(&theirs.0).contains(message),
            "docker {flags:?}: {}",
            stderr(&theirs.0)
        );
        assert!(
            stderr(&ours.0).contains(message),
            "arca {flags:?}: {}",
            stderr(&ours.0)
        );
        assert_eq!(
            ours.0.status.code(),
            theirs.0.status.code(),
            "status of {flags:?}"
        );
    }
}
