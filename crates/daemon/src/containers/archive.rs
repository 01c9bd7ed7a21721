//! The archive API's work (`docker cp`): stat, archive and extract paths of a container's
//! filesystem, running or not, through the sandboxed `arca-shim archive` helper
//! ([`arca_api::shim::ArchiveRequest`]): arcad itself never resolves a path inside a
//! container.
//!
//! A running container is looked at through its mounted rootfs, without any lock (the
//! helper's private copy of the mount stays valid if the container exits meanwhile). A
//! stopped container's overlay is mounted by the helper, under the container's `op` lock
//! for the helper's whole life (as Docker holds the container's lock until an archive has
//! been read): a start waits, so two overlays never write the same upper directory.

use std::process::Stdio;
use std::sync::Arc;

use arca_api::shim::{
    ArchiveErrorKind, ArchiveOp, ArchiveReply, ArchiveRequest, ArchiveRoot, MountConfig,
    PROTOCOL_VERSION, RootfsConfig,
};
use arca_model::ContainerStatus;
use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::sync::{mpsc, oneshot};

use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};

/// The first answer of an archive request.
pub struct Answer {
    /// `X-Docker-Container-Path-Stat`'s JSON, for stat and get.
    pub stat: Option<String>,
    /// A get's tar stream (chunks; an `Err` cuts it short).
    pub tar: Option<mpsc::Receiver<std::io::Result<Bytes>>>,
}

/// Bytes per chunk of a get's tar stream.
const CHUNK: usize = 256 * 1024;

/// How long a client may stall (send nothing, read nothing) before the request is ended: a
/// stopped container's lock, or a running one's restart, waits for it.
const STALL: std::time::Duration = std::time::Duration::from_secs(120);

impl Containers {
    /// Runs `op` on `c`'s filesystem (`name`: the container as the client named it). For a put, `body` is the tar stream to extract; the
    /// answer comes once it has been extracted. For a get the answer carries the stat and
    /// the tar stream, which keeps the helper (and a stopped container's lock) alive until it
    /// has been read or dropped.
    pub async fn archive<S>(
        self: &Arc<Self>,
        c: &Arc<Container>,
        name: &str,
        op: ArchiveOp,
        body: Option<S>,
    ) -> ApiResult<Answer>
    where
        S: Stream<Item = Result<Bytes, axum::Error>> + Send + Unpin + 'static,
    {
        let path = match &op {
            ArchiveOp::Stat { path } | ArchiveOp::Get { path } | ArchiveOp::Put { path, .. } => {
                path.clone()
            }
        };
        let (tx, rx) = oneshot::channel();
        let this = self.clone();
        let task_c = c.clone();
        // In a task of its own: a client hanging up must not leave a helper or a lock behind
        // halfway, and a get's stream outlives this call.
        tokio::spawn(async move {
            this.archive_task(task_c, op, body, tx).await;
        });
        let answer = rx
            .await
            .map_err(|_| ApiError::internal("the archive task ended without an answer"))?;
        answer.map_err(|e| match e {
            Failed::NotFound => ApiError::not_found(format!(
                "Could not find the file {path} in container {name}"
            )),
            Failed::Api(e) => e,
        })
    }

