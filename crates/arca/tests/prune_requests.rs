//! `arca system df`, `system prune` and `container prune` against the real docker CLI 28,
//! without a daemon: a fake Docker Engine on a unix socket records every request and answers
//! with canned, Docker-shaped JSON. Each command runs once through docker and once through
//! arca; the requests (method, path without `/v1.xx`, query parameters as a set, the
//! `filters` JSON compared as a value) and what the clients print must be the same.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use common::DOCKER;

const ARCA: &str = env!("CARGO_BIN_EXE_arca");

#[derive(Debug, Clone, PartialEq)]
struct Request {
    method: String,
    path: String,
    /// Query parameters; `filters` parsed (its key order is not significant).
    query: BTreeSet<(String, String)>,
    filters: Option<Value>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16) {
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

/// A `GET /system/df` answer as dockerd 28 shapes it (times far in the past, so relative
/// times print the same for both clients).
fn disk_usage() -> String {
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    format!(
        r#"{{"LayersSize":7340032,"Images":[{{"Containers":1,"Created":1600000000,"Id":"sha256:{a}","Labels":{{}},"ParentId":"","RepoDigests":["busybox@sha256:{b}"],"RepoTags":["busybox:latest"],"SharedSize":2097152,"Size":4404019}},{{"Containers":0,"Created":1500000000,"Id":"sha256:{b}","Labels":null,"ParentId":"","RepoDigests":[],"RepoTags":[],"SharedSize":2097152,"Size":5242880}}],"Containers":[{{"Id":"{c}","Names":["/web"],"Image":"busybox","ImageID":"sha256:{a}","Command":"sleep 600","Created":1600000000,"Ports":[],"SizeRw":1048576,"Labels":{{"team":"a"}},"State":"running","Status":"Up 3 days","HostConfig":{{"NetworkMode":"default"}},"NetworkSettings":{{"Networks":{{}}}},"Mounts":[{{"Type":"volume","Name":"data","Source":"/var/lib/docker/volumes/data/_data","Destination":"/data","Driver":"local","Mode":"z","RW":true,"Propagation":""}}]}},{{"Id":"{d}","Names":["/old"],"Image":"busybox:latest","ImageID":"sha256:{a}","Command":"sh -c 'echo a long command line'","Created":1600000000,"Ports":[],"SizeRw":12,"Labels":{{}},"State":"exited","Status":"Exited (0) 3 days ago","HostConfig":{{"NetworkMode":"default"}},"NetworkSettings":{{"Networks":{{}}}},"Mounts":[]}}],"Volumes":[{{"CreatedAt":"2020-09-13T12:26:40Z","Driver":"local","Labels":null,"Mountpoint":"/var/lib/docker/volumes/data/_data","Name":"data","Options":null,"Scope":"local","UsageData":{{"RefCount":1,"Size":104857600}}}},{{"CreatedAt":"2020-09-13T12:26:40Z","Driver":"local","Labels":{{"com.docker.volume.anonymous":""}},"Mountpoint":"/var/lib/docker/volumes/{e}/_data","Name":"{e}","Options":null,"Scope":"local","UsageData":{{"RefCount":0,"Size":2048}}}}],"BuildCache":[]}}"#,
        c = "c".repeat(64),
        d = "d".repeat(64),
        e = "e".repeat(64),
    )
}

fn answer(method: &str, path: &str) -> (u16, String) {
    match (method, path) {
        (_, "/_ping") => (200, "OK".into()),
        ("GET", "/system/df") => (200, disk_usage()),
        ("POST", "/containers/prune") => (
            200,
            format!(
                r#"{{"ContainersDeleted":["{}","{}"],"SpaceReclaimed":1234567}}"#,
                "c".repeat(64),
                "d".repeat(64)
            ),
        ),
        ("POST", "/networks/prune") => (200, r#"{"NetworksDeleted":["old1"]}"#.into()),
        ("POST", "/volumes/prune") => (
            200,
            format!(
                r#"{{"VolumesDeleted":["{}"],"SpaceReclaimed":2048}}"#,
                "e".repeat(64)
            ),
        ),
        ("POST", "/images/prune") => (
            200,
            format!(
                r#"{{"ImagesDeleted":[{{"Untagged":"extra:1"}},{{"Deleted":"sha256:{}"}}],"SpaceReclaimed":5242880}}"#,
                "b".repeat(64)
            ),
        ),
        ("POST", "/build/prune") => (200, r#"{"CachesDeleted":[],"SpaceReclaimed":0}"#.into()),
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
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let (raw_path, query) = target.split_once('?').unwrap_or((&target, ""));
        let path = match raw_path.strip_prefix("/v") {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                rest.find('/').map_or(raw_path, |i| &rest[i..])
            }
            _ => raw_path,
        };
        let path = percent_decode(path);
        if path != "/_ping" {
            let mut pairs = BTreeSet::new();
            let mut filters = None;
            for q in query.split('&').filter(|q| !q.is_empty()) {
                let (k, v) = q.split_once('=').unwrap_or((q, ""));
                let (k, v) = (percent_decode(k), percent_decode(v));
                if k == "filters" && !v.is_empty() {
                    filters = Some(serde_json::from_str(&v).expect("filters are JSON"));
                } else {
                    pairs.insert((k, v));
                }
            }
            log.lock().expect("log").push(Request {
                method: method.clone(),
                path: path.clone(),
                query: pairs,
                filters,
            });
        }
        let (status, text) = answer(&method, &path);
        let reason = if status == 200 { "OK" } else { "Not Found" };
        let send = if method == "HEAD" { "" } else { &text };
        write!(
            out,
            "HTTP/1.1 {status} {reason}\r\nApi-Version: 1.51\r\nOstype: linux\r\nServer: Docker/28.2.2 (linux)\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{send}",
            send.len()
        )?;
        out.flush()?;
    }
}

struct Fake {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    config: PathBuf,
    log: Arc<Mutex<Vec<Request>>>,
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

    fn run(&self, prog: &str, args: &[&str], input: &[u8]) -> (Output, Vec<Request>) {
        self.log.lock().expect("log").clear();
        let host = format!("unix://{}", self.socket.display());
        let mut child = Command::new(prog)
            .args(args)
            .env("DOCKER_HOST", &host)
            .env("ARCA_HOST", &host)
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run client");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input);
        }
        let out = child.wait_with_output().expect("client output");
        let reqs = std::mem::take(&mut *self.log.lock().expect("log"));
        (out, reqs)
    }

    /// Runs `args` through docker and arca with `input` on stdin; both must send the same
    /// requests, print the same and exit alike. Returns docker's output and requests.
    fn same(&self, args: &[&str], input: &[u8]) -> (String, Vec<Request>) {
        let theirs = self.run(DOCKER, args, input);
        let ours = self.run(ARCA, args, input);
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
        (text(&theirs.0.stdout), theirs.1)
    }
}

#[test]
fn system_df_prints_like_docker_in_every_format() {
    let f = Fake::start();
    let (out, reqs) = f.same(&["system", "df"], b"");
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(
        out.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
        "{out}"
    );
    assert!(
        out.contains("Local Volumes   2         1         104.9MB   2.048kB (0%)\n"),
        "{out}"
    );
    f.same(&["system", "df", "-v"], b"");
    f.same(&["system", "df", "--format", "json"], b"");
    f.same(&["system", "df", "--format", "raw"], b"");
    f.same(
        &[
            "system",
            "df",
            "--format",
            "table {{.Type}}\\t{{.Reclaimable}}",
        ],
        b"",
    );
    f.same(&["system", "df", "--format", "{{.Type}}: {{.Size}}"], b"");
    f.same(&["system", "df", "-v", "--format", "json"], b"");
    f.same(&["system", "df", "-v", "--format", "raw"], b"");
    f.same(
        &[
            "system",
            "df",
            "-v",
            "--format",
            "{{range .Images}}{{.ID}} {{.UniqueSize}}\n{{end}}{{range .Containers}}{{.Names}} {{.Mounts}}\n{{end}}",
        ],
        b"",
    );
}

#[test]
fn system_prune_sends_docker_requests_in_docker_order() {
    let f = Fake::start();
    let (out, reqs) = f.same(&["system", "prune", "-f"], b"");
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/containers/prune",
            "/networks/prune",
            "/images/prune",
            "/build/prune"
        ]
    );
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.ends_with("\nTotal reclaimed space: 6.477MB\n"), "{out}");

    let (_, reqs) = f.same(
        &[
            "system",
            "prune",
            "-a",
            "--volumes",
            "--force",
            "--filter",
            "label=a=b",
            "--filter",
            "label!=keep",
        ],
        b"",
    );
    assert_eq!(reqs.len(), 5, "{reqs:?}");
    assert_eq!(reqs[2].path, "/volumes/prune");
    f.same(&["system", "prune", "--filter", "until=24h"], b"y\n");
    f.same(&["system", "prune", "--volumes"], b"n\n");
    f.same(
        &["system", "prune", "--volumes", "--filter", "until=1h"],
        b"",
    );
    f.same(&["system", "prune", "--filter", "nonsense"], b"");
}

#[test]
fn container_and_image_prune_match_docker() {
    let f = Fake::start();
    let (out, _) = f.same(&["container", "prune", "-f"], b"");
    assert_eq!(
        out,
        format!(
            "Deleted Containers:\n{}\n{}\n\nTotal reclaimed space: 1.235MB\n",
            "c".repeat(64),
            "d".repeat(64)
        )
    );
    f.same(&["container", "prune", "--filter", "until=10m"], b"Y\n");
    f.same(&["container", "prune"], b"yes\n");
    f.same(&["image", "prune", "-f"], b"");
    f.same(&["image", "prune", "-a", "--filter", "label=x"], b"y\n");
}
