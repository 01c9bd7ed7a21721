//! A fake Docker Engine on a unix socket, for comparing the real docker CLI with `arca`
//! without a daemon: every request is recorded and answered by the test's own function.
//!
//! The server speaks just enough HTTP/1.1 for both clients: keep-alive connections (one
//! thread each), request bodies sized by `Content-Length` or sent chunked, and answers
//! sized by `Content-Length` (no body for `HEAD` or 204). It answers `/_ping` itself and
//! does not record it (the clients ping at different times). Recorded paths have the
//! `/v1.xx` prefix removed and are percent-decoded, as are query parameters, which are
//! kept as a set (the clients order them differently).
//!
//! Each test turns the raw [`Request`]s into what it compares (JSON bodies as values, tar
//! bodies as listings, …) through `From<Request>`.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use super::{DOCKER, feed};

pub const ARCA: &str = env!("CARGO_BIN_EXE_arca");

/// One request as the fake engine received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    /// The path without the API version prefix, percent-decoded.
    pub path: String,
    /// The query parameters, percent-decoded.
    pub query: BTreeSet<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of query parameter `key` (the first one if repeated).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake engine sends back. `Api-Version`, `Ostype`, `Server` and
/// `Content-Length` are always sent; `headers` come after them.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// No headers of its own and no body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON body, with its `Content-Type`.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::empty(status)
            .header("Content-Type", "application/json")
            .body(body.into().into_bytes())
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

/// Both clients' runs of one command: their outputs and requests.
pub type Ran<R> = (Output, Vec<R>);

type AnswerFn = dyn Fn(&Request) -> Answer + Send + Sync;

/// The fake engine: a listener thread on `engine.sock` in its directory, which also holds
/// a client configuration directory (never the user's `~/.docker`).
pub struct FakeEngine {
    dir: tempfile::TempDir,
    socket: PathBuf,
    config: PathBuf,
    log: Arc<Mutex<Vec<Request>>>,
}

impl FakeEngine {
    /// An engine in a new temporary directory, answering with `answer`.
    pub fn start(answer: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("arca-fake-engine-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        Self::start_in(dir, answer)
    }

    /// An engine in `dir` (which the test may have filled first), answering with `answer`.
    pub fn start_in(
        dir: tempfile::TempDir,
        answer: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let socket = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let log = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<AnswerFn> = Arc::new(answer);
        let l = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (l, a) = (l.clone(), answer.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &l, &*a);
                });
            }
        });
        let config = dir.path().join("docker-config");
        std::fs::create_dir_all(&config).expect("config dir");
        Self {
            dir,
            socket,
            config,
            log,
        }
    }

    /// The engine's temporary directory (removed when the engine is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client command (`DOCKER` or the arca binary) aimed at this engine.
    pub fn command(&self, prog: &str, args: &[&str]) -> Command {
        let host = format!("unix://{}", self.socket.display());
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .env("DOCKER_HOST", &host)
            .env("ARCA_HOST", &host)
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT");
        cmd
    }

    /// Runs a client with `args` (`input` on its stdin, or `/dev/null` without) and returns
    /// its output and the requests it made.
    pub fn run<R: From<Request>>(&self, prog: &str, args: &[&str], input: Option<&[u8]>) -> Ran<R> {
        self.log.lock().expect("log").clear();
        let mut cmd = self.command(prog, args);
        let out = match input {
            Some(data) => feed(&mut cmd, data),
            None => cmd.stdin(Stdio::null()).output().expect("run client"),
        };
        let reqs = std::mem::take(&mut *self.log.lock().expect("log"));
        (out, reqs.into_iter().map(R::from).collect())
    }

    /// Runs `args` through docker and arca; both must send the same requests (as `R`),
    /// print the same on stdout and exit alike. Returns (docker's, arca's) for more checks.
    pub fn same<R>(&self, args: &[&str], input: Option<&[u8]>) -> (Ran<R>, Ran<R>)
    where
        R: From<Request> + PartialEq + Debug,
    {
        let theirs: Ran<R> = self.run(DOCKER, args, input);
        let ours: Ran<R> = self.run(ARCA, args, input);
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

pub fn percent_decode(s: &str) -> String {
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

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Not Found",
    }
}

/// One connection: requests until the client closes it.
fn serve(stream: UnixStream, log: &Mutex<Vec<Request>>, answer: &AnswerFn) -> std::io::Result<()> {
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
        let body = read_body(&mut reader)?;
        let (raw_path, query) = target.split_once('?').unwrap_or((&target, ""));
        // `/v1.50/networks` → `/networks`.
        let path = match raw_path.strip_prefix("/v") {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                rest.find('/').map_or(raw_path, |i| &rest[i..])
            }
            _ => raw_path,
        };
        let req = Request {
            method,
            path: percent_decode(path),
            query: query
                .split('&')
                .filter(|q| !q.is_empty())
                .map(|q| {
                    let (k, v) = q.split_once('=').unwrap_or((q, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
            body,
        };
        let a = if req.path == "/_ping" {
            Answer::empty(200)
                .header("Content-Type", "text/plain; charset=utf-8")
                .body(b"OK".to_vec())
        } else {
            log.lock().expect("log").push(req.clone());
            answer(&req)
        };
        let send: &[u8] = if req.method == "HEAD" || a.status == 204 {
            b""
        } else {
            &a.body
        };
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nApi-Version: 1.51\r\nOstype: linux\r\nServer: Docker/28.2.2 (linux)\r\nContent-Length: {}\r\n",
            a.status,
            reason(a.status),
            send.len()
        );
        for (k, v) in &a.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(send)?;
        out.flush()?;
    }
}

/// The headers of a request (after its request line), then its body: `Content-Length`
/// bytes, or chunks until the empty one.
fn read_body(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
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
    Ok(body)
}