    async fn archive_task<S>(
        self: Arc<Self>,
        c: Arc<Container>,
        op: ArchiveOp,
        mut body: Option<S>,
        answer: oneshot::Sender<Result<Answer, Failed>>,
    ) where
        S: Stream<Item = Result<Bytes, axum::Error>> + Send + Unpin + 'static,
    {
        // A running container that exits between the check and the helper's look is looked
        // at again as a stopped one; a stopped one that starts while we wait for its lock,
        // as a running one.
        for _ in 0..4 {
            let is_running = |c: &Container| {
                matches!(
                    c.status(),
                    ContainerStatus::Running | ContainerStatus::Paused
                )
            };
            let (running, _op, _fs) = if is_running(&c) {
                // A start (a restart by the policy) waits until the helper is done: it must
                // not mount the upper directory the helper's copy of the rootfs still uses.
                (true, None, Some(c.fs_users.read().await))
            } else {
                let guard = c.op.lock().await;
                if c.life.borrow().removed {
                    let _ = answer.send(Err(Failed::Api(ApiError::not_found(format!(
                        "No such container: {}",
                        c.id
                    )))));
                    return;
                }
                if is_running(&c) {
                    continue;
                }
                (false, Some(guard), None)
            };
            let request = match self.archive_request(&c, op.clone(), running).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = answer.send(Err(Failed::Api(e)));
                    return;
                }
            };
            let mount_point = match &request.root {
                ArchiveRoot::Overlay { mount_point, .. } => Some(mount_point.clone()),
                ArchiveRoot::Mounted { .. } => None,
            };
            let outcome = self.run_helper(&c, &request, &mut body).await;
            let outcome = match outcome {
                Err(Failed::Api(e)) if e.kind == arca_model::ErrorKind::Unavailable && running => {
                    continue;
                }
                other => other,
            };
            match outcome {
                Err(e) => {
                    // A refused put answers once the client has sent its archive: a client
                    // still writing would see a broken pipe instead of the reason.
                    if let Some(b) = body.as_mut() {
                        drain(b).await;
                    }
                    let _ = answer.send(Err(e));
                }
                Ok(Running::Done { stat, event }) => {
                    let _ = answer.send(Ok(Answer { stat, tar: None }));
                    if let Some(ev) = event {
                        self.emit(&c, ev, &[]);
                    }
                }
                Ok(Running::Streaming {
                    stat,
                    mut child,
                    stdout,
                }) => {
                    let (tx, rx) = mpsc::channel(4);
                    let _ = answer.send(Ok(Answer {
                        stat,
                        tar: Some(rx),
                    }));
                    let complete = pump(stdout, &tx).await;
                    let exited = child.wait().await;
                    let ok = complete && exited.map(|s| s.success()).unwrap_or(false);
                    if ok {
                        self.emit(&c, "archive-path", &[]);
                    } else {
                        let _ = child.start_kill();
                        let _ = tx
                            .send(Err(std::io::Error::other("the archive was cut short")))
                            .await;
                    }
                }
            }
            if let Some(mp) = mount_point {
                let _ = tokio::fs::remove_dir(&mp).await;
                let (volumes, id) = (self.volumes.clone(), c.id.to_string());
                let _ = tokio::task::spawn_blocking(move || volumes.release_all(&id)).await;
            }
            return;
        }
        let _ = answer.send(Err(Failed::Api(ApiError::internal(
            "the container's filesystem could not be reached",
        ))));
    }

    /// The helper's request for `c` in its current state.
    async fn archive_request(
        self: &Arc<Self>,
        c: &Container,
        op: ArchiveOp,
        running: bool,
    ) -> ApiResult<ArchiveRequest> {
        let rec = c.snapshot();
        let h = &rec.host_config;
        let p = &self.paths;
        // One trip to the blocking pool: a stopped container's layers, and its volumes (held
        // for the helper's life, released once it is done, under the same lock; a running
        // container holds them already; mounting one with driver options may block).
        let (this, for_mounts) = (self.clone(), rec.clone());
        let (lower, user_mounts) = tokio::task::spawn_blocking(move || -> ApiResult<_> {
            let lower = match running {
                true => Vec::new(),
                false => this.store.lower_dirs(&for_mounts.image_id)?,
            };
            Ok((lower, this.shim_mounts(&for_mounts)?))
        })
        .await
        .map_err(|e| ApiError::internal(format!("archive task failed: {e}")))??;
        let root = if running {
            ArchiveRoot::Mounted {
                path: p.run_dir(&rec.id).join("bundle").join("rootfs"),
            }
        } else {
            ArchiveRoot::Overlay {
                rootfs: RootfsConfig {
                    lower,
                    upper: p.upper_dir(&rec.id),
                    work: p.work_dir(&rec.id),
                    readonly: false,
                    volatile: false,
                },
                mount_point: p
                    .container_dir(&rec.id)
                    .join(format!("archive-{}", arca_model::random_hex(8))),
            }
        };
        let dir = p.container_dir(&rec.id);
        let mut mounts: Vec<MountConfig> = ["hostname", "hosts", "resolv.conf"]
            .iter()
            .filter(|f| dir.join(f).exists())
            .map(|f| MountConfig {
                source: dir.join(f),
                destination: format!("/etc/{f}"),
                readonly: false,
                tmpfs: None,
                propagation: None,
            })
            .collect();
        mounts.extend(user_mounts);
        let op = match op {
            ArchiveOp::Put {
                path,
                no_overwrite_dir_non_dir,
                owner_user: Some(_),
            } => ArchiveOp::Put {
                path,
                no_overwrite_dir_non_dir,
                // moby: without a `--user`, `copyUIDGID` keeps the archive's owners.
                owner_user: rec.config.user.clone().filter(|u| !u.is_empty()),
            },
            other => other,
        };
        Ok(ArchiveRequest {
            version: PROTOCOL_VERSION,
            op,
            root,
            mounts,
            readonly_rootfs: h.readonly_rootfs.unwrap_or(false),
            userns: self.userns_of(h),
        })
    }

    /// Spawns the helper and reads its first answer (for a put: feeds it the body and reads
    /// its second).
    async fn run_helper<S>(
        &self,
        c: &Container,
        request: &ArchiveRequest,
        body: &mut Option<S>,
    ) -> Result<Running, Failed>
    where
        S: Stream<Item = Result<Bytes, axum::Error>> + Send + Unpin + 'static,
    {
        let json = serde_json::to_string(request)
            .map_err(|e| Failed::Api(ApiError::internal(format!("archive request: {e}"))))?;
        let is_put = matches!(request.op, ArchiveOp::Put { .. });
        let mut child = tokio::process::Command::new(&self.paths.shim_bin)
            .arg("archive")
            .arg(json)
            .stdin(if is_put {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Failed::Api(ApiError::from_internal(
                    "cannot start the archive helper",
                    &e,
                ))
            })?;
        let stderr = child.stderr.take();
        let id = c.id.clone();
        if let Some(mut err) = stderr {
            tokio::spawn(async move {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text).await;
                if !text.trim().is_empty() {
                    tracing::warn!(id = %id, "archive helper: {}", text.trim());
                }
            });
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Failed::Api(ApiError::internal("archive helper without stdout")))?;
        let mut stdout = BufReader::with_capacity(CHUNK, stdout);
        let first = read_reply(&mut stdout).await?;
        match &request.op {
            ArchiveOp::Stat { .. } => {
                let _ = child.wait().await;
                Ok(Running::Done {
                    stat: first.stat,
                    event: None,
                })
            }
            ArchiveOp::Get { .. } => Ok(Running::Streaming {
                stat: first.stat,
                child: Box::new(child),
                stdout,
            }),
            ArchiveOp::Put { .. } => {
                let mut stdin = child.stdin.take().ok_or_else(|| {
                    Failed::Api(ApiError::internal("archive helper without stdin"))
                })?;
                let body = body
                    .take()
                    .ok_or_else(|| Failed::Api(ApiError::invalid("an archive is required")))?;
                let mut body = body;
                let mut client_error = None;
                loop {
                    let chunk = match tokio::time::timeout(STALL, body.next()).await {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => break,
                        Err(_) => {
                            client_error = Some(format!("no data for {}s", STALL.as_secs()));
                            break;
                        }
                    };
                    match chunk {
                        Ok(bytes) => {
                            // The helper stops reading when the archive is refused: its reply
                            // says why, once the client has sent the rest (a client still
                            // writing would see a broken pipe instead of the reason).
                            if stdin.write_all(&bytes).await.is_err() {
                                drain(&mut body).await;
                                break;
                            }
                        }
                        Err(e) => {
                            client_error = Some(e.to_string());
                            break;
                        }
                    }
                }
                drop(stdin);
                if let Some(e) = client_error {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return Err(Failed::Api(ApiError::invalid(format!(
                        "reading the archive failed: {e}"
                    ))));
                }
                let second = read_reply(&mut stdout).await;
                let _ = child.wait().await;
                second?;
                Ok(Running::Done {
                    stat: None,
                    event: Some("extract-to-dir"),
                })
            }
        }
    }
}

