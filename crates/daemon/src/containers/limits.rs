//! A container's resource limits: the checks `create` and `update` share, the one
//! translation of a HostConfig into the shim's [`ResourcesConfig`] (used at every start, so
//! a limit set by `update` survives a restart), and the container's cgroup path.

use arca_api::docker::HostConfig;
use arca_api::shim::ResourcesConfig;

use super::record::ContainerRecord;
use crate::error::{ApiError, ApiResult};

/// Docker refuses memory limits below 6 MB.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// The CFS period Docker assumes when only a quota is given (microseconds).
pub const DEFAULT_CPU_PERIOD: i64 = 100_000;

/// A memory limit (`Memory`), non-zero.
pub fn check_memory(m: i64) -> ApiResult<()> {
    if m < 0 {
        return Err(ApiError::invalid(format!("invalid memory limit: {m}")));
    }
    if m < MIN_MEMORY {
        return Err(ApiError::invalid("Minimum memory limit allowed is 6MB"));
    }
    Ok(())
}

/// A CPU limit in billionths of a CPU (`NanoCpus`), non-zero.
pub fn check_nano_cpus(n: i64) -> ApiResult<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if n < 10_000_000 || n > cpus * 1_000_000_000 {
        return Err(ApiError::invalid(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )));
    }
    Ok(())
}

/// A CFS quota and period (`CpuQuota`, `CpuPeriod`), in microseconds.
pub fn check_cpu_quota(quota: i64, period: i64) -> ApiResult<()> {
    if quota < 1000 || !(1000..=1_000_000).contains(&period) {
        return Err(ApiError::invalid(
            "CPU quota must be at least 1ms and CPU period between 1ms and 1s",
        ));
    }
    Ok(())
}

/// A quota over a period as the shim takes CPU limits: a share of CPUs in billionths.
pub fn quota_nano_cpus(quota: i64, period: i64) -> i64 {
    quota.saturating_mul(1000) / period * 1_000_000
}

/// The limits the shim applies for `h`.
pub fn resources_of(h: &HostConfig) -> ResourcesConfig {
    let quota = h.cpu_quota.filter(|q| *q > 0).map(|q| {
        let period = h
            .cpu_period
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_CPU_PERIOD);
        quota_nano_cpus(q, period)
    });
    ResourcesConfig {
        memory: h.memory.filter(|m| *m > 0),
        memory_swap: h.memory_swap.filter(|m| *m != 0),
        nano_cpus: h.nano_cpus.filter(|n| *n > 0).or(quota),
        cpu_shares: h.cpu_shares.filter(|s| *s > 0).map(|s| s as u64),
        pids_limit: h.pids_limit.filter(|p| *p > 0),
    }
}

/// The container's cgroup path, relative to each hierarchy: `<cgroup-parent>/<id>`.
pub fn cgroup_path(rec: &ContainerRecord, default_parent: &str) -> String {
    let parent = rec
        .host_config
        .cgroup_parent
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(default_parent);
    format!("{}/{}", parent.trim_end_matches('/'), rec.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_quota_becomes_a_share_of_cpus_at_every_start() {
        let h = HostConfig {
            cpu_quota: Some(50_000),
            ..Default::default()
        };
        assert_eq!(resources_of(&h).nano_cpus, Some(500_000_000));
        let h = HostConfig {
            cpu_quota: Some(50_000),
            cpu_period: Some(200_000),
            ..Default::default()
        };
        assert_eq!(resources_of(&h).nano_cpus, Some(250_000_000));
        let h = HostConfig {
            nano_cpus: Some(1_500_000_000),
            ..Default::default()
        };
        assert_eq!(resources_of(&h).nano_cpus, Some(1_500_000_000));
    }

    #[test]
    fn limits_are_checked_with_dockers_messages() {
        assert!(check_memory(MIN_MEMORY).is_ok());
        assert_eq!(
            check_memory(1024).expect_err("small").message,
            "Minimum memory limit allowed is 6MB"
        );
        assert!(check_nano_cpus(5_000_000).is_err());
        assert!(check_cpu_quota(500, DEFAULT_CPU_PERIOD).is_err());
        assert!(check_cpu_quota(50_000, DEFAULT_CPU_PERIOD).is_ok());
    }
}
