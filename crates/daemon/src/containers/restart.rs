//! Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`) with Docker's
//! growing back-off: 100 ms, doubled after each restart, at most one minute, back to
//! 100 ms once a run lasted ten seconds. A container stopped through the API is not
//! restarted (until arcad starts again, for `always`).

use std::sync::Arc;
use std::time::Duration;

use arca_api::docker::{HostConfig, RestartPolicyNameEnum};
use arca_model::ContainerStatus;

use super::record::ContainerRecord;
use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
const STABLE_RUN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    No,
    Always,
    UnlessStopped,
    OnFailure { max: i64 },
}

pub fn policy(h: &HostConfig) -> Policy {
    let Some(p) = &h.restart_policy else {
        return Policy::No;
    };
    match p.name {
        Some(RestartPolicyNameEnum::ALWAYS) => Policy::Always,
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => Policy::UnlessStopped,
        Some(RestartPolicyNameEnum::ON_FAILURE) => Policy::OnFailure {
            max: p.maximum_retry_count.unwrap_or(0),
        },
        _ => Policy::No,
    }
}

/// Create-time checks, with Docker's messages.
pub fn validate(h: &HostConfig) -> ApiResult<()> {
    let Some(p) = &h.restart_policy else {
        return Ok(());
    };
    let count = p.maximum_retry_count.unwrap_or(0);
    if count < 0 {
        return Err(ApiError::invalid("maximum retry count cannot be negative"));
    }
    let pol = policy(h);
    if count > 0 && !matches!(pol, Policy::OnFailure { .. }) {
        return Err(ApiError::invalid(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ));
    }
    if pol != Policy::No && h.auto_remove.unwrap_or(false) {
        return Err(ApiError::invalid(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    Ok(())
}

fn ran_for(rec: &ContainerRecord) -> Duration {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(&rec.state.started_at), parse(&rec.state.finished_at)) {
        (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

/// Whether the exit just recorded calls for a restart.
pub fn wants_restart(rec: &ContainerRecord) -> bool {
    if rec.state.manually_stopped {
        return false;
    }
    match policy(&rec.host_config) {
        Policy::No => false,
        Policy::Always | Policy::UnlessStopped => true,
        Policy::OnFailure { max } => {
            rec.state.exit_code != 0 && (max == 0 || rec.restart_count < max)
        }
    }
}

/// Whether arcad, starting, should start this exited container again.
pub fn restart_on_daemon_start(rec: &ContainerRecord) -> bool {
    match policy(&rec.host_config) {
        Policy::Always => true,
        Policy::UnlessStopped => !rec.state.manually_stopped,
        _ => false,
    }
}

impl Containers {
    /// Marks the container as restarting and starts it again after the back-off, unless
    /// it is stopped or removed meanwhile.
    pub(super) fn schedule_restart(self: &Arc<Self>, c: &Arc<Container>) {
        let rec = c.snapshot();
        let delay = {
            let mut b = c.backoff.lock().unwrap_or_else(|p| p.into_inner());
            let next = match *b {
                Some(prev) if ran_for(&rec) < STABLE_RUN => (prev * 2).min(MAX_DELAY),
                _ => FIRST_DELAY,
            };
            *b = Some(next);
            next
        };
        if let Err(e) = c.update(&self.paths, |r| {
            r.state.status = ContainerStatus::Restarting
        }) {
            tracing::warn!(id = %c.id, error = %e, "restart state not saved");
        }
        tracing::info!(id = %c.id, delay_ms = delay.as_millis() as u64, "restarting container");
        let this = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            {
                let _op = c.op.lock().await;
                let life = *c.life.borrow();
                if life.removed || life.status != ContainerStatus::Restarting {
                    return; // stopped or removed while waiting
                }
                // Still `restarting` until the start makes it `running`: a client polling
                // for "exited" must not see the new count with the old run's exit code.
                if let Err(e) = c.update(&this.paths, |r| {
                    r.restart_count += 1;
                }) {
                    tracing::warn!(id = %c.id, error = %e, "restart count not saved");
                }
            }
            this.emit(&c, "restart", &[]);
            if let Err(e) = this.start_keeping_count(&c).await {
                tracing::error!(id = %c.id, error = %e, "restart failed");
            }
        });
    }

    /// Cancels a pending restart (stop, kill or remove of a restarting container).
    pub(super) fn cancel_restart(&self, c: &Container) -> bool {
        if c.status() != ContainerStatus::Restarting {
            return false;
        }
        if let Err(e) = c.update(&self.paths, |r| {
            r.state.status = ContainerStatus::Exited;
            r.state.manually_stopped = true;
        }) {
            tracing::warn!(id = %c.id, error = %e, "stop of a restarting container not saved");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_api::docker::RestartPolicy;

    fn hc(name: RestartPolicyNameEnum, count: i64) -> HostConfig {
        HostConfig {
            restart_policy: Some(RestartPolicy {
                name: Some(name),
                maximum_retry_count: Some(count),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn policies_validate_like_docker() {
        assert!(validate(&hc(RestartPolicyNameEnum::ON_FAILURE, 3)).is_ok());
        assert!(validate(&hc(RestartPolicyNameEnum::ALWAYS, 3)).is_err());
        assert!(validate(&hc(RestartPolicyNameEnum::ON_FAILURE, -1)).is_err());
        let mut h = hc(RestartPolicyNameEnum::ALWAYS, 0);
        h.auto_remove = Some(true);
        assert!(validate(&h).is_err());
    }

    #[test]
    fn on_failure_counts_and_ignores_success() {
        assert_eq!(
            policy(&hc(RestartPolicyNameEnum::ON_FAILURE, 2)),
            Policy::OnFailure { max: 2 }
        );
        assert_eq!(policy(&HostConfig::default()), Policy::No);
    }
}
