//! `docker exec`: extra processes in a running container, run by its shim.
//!
//! An exec is created (validated and recorded here), then started: the shim forks it into
//! the container and streams it on the same connection, which is spliced to the client's
//! hijacked connection. The exit status is fetched with `ExecWait` and recorded before the
//! client's stream is closed, so the client's inspect right after sees the exit code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_api::docker::{ExecConfig, ExecInspectResponse, ProcessConfig as DockerProcessConfig};
use arca_api::shim::{ProcessConfig, Reply, Request};
use arca_api::stdcopy::{self, StreamKind};
use arca_model::{ContainerId, ContainerStatus};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::detach::{Ended, Matcher, splice_session};
use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};
use crate::shim;

#[derive(Debug, Clone, Default)]
pub struct ExecState {
    pub running: bool,
    pub started: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
}

pub struct Exec {
    pub id: String,
    pub container: ContainerId,
    pub config: ExecConfig,
    state: Mutex<ExecState>,
    done: watch::Sender<bool>,
}

impl Exec {
    pub fn state(&self) -> ExecState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, f: impl FnOnce(&mut ExecState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Resolves once the exec's exit is recorded.
    pub async fn wait_done(&self) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    fn finish(&self, code: i64) {
        self.set(|s| {
            s.running = false;
            s.exit_code = Some(code);
        });
        self.done.send_replace(true);
    }

    /// The command line as Docker names it in `exec_create: <cmd>` events.
    pub fn command(&self) -> String {
        self.config
            .cmd
            .iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn inspect(&self) -> ExecInspectResponse {
        let s = self.state();
        let cmd = self.config.cmd.clone().unwrap_or_default();
        ExecInspectResponse {
            can_remove: Some(false),
            detach_keys: Some(self.config.detach_keys.clone().unwrap_or_default()),
            id: Some(self.id.clone()),
            running: Some(s.running),
            exit_code: s.exit_code,
            process_config: Some(DockerProcessConfig {
                privileged: Some(self.config.privileged.unwrap_or(false)),
                user: Some(self.config.user.clone().unwrap_or_default()),
                tty: Some(self.config.tty.unwrap_or(false)),
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: Some(self.config.attach_stdin.unwrap_or(false)),
            open_stderr: Some(self.config.attach_stderr.unwrap_or(false)),
            open_stdout: Some(self.config.attach_stdout.unwrap_or(false)),
            container_id: Some(self.container.to_string()),
            pid: Some(s.pid),
        }
    }
}

/// Every exec of this daemon, by ID.
#[derive(Default)]
pub struct Execs {
    table: Mutex<HashMap<String, Arc<Exec>>>,
}

impl Execs {
    pub fn get(&self, id: &str) -> ApiResult<Arc<Exec>> {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }

    fn insert(&self, e: Arc<Exec>) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(e.id.clone(), e);
    }

    /// Forgets one exec (health probes, once their result is taken).
    pub fn remove(&self, id: &str) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Forgets the execs of a removed container.
    pub fn forget_container(&self, id: &ContainerId) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| &e.container != id);
    }
}

/// Exec needs a running, unpaused container (Docker's messages).
fn check_execable(c: &Container) -> ApiResult<()> {
    match c.status() {
        ContainerStatus::Paused => Err(ApiError::conflict(format!(
            "Container {} is paused, unpause the container before exec",
            c.id
        ))),
        ContainerStatus::Restarting => Err(ApiError::conflict(format!(
            "Container {} is restarting, wait until the container is running",
            c.id
        ))),
        s if s.is_running() => Ok(()),
        _ => Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        ))),
    }
}

/// 127 when the command does not exist, 126 when it cannot be run, as Docker reports.
fn exit_code_for_error(message: &str) -> i64 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else {
        126
    }
}

impl Containers {
    /// `POST /containers/{id}/exec`.
    pub fn create_exec(&self, c: &Container, config: ExecConfig) -> ApiResult<Arc<Exec>> {
        check_execable(c)?;
        if let Some(k) = config.detach_keys.as_deref().filter(|k| !k.is_empty()) {
            super::detach::parse_keys(k)?;
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(ApiError::invalid("No exec command specified"));
        }
        let e = Arc::new(Exec {
            id: arca_model::random_hex(32),
            container: c.id.clone(),
            config,
            state: Mutex::new(ExecState::default()),
            done: watch::Sender::new(false),
        });
        self.execs.insert(e.clone());
        Ok(e)
    }

