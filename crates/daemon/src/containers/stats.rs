//! `GET /containers/{id}/stats`: Docker's `ContainerStatsResponse`, sampled from the
//! container's cgroup, the host's `/proc/stat` and `/proc/meminfo`, and the container
//! init's `/proc/<pid>/net/dev`.
//!
//! Moby's semantics: a stream sends one sample a second, `precpu_stats` holding the
//! previous one (zero for the first); a single sample (`stream=false`) takes two samples a
//! second apart so the CPU percentage can be computed, unless `one-shot` asks for one
//! sample at once. A container that is not running reports empty stats (only name and
//! ID); a stream keeps going until the container is removed or the client hangs up.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arca_api::docker::{
    ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
    ContainerMemoryStats, ContainerNetworkStats, ContainerPidsStats, ContainerStatsResponse,
    ContainerStorageStats, ContainerThrottlingData,
};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::record::{ContainerRecord, ZERO_TIME, now_rfc3339};
use super::{Container, Containers};
use crate::cgroups::stats::{self as cgstats, BlkioEntry, CgroupStats};

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Docker's sampling interval.
const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct StatsOpts {
    pub stream: bool,
    pub one_shot: bool,
}

/// What Docker sends for a container that is not running: name and ID, zero counters.
pub fn empty(rec: &ContainerRecord) -> ContainerStatsResponse {
    let zero_cpu = ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(0),
            usage_in_kernelmode: Some(0),
            usage_in_usermode: Some(0),
            percpu_usage: None,
        }),
        system_cpu_usage: None,
        online_cpus: None,
        throttling_data: Some(ContainerThrottlingData {
            periods: Some(0),
            throttled_periods: Some(0),
            throttled_time: Some(0),
        }),
    };
    ContainerStatsResponse {
        id: Some(rec.id.to_string()),
        name: Some(format!("/{}", rec.name)),
        read: Some(ZERO_TIME.into()),
        preread: Some(ZERO_TIME.into()),
        cpu_stats: Some(zero_cpu.clone()),
        precpu_stats: Some(zero_cpu),
        memory_stats: Some(ContainerMemoryStats::default()),
        pids_stats: Some(ContainerPidsStats::default()),
        blkio_stats: Some(ContainerBlkioStats::default()),
        num_procs: Some(0),
        storage_stats: Some(ContainerStorageStats::default()),
        ..Default::default()
    }
}

/// Host-wide numbers Docker puts next to the container's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HostCpu {
    /// Total CPU time of the host since boot (ns), all CPUs.
    pub system_ns: u64,
    pub online_cpus: u32,
}

/// `/proc/stat`: the first seven fields of the `cpu` line summed (user … softirq) and the
/// number of `cpuN` lines, as moby computes them.
pub fn parse_proc_stat(s: &str, ticks_per_sec: u64) -> HostCpu {
    let mut out = HostCpu::default();
    for l in s.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let ticks: u64 = f.take(7).filter_map(|v| v.parse::<u64>().ok()).sum();
                out.system_ns = ticks.saturating_mul(1_000_000_000 / ticks_per_sec.max(1));
            }
            Some(c) if c.starts_with("cpu") => out.online_cpus += 1,
            _ => {}
        }
    }
    out
}

/// `MemTotal` of `/proc/meminfo` in bytes.
pub fn parse_mem_total(s: &str) -> Option<u64> {
    let l = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `/proc/<pid>/net/dev` → Docker's per-interface counters, loopback left out.
pub fn parse_net_dev(s: &str) -> HashMap<String, ContainerNetworkStats> {
    s.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            if v.len() < 12 {
                return None;
            }
            Some((
                name.to_owned(),
                ContainerNetworkStats {
                    rx_bytes: Some(v[0]),
                    rx_packets: Some(v[1]),
                    rx_errors: Some(v[2]),
                    rx_dropped: Some(v[3]),
                    tx_bytes: Some(v[8]),
                    tx_packets: Some(v[9]),
                    tx_errors: Some(v[10]),
                    tx_dropped: Some(v[11]),
                    ..Default::default()
                },
            ))
        })
        .collect()
}

