//! Signals, stop and wait.

use std::sync::Arc;
use std::time::Duration;

use arca_api::shim::{Reply, Request};
use arca_model::ContainerStatus;

use super::{Container, Containers, Life};
use crate::error::{ApiError, ApiResult};
use crate::shim;

/// Parses `SIGTERM`, `TERM`, `term`, `15`, `RTMAX-1` ([`arca_model::signal`]).
pub fn parse_signal(s: &str) -> ApiResult<i32> {
    arca_model::signal::parse_signal(s)
        .ok_or_else(|| ApiError::invalid(format!("Invalid signal: {s}")))
}

/// The container's stop signal (`Config.StopSignal`, default SIGTERM).
fn stop_signal_of(c: &Container) -> i32 {
    let name = c.lock().config.stop_signal.clone();
    name.as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| parse_signal(s).ok())
        .unwrap_or(libc::SIGTERM)
}

/// What `POST /containers/{id}/wait?condition=` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: Option<&str>) -> ApiResult<Self> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(Self::NotRunning),
            "next-exit" => Ok(Self::NextExit),
            "removed" => Ok(Self::Removed),
            other => Err(ApiError::invalid(format!("invalid condition: {other:?}"))),
        }
    }
}

impl Containers {
    /// `POST /containers/{id}/kill`.
    pub async fn kill(&self, c: &Container, signal: i32) -> ApiResult<()> {
        if self.cancel_restart(c) {
            return Ok(());
        }
        if !c.status().is_running() {
            return Err(ApiError::conflict(format!(
                "cannot kill container: {}: container {} is not running",
                c.lock().name,
                c.id
            )));
        }
        // As Docker: a container killed or stopped through the API is not restarted by
        // its policy.
        if let Err(e) = c.update(&self.paths, |r| r.state.manually_stopped = true) {
            tracing::warn!(id = %c.id, error = %e, "manual stop not saved");
        }
        let was_paused = c.status() == ContainerStatus::Paused;
        match shim::simple(&self.paths.shim_socket(&c.id), &Request::Kill { signal }).await {
            Ok(Reply::Ok { .. }) | Ok(Reply::Exited(_)) => {
                self.emit(c, "kill", &[("signal", signal.to_string())]);
                // As Docker: a paused container is thawed after SIGKILL or its stop signal
                // so that it can act on it (frozen tasks do not die on cgroup v1).
                if was_paused && (signal == libc::SIGKILL || signal == stop_signal_of(c)) {
                    match self.shim_freeze(c, &Request::Resume, "unpause").await {
                        Ok(()) => {
                            self.record_thawed(c);
                        }
                        Err(e) => {
                            tracing::warn!(id = %c.id, error = %e, "cannot thaw killed container")
                        }
                    }
                }
                Ok(())
            }
            Ok(Reply::Error { message }) => Err(ApiError::conflict(format!(
                "cannot kill container: {}: {message}",
                c.id
            ))),
            // The shim is gone: the container has exited; the monitor records it.
            Err(shim::ShimError::Connect(_)) => Ok(()),
            Err(e) => Err(ApiError::from_internal("cannot signal container", &e)),
        }
    }

    /// Sends `signal` and waits until the container is no longer running.
    pub async fn kill_and_wait(&self, c: &Container, signal: i32) -> ApiResult<()> {
        let mut rx = c.subscribe();
        self.kill(c, signal).await.or_else(|e| {
            if c.status().is_running() {
                Err(e)
            } else {
                Ok(())
            }
        })?;
        let stopped = tokio::time::timeout(
            Duration::from_secs(30),
            rx.wait_for(|l| !l.status.is_running()),
        )
        .await;
        match stopped {
            Ok(Ok(_)) => Ok(()),
            _ if !c.status().is_running() => Ok(()),
            _ => Err(ApiError::internal(format!(
                "could not kill container {}: it is still running after 30 seconds",
                c.id
            ))),
        }
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after `timeout` seconds
    /// (negative: wait forever).
    pub async fn stop(
        &self,
        c: &Container,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> ApiResult<()> {
        if self.cancel_restart(c) {
            return Ok(());
        }
        if !c.status().is_running() {
            return Err(ApiError::not_modified());
        }
        let (sig_name, default_timeout) = {
            let r = c.lock();
            (r.config.stop_signal.clone(), r.config.stop_timeout)
        };
        let sig = parse_signal(
            signal
                .or(sig_name.as_deref().filter(|s| !s.is_empty()))
                .unwrap_or("SIGTERM"),
        )?;
        let timeout = timeout.or(default_timeout).unwrap_or(10);
        let mut rx = c.subscribe();
        if let Err(e) = self.kill(c, sig).await {
            if !c.status().is_running() {
                return Ok(());
            }
            return Err(e);
        }
        let exited = async { rx.wait_for(|l| !l.status.is_running()).await.map(|_| ()) };
        let done = if timeout < 0 {
            exited.await.is_ok()
        } else {
            tokio::time::timeout(Duration::from_secs(timeout as u64), exited)
                .await
                .is_ok()
        };
        if !done {
            tracing::info!(id = %c.id, "stop timeout reached, killing");
            self.kill_and_wait(c, libc::SIGKILL).await?;
        }
        self.emit(c, "stop", &[]);
        Ok(())
    }

    /// Registers a waiter now (what counts as the "next" exit is decided at this call) and
    /// returns a future for the exit code.
    pub fn wait(
        &self,
        c: &Arc<Container>,
        cond: WaitCondition,
    ) -> impl std::future::Future<Output = i64> + Send + 'static {
        let c = c.clone();
        let mut rx = c.subscribe();
        let start: Life = *rx.borrow();
        async move { wait_for(&c, &mut rx, start, cond).await }
    }
}

async fn wait_for(
    c: &Container,
    rx: &mut tokio::sync::watch::Receiver<Life>,
    start: Life,
    cond: WaitCondition,
) -> i64 {
    {
        let pred = |l: &Life| match cond {
            WaitCondition::NotRunning => !l.status.is_running() || l.removed,
            WaitCondition::NextExit => l.exits > start.exits || l.removed,
            WaitCondition::Removed => l.removed,
        };
        match rx.wait_for(pred).await {
            Ok(l) => l.exit_code,
            // The sender is gone: the container was removed.
            Err(_) => c.lock().state.exit_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("SIGTERM").expect("ok"), libc::SIGTERM);
        assert_eq!(parse_signal("RTMAX-1").expect("ok"), libc::SIGRTMAX() - 1);
        assert_eq!(parse_signal("RTMIN+2").expect("ok"), libc::SIGRTMIN() + 2);
        assert_eq!(
            parse_signal("SIGBOGUS").expect_err("bad").message,
            "Invalid signal: SIGBOGUS"
        );
    }
}
