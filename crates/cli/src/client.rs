//! The connection to arcad and error reporting.

use std::path::PathBuf;

use bollard::{ClientVersion, Docker};

pub const DEFAULT_HOST: &str = "unix:///run/arca/arca.sock";

pub struct Cli {
    pub docker: Docker,
    pub socket: PathBuf,
}

impl Cli {
    pub fn connect(host: &str) -> anyhow::Result<Self> {
        let path = host.strip_prefix("unix://").ok_or_else(|| {
            anyhow::anyhow!("arca: unsupported host {host:?}: use unix:///path/to/socket")
        })?;
        let socket = PathBuf::from(path);
        if !socket.exists() {
            anyhow::bail!(
                "arca: cannot connect to arcad at {host}: the socket does not exist. Is arcad running? (start it with `arcad` or run ./install.sh)"
            );
        }
        let version = ClientVersion {
            major_version: 1,
            minor_version: 51,
        };
        let docker = Docker::connect_with_unix(path, 600, &version)?;
        Ok(Self { docker, socket })
    }
}

/// An error that docker prints as is (no prefix), exiting with `code`.
#[derive(Debug)]
pub struct Plain {
    pub message: String,
    pub code: i32,
}

impl Plain {
    pub fn new(message: impl Into<String>, code: i32) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }
}

impl std::fmt::Display for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Plain {}

/// The message for an error, Docker-style.
pub fn describe(e: &anyhow::Error, cli: &Cli) -> String {
    if let Some(p) = e.downcast_ref::<Plain>() {
        return p.message.clone();
    }
    if let Some(b) = e.downcast_ref::<bollard::errors::Error>() {
        return match b {
            bollard::errors::Error::DockerResponseServerError { message, .. } => {
                format!("Error response from daemon: {message}")
            }
            bollard::errors::Error::HyperResponseError { .. }
            | bollard::errors::Error::IOError { .. }
            | bollard::errors::Error::SocketNotFoundError(_) => format!(
                "arca: cannot connect to arcad at unix://{}: {b}. Is arcad running?",
                cli.socket.display()
            ),
            other => format!("arca: {other}"),
        };
    }
    let mut s = format!("arca: {e}");
    for c in e.chain().skip(1) {
        s.push_str(&format!(": {c}"));
    }
    s
}

/// 125 for daemon errors; 126/127 when the container's command cannot run, as docker.
pub fn exit_code_for(e: &anyhow::Error) -> i32 {
    if let Some(p) = e.downcast_ref::<Plain>() {
        return p.code;
    }
    let msg = e.to_string();
    if let Some(bollard::errors::Error::DockerResponseServerError { message, .. }) =
        e.downcast_ref::<bollard::errors::Error>()
    {
        return start_error_code(message);
    }
    start_error_code(&msg)
}

pub fn start_error_code(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        crate::EXIT_DAEMON
    }
}

/// `POST /containers/{id}/wait`, returning once the daemon has sent the response headers
/// (so the wait is registered before the container starts), and a future for the result.
pub async fn wait_registered(
    socket: &std::path::Path,
    id: &str,
    condition: &str,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<i64>> + use<>> {
    use http_body_util::BodyExt;
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::post(format!("/v1.51/containers/{id}/wait?condition={condition}"))
        .header("Host", "arca")
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    Ok(async move {
        let body = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            let msg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            anyhow::bail!(
                "Error response from daemon: {}",
                msg.get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("wait failed")
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        Ok(v.get("StatusCode").and_then(|c| c.as_i64()).unwrap_or(0))
    })
}

/// The exit status of commands other than `run`, `create` and `exec`: docker's 1 for any
/// error, or the status an error carries.
pub fn plain_exit_code(e: &anyhow::Error) -> i32 {
    e.downcast_ref::<Plain>().map_or(1, |p| p.code)
}

/// A GET on the API whose body is streamed (for query parameters bollard cannot send,
/// such as fractional `since` or `details`). Errors carry the daemon's message.
pub async fn get_stream(
    socket: &std::path::Path,
    path_and_query: &str,
) -> anyhow::Result<hyper::body::Incoming> {
    raw_request(
        socket,
        hyper::Method::GET,
        path_and_query,
        &[],
        bytes::Bytes::new(),
    )
    .await
}

/// One request on the API outside bollard (streams bollard would reshape, parameters it
/// cannot send), with `headers` besides `Host` and `Content-Type: application/json`.
/// Returns the successful response's body, streamed; an error status becomes the daemon's
/// message, as bollard reports it.
pub async fn raw_request(
    socket: &std::path::Path,
    method: hyper::Method,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: bytes::Bytes,
) -> anyhow::Result<hyper::body::Incoming> {
    use http_body_util::BodyExt;
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("/v1.51{path_and_query}"))
        .header("Host", "arca")
        .header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let resp = sender
        .send_request(req.body(http_body_util::Full::new(body))?)
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.into_body().collect().await?.to_bytes();
        let msg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = msg.get("message").and_then(|m| m.as_str()).map_or_else(
            || String::from_utf8_lossy(&body).trim().to_owned(),
            str::to_owned,
        );
        return Err(bollard::errors::Error::DockerResponseServerError {
            status_code: status.as_u16(),
            message,
        }
        .into());
    }
    Ok(resp.into_body())
}

/// Streams a response body to `dest` or, without one, to standard output (`save -o`,
/// `export -o`). A file is written next to `dest` (mode 0600) and renamed into place when
/// complete: a failure leaves no truncated file under the requested name. `what` names the
/// operation in errors ("failed to save image: PATH: …").
pub async fn write_body(
    mut body: hyper::body::Incoming,
    dest: Option<&std::path::Path>,
    what: &str,
) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        anyhow::anyhow!("failed to {what}: {}: {e}", path.display())
    };
    let (mut out, tmp): (Box<dyn Write>, Option<std::path::PathBuf>) = match dest {
        Some(dest) => {
            let tmp = dest.with_file_name(format!(
                ".{}.tmp-{}",
                dest.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::process::id()
            ));
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| failed(dest, &e))?;
            (Box::new(std::io::BufWriter::new(f)), Some(tmp))
        }
        None => (Box::new(std::io::stdout().lock()), None),
    };
    let result: anyhow::Result<()> = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                out.write_all(&data)?;
            }
        }
        out.flush()?;
        Ok(())
    }
    .await;
    drop(out);
    match (result, tmp, dest) {
        (Ok(()), Some(tmp), Some(dest)) => std::fs::rename(&tmp, dest).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            failed(dest, &e)
        }),
        (Err(e), Some(tmp), _) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
        (r, _, _) => r,
    }
}

/// Percent-encodes a query parameter value.
pub fn query_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
