//! Docker's resource flags translated to OCI `linux.resources`, plus the few host probes
//! the translation needs (swap accounting) and the OOM-kill counter read at exit.
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
}
