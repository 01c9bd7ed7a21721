//! Docker's resource flags translated to OCI `linux.resources`, at create
//! ([`translate`]) and for `docker update` ([`translate_update`]), plus the few host probes
//! they need (swap accounting, the memory limit and working set of a running container)
//! and the OOM-kill counter read at exit.
//!
//! The translation is pure: libcgroups applies it with its v1 manager on legacy and hybrid
//! hosts and its v2 manager on unified ones. Limits:
//! - `memory_swap` is ignored (with a warning) when the host has no swap accounting,
//!   as Docker does ("Memory limited without swap").
//! - The devices rules are enforced on cgroup v1 only: libcgroups' v2 device filter (eBPF)
//!   is behind a feature arca does not enable.

use std::path::{Path, PathBuf};

use arca_api::shim::ResourcesConfig;
use libcgroups::common::CgroupSetup;
use oci_spec::runtime::{
    LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxPids, LinuxResources,
};

/// CFS period Docker uses for `--cpus`, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The translated resources and what could not be honoured.
#[derive(Debug)]
pub struct Translated {
    pub resources: LinuxResources,
    pub warnings: Vec<String>,
}

/// Translates `res` with Docker semantics. `swap_accounting` says whether the host can
/// limit swap; `privileged` containers may use every device.
pub fn translate(res: &ResourcesConfig, swap_accounting: bool, privileged: bool) -> Translated {
    let mut warnings = Vec::new();
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(device_rules(privileged)));

    if let Some(limit) = res.memory.filter(|m| *m > 0) {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(limit));
        let swap = match res.memory_swap {
            // Docker: no --memory-swap with --memory allows as much swap as memory.
            None | Some(0) => limit.saturating_mul(2),
            Some(s) => s,
        };
        if swap_accounting {
            memory.set_swap(Some(swap));
        } else {
            warnings
                .push("the host has no swap accounting: memory limited without swap".to_owned());
        }
        resources.set_memory(Some(memory));
    } else if res.memory_swap.is_some_and(|s| s != 0) {
        warnings.push("--memory-swap without --memory is ignored".to_owned());
    }

    let quota = res
        .nano_cpus
        .filter(|n| *n > 0)
        .map(|n| (i128::from(n) * i128::from(CPU_PERIOD_US) / 1_000_000_000) as i64);
    let shares = res.cpu_shares.filter(|s| *s > 0);
    if quota.is_some() || shares.is_some() {
        let mut cpu = LinuxCpu::default();
        if let Some(q) = quota {
            // The kernel refuses quotas under 1 ms.
            cpu.set_quota(Some(q.max(1000)));
            cpu.set_period(Some(CPU_PERIOD_US));
        }
        cpu.set_shares(shares);
        resources.set_cpu(Some(cpu));
    }

    if let Some(limit) = res.pids_limit.filter(|p| *p > 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    Translated {
        resources,
        warnings,
    }
}

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_owned()));
    r
}

/// Docker's devices cgroup rules: deny everything first (libcgroups' v1 manager allows all
/// unless told otherwise), then runc's default allow-list.
pub fn device_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{A, B, C};
    if privileged {
        return vec![rule(true, A, None, None, "rwm")];
    }
    vec![
        rule(false, A, None, None, "rwm"),
        // mknod of any device; access still needs a rule below.
        rule(true, C, None, None, "m"),
        rule(true, B, None, None, "m"),
        rule(true, C, Some(1), Some(3), "rwm"),    // /dev/null
        rule(true, C, Some(1), Some(5), "rwm"),    // /dev/zero
        rule(true, C, Some(1), Some(7), "rwm"),    // /dev/full
        rule(true, C, Some(1), Some(8), "rwm"),    // /dev/random
        rule(true, C, Some(1), Some(9), "rwm"),    // /dev/urandom
        rule(true, C, Some(5), Some(0), "rwm"),    // /dev/tty
        rule(true, C, Some(5), Some(1), "rwm"),    // /dev/console
        rule(true, C, Some(5), Some(2), "rwm"),    // /dev/ptmx
        rule(true, C, Some(136), None, "rwm"),     // /dev/pts/*
        rule(true, C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ]
}