/// Why a request failed: a missing path is worded by the caller (it knows the name asked).
enum Failed {
    NotFound,
    Api(ApiError),
}

enum Running {
    Done {
        stat: Option<String>,
        event: Option<&'static str>,
    },
    Streaming {
        stat: Option<String>,
        child: Box<Child>,
        stdout: BufReader<ChildStdout>,
    },
}

async fn read_reply(stdout: &mut BufReader<ChildStdout>) -> Result<ArchiveReply, Failed> {
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .await
        .map_err(|e| Failed::Api(ApiError::from_internal("archive helper", &e)))?;
    if line.trim().is_empty() {
        return Err(Failed::Api(ApiError::internal(
            "the archive helper ended without an answer",
        )));
    }
    let reply: ArchiveReply = serde_json::from_str(&line).map_err(|e| {
        Failed::Api(ApiError::internal(format!(
            "unreadable archive helper answer: {e}"
        )))
    })?;
    match reply.error {
        None => Ok(reply),
        Some(err) => Err(match err.kind {
            ArchiveErrorKind::NotFound => Failed::NotFound,
            ArchiveErrorKind::Invalid => Failed::Api(ApiError::invalid(err.message)),
            ArchiveErrorKind::Gone => Failed::Api(ApiError::new(
                arca_model::ErrorKind::Unavailable,
                err.message,
            )),
            ArchiveErrorKind::Internal => Failed::Api(ApiError::internal(err.message)),
        }),
    }
}

/// Reads what is left of a request body, for nothing.
pub async fn drain<S>(body: &mut S)
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    while let Some(Ok(_)) = body.next().await {}
}

/// Copies the helper's tar stream into the response channel; `false` if it was cut short.
async fn pump(
    mut stdout: BufReader<ChildStdout>,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> bool {
    loop {
        let mut buf = vec![0u8; CHUNK];
        match stdout.read(&mut buf).await {
            Ok(0) => return true,
            Ok(n) => {
                buf.truncate(n);
                match tokio::time::timeout(STALL, tx.send(Ok(Bytes::from(buf)))).await {
                    Ok(Ok(())) => {}
                    _ => return false,
                }
            }
            Err(_) => return false,
        }
    }
}