fn blkio_entries(v: &[BlkioEntry]) -> Vec<ContainerBlkioStatEntry> {
    v.iter()
        .map(|e| ContainerBlkioStatEntry {
            major: Some(e.major),
            minor: Some(e.minor),
            op: Some(e.op.clone()),
            value: Some(e.value),
        })
        .collect()
}

/// Docker's shape of one cgroup sample. `mem_total` clamps an unlimited memory limit to the
/// host's memory, as moby does.
pub fn to_docker(
    rec: &ContainerRecord,
    cg: &CgroupStats,
    host: HostCpu,
    mem_total: Option<u64>,
    networks: HashMap<String, ContainerNetworkStats>,
    read: String,
) -> ContainerStatsResponse {
    let limit = match (cg.memory.limit, mem_total) {
        (Some(l), Some(t)) => l.min(t),
        (Some(l), None) => l,
        (None, t) => t.unwrap_or(0),
    };
    let nonzero = |v: u64| (v != 0).then_some(v);
    ContainerStatsResponse {
        id: Some(rec.id.to_string()),
        name: Some(format!("/{}", rec.name)),
        read: Some(read),
        preread: Some(ZERO_TIME.into()),
        pids_stats: Some(ContainerPidsStats {
            current: nonzero(cg.pids.current),
            limit: nonzero(cg.pids.limit),
        }),
        cpu_stats: Some(ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(cg.cpu.total_ns),
                percpu_usage: cg.cpu.percpu_ns.clone(),
                usage_in_kernelmode: Some(cg.cpu.system_ns),
                usage_in_usermode: Some(cg.cpu.user_ns),
            }),
            system_cpu_usage: Some(host.system_ns),
            online_cpus: Some(host.online_cpus),
            throttling_data: Some(ContainerThrottlingData {
                periods: Some(cg.cpu.periods),
                throttled_periods: Some(cg.cpu.throttled_periods),
                throttled_time: Some(cg.cpu.throttled_ns),
            }),
        }),
        precpu_stats: Some(empty(rec).cpu_stats.unwrap_or_default()),
        memory_stats: Some(ContainerMemoryStats {
            usage: nonzero(cg.memory.usage),
            max_usage: cg.memory.max_usage.and_then(nonzero),
            stats: Some(cg.memory.stat.clone().into_iter().collect()),
            failcnt: cg.memory.failcnt.and_then(nonzero),
            limit: nonzero(limit),
            ..Default::default()
        }),
        blkio_stats: Some(ContainerBlkioStats {
            io_service_bytes_recursive: Some(blkio_entries(&cg.blkio.service_bytes)),
            io_serviced_recursive: cg.blkio.serviced.as_deref().map(blkio_entries),
            ..Default::default()
        }),
        // Omitted when the container has no interface but loopback (moby's omitempty).
        networks: (!networks.is_empty()).then_some(networks),
        num_procs: Some(0),
        storage_stats: Some(ContainerStorageStats::default()),
        ..Default::default()
    }
}

/// One sample of a running container; `None` if its cgroup is gone (it stopped).
fn sample_blocking(rec: &ContainerRecord, cgroup_path: &str) -> Option<ContainerStatsResponse> {
    let cg = match cgstats::read(Path::new(CGROUP_ROOT), cgroup_path) {
        Ok(cg) => cg,
        Err(cgstats::CgroupStatsError::Missing { .. }) => return None,
        Err(e) => {
            tracing::debug!(id = %rec.id, error = %e, "cannot read cgroup stats");
            return None;
        }
    };
    let read = now_rfc3339();
    let ticks = match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    };
    let host = std::fs::read_to_string("/proc/stat")
        .map(|s| parse_proc_stat(&s, ticks))
        .unwrap_or_default();
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| parse_mem_total(&s));
    let pid = rec.state.pid;
    let networks = if pid > 0 {
        std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
            .map(|s| parse_net_dev(&s))
            .unwrap_or_default()
    } else {
        HashMap::new()
    };
    Some(to_docker(rec, &cg, host, mem_total, networks, read))
}

