//! `docker search` / `arca search` against arcad, with a scripted v1 search endpoint on
//! 127.0.0.1 standing in for the registry: the query the daemon sends, the limit and
//! filters, credentials, the table, and an unreachable registry.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use common::{DOCKER, Daemon, assert_ok, http, stderr, stdout};

const RESULTS: &str = r#"{"num_results":3,"query":"busy","results":[
  {"name":"busybox","description":"Busybox base image.","star_count":3000,"is_official":true,"is_automated":false},
  {"name":"someone/busybox-tools","description":"Tools for busybox: a description well beyond forty-five characters","star_count":12,"is_official":false,"is_automated":true},
  {"name":"other/busy","description":"","star_count":0,"is_official":false,"is_automated":false}
]}"#;

/// What the scripted registry saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    authorization: Option<String>,
}

/// An HTTP server answering every request with [`RESULTS`] and recording it.
struct FakeIndex {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeIndex {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    answer(c, &s);
                }
            }
        });
        Self {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

impl Drop for FakeIndex {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(conn: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_owned());
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    seen.lock().expect("lock").push(Seen {
        target,
        authorization,
    });
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{RESULTS}",
        RESULTS.len()
    );
}

/// Lines without trailing blanks (Go's tabwriter pads an empty last cell, arca does not).
fn trimmed(s: &str) -> Vec<String> {
    s.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// The first column of a table, header left out.
fn names(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn docker_and_arca_search_a_registry_and_print_docker_tables() {
    let d = Daemon::start();
    let index = FakeIndex::start();
    let term = format!("{}/busy", index.host());

    let out = d.docker(&["search", &term]);
    assert_ok(&out, "docker search");
    assert_eq!(
        index
            .take()
            .iter()
            .map(|s| s.target.as_str())
            .collect::<Vec<_>>(),
        ["/v1/search?q=busy&n=25"],
        "the daemon asks the term's registry, 25 results by default"
    );
    let docker_table = stdout(&out);
    assert_eq!(
        trimmed(&docker_table),
        [
            "NAME                    DESCRIPTION                                     STARS     OFFICIAL",
            "busybox                 Busybox base image.                             3000      [OK]",
            "someone/busybox-tools   Tools for busybox: a description well beyond…   12",
            "other/busy                                                              0",
        ]
    );
    let out = d.arca(&["search", &term]);
    assert_ok(&out, "arca search");
    assert_eq!(trimmed(&stdout(&out)), trimmed(&docker_table));
    index.take();

    // --limit is passed on; --no-trunc and --format as docker's.
    let out = d.arca(&[
        "search",
        "--limit",
        "2",
        "--no-trunc",
        "--format",
        "{{.Name}}|{{.StarCount}}|{{.IsOfficial}}|{{.Description}}",
        &term,
    ]);
    assert_ok(&out, "arca search --format");
    assert_eq!(index.take()[0].target, "/v1/search?q=busy&n=2");
    assert_eq!(
        stdout(&out).lines().nth(1),
        Some(
            "someone/busybox-tools|12||Tools for busybox: a description well beyond forty-five characters"
        )
    );
    let out = d.docker(&["search", "--limit", "3", "--format", "{{json .}}", &term]);
    assert_ok(&out, "docker search --format json");
    assert_eq!(index.take()[0].target, "/v1/search?q=busy&n=3");
    let arca = d.arca(&["search", "--limit", "3", "--format", "{{json .}}", &term]);
    assert_eq!(stdout(&arca), stdout(&out));

    // The API's own shape: is_automated is never reported true.
    let (status, body) = http(
        &d.socket,
        "GET",
        &format!("/images/search?term={term}"),
        None,
    )
    .expect("http");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|r| r["is_automated"] == false), "{body}");
    assert_eq!(list[0]["star_count"], 3000);
}

