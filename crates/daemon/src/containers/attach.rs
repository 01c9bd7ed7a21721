//! Attach sessions: a hijacked client connection spliced to the shim's attach stream.
//!
//! The shim speaks Docker's framing already (stdcopy frames without a TTY, raw with one),
//! so bytes pass through unchanged in both directions.

use std::path::Path;
use std::time::Duration;

use arca_api::shim::{Reply, Request};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};
use crate::shim;

#[derive(Debug, Clone, Copy)]
pub struct AttachOpts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// An attach made before `start`: its connection is handed over once upgraded.
pub struct PendingAttach {
    opts: AttachOpts,
    io: oneshot::Receiver<Upgraded>,
}

impl PendingAttach {
    /// Connects the session to the shim (before the process runs) and splices it.
    pub async fn connect(self, socket: &Path, _tty: bool) {
        let io = match tokio::time::timeout(Duration::from_secs(5), self.io).await {
            Ok(Ok(io)) => io,
            _ => {
                tracing::debug!("attach session went away before start");
                return;
            }
        };
        splice(io, socket, self.opts).await;
    }
}

async fn splice(io: Upgraded, socket: &Path, opts: AttachOpts) {
    let req = Request::Attach {
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    let conn = match shim::call(socket, &req).await {
        Ok((Reply::Ok { .. }, conn)) => conn,
        Ok((other, _)) => {
            tracing::debug!(reply = ?other, "shim refused attach");
            return;
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot attach to shim");
            return;
        }
    };
    tokio::spawn(async move {
        let client = TokioIo::new(io);
        let (mut cr, mut cw) = tokio::io::split(client);
        let shim::Conn {
            mut reader,
            mut writer,
        } = conn;
        let input = tokio::spawn(async move {
            if opts.stdin {
                let _ = tokio::io::copy(&mut cr, &mut writer).await;
            } else {
                // Drain and ignore anything the client sends until it hangs up.
                let _ = tokio::io::copy(&mut cr, &mut tokio::io::sink()).await;
            }
            let _ = writer.shutdown().await;
        });
        let _ = tokio::io::copy(&mut reader, &mut cw).await;
        let _ = cw.shutdown().await;
        input.abort();
    });
}

impl Containers {
    /// Registers an attach session whose connection will be upgraded by `on_upgrade`.
    pub fn attach(&self, c: &Container, opts: AttachOpts, on_upgrade: OnUpgrade) -> ApiResult<()> {
        let status = c.status();
        if status.is_running() {
            let socket = self.paths.shim_socket(&c.id);
            tokio::spawn(async move {
                if let Ok(io) = on_upgrade.await {
                    splice(io, &socket, opts).await;
                }
            });
            return Ok(());
        }
        if status.can_start().is_err() {
            return Err(ApiError::conflict(format!(
                "You cannot attach to a {status} container"
            )));
        }
        // Created or exited: hold the session until the next start.
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            if let Ok(io) = on_upgrade.await {
                let _ = tx.send(io);
            }
        });
        c.pending_attach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PendingAttach { opts, io: rx });
        Ok(())
    }
}