/// A sample of the container as it is now: real counters while it runs (`true`), else
/// empty stats (`false`).
async fn sample(c: &Container, default_parent: &str) -> (ContainerStatsResponse, bool) {
    let rec = c.snapshot();
    if !rec.state.status.is_running() || rec.state.pid <= 0 {
        return (empty(&rec), false);
    }
    let path = super::limits::cgroup_path(&rec, default_parent);
    let r = rec.clone();
    match tokio::task::spawn_blocking(move || sample_blocking(&r, &path)).await {
        Ok(Some(s)) => (s, true),
        _ => (empty(&rec), false),
    }
}

fn encode(s: &ContainerStatsResponse) -> Bytes {
    let mut v = serde_json::to_vec(s).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

impl Containers {
    /// Sends the container's stats to `tx` as newline-separated JSON objects.
    pub async fn stats(
        self: Arc<Self>,
        c: Arc<Container>,
        opts: StatsOpts,
        tx: mpsc::Sender<Bytes>,
    ) {
        let parent = self.paths.cgroup_parent.clone();
        if !opts.stream {
            let (first, running) = sample(&c, &parent).await;
            let out = if opts.one_shot || !running {
                first
            } else {
                // Prime the CPU counters so the percentage is not zero (moby does too).
                tokio::time::sleep(INTERVAL).await;
                let (mut second, _) = sample(&c, &parent).await;
                second.precpu_stats = first.cpu_stats;
                second.preread = first.read;
                second
            };
            let _ = tx.send(encode(&out)).await;
            return;
        }
        let mut life = c.subscribe();
        let mut prev: Option<ContainerStatsResponse> = None;
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tx.closed() => return,
                r = life.wait_for(|l| l.removed) => {
                    let _ = r;
                    return;
                }
            }
            if life.borrow().removed {
                return;
            }
            let (mut s, _) = sample(&c, &parent).await;
            if let Some(p) = prev.take() {
                s.precpu_stats = p.cpu_stats;
                s.preread = p.read;
            }
            if tx.send(encode(&s)).await.is_err() {
                return;
            }
            prev = Some(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_gives_host_cpu_time_and_online_cpus() {
        let s = "cpu  625243 0 118024 953860 13897 0 1386 1807 0 0\n\
                 cpu0 303402 0 54272 493782 4006 0 518 912 0 0\n\
                 cpu1 321841 0 63752 460078 9891 0 867 895 0 0\n\
                 intr 1 2 3\nctxt 5\n";
        let h = parse_proc_stat(s, 100);
        let ticks = 625243 + 118024 + 953860 + 13897 + 1386;
        assert_eq!(h.system_ns, ticks * 10_000_000);
        assert_eq!(h.online_cpus, 2);
    }

    #[test]
    fn net_dev_skips_loopback() {
        let s = "Inter-|   Receive |  Transmit\n face |bytes packets ...\n\
                 \x20   lo:  10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n\
                 \x20 eth0: 100 2 3 4 0 0 0 0 200 5 6 7 0 0 0 0\n";
        let n = parse_net_dev(s);
        assert_eq!(n.len(), 1);
        let e = &n["eth0"];
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (Some(100), Some(2), Some(3), Some(4))
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (Some(200), Some(5), Some(6), Some(7))
        );
        assert!(parse_net_dev(&s.lines().take(3).collect::<Vec<_>>().join("\n")).is_empty());
    }

    #[test]
    fn mem_total_is_in_bytes() {
        assert_eq!(
            parse_mem_total("MemTotal:  2048 kB\nMemFree: 1 kB\n"),
            Some(2 * 1024 * 1024)
        );
    }
}
