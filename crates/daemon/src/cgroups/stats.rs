//! Resource usage of one container's cgroup, read from cgroupfs (v1, v2, or hybrid: each
//! controller is read from wherever it is mounted).
//!
//! The reader is best effort per file: a controller that is not mounted or a file the
//! kernel does not offer reads as zero, as Docker reports it. Only a missing cgroup (the
//! container is gone) is an error. Callers run this on a blocking thread: it reads files.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{ControllerDir, controller_dir};

/// One sample of a cgroup's counters, in Docker's units (nanoseconds, bytes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CpuStats {
    pub total_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    /// Per-CPU usage: cgroup v1 only.
    pub percpu_ns: Option<Vec<u64>>,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryStats {
    pub usage: u64,
    /// Peak usage: cgroup v1 only.
    pub max_usage: Option<u64>,
    /// `None`: unlimited.
    pub limit: Option<u64>,
    /// Times the limit was hit: cgroup v1 only.
    pub failcnt: Option<u64>,
    /// Every counter of `memory.stat` (v1 has `total_inactive_file`, v2 `inactive_file`).
    pub stat: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// 0: no limit (Docker's convention).
    pub limit: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BlkioStats {
    pub service_bytes: Vec<BlkioEntry>,
    /// I/O operations: cgroup v1 only (v2 reports only bytes, as Docker does).
    pub serviced: Option<Vec<BlkioEntry>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupStatsError {
    #[error("cgroup {path} does not exist")]
    Missing { path: String },
    #[error("failed to read cgroup file {file}")]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Reads the counters of `cgroup_path` (relative to each hierarchy, e.g. `/arca/<id>`)
/// under the cgroup mount root `root` (normally `/sys/fs/cgroup`).
pub fn read(root: &Path, cgroup_path: &str) -> Result<CgroupStats, CgroupStatsError> {
    let memory = controller_dir(root, cgroup_path, "memory");
    let pids = controller_dir(root, cgroup_path, "pids");
    // The container's cgroup exists in the memory or pids hierarchy while it runs.
    if ![&memory, &pids]
        .iter()
        .any(|d| d.as_ref().is_some_and(|d| d.path().is_dir()))
    {
        return Err(CgroupStatsError::Missing {
            path: cgroup_path.to_owned(),
        });
    }
    Ok(CgroupStats {
        cpu: read_cpu(
            controller_dir(root, cgroup_path, "cpu"),
            controller_dir(root, cgroup_path, "cpuacct"),
        )?,
        memory: memory.map(read_memory).transpose()?.unwrap_or_default(),
        pids: pids.map(read_pids).transpose()?.unwrap_or_default(),
        blkio: controller_dir(root, cgroup_path, "blkio")
            .map(read_blkio)
            .transpose()?
            .unwrap_or_default(),
    })
}

/// A file's contents; `None` if it does not exist (controller or feature not offered).
fn read_opt(dir: &Path, name: &str) -> Result<Option<String>, CgroupStatsError> {
    let file = dir.join(name);
    match std::fs::read_to_string(&file) {
        Ok(s) => Ok(Some(s)),
        // ENODEV/ENOTSUP: a file present but not supported by this kernel's controller.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::ENODEV | libc::EOPNOTSUPP)) =>
        {
            Ok(None)
        }
        Err(source) => Err(CgroupStatsError::Read { file, source }),
    }
}

/// A single-number file; `"max"` reads as `None`, so does a missing file.
fn read_u64(dir: &Path, name: &str) -> Result<Option<u64>, CgroupStatsError> {
    Ok(read_opt(dir, name)?.and_then(|s| s.trim().parse().ok()))
}

/// `key value` lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`).
pub fn parse_flat_keyed(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

fn flat_keyed(dir: &Path, name: &str) -> Result<BTreeMap<String, u64>, CgroupStatsError> {
    Ok(read_opt(dir, name)?
        .map(|s| parse_flat_keyed(&s))
        .unwrap_or_default())
}

fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        // USER_HZ is 100 on every Linux architecture Docker supports.
        _ => 100,
    }
}

fn read_cpu(
    cpu: Option<ControllerDir>,
    cpuacct: Option<ControllerDir>,
) -> Result<CpuStats, CgroupStatsError> {
    let mut out = CpuStats::default();
    match (&cpu, &cpuacct) {
        (Some(ControllerDir::V2(dir)), _) => {
            // v2: cpu.stat is always there (core accounting), in microseconds.
            let s = flat_keyed(dir, "cpu.stat")?;
            let us = |k: &str| s.get(k).copied().unwrap_or(0).saturating_mul(1000);
            out.total_ns = us("usage_usec");
            out.user_ns = us("user_usec");
            out.system_ns = us("system_usec");
            out.periods = s.get("nr_periods").copied().unwrap_or(0);
            out.throttled_periods = s.get("nr_throttled").copied().unwrap_or(0);
            out.throttled_ns = us("throttled_usec");
        }
        _ => {
            if let Some(ControllerDir::V1(dir)) = &cpuacct {
                out.total_ns = read_u64(dir, "cpuacct.usage")?.unwrap_or(0);
                out.percpu_ns = read_opt(dir, "cpuacct.usage_percpu")?.map(|s| {
                    s.split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                });
                // cpuacct.stat counts clock ticks.
                let s = flat_keyed(dir, "cpuacct.stat")?;
                let ns_per_tick = 1_000_000_000 / clock_ticks();
                out.user_ns = s.get("user").copied().unwrap_or(0) * ns_per_tick;
                out.system_ns = s.get("system").copied().unwrap_or(0) * ns_per_tick;
            }
            if let Some(ControllerDir::V1(dir)) = &cpu {
                let s = flat_keyed(dir, "cpu.stat")?;
                out.periods = s.get("nr_periods").copied().unwrap_or(0);
                out.throttled_periods = s.get("nr_throttled").copied().unwrap_or(0);
                out.throttled_ns = s.get("throttled_time").copied().unwrap_or(0);
            }
        }
    }
    Ok(out)
}

fn read_memory(dir: ControllerDir) -> Result<MemoryStats, CgroupStatsError> {
    Ok(match dir {
        ControllerDir::V1(dir) => MemoryStats {
            usage: read_u64(&dir, "memory.usage_in_bytes")?.unwrap_or(0),
            max_usage: read_u64(&dir, "memory.max_usage_in_bytes")?,
            // v1 says "unlimited" with a huge page-aligned number; callers clamp it to
            // the host's memory as Docker does.
            limit: read_u64(&dir, "memory.limit_in_bytes")?,
            failcnt: read_u64(&dir, "memory.failcnt")?,
            stat: flat_keyed(&dir, "memory.stat")?,
        },
        ControllerDir::V2(dir) => MemoryStats {
            usage: read_u64(&dir, "memory.current")?.unwrap_or(0),
            max_usage: None,
            limit: read_u64(&dir, "memory.max")?,
            failcnt: None,
            stat: flat_keyed(&dir, "memory.stat")?,
        },
    })
}

fn read_pids(dir: ControllerDir) -> Result<PidsStats, CgroupStatsError> {
    let dir = dir.path();
    Ok(PidsStats {
        current: read_u64(dir, "pids.current")?.unwrap_or(0),
        limit: read_u64(dir, "pids.max")?.unwrap_or(0),
    })
}

fn major_minor(dev: &str) -> Option<(u64, u64)> {
    let (ma, mi) = dev.split_once(':')?;
    Some((ma.parse().ok()?, mi.parse().ok()?))
}

/// v1 `blkio.*_recursive`: `8:0 Read 4096` lines and a `Total N` line (dropped).
pub fn parse_blkio_v1(s: &str) -> Vec<BlkioEntry> {
    s.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (major, minor) = major_minor(f.next()?)?;
            let op = f.next()?.to_owned();
            let value = f.next()?.parse().ok()?;
            Some(BlkioEntry {
                major,
                minor,
                op,
                value,
            })
        })
        .collect()
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 ...` → Docker's `read`/`write` byte entries.
pub fn parse_io_stat_v2(s: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for l in s.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(major_minor) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let op = match k {
                "rbytes" => "read",
                "wbytes" => "write",
                _ => continue,
            };
            if let Ok(value) = v.parse() {
                out.push(BlkioEntry {
                    major,
                    minor,
                    op: op.to_owned(),
                    value,
                });
            }
        }
    }
    out
}

fn read_blkio(dir: ControllerDir) -> Result<BlkioStats, CgroupStatsError> {
    Ok(match dir {
        ControllerDir::V1(dir) => {
            // The CFQ/BFQ files are empty or absent on modern kernels; the throttle
            // files count every request (what Docker reads when the others are empty).
            let pick = |names: [&str; 2]| -> Result<Vec<BlkioEntry>, CgroupStatsError> {
                for n in names {
                    let e = read_opt(&dir, n)?
                        .map(|s| parse_blkio_v1(&s))
                        .unwrap_or_default();
                    if !e.is_empty() {
                        return Ok(e);
                    }
                }
                Ok(Vec::new())
            };
            BlkioStats {
                service_bytes: pick([
                    "blkio.io_service_bytes_recursive",
                    "blkio.throttle.io_service_bytes_recursive",
                ])?,
                serviced: Some(pick([
                    "blkio.io_serviced_recursive",
                    "blkio.throttle.io_serviced_recursive",
                ])?),
            }
        }
        ControllerDir::V2(dir) => BlkioStats {
            service_bytes: read_opt(&dir, "io.stat")?
                .map(|s| parse_io_stat_v2(&s))
                .unwrap_or_default(),
            serviced: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, data: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, data).expect("write");
    }

    const CG: &str = "/arca/abc";

    #[test]
    fn reads_cgroup_v1_counters() {
        let t = tempfile::tempdir().expect("tmp");
        let r = t.path();
        write(
            r,
            "memory/arca/abc/memory.stat",
            "cache 4096\nrss 49152\ninactive_file 0\ntotal_inactive_file 8192\n",
        );
        write(r, "memory/arca/abc/memory.usage_in_bytes", "602112\n");
        write(r, "memory/arca/abc/memory.max_usage_in_bytes", "700000\n");
        write(r, "memory/arca/abc/memory.limit_in_bytes", "67108864\n");
        write(r, "memory/arca/abc/memory.failcnt", "3\n");
        write(r, "cpuacct/arca/abc/cpuacct.usage", "11244437\n");
        write(
            r,
            "cpuacct/arca/abc/cpuacct.usage_percpu",
            "7244041 4000396 \n",
        );
        write(r, "cpuacct/arca/abc/cpuacct.stat", "user 2\nsystem 1\n");
        write(
            r,
            "cpu/arca/abc/cpu.stat",
            "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\nnr_bursts 0\n",
        );
        write(r, "pids/arca/abc/pids.current", "3\n");
        write(r, "pids/arca/abc/pids.max", "max\n");
        write(
            r,
            "blkio/arca/abc/blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n",
        );
        write(
            r,
            "blkio/arca/abc/blkio.io_service_bytes_recursive",
            "Total 0\n",
        );
        write(
            r,
            "blkio/arca/abc/blkio.throttle.io_serviced_recursive",
            "8:0 Read 1\nTotal 1\n",
        );

        let s = read(r, CG).expect("stats");
        let ticks_ns = 1_000_000_000 / clock_ticks();
        assert_eq!(s.cpu.total_ns, 11244437);
        assert_eq!(s.cpu.percpu_ns, Some(vec![7244041, 4000396]));
        assert_eq!((s.cpu.user_ns, s.cpu.system_ns), (2 * ticks_ns, ticks_ns));
        assert_eq!(
            (s.cpu.periods, s.cpu.throttled_periods, s.cpu.throttled_ns),
            (10, 2, 5000)
        );
        assert_eq!(s.memory.usage, 602112);
        assert_eq!(s.memory.max_usage, Some(700000));
        assert_eq!(s.memory.limit, Some(67108864));
        assert_eq!(s.memory.failcnt, Some(3));
        assert_eq!(s.memory.stat["total_inactive_file"], 8192);
        assert_eq!(
            s.pids,
            PidsStats {
                current: 3,
                limit: 0
            }
        );
        assert_eq!(s.blkio.service_bytes.len(), 3);
        assert_eq!(s.blkio.service_bytes[1].op, "Write");
        assert_eq!(s.blkio.service_bytes[1].value, 8192);
        assert_eq!(s.blkio.serviced.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn reads_cgroup_v2_counters() {
        let t = tempfile::tempdir().expect("tmp");
        let r = t.path();
        write(r, "cgroup.controllers", "cpuset cpu io memory pids\n");
        write(
            r,
            "arca/abc/cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n",
        );
        write(r, "arca/abc/memory.current", "1048576\n");
        write(r, "arca/abc/memory.max", "max\n");
        write(
            r,
            "arca/abc/memory.stat",
            "anon 4096\nfile 8192\ninactive_file 4096\n",
        );
        write(r, "arca/abc/pids.current", "2\n");
        write(r, "arca/abc/pids.max", "100\n");
        write(
            r,
            "arca/abc/io.stat",
            "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n",
        );

        let s = read(r, CG).expect("stats");
        assert_eq!(
            (s.cpu.total_ns, s.cpu.user_ns, s.cpu.system_ns),
            (1_500_000, 1_000_000, 500_000)
        );
        assert_eq!(s.cpu.percpu_ns, None);
        assert_eq!((s.cpu.periods, s.cpu.throttled_ns), (4, 7000));
        assert_eq!(s.memory.usage, 1048576);
        assert_eq!(s.memory.limit, None, "max is unlimited");
        assert_eq!((s.memory.max_usage, s.memory.failcnt), (None, None));
        assert_eq!(s.memory.stat["inactive_file"], 4096);
        assert_eq!(
            s.pids,
            PidsStats {
                current: 2,
                limit: 100
            }
        );
        let ops: Vec<_> = s
            .blkio
            .service_bytes
            .iter()
            .map(|e| (e.op.as_str(), e.value))
            .collect();
        assert_eq!(ops, [("read", 512), ("write", 1024)]);
        assert_eq!(s.blkio.serviced, None);
    }

    #[test]
    fn hybrid_reads_controllers_from_their_own_hierarchy() {
        // v1 for cpu/cpuacct, memory only on the unified mount.
        let t = tempfile::tempdir().expect("tmp");
        let r = t.path();
        write(r, "unified/cgroup.controllers", "memory\n");
        write(r, "unified/arca/abc/memory.current", "42\n");
        write(r, "unified/arca/abc/memory.max", "1000\n");
        write(r, "cpuacct/arca/abc/cpuacct.usage", "9\n");
        let s = read(r, CG).expect("stats");
        assert_eq!(s.memory.usage, 42);
        assert_eq!(s.memory.limit, Some(1000));
        assert_eq!(s.cpu.total_ns, 9);
    }

    #[test]
    fn missing_cgroup_is_an_error() {
        let t = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(t.path().join("memory")).expect("mk");
        assert!(matches!(
            read(t.path(), CG),
            Err(CgroupStatsError::Missing { .. })
        ));
    }
}