    fn exec_request(
        &self,
        c: &Container,
        e: &Exec,
        tty: bool,
        console: Option<[u16; 2]>,
    ) -> Request {
        let rec = c.snapshot();
        let cfg = &e.config;
        let mut env = rec.config.env.clone().unwrap_or_default();
        for kv in cfg.env.iter().flatten() {
            let key = kv.split('=').next().unwrap_or(kv);
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        Request::Exec {
            exec_id: e.id.clone(),
            process: ProcessConfig {
                args: cfg.cmd.clone().unwrap_or_default(),
                env,
                cwd: cfg
                    .working_dir
                    .clone()
                    .filter(|w| !w.is_empty())
                    .or_else(|| rec.config.working_dir.clone().filter(|w| !w.is_empty()))
                    .unwrap_or_else(|| "/".into()),
                user: cfg.user.clone().unwrap_or_default(),
                tty,
                open_stdin: cfg.attach_stdin.unwrap_or(false),
                stdin_once: true,
                console_size: console,
                group_add: Vec::new(),
                rlimits: Vec::new(),
            },
            privileged: cfg.privileged.unwrap_or(false),
        }
    }

    /// Starts the exec in the shim. Returns the connection carrying its stream, or, when
    /// the shim refuses (command missing…), records the failure and returns the message.
    pub(super) async fn launch_exec(
        self: &Arc<Self>,
        c: &Arc<Container>,
        e: &Arc<Exec>,
        tty: bool,
        console: Option<[u16; 2]>,
    ) -> ApiResult<Result<shim::Conn, String>> {
        check_execable(c)?;
        {
            let mut s = e.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.started {
                return Err(ApiError::conflict(format!(
                    "Exec {} has already been started",
                    e.id
                )));
            }
            s.started = true;
            s.running = true;
        }
        let socket = self.paths.shim_socket(&c.id);
        let req = self.exec_request(c, e, tty, console);
        let exec_attr = ("execID", e.id.clone());
        let action = format!("exec_start: {}", e.command());
        self.emit(c, action, std::slice::from_ref(&exec_attr));
        match shim::call(&socket, &req).await {
            Ok((Reply::Ok { pid }, conn)) => {
                e.set(|s| s.pid = i64::from(pid.unwrap_or(0)));
                // Record the exit whoever is (or is not) reading the stream.
                let waiter = e.clone();
                let exec_id = e.id.clone();
                let (this, c) = (self.clone(), c.clone());
                tokio::spawn(async move {
                    let code = match shim::simple(&socket, &Request::ExecWait { exec_id }).await {
                        Ok(Reply::Exited(s)) => i64::from(s.exit_code),
                        _ => 137,
                    };
                    waiter.finish(code);
                    this.emit(&c, "exec_die", &[exec_attr, ("exitCode", code.to_string())]);
                });
                Ok(Ok(conn))
            }
            Ok((Reply::Error { message }, _)) => {
                e.finish(exit_code_for_error(&message));
                Ok(Err(message))
            }
            Ok((other, _)) => {
                e.finish(126);
                Ok(Err(format!("unexpected shim reply: {other:?}")))
            }
            Err(err) => {
                e.finish(126);
                Err(ApiError::from_internal("cannot start exec", &err))
            }
        }
    }

    /// `POST /exec/{id}/start` with `Detach`: runs it and returns; output is discarded.
    pub async fn start_exec_detached(self: &Arc<Self>, e: &Arc<Exec>, tty: bool) -> ApiResult<()> {
        let c = self.get(e.container.as_str())?;
        match self.launch_exec(&c, e, tty, None).await? {
            Ok(mut conn) => {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut conn.reader, &mut tokio::io::sink()).await;
                });
                Ok(())
            }
            Err(message) => Err(ApiError::invalid(message)),
        }
    }

    /// `POST /exec/{id}/start` attached: splices the exec's stream to the upgraded client
    /// connection, and closes it once the exit status is recorded.
    pub async fn start_exec_attached(
        self: &Arc<Self>,
        e: Arc<Exec>,
        tty: bool,
        console: Option<[u16; 2]>,
        io: Upgraded,
    ) {
        let client = TokioIo::new(io);
        let (cr, mut cw) = tokio::io::split(client);
        let c = match self.get(e.container.as_str()) {
            Ok(c) => c,
            Err(err) => {
                let _ = write_error(&mut cw, tty, &err.message).await;
                return;
            }
        };
        let conn = match self.launch_exec(&c, &e, tty, console).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(message)) => {
                // Docker writes the failure into the stream; the client reads the exit
                // code from exec inspect.
                let _ =
                    write_error(&mut cw, tty, &format!("OCI runtime exec failed: {message}")).await;
                let _ = cw.shutdown().await;
                return;
            }
            Err(err) => {
                let _ = write_error(&mut cw, tty, &err.message).await;
                let _ = cw.shutdown().await;
                return;
            }
        };
        let stdin = e.config.attach_stdin.unwrap_or(false);
        let keys = e
            .config
            .detach_keys
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or(&self.settings.detach_keys);
        let matcher = super::detach::parse_keys(keys).ok().map(Matcher::new);
        let shim::Conn { mut reader, writer } = conn;
        match splice_session(cr, &mut cw, &mut reader, writer, stdin, matcher, false).await {
            Ended::OutputDone(input) => {
                let mut done = e.done.subscribe();
                let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await;
                let _ = cw.shutdown().await;
                input.abort();
            }
            Ended::Detached(_writer) => {
                // The exec keeps running; its stdin ends with this connection.
                tracing::debug!(exec = %e.id, "exec session detached");
                let _ = cw.shutdown().await;
            }
        }
    }

    /// `POST /exec/{id}/resize`.
    pub async fn resize_exec(&self, e: &Exec, rows: u16, cols: u16) -> ApiResult<()> {
        let socket = self.paths.shim_socket(&e.container);
        let req = Request::ExecResize {
            exec_id: e.id.clone(),
            rows,
            cols,
        };
        match shim::simple(&socket, &req).await {
            Ok(Reply::Error { message }) => Err(ApiError::invalid(message)),
            Ok(_) => Ok(()),
            Err(err) => Err(ApiError::from_internal("cannot resize exec", &err)),
        }
    }
}

async fn write_error<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    tty: bool,
    message: &str,
) -> std::io::Result<()> {
    let text = format!("{message}\r\n");
    if tty {
        w.write_all(text.as_bytes()).await
    } else {
        let mut buf = Vec::new();
        stdcopy::encode_into(&mut buf, StreamKind::Stdout, text.as_bytes());
        w.write_all(&buf).await
    }
}
