//! Attach sessions: a hijacked client connection spliced to the shim's attach stream.
//!
//! The shim speaks Docker's framing already (stdcopy frames without a TTY, raw with one),
//! so bytes pass through unchanged in both directions, except the detach keys in the
//! client's stdin: they end the session and leave the container running.

use std::path::Path;
use std::time::Duration;

use arca_api::shim::{Reply, Request};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::detach::{Ended, Matcher, splice_session};
use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};
use crate::shim;

#[derive(Debug, Clone)]
pub struct AttachOpts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// The detach sequence (parsed `detachKeys`).
    pub detach_keys: Vec<u8>,
}

/// An attach made before `start`: its connection is handed over once upgraded.
pub struct PendingAttach {
    opts: AttachOpts,
    io: oneshot::Receiver<Upgraded>,
}

impl PendingAttach {
    /// Connects the session to the shim (before the process runs) and splices it.
    pub async fn connect(self, socket: &Path, mode: DetachMode) {
        let io = match tokio::time::timeout(Duration::from_secs(5), self.io).await {
            Ok(Ok(io)) => io,
            _ => {
                tracing::debug!("attach session went away before start");
                return;
            }
        };
        splice(io, socket, self.opts, mode).await;
    }
}

async fn splice(io: Upgraded, socket: &Path, opts: AttachOpts, mode: DetachMode) {
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
        let (cr, mut cw) = tokio::io::split(client);
        let shim::Conn { mut reader, writer } = conn;
        let matcher = Some(Matcher::new(opts.detach_keys.clone()));
        match splice_session(
            cr,
            &mut cw,
            &mut reader,
            writer,
            opts.stdin,
            matcher,
            mode.eof_detaches,
        )
        .await
        {
            Ended::OutputDone(input) => {
                let _ = cw.shutdown().await;
                input.abort();
            }
            Ended::Detached(writer) => {
                tracing::debug!("attach session detached");
                let _ = cw.shutdown().await;
                if mode.keep_stdin {
                    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
                }
                drop(writer);
            }
        }
    });
}

/// How sessions of a container end. Docker keeps a container's stdin open when a client
/// leaves its TTY (detach keys, or the client's stdin ends: that ends the session too);
/// without a TTY a `StdinOnce` container's stdin closes with its client's input, detach
/// or not.
#[derive(Debug, Clone, Copy)]
pub struct DetachMode {
    /// The end of the client's stdin ends the session like a detach.
    pub eof_detaches: bool,
    /// After a detach, hold the shim connection (draining its output) until the container
    /// exits: the shim closes a `StdinOnce` container's stdin when its client's input ends.
    pub keep_stdin: bool,
}

pub fn detach_mode(rec: &super::record::ContainerRecord) -> DetachMode {
    let tty = rec.config.tty.unwrap_or(false);
    DetachMode {
        eof_detaches: tty,
        keep_stdin: tty && rec.config.stdin_once.unwrap_or(false),
    }
}

impl Containers {
    /// Registers an attach session whose connection will be upgraded by `on_upgrade`.
    pub fn attach(&self, c: &Container, opts: AttachOpts, on_upgrade: OnUpgrade) -> ApiResult<()> {
        let status = c.status();
        if status.is_running() {
            let socket = self.paths.shim_socket(&c.id);
            let mode = detach_mode(&c.snapshot());
            tokio::spawn(async move {
                if let Ok(io) = on_upgrade.await {
                    splice(io, &socket, opts, mode).await;
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
