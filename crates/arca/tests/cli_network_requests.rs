//! `arca network …` and the networking flags of `arca create` against the real docker CLI,
//! without a daemon: a fake Docker Engine on a unix socket records every request and answers
//! with canned, Docker-shaped JSON. Each command runs once through docker and once through
//! arca; the requests (method, path without the `/v1.xx` prefix, query parameters as a set,
//! JSON body) and what the clients print must be the same.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use common::DOCKER;

const ARCA: &str = env!("CARGO_BIN_EXE_arca");

const NET_ID: &str = "3f5e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

/// A network as dockerd 28 returns it (compact, in its key order, with a newline).
fn network_json(name: &str, id: &str, driver: &str) -> String {
    format!(
        r#"{{"Name":"{name}","Id":"{id}","Created":"2025-01-02T03:04:05.123456789Z","Scope":"local","Driver":"{driver}","EnableIPv4":true,"EnableIPv6":false,"IPAM":{{"Driver":"default","Options":{{}},"Config":[{{"Subnet":"172.30.0.0/16","Gateway":"172.30.0.1"}}]}},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{{"Network":""}},"ConfigOnly":false,"Containers":{{}},"Options":{{"com.docker.network.bridge.name":"br-3f5e"}},"Labels":{{"team":"web"}}}}"#
    )
}

#[derive(Debug, Clone, PartialEq)]
struct Request {
    method: String,
    /// The path without the API version prefix.
    path: String,
    query: BTreeSet<(String, String)>,
    body: Option<Value>,
}

/// The fake engine: a listener thread, one thread per connection, HTTP/1.1 keep-alive.
struct Fake {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    config: PathBuf,
    log: Arc<Mutex<Vec<Request>>>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The answer to a request: status and body.
fn answer(method: &str, path: &str) -> (u16, String) {
    let net = network_json("mynet", NET_ID, "bridge");
    match (method, path) {
        (_, "/_ping") => (200, "OK".into()),
        ("GET", "/version") => (
            200,
            r#"{"Version":"28.2.2","ApiVersion":"1.51","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}"#.into(),
        ),
        ("GET", "/networks") => (
            200,
            format!(
                "[{net},{},{}]\n",
                network_json("host", &"b".repeat(64), "host"),
                network_json("bridge", &"a".repeat(64), "bridge")
            ),
        ),
        ("POST", "/networks/create") => (201, format!(r#"{{"Id":"{}","Warning":""}}"#, "c".repeat(64))),
        ("POST", "/networks/prune") => (200, r#"{"NetworksDeleted":["old1","old2"]}"#.into()),
        ("POST", "/containers/create") => {
            (201, format!(r#"{{"Id":"{}","Warnings":[]}}"#, "d".repeat(64)))
        }
        (_, p) if p.starts_with("/networks/nope") => {
            (404, r#"{"message":"network nope not found"}"#.into())
        }
        ("POST", p) if p.ends_with("/connect") || p.ends_with("/disconnect") => (200, String::new()),
        ("GET", p) if p.starts_with("/networks/") => (200, format!("{net}\n")),
        ("DELETE", p) if p.starts_with("/networks/") => (204, String::new()),
        _ => (404, r#"{"message":"page not found"}"#.into()),
    }
}

fn serve(stream: UnixStream, log: Arc<Mutex<Vec<Request>>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        }
        let (raw_path, query) = target.split_once('?').unwrap_or((&target, ""));
        // `/v1.50/networks` → `/networks`.
        let path = match raw_path.strip_prefix("/v") {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                rest.find('/').map_or(raw_path, |i| &rest[i..])
            }
            _ => raw_path,
        };
        let path = percent_decode(path);
        if path != "/_ping" {
            log.lock().expect("log").push(Request {
                method: method.clone(),
                path: path.clone(),
                query: query
                    .split('&')
                    .filter(|q| !q.is_empty())
                    .map(|q| {
                        let (k, v) = q.split_once('=').unwrap_or((q, ""));
                        (percent_decode(k), percent_decode(v))
                    })
                    .collect(),
                body: (!body.is_empty())
                    .then(|| serde_json::from_slice(&body).expect("request body is JSON")),
            });
        }
        let (status, text) = answer(&method, &path);
        let reason = match status {
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            _ => "Not Found",
        };
        let content_type = if path == "/_ping" {
            "text/plain; charset=utf-8"
        } else {
            "application/json"
        };
        let send = if method == "HEAD" || status == 204 {
            ""
        } else {
            &text
        };
        write!(
            out,
            "HTTP/1.1 {status} {reason}\r\nApi-Version: 1.51\r\nOstype: linux\r\nServer: Docker/28.2.2 (linux)\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{send}",
            send.len()
        )?;
        out.flush()?;
    }
}

impl Fake {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("arca-fake-engine-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let socket = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let l = l.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, l);
                });
            }
        });
        let config = dir.path().join("docker-config");
        std::fs::create_dir_all(&config).expect("config dir");
        Self {
            socket,
            config,
            log,
            _dir: dir,
        }
    }

    /// Runs a client with `args` and returns its output and the requests it made.
    fn run(&self, prog: &str, args: &[&str]) -> (Output, Vec<Request>) {
        self.log.lock().expect("log").clear();
        let host = format!("unix://{}", self.socket.display());
        let out = Command::new(prog)
            .args(args)
            .env("DOCKER_HOST", &host)
            .env("ARCA_HOST", &host)
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .expect("run client");
        let reqs = std::mem::take(&mut *self.log.lock().expect("log"));
        (out, reqs)
    }

    /// Runs `args` through docker and arca; returns (docker's, arca's) for more checks.
    fn same(&self, args: &[&str]) -> ((Output, Vec<Request>), (Output, Vec<Request>)) {
        let theirs = self.run(DOCKER, args);
        let ours = self.run(ARCA, args);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert_eq!(ours.1, theirs.1, "requests of {args:?}");
        assert_eq!(
            text(&ours.0.stdout),
            text(&theirs.0.stdout),
            "stdout of {args:?}"
        );
        assert_eq!(
            ours.0.status.code(),
            theirs.0.status.code(),
            "status of {args:?}: docker said {}, arca said {}",
            text(&theirs.0.stderr),
            text(&ours.0.stderr)
        );
        (theirs, ours)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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
        let body = |r: &[Request]| {
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