/// The rule granting `access` (`r`, `w`, `m`) to a `--device` node, appended after
/// [`device_rules`]. Enforced on cgroup v1 only, like those (see the module docs).
pub fn allow_device(device: &oci_spec::runtime::LinuxDevice, access: &str) -> LinuxDeviceCgroup {
    rule(
        true,
        device.typ(),
        Some(device.major()),
        Some(device.minor()),
        access,
    )
}

/// Whether the host can limit memory+swap for the cgroup setup libcgroups will use.
pub fn swap_accounting_available(root: &Path, setup: &CgroupSetup) -> bool {
    match setup {
        CgroupSetup::Legacy | CgroupSetup::Hybrid => {
            root.join("memory/memory.memsw.limit_in_bytes").exists()
        }
        CgroupSetup::Unified => {
            // The root cgroup has no memory.swap.max; look in this process's own cgroup
            // (or, if that is the root, in any direct child).
            let own = std::fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_owned()))
                });
            if let Some(p) = own.filter(|p| p != "/") {
                return root
                    .join(p.trim_start_matches('/'))
                    .join("memory.swap.max")
                    .exists();
            }
            std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().join("memory.swap.max").exists())
        }
    }
}

/// The file holding the OOM-kill counter for `cgroup_path` on this setup.
fn oom_events_file(root: &Path, setup: &CgroupSetup, cgroup_path: &str) -> PathBuf {
    let rel = cgroup_path.trim_start_matches('/');
    match setup {
        CgroupSetup::Legacy | CgroupSetup::Hybrid => {
            root.join("memory").join(rel).join("memory.oom_control")
        }
        CgroupSetup::Unified => root.join(rel).join("memory.events"),
    }
}

/// Parses the `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// Whether the kernel OOM-killed anything in the container's memory cgroup. Must be read
/// before the cgroup is removed; `false` if the counter cannot be read.
pub fn oom_killed(root: &Path, setup: &CgroupSetup, cgroup_path: &str) -> bool {
    std::fs::read_to_string(oom_events_file(root, setup, cgroup_path))
        .ok()
        .and_then(|t| parse_oom_kill(&t))
        .is_some_and(|n| n > 0)
}

/// Why an update's limits cannot be translated.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("a memory-swap limit needs a memory limit")]
    SwapWithoutMemory,
    #[error(
        "memory+swap limit {} must not be below the memory limit {}",
        human_bytes(*.swap as u64),
        human_bytes(*.memory as u64)
    )]
    SwapBelowMemory { swap: i64, memory: i64 },
}

/// Translates a running container's update (`docker update`): only the limits that are
/// `Some` are written, and no device rules (the container keeps its own). The memory and
/// swap rules are [`translate`]'s (memory without swap → twice as much swap), and also: a
/// negative memory removes the memory (and swap) limit, a pids limit of 0 or less removes
/// the pids limit (Docker's `--pids-limit -1`), and a swap limit alone applies on top of
/// `current_memory`, the memory limit in force (`None`: unlimited).
pub fn translate_update(
    res: &ResourcesConfig,
    swap_accounting: bool,
    current_memory: Option<i64>,
) -> Result<Translated, UpdateError> {
    let mut res = res.clone();
    if res.memory.is_none_or(|m| m == 0) && res.memory_swap.is_some_and(|s| s != 0) {
        res.memory = Some(current_memory.ok_or(UpdateError::SwapWithoutMemory)?);
    }
    if let (Some(memory), Some(swap)) = (res.memory, res.memory_swap)
        && memory > 0
        && swap > 0
        && swap < memory
    {
        return Err(UpdateError::SwapBelowMemory { swap, memory });
    }
    let mut t = translate(&res, swap_accounting, false);
    t.resources.set_devices(None);
    if res.memory.is_some_and(|m| m < 0) {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(-1));
        memory.set_swap(swap_accounting.then_some(-1));
        t.resources.set_memory(Some(memory));
    }
    if res.pids_limit.is_some_and(|p| p <= 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(-1);
        t.resources.set_pids(Some(pids));
    }
    Ok(t)
}

