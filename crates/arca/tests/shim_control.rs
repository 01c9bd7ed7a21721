//! `arca-shim` control requests: pause, resume, update, and kill of a paused container,
//! checked against the container's cgroup files (v1 on legacy and hybrid hosts, v2 on
//! unified ones).

mod shim_harness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arca_api::shim::{Reply, Request, ResourcesConfig, ShimConfig};
use shim_harness::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// A file of the container's cgroup: `v1` in controller `ctrl`'s hierarchy, else `v2` in
/// the unified tree.
fn cgroup_file(cfg: &ShimConfig, ctrl: &str, v1: &str, v2: &str) -> PathBuf {
    let rel = cfg.cgroup_path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    if root.join(ctrl).is_dir() {
        root.join(ctrl).join(rel).join(v1)
    } else {
        root.join(rel).join(v2)
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

fn ok(reply: Reply) {
    assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
}

fn update(shim: &Shim, resources: ResourcesConfig) -> Reply {
    shim.request(&Request::Update { resources }).0
}

/// The counter the container writes to `/tmp/count` (read from the overlay's upper layer).
fn counter(fx: &Fixture) -> Option<u64> {
    std::fs::read_to_string(fx.path("upper/tmp/count"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Renamed into place so that a freeze never leaves a half-written file.
const COUNTER_LOOP: &str =
    "i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; done";

fn frozen(cfg: &ShimConfig) -> bool {
    let state = cgroup_file(cfg, "freezer", "freezer.state", "cgroup.freeze");
    matches!(read(&state).as_str(), "FROZEN" | "1")
}

#[test]
fn pause_freezes_the_container_and_resume_lets_it_continue() {
    let fx = Fixture::new();
    std::os::unix::fs::symlink("busybox", fx.path("lower/bin/mv")).expect("symlink");
    let cfg = fx.config(&["sh", "-c", COUNTER_LOOP]);
    let (shim, wait) = running(&cfg);
    poll("the counter to start", || counter(&fx).filter(|n| *n >= 3));

    ok(shim.request(&Request::Pause).0);
    assert!(frozen(&cfg), "the cgroup is not frozen");
    let at_pause = counter(&fx).expect("counter");
    // Frozen means no progress at all: watch it for a while.
    let watch_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < watch_until {
        assert_eq!(
            counter(&fx),
            Some(at_pause),
            "the counter advanced while paused"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        error_message(shim.request(&Request::Pause).0),
        "container is already paused"
    );
    let (reply, _) = shim.exec("e1", exec_process(&["true"]), false);
    assert_eq!(error_message(reply), "container is paused");

    ok(shim.request(&Request::Resume).0);
    assert!(!frozen(&cfg), "the cgroup is still frozen");
    poll("the counter to advance", || {
        counter(&fx).filter(|n| *n > at_pause)
    });
    assert_eq!(
        error_message(shim.request(&Request::Resume).0),
        "container is not paused"
    );
    // The exec refused while paused works now.
    let (_, _, code) = shim.exec_output("e2", exec_process(&["true"]));
    assert_eq!(code, 0);
    shim.stop(wait);
}

#[test]
fn pause_and_resume_need_a_running_container() {
    let fx = Fixture::new();
    let cfg = fx.config(&["sleep", "100"]);
    let shim = spawn(&cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let wait = shim.wait_conn();
    assert_eq!(
        error_message(shim.request(&Request::Pause).0),
        "container is not running"
    );
    assert_eq!(
        error_message(shim.request(&Request::Resume).0),
        "container is not paused"
    );
    shim.start();
    shim.stop(wait);
}

#[test]
fn sigkill_ends_a_paused_container_and_the_shim_cleans_up() {
    let fx = Fixture::new();
    let cfg = fx.config(&["sh", "-c", "sleep 100 & sleep 100"]);
    let (shim, wait) = running(&cfg);
    ok(shim.request(&Request::Pause).0);
    assert!(frozen(&cfg));
    // stop() sends SIGKILL and expects 137, then checks that nothing is left behind.
    shim.stop(wait);
}

#[test]
fn other_signals_stay_pending_until_resume() {
    let fx = Fixture::new();
    let script = "trap 'exit 7' TERM; touch /tmp/ready; while :; do sleep 0.05; done";
    let cfg = fx.config(&["sh", "-c", script]);
    let (shim, wait) = running(&cfg);
    poll("the trap", || {
        fx.path("upper/tmp/ready").exists().then_some(())
    });
    ok(shim.request(&Request::Pause).0);
    ok(shim.request(&Request::Kill { signal: 15 }).0);
    // Still paused, still there: the exit comes only after resume.
    wait.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut probe = [0u8; 1];
    let early = std::io::Read::read(&mut &wait, &mut probe);
    assert!(
        early.is_err(),
        "the container exited while paused: {early:?}"
    );
    assert!(frozen(&cfg));
    wait.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    ok(shim.request(&Request::Resume).0);
    assert_eq!(exited(wait).exit_code, 7);
    shim.finish();
}

#[test]
fn update_raises_and_lowers_memory_pids_and_cpu_limits() {
    let fx = Fixture::new();
    let mut cfg = fx.config(&["sleep", "100"]);
    cfg.resources.memory = Some(64 << 20);
    cfg.resources.pids_limit = Some(100);
    let (shim, wait) = running(&cfg);
    let limit = cgroup_file(&cfg, "memory", "memory.limit_in_bytes", "memory.max");
    let swap = cgroup_file(
        &cfg,
        "memory",
        "memory.memsw.limit_in_bytes",
        "memory.swap.max",
    );
    let pids = cgroup_file(&cfg, "pids", "pids.max", "pids.max");
    assert_eq!(read(&limit), (64u64 << 20).to_string());

    for mib in [256u64, 32] {
        ok(update(
            &shim,
            ResourcesConfig {
                memory: Some((mib << 20) as i64),
                ..Default::default()
            },
        ));
        assert_eq!(read(&limit), (mib << 20).to_string());
        if swap.exists() {
            // As at create: memory without swap allows as much swap as memory.
            let want = if swap.ends_with("memory.swap.max") {
                mib << 20
            } else {
                mib << 21
            };
            assert_eq!(read(&swap), want.to_string());
        }
    }

    for (set, want) in [(20, "20"), (500, "500"), (-1, "max")] {
        ok(update(
            &shim,
            ResourcesConfig {
                pids_limit: Some(set),
                ..Default::default()
            },
        ));
        assert_eq!(read(&pids), want);
    }
    // Only the given limits change.
    assert_eq!(read(&limit), (32u64 << 20).to_string());

    ok(update(
        &shim,
        ResourcesConfig {
            nano_cpus: Some(500_000_000),
            cpu_shares: Some(512),
            ..Default::default()
        },
    ));
    if Path::new("/sys/fs/cgroup/cpu").is_dir() {
        let cpu = |f: &str| read(&cgroup_file(&cfg, "cpu", f, f));
        assert_eq!(cpu("cpu.cfs_quota_us"), "50000");
        assert_eq!(cpu("cpu.cfs_period_us"), "100000");
        assert_eq!(cpu("cpu.shares"), "512");
    } else {
        assert_eq!(
            read(&cgroup_file(&cfg, "cpu", "", "cpu.max")),
            "50000 100000"
        );
    }
    ok(update(
        &shim,
        ResourcesConfig {
            nano_cpus: Some(1_500_000_000),
            ..Default::default()
        },
    ));
    let quota = cgroup_file(&cfg, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(read(&quota).starts_with("150000"), "{}", read(&quota));
    shim.stop(wait);
}

#[test]
fn update_below_current_usage_is_refused_and_changes_nothing() {
    let fx = Fixture::new();
    // The shell keeps a 20 MB string in memory.
    let script = "x=$(printf '%20000000s' ''); touch /tmp/ready; while :; do sleep 1; done";
    let mut cfg = fx.config(&["sh", "-c", script]);
    cfg.resources.memory = Some(256 << 20);
    cfg.resources.pids_limit = Some(100);
    let (shim, wait) = running(&cfg);
    poll("the allocation", || {
        fx.path("upper/tmp/ready").exists().then_some(())
    });
    let limit = cgroup_file(&cfg, "memory", "memory.limit_in_bytes", "memory.max");
    let pids = cgroup_file(&cfg, "pids", "pids.max", "pids.max");

    let reply = update(
        &shim,
        ResourcesConfig {
            memory: Some(4 << 20),
            pids_limit: Some(50),
            ..Default::default()
        },
    );
    let message = error_message(reply);
    assert!(
        message.starts_with("memory limit 4MiB is below the container's current usage "),
        "{message}"
    );
    assert!(message.ends_with("MiB"), "{message}");
    assert_eq!(read(&limit), (256u64 << 20).to_string());
    assert_eq!(read(&pids), "100", "a refused update changed another limit");
    // Still running and still updatable.
    ok(update(
        &shim,
        ResourcesConfig {
            memory: Some(128 << 20),
            ..Default::default()
        },
    ));
    assert_eq!(read(&limit), (128u64 << 20).to_string());
    shim.stop(wait);
}