#[test]
fn search_filters_and_limits_follow_moby() {
    let d = Daemon::start();
    let index = FakeIndex::start();
    let term = format!("{}/busy", index.host());
    for prog in [DOCKER, env!("CARGO_BIN_EXE_arca")] {
        let run = |args: &[&str]| {
            d.client(prog)
                .arg("search")
                .args(args)
                .arg(&term)
                .output()
                .expect("run client")
        };
        let out = run(&["--filter", "is-official=true"]);
        assert_ok(&out, "search is-official");
        assert_eq!(names(&stdout(&out)), ["busybox"], "{prog}");
        let out = run(&["-f", "is-official=false", "-f", "stars=1"]);
        assert_ok(&out, "search stars");
        assert_eq!(names(&stdout(&out)), ["someone/busybox-tools"], "{prog}");
        let out = run(&["--filter", "stars=10"]);
        assert_eq!(
            names(&stdout(&out)),
            ["busybox", "someone/busybox-tools"],
            "{prog}"
        );
        // Deprecated: nothing is automated any more.
        let out = run(&["--filter", "is-automated=true"]);
        assert_ok(&out, "search is-automated");
        assert!(names(&stdout(&out)).is_empty(), "{prog}");
        assert!(stderr(&out).contains("deprecated"), "{prog}");

        // Bad input is refused before the registry is asked.
        index.take();
        for (args, msg) in [
            (&["--filter", "color=red"][..], "invalid filter 'color'"),
            (
                &["--filter", "stars=many"][..],
                "invalid filter 'stars=many'",
            ),
            (
                &["--filter", "is-official=maybe"][..],
                "invalid filter 'is-official=maybe'",
            ),
            (
                &["--limit", "101"][..],
                "limit 101 is outside the range of [1, 100]",
            ),
        ] {
            let out = run(args);
            assert_eq!(out.status.code(), Some(1), "{prog} {args:?}");
            assert!(
                stderr(&out).contains(&format!("Error response from daemon: {msg}")),
                "{prog} {args:?}: {}",
                stderr(&out)
            );
        }
        assert!(index.take().is_empty(), "{prog}: no request for bad input");
    }
    let (status, body) = http(
        &d.socket,
        "GET",
        &format!("/images/search?term={term}&limit=0x10"),
        None,
    )
    .expect("http");
    assert_eq!(status, 400, "{body}");
}

#[test]
fn search_sends_stored_credentials_as_basic_auth() {
    let d = Daemon::start();
    let index = FakeIndex::start();
    let term = format!("{}/busy", index.host());
    let config = d.dir.path().join("docker-config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            index.host(),
            base64(b"alice:s3cret")
        ),
    )
    .expect("config");
    let basic = format!("Basic {}", base64(b"alice:s3cret"));
    for prog in [DOCKER, env!("CARGO_BIN_EXE_arca")] {
        let out = d
            .client(prog)
            .args(["search", &term])
            .output()
            .expect("run");
        assert_ok(&out, "search with credentials");
        let seen = index.take();
        assert_eq!(
            seen[0].authorization.as_deref(),
            Some(basic.as_str()),
            "{prog}"
        );
    }
    // Anonymous otherwise.
    std::fs::remove_file(config.join("config.json")).expect("rm");
    assert_ok(&d.arca(&["search", &term]), "anonymous search");
    assert_eq!(index.take()[0].authorization, None);
}

#[test]
fn an_unreachable_registry_is_a_500_naming_it() {
    let d = Daemon::start();
    // A port nothing listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let term = format!("127.0.0.1:{port}/busy");
    let (status, body) = http(
        &d.socket,
        "GET",
        &format!("/images/search?term={term}"),
        None,
    )
    .expect("http");
    assert_eq!(status, 500, "{body}");
    let want = format!("Get \\\"http://127.0.0.1:{port}/v1/search?q=busy&n=25\\\": ");
    assert!(body.contains(&want), "{body}");
    for prog in [DOCKER, env!("CARGO_BIN_EXE_arca")] {
        let out = d
            .client(prog)
            .args(["search", &term])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{prog}");
        let err = stderr(&out);
        assert!(
            err.contains("Error response from daemon: Get \"http://127.0.0.1:")
                && err.contains(&format!("127.0.0.1:{port}"))
                && err.to_lowercase().contains("connection refused"),
            "{prog}: {err}"
        );
    }
}