/// A memory controller file of `cgroup_path`: `v1` in the v1 memory hierarchy on legacy
/// and hybrid hosts, `v2` in the unified tree.
fn memory_file(root: &Path, setup: &CgroupSetup, cgroup_path: &str, v1: &str, v2: &str) -> PathBuf {
    let rel = cgroup_path.trim_start_matches('/');
    match setup {
        CgroupSetup::Legacy | CgroupSetup::Hybrid => root.join("memory").join(rel).join(v1),
        CgroupSetup::Unified => root.join(rel).join(v2),
    }
}

/// The memory the container uses that the kernel cannot simply drop: usage minus inactive
/// file cache (the figure `docker stats` shows). `None` if it cannot be read.
pub fn memory_working_set(root: &Path, setup: &CgroupSetup, cgroup_path: &str) -> Option<u64> {
    let read = |v1, v2| std::fs::read_to_string(memory_file(root, setup, cgroup_path, v1, v2));
    let usage: u64 = read("memory.usage_in_bytes", "memory.current")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let key = match setup {
        CgroupSetup::Unified => "inactive_file ",
        CgroupSetup::Legacy | CgroupSetup::Hybrid => "total_inactive_file ",
    };
    let inactive = read("memory.stat", "memory.stat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// The memory limit in force, in bytes; `None` when unlimited or unreadable.
pub fn memory_limit(root: &Path, setup: &CgroupSetup, cgroup_path: &str) -> Option<i64> {
    let path = memory_file(
        root,
        setup,
        cgroup_path,
        "memory.limit_in_bytes",
        "memory.max",
    );
    let text = std::fs::read_to_string(path).ok()?;
    // v1 shows "unlimited" as the page counter's maximum (about 2^63), v2 as "max".
    text.trim().parse::<i64>().ok().filter(|v| *v < 1 << 62)
}

/// Bytes in binary units with up to four significant digits, as Docker prints sizes
/// (`4MiB`, `9.5MiB`, `1.2GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let int_digits = match value {
        v if v >= 1000.0 => 4,
        v if v >= 100.0 => 3,
        v if v >= 10.0 => 2,
        _ => 1,
    };
    let mut s = format!("{value:.*}", 4 - int_digits);
    if s.contains('.') {
        s.truncate(s.trim_end_matches('0').trim_end_matches('.').len());
    }
    format!("{s}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(memory: Option<i64>, swap: Option<i64>) -> ResourcesConfig {
        ResourcesConfig {
            memory,
            memory_swap: swap,
            ..Default::default()
        }
    }

    fn memory(t: &Translated) -> (Option<i64>, Option<i64>) {
        let m = t.resources.memory().expect("memory set");
        (m.limit(), m.swap())
    }

    #[test]
    fn memory_without_swap_flag_gets_twice_as_much_swap() {
        let t = translate(&res(Some(64 << 20), None), true, false);
        assert_eq!(memory(&t), (Some(64 << 20), Some(128 << 20)));
        assert!(t.warnings.is_empty());
    }

    #[test]
    fn explicit_and_unlimited_swap_pass_through() {
        let t = translate(&res(Some(64 << 20), Some(96 << 20)), true, false);
        assert_eq!(memory(&t), (Some(64 << 20), Some(96 << 20)));
        let t = translate(&res(Some(64 << 20), Some(-1)), true, false);
        assert_eq!(memory(&t), (Some(64 << 20), Some(-1)));
    }

    #[test]
    fn swap_is_dropped_with_a_warning_without_swap_accounting() {
        let t = translate(&res(Some(64 << 20), Some(96 << 20)), false, false);
        assert_eq!(memory(&t), (Some(64 << 20), None));
        assert_eq!(t.warnings.len(), 1);
    }

    #[test]
    fn no_limits_means_no_controller_settings() {
        let t = translate(&ResourcesConfig::default(), true, false);
        assert!(t.resources.memory().is_none());
        assert!(t.resources.cpu().is_none());
        assert!(t.resources.pids().is_none());
    }

    #[test]
    fn nano_cpus_become_quota_over_a_100ms_period() {
        let r = ResourcesConfig {
            nano_cpus: Some(1_500_000_000),
            cpu_shares: Some(512),
            pids_limit: Some(100),
            ..Default::default()
        };
        let t = translate(&r, true, false);
        let cpu = t.resources.cpu().as_ref().expect("cpu");
        assert_eq!(cpu.quota(), Some(150_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(t.resources.pids().map(|p| p.limit()), Some(100));
        let tiny = ResourcesConfig {
            nano_cpus: Some(1_000_000),
            ..Default::default()
        };
        let t = translate(&tiny, true, false);
        assert_eq!(
            t.resources.cpu().as_ref().and_then(|c| c.quota()),
            Some(1000)
        );
    }

    #[test]
    fn devices_deny_all_first_then_allow_defaults() {
        let rules = device_rules(false);
        let first = &rules[0];
        assert!(!first.allow());
        assert_eq!(first.access().as_deref(), Some("rwm"));
        let text: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        for want in [
            "c 1:3 rwm",
            "c 1:9 rwm",
            "c 136:* rwm",
            "c *:* m",
            "b *:* m",
            "c 10:200 rwm",
        ] {
            assert!(
                text.iter().any(|t| t == want),
                "{want} missing from {text:?}"
            );
        }
        let privileged = device_rules(true);
        assert_eq!(privileged.len(), 1);
        assert!(privileged[0].allow());
    }

    #[test]
    fn resources_serialize_as_oci_json() {
        let t = translate(&res(Some(1 << 20), None), true, false);
        let v = serde_json::to_value(&t.resources).expect("json");
        assert_eq!(v["memory"]["limit"], 1 << 20);
        assert_eq!(v["memory"]["swap"], 2 << 20);
        assert_eq!(v["devices"][0]["allow"], false);
    }

    #[test]
    fn swap_accounting_probe_reads_a_fake_cgroupfs() {
        let t = tempfile::tempdir().expect("tempdir");
        assert!(!swap_accounting_available(t.path(), &CgroupSetup::Hybrid));
        std::fs::create_dir_all(t.path().join("memory")).expect("mkdir");
        std::fs::write(t.path().join("memory/memory.memsw.limit_in_bytes"), "0").expect("w");
        assert!(swap_accounting_available(t.path(), &CgroupSetup::Legacy));
    }

    #[test]
    fn oom_counter_is_read_from_v1_and_v2_files() {
        let t = tempfile::tempdir().expect("tempdir");
        let v1 = t.path().join("memory/arca/c1");
        std::fs::create_dir_all(&v1).expect("mkdir");
        std::fs::write(
            v1.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .expect("write");
        assert!(oom_killed(t.path(), &CgroupSetup::Hybrid, "/arca/c1"));
        let v2 = t.path().join("arca/c2");
        std::fs::create_dir_all(&v2).expect("mkdir");
        std::fs::write(
            v2.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n",
        )
        .expect("write");
        assert!(!oom_killed(t.path(), &CgroupSetup::Unified, "/arca/c2"));
        assert!(!oom_killed(t.path(), &CgroupSetup::Unified, "/missing"));
    }

    #[test]
    fn update_writes_only_the_given_limits_and_no_device_rules() {
        let r = ResourcesConfig {
            pids_limit: Some(50),
            ..Default::default()
        };
        let t = translate_update(&r, true, None).expect("translate");
        assert!(t.resources.devices().is_none());
        assert!(t.resources.memory().is_none() && t.resources.cpu().is_none());
        assert_eq!(t.resources.pids().map(|p| p.limit()), Some(50));
    }

    #[test]
    fn update_memory_follows_the_create_swap_rule() {
        let t = translate_update(&res(Some(32 << 20), None), true, Some(8 << 20)).expect("t");
        assert_eq!(memory(&t), (Some(32 << 20), Some(64 << 20)));
        let t = translate_update(&res(Some(32 << 20), None), false, None).expect("t");
        assert_eq!(memory(&t), (Some(32 << 20), None));
    }

    #[test]
    fn update_swap_alone_applies_to_the_current_memory_limit() {
        let t = translate_update(&res(None, Some(96 << 20)), true, Some(64 << 20)).expect("t");
        assert_eq!(memory(&t), (Some(64 << 20), Some(96 << 20)));
        assert!(matches!(
            translate_update(&res(None, Some(96 << 20)), true, None),
            Err(UpdateError::SwapWithoutMemory)
        ));
        let e = translate_update(&res(Some(64 << 20), Some(32 << 20)), true, None)
            .expect_err("swap below memory");
        assert_eq!(
            e.to_string(),
            "memory+swap limit 32MiB must not be below the memory limit 64MiB"
        );
    }

    #[test]
    fn update_removes_limits_on_negative_values() {
        let r = ResourcesConfig {
            memory: Some(-1),
            pids_limit: Some(-1),
            ..Default::default()
        };
        let t = translate_update(&r, true, Some(1 << 20)).expect("translate");
        assert_eq!(memory(&t), (Some(-1), Some(-1)));
        assert_eq!(t.resources.pids().map(|p| p.limit()), Some(-1));
    }

    #[test]
    fn memory_probes_read_v1_and_v2_files() {
        let t = tempfile::tempdir().expect("tempdir");
        let v1 = t.path().join("memory/arca/c1");
        std::fs::create_dir_all(&v1).expect("mkdir");
        std::fs::write(v1.join("memory.usage_in_bytes"), "10485760\n").expect("w");
        std::fs::write(
            v1.join("memory.stat"),
            "cache 4096\ninactive_file 1\ntotal_inactive_file 1048576\n",
        )
        .expect("w");
        std::fs::write(v1.join("memory.limit_in_bytes"), "9223372036854771712\n").expect("w");
        let hybrid = CgroupSetup::Hybrid;
        assert_eq!(
            memory_working_set(t.path(), &hybrid, "/arca/c1"),
            Some(9 << 20)
        );
        assert_eq!(memory_limit(t.path(), &hybrid, "/arca/c1"), None);
        std::fs::write(v1.join("memory.limit_in_bytes"), "4194304\n").expect("w");
        assert_eq!(memory_limit(t.path(), &hybrid, "/arca/c1"), Some(4 << 20));

        let v2 = t.path().join("arca/c2");
        std::fs::create_dir_all(&v2).expect("mkdir");
        std::fs::write(v2.join("memory.current"), "3145728\n").expect("w");
        std::fs::write(v2.join("memory.stat"), "anon 1\ninactive_file 1048576\n").expect("w");
        std::fs::write(v2.join("memory.max"), "max\n").expect("w");
        let unified = CgroupSetup::Unified;
        assert_eq!(
            memory_working_set(t.path(), &unified, "/arca/c2"),
            Some(2 << 20)
        );
        assert_eq!(memory_limit(t.path(), &unified, "/arca/c2"), None);
        std::fs::write(v2.join("memory.max"), "8388608\n").expect("w");
        assert_eq!(memory_limit(t.path(), &unified, "/arca/c2"), Some(8 << 20));
        assert_eq!(memory_working_set(t.path(), &unified, "/missing"), None);
    }

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_bytes(4 << 20), "4MiB");
        assert_eq!(human_bytes(9 << 20 | 512 << 10), "9.5MiB");
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.5KiB");
        assert_eq!(human_bytes((1 << 30) + (1 << 28)), "1.25GiB");
        assert_eq!(human_bytes(1023 * 1024 + 1000), "1024KiB");
    }
}
