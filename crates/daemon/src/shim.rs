//! arcad's side of the shim protocol (see `arca_api::shim`): spawning a shim and talking to
//! its socket.

use std::path::Path;
use std::process::Stdio;

use arca_api::shim::{Ready, Reply, Request, ShimConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("cannot start arca-shim {bin}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("arca-shim exited before the container was created")]
    NoReady,
    #[error("arca-shim sent an unreadable reply: {0}")]
    Protocol(String),
    #[error("cannot reach the container's shim")]
    Connect(#[source] std::io::Error),
    #[error("shim i/o failed")]
    Io(#[source] std::io::Error),
    #[error("arca-shim did not answer in time while {0}")]
    Timeout(&'static str),
}

/// How long a shim may take to create a container (image layers are already unpacked).
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a shim may take to answer a request (not `Wait`, which lasts the container's life).
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Starts a shim for `config` and returns its `Ready` line.
pub async fn spawn(bin: &Path, config: &ShimConfig) -> Result<Ready, ShimError> {
    let mut child = tokio::process::Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| ShimError::Spawn {
            bin: bin.display().to_string(),
            source,
        })?;
    let json = serde_json::to_vec(config).map_err(|e| ShimError::Protocol(e.to_string()))?;
    let mut stdin = child.stdin.take().ok_or(ShimError::NoReady)?;
    let stdout = child.stdout.take().ok_or(ShimError::NoReady)?;
    stdin.write_all(&json).await.map_err(ShimError::Io)?;
    drop(stdin);
    let mut line = String::new();
    let read =
        tokio::time::timeout(READY_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
    match read {
        Ok(r) => {
            r.map_err(ShimError::Io)?;
        }
        Err(_) => {
            // A shim that cannot create the container in this time is stuck: end it.
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(ShimError::Timeout("creating the container"));
        }
    }
    // The shim outlives this request (and arcad); reap it whenever it ends.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    if line.trim().is_empty() {
        return Err(ShimError::NoReady);
    }
    serde_json::from_str(&line).map_err(|e| ShimError::Protocol(format!("{e}: {line:?}")))
}

/// An open connection to a shim after its reply line.
pub struct Conn {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

/// Connects, sends `req` and reads the reply line.
pub async fn call(socket: &Path, req: &Request) -> Result<(Reply, Conn), ShimError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(ShimError::Connect)?;
    let (r, mut writer) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(|e| ShimError::Protocol(e.to_string()))?;
    line.push(b'\n');
    writer.write_all(&line).await.map_err(ShimError::Io)?;
    let mut reader = BufReader::new(r);
    let reply = match req {
        Request::ExecWait { .. } => read_reply(&mut reader).await?,
        _ => tokio::time::timeout(REPLY_TIMEOUT, read_reply(&mut reader))
            .await
            .map_err(|_| ShimError::Timeout("answering a request"))??,
    };
    Ok((reply, Conn { reader, writer }))
}

/// Reads one reply line.
pub async fn read_reply(reader: &mut BufReader<OwnedReadHalf>) -> Result<Reply, ShimError> {
    let mut buf = Vec::new();
    // Read byte-wise up to the newline so no stream bytes after it are consumed from the
    // socket into a string.
    loop {
        let n = reader.read_u8().await;
        match n {
            Ok(b'\n') => break,
            Ok(b) => buf.push(b),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                if buf.is_empty() {
                    return Err(ShimError::Protocol("connection closed".into()));
                }
                break;
            }
            Err(e) => return Err(ShimError::Io(e)),
        }
    }
    serde_json::from_slice(&buf)
        .map_err(|e| ShimError::Protocol(format!("{e}: {:?}", String::from_utf8_lossy(&buf))))
}

/// Connects and sends `Wait`; the returned future resolves when the container exits.
pub async fn wait_conn(socket: &Path) -> Result<Conn, ShimError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(ShimError::Connect)?;
    let (r, mut writer) = stream.into_split();
    let mut line =
        serde_json::to_vec(&Request::Wait).map_err(|e| ShimError::Protocol(e.to_string()))?;
    line.push(b'\n');
    writer.write_all(&line).await.map_err(ShimError::Io)?;
    Ok(Conn {
        reader: BufReader::new(r),
        writer,
    })
}

/// A simple request/reply exchange.
pub async fn simple(socket: &Path, req: &Request) -> Result<Reply, ShimError> {
    call(socket, req).await.map(|(r, _)| r)
}
