//! `POST /containers/{id}/update` (`docker update`): change a container's limits and
//! restart policy. A running container's cgroup is changed through its shim first; the
//! record's HostConfig is updated only if that worked, so it never claims a limit the
//! kernel refused. Zero (or absent) means "unchanged", as in Docker.

use std::sync::Arc;

use arca_api::docker::{ContainerUpdateBody, HostConfig};
use arca_api::shim::{Reply, Request, ResourcesConfig};

use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};
use crate::shim;

use super::limits::{DEFAULT_CPU_PERIOD, check_cpu_quota, check_memory, check_nano_cpus};

/// The new HostConfig and the cgroup changes for a running container.
pub fn plan(
    id: &str,
    current: &HostConfig,
    body: &ContainerUpdateBody,
) -> ApiResult<(HostConfig, ResourcesConfig)> {
    let cannot = |why: &str| ApiError::invalid(format!("Cannot update container {id}: {why}"));
    let mut h = current.clone();
    let mut r = ResourcesConfig::default();
    if let Some(p) = &body.restart_policy
        && p.name.is_some()
    {
        let mut probe = h.clone();
        probe.restart_policy = Some(p.clone());
        let none = super::restart::policy(&probe) == super::restart::Policy::No;
        if h.auto_remove.unwrap_or(false) && !none {
            return Err(cannot(
                "restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        probe.auto_remove = None;
        super::restart::validate(&probe)?;
        h.restart_policy = Some(p.clone());
    }
    if let Some(m) = body.memory.filter(|m| *m != 0) {
        check_memory(m)?;
        h.memory = Some(m);
        r.memory = Some(m);
    }
    if let Some(s) = body.memory_swap.filter(|s| *s != 0) {
        h.memory_swap = Some(s);
        r.memory_swap = Some(s);
    }
    let (mem, swap) = (h.memory.unwrap_or(0), h.memory_swap.unwrap_or(0));
    if swap > 0 && mem > 0 && mem > swap {
        return Err(ApiError::invalid(if body.memory_swap.unwrap_or(0) == 0 {
            "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
        } else {
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        }));
    }
    if swap > 0 && mem == 0 {
        return Err(ApiError::invalid(
            "You should always set the Memory limit when using Memoryswap limit",
        ));
    }
    let nano = body.nano_cpus.filter(|n| *n != 0);
    let quota = body.cpu_quota.filter(|q| *q != 0);
    if nano.is_some() && (quota.is_some() || body.cpu_period.is_some_and(|p| p != 0)) {
        return Err(ApiError::invalid(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
        ));
    }
    if let Some(n) = nano {
        check_nano_cpus(n)?;
        h.nano_cpus = Some(n);
        h.cpu_quota = None;
        h.cpu_period = None;
        r.nano_cpus = Some(n);
    }
    if let Some(q) = quota {
        let period = body
            .cpu_period
            .filter(|p| *p > 0)
            .or(h.cpu_period.filter(|p| *p > 0))
            .unwrap_or(DEFAULT_CPU_PERIOD);
        check_cpu_quota(q, period)?;
        h.cpu_quota = Some(q);
        h.cpu_period = Some(period);
        h.nano_cpus = None;
        r.nano_cpus = Some(super::limits::quota_nano_cpus(q, period));
    }
    if let Some(s) = body.cpu_shares.filter(|s| *s != 0) {
        if s < 2 {
            return Err(ApiError::invalid(format!("invalid CPU shares: {s}")));
        }
        h.cpu_shares = Some(s);
        r.cpu_shares = Some(s as u64);
    }
    if let Some(p) = body.pids_limit {
        // 0 and -1 both mean unlimited.
        let p = if p <= 0 { -1 } else { p };
        h.pids_limit = Some(p);
        r.pids_limit = Some(p);
    }
    Ok((h, r))
}

fn changes_cgroup(r: &ResourcesConfig) -> bool {
    r.memory.is_some()
        || r.memory_swap.is_some()
        || r.nano_cpus.is_some()
        || r.cpu_shares.is_some()
        || r.pids_limit.is_some()
}

impl Containers {
    /// `POST /containers/{id}/update`: returns Docker's warnings (none so far).
    pub async fn update_container(
        self: &Arc<Self>,
        c: &Arc<Container>,
        body: ContainerUpdateBody,
    ) -> ApiResult<Vec<String>> {
        let _op = c.op.lock().await;
        let current = c.snapshot().host_config;
        let (host_config, resources) = plan(c.id.as_str(), &current, &body)?;
        if c.status().is_running() && changes_cgroup(&resources) {
            let req = Request::Update { resources };
            match shim::simple(&self.paths.shim_socket(&c.id), &req).await {
                Ok(Reply::Ok { .. }) => {}
                Ok(Reply::Error { message }) => {
                    return Err(ApiError::invalid(format!(
                        "Cannot update container {}: {message}",
                        c.id
                    )));
                }
                // Exited meanwhile: the limits apply from its next start.
                Ok(Reply::Exited(_)) | Err(shim::ShimError::Connect(_)) => {}
                Err(e) => return Err(ApiError::from_internal("cannot update container", &e)),
            }
        }
        c.update(&self.paths, |r| r.host_config = host_config)?;
        self.emit(c, "update", &[]);
        tracing::info!(id = %c.id, "container updated");
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_api::docker::{RestartPolicy, RestartPolicyNameEnum};

    #[test]
    fn memory_updates_reach_the_record_and_the_cgroup() {
        let body = ContainerUpdateBody {
            memory: Some(64 << 20),
            pids_limit: Some(0),
            ..Default::default()
        };
        let (h, r) = plan("x", &HostConfig::default(), &body).expect("valid");
        assert_eq!(h.memory, Some(64 << 20));
        assert_eq!(r.memory, Some(64 << 20));
        assert_eq!(r.pids_limit, Some(-1));
        assert_eq!(r.cpu_shares, None);
    }

    #[test]
    fn memory_above_existing_swap_is_refused() {
        let cur = HostConfig {
            memory: Some(8 << 20),
            memory_swap: Some(16 << 20),
            ..Default::default()
        };
        let body = ContainerUpdateBody {
            memory: Some(32 << 20),
            ..Default::default()
        };
        assert!(plan("x", &cur, &body).is_err());
        let body = ContainerUpdateBody {
            memory: Some(1 << 20),
            ..Default::default()
        };
        assert_eq!(
            plan("x", &HostConfig::default(), &body)
                .expect_err("tiny")
                .message,
            "Minimum memory limit allowed is 6MB"
        );
    }

    #[test]
    fn restart_policy_of_an_auto_remove_container_cannot_change() {
        let cur = HostConfig {
            auto_remove: Some(true),
            ..Default::default()
        };
        let body = ContainerUpdateBody {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        let e = plan("x", &cur, &body).expect_err("conflict");
        assert!(e.message.contains("AutoRemove"), "{}", e.message);
        let (h, _) = plan("x", &HostConfig::default(), &body).expect("valid");
        assert_eq!(
            super::super::restart::policy(&h),
            super::super::restart::Policy::Always
        );
    }

    #[test]
    fn cpu_quota_becomes_nano_cpus() {
        let body = ContainerUpdateBody {
            cpu_quota: Some(50_000),
            ..Default::default()
        };
        let (h, r) = plan("x", &HostConfig::default(), &body).expect("valid");
        assert_eq!(r.nano_cpus, Some(500_000_000));
        assert_eq!(h.cpu_period, Some(100_000));
    }
}
