//! `arca-shim` end to end for the run options that shape the container's spec: shared and
//! joined namespaces (`--pid/--ipc/--uts`), `--device`, `--shm-size`, `--init`,
//! `--group-add`, `--ulimit` and `--userns` remapping. Each test checks from inside the
//! container (and its execs) and leaves nothing behind (see `shim_harness`).
//!
//! Runs as root, as every privileged test here does.

mod shim_harness;

use std::path::Path;

use arca_api::shim::{DeviceConfig, IdMap, IdMaps, NamespaceMode, Rlimit};
use shim_harness::*;

/// Runs `args` in a container configured by `set`; stdout, stderr and exit code.
fn run_with(
    args: &[&str],
    set: impl FnOnce(&Fixture, &mut arca_api::shim::ShimConfig),
) -> (String, String, i32) {
    let f = Fixture::new();
    let mut cfg = f.config(args);
    set(&f, &mut cfg);
    let (out, err, status) = run(&cfg);
    (out, err, status.exit_code)
}

/// The error a shim reports for `cfg` instead of creating the container.
fn creation_error(cfg: &arca_api::shim::ShimConfig) -> String {
    let shim = spawn(cfg);
    let error = shim.ready.error.clone();
    assert!(shim.ready.pid.is_none(), "{:?}", shim.ready);
    shim.finish();
    error.expect("an error")
}

#[test]
fn pid_and_uts_host_show_host_pids_and_the_hosts_hostname() {
    let f = Fixture::new();
    let mut cfg = f.config(&["sh", "-c", "echo $$; cat /proc/sys/kernel/hostname"]);
    cfg.namespaces.pid = NamespaceMode::Host;
    cfg.namespaces.uts = NamespaceMode::Host;
    let shim = spawn(&cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let pid = shim.ready.pid.expect("pid");
    let (reply, attach) = shim.request(&arca_api::shim::Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    assert!(
        matches!(reply, arca_api::shim::Reply::Ok { .. }),
        "{reply:?}"
    );
    let wait = shim.wait_conn();
    shim.start();
    let (out, err) = demux(&read_to_end(attach));
    assert_eq!(exited(wait).exit_code, 0, "{err}");
    shim.finish();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(out, format!("{pid}\n{host}"));

    // The default: PID 1 in a namespace of its own, the configured hostname.
    let (out, _, code) = run_with(
        &["sh", "-c", "echo $$; cat /proc/sys/kernel/hostname"],
        |_, _| {},
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("1\n"), "{out}");
    assert_ne!(out.lines().nth(1), host.lines().next());
}

#[test]
fn ipc_path_joins_another_containers_namespace() {
    let first = Fixture::new();
    let (a, wait_a) = running(&first.config(&["sleep", "60"]));
    let a_pid = a.ready.pid.expect("pid");
    let a_ipc = std::fs::read_link(format!("/proc/{a_pid}/ns/ipc")).expect("ns");
    let (out, err, code) = run_with(
        &[
            "sh",
            "-c",
            "busybox readlink /proc/self/ns/ipc; busybox readlink /proc/self/ns/uts",
        ],
        |_, cfg| {
            cfg.namespaces.ipc = NamespaceMode::Path {
                path: format!("/proc/{a_pid}/ns/ipc").into(),
            };
        },
    );
    a.stop(wait_a);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], a_ipc.display().to_string());
    let own_uts = std::fs::read_link("/proc/self/ns/uts").expect("uts");
    assert_ne!(lines[1], own_uts.display().to_string());
}

fn shm_line(out: &str) -> &str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/dev/shm"))
        .unwrap_or_else(|| panic!("no /dev/shm in {out}"))
}

#[test]
fn shm_size_sets_the_dev_shm_tmpfs_size() {
    let (out, _, code) = run_with(&["cat", "/proc/mounts"], |_, _| {});
    assert_eq!(code, 0);
    assert!(shm_line(&out).contains("size=65536k"), "{out}");
    let (out, _, code) = run_with(&["cat", "/proc/mounts"], |_, cfg| {
        cfg.shm_size = Some(3 << 20);
    });
    assert_eq!(code, 0);
    assert!(shm_line(&out).contains("size=3072k"), "{out}");
}

fn ulimit(name: &str, soft: u64, hard: u64) -> Rlimit {
    Rlimit {
        name: name.into(),
        soft,
        hard,
    }
}

fn own_hard_limit(flag: &str) -> String {
    let out = std::process::Command::new("/bin/busybox")
        .args(["sh", "-c", &format!("ulimit -H{flag}")])
        .output()
        .expect("busybox ulimit");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn ulimits_apply_to_the_container_and_its_execs_and_others_are_inherited() {
    let f = Fixture::new();
    let mut cfg = f.config(&["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -Hu; sleep 60"]);
    cfg.process.rlimits = vec![ulimit("nofile", 1024, 2048)];
    let shim = spawn(&cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let (_, attach) = shim.request(&arca_api::shim::Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    let wait = shim.wait_conn();
    shim.start();
    let (out, err, code) = shim.exec_output(
        "e1",
        exec_process(&["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -Hu"]),
    );
    let nproc = own_hard_limit("u");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("1024\n2048\n{nproc}\n"));
    shim.stop(wait);
    let (out, _) = demux(&read_to_end(attach));
    assert_eq!(out, format!("1024\n2048\n{nproc}\n"));
}

#[test]
fn ulimit_above_the_hard_limit_is_clamped_and_unknown_names_fail() {
    let hard = own_hard_limit("n");
    let want: u64 = hard
        .parse()
        .expect("this test runs with a finite nofile limit");
    let (out, err, code) = run_with(&["sh", "-c", "ulimit -n; ulimit -Hn"], |_, cfg| {
        cfg.process.rlimits = vec![ulimit("nofile", want + 1, want + 1000)];
    });
    let may_raise = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .and_then(|c| u64::from_str_radix(c.trim(), 16).ok())
        .is_some_and(|c| c & (1 << 24) != 0);
    assert_eq!(code, 0, "{err}");
    if may_raise {
        assert_eq!(out, format!("{}\n{}\n", want + 1, want + 1000));
    } else {
        assert_eq!(out, format!("{want}\n{want}\n"));
    }

    let f = Fixture::new();
    let mut cfg = f.config(&["true"]);
    cfg.process.rlimits = vec![ulimit("files", 1, 1)];
    let e = creation_error(&cfg);
    assert!(e.contains("unknown ulimit name \"files\""), "{e}");
}

#[test]
fn group_add_adds_groups_to_the_container_and_its_execs() {
    let f = Fixture::new();
    std::fs::write(
        f.path("lower/etc/group"),
        "root:x:0:\nwheel:x:10:root\naudio:x:29:\n",
    )
    .expect("group");
    let mut cfg = f.config(&["sh", "-c", "id; sleep 60"]);
    cfg.process.group_add = vec!["audio".into(), "4242".into()];
    let shim = spawn(&cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let (_, attach) = shim.request(&arca_api::shim::Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    let wait = shim.wait_conn();
    shim.start();
    let want = "uid=0(root) gid=0(root) groups=0(root),10(wheel),29(audio),4242\n";
    let (out, err, code) = shim.exec_output("e1", exec_process(&["id"]));
    assert_eq!((out.as_str(), code), (want, 0), "{err}");
    // An exec as another user gets the added groups too (Docker's getUser adds them).
    let mut as_nobody = exec_process(&["id"]);
    as_nobody.user = "1000:1000".into();
    let (out, err, _) = shim.exec_output("e2", as_nobody);
    assert_eq!(
        out, "uid=1000 gid=1000 groups=29(audio),1000,4242\n",
        "{err}"
    );
    shim.stop(wait);
    assert_eq!(demux(&read_to_end(attach)).0, want);

    let mut cfg = f.config(&["id"]);
    cfg.process.group_add = vec!["foo".into()];
    let e = creation_error(&cfg);
    assert!(e.contains("unable to find group foo"), "{e}");
}

fn device(host: &str, container: &str, permissions: &str) -> DeviceConfig {
    DeviceConfig {
        host_path: host.into(),
        container_path: container.into(),
        permissions: permissions.into(),
    }
}

#[test]
fn devices_appear_under_their_container_path() {
    let (out, err, code) = run_with(
        &[
            "sh",
            "-c",
            "busybox dd if=/dev/myzero bs=5 count=1 2>/dev/null | busybox od -An -tx1; busybox stat -c '%F %t:%T' /dev/myzero",
        ],
        |_, cfg| cfg.devices = vec![device("/dev/zero", "/dev/myzero", "rw")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, " 00 00 00 00 00\ncharacter special file 1:5\n");

    let f = Fixture::new();
    let mut cfg = f.config(&["true"]);
    cfg.devices = vec![device("/etc/passwd", "/dev/passwd", "rwm")];
    let e = creation_error(&cfg);
    assert!(e.contains("\"/etc/passwd\" is not a device node"), "{e}");
    cfg.devices = vec![device("/dev/no-such-arca-device", "/dev/x", "rwm")];
    let e = creation_error(&cfg);
    assert!(e.contains("error gathering device information"), "{e}");
}

#[test]
fn device_permissions_become_a_cgroup_rule() {
    // A device outside Docker's default allow-list (10:229), opened without side effects.
    if !Path::new("/dev/fuse").exists() || !Path::new("/sys/fs/cgroup/devices").is_dir() {
        eprintln!("skipped: needs /dev/fuse and the v1 devices cgroup");
        return;
    }
    let script = "exec 3</dev/myfuse && echo read; \
                  (exec 4>/dev/myfuse) 2>/dev/null || echo no-write; \
                  (exec 5>/dev/fuse2) 2>/dev/null || echo no-write-2";
    let f = Fixture::new();
    let mut cfg = f.config(&[
        "sh",
        "-c",
        &format!("busybox mknod /dev/fuse2 c 10 229 && echo mknod; {script}; sleep 60"),
    ]);
    cfg.devices = vec![device("/dev/fuse", "/dev/myfuse", "r")];
    let shim = spawn(&cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let list = std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/devices")
            .join(cfg.cgroup_path.trim_start_matches('/'))
            .join("devices.list"),
    )
    .expect("devices.list");
    assert!(list.lines().any(|l| l == "c 10:229 r"), "{list}");
    let (_, attach) = shim.request(&arca_api::shim::Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    let wait = shim.wait_conn();
    shim.start();
    // The exec runs once the init has made /dev/fuse2 (its output says so).
    let (out, err, _) = shim.exec_output(
        "e1",
        exec_process(&["sh", "-c", &format!("busybox sleep 0.5; {script}")]),
    );
    shim.stop(wait);
    let (init_out, _) = demux(&read_to_end(attach));
    // The cgroup rule, not the node, decides: without `m` a node for the device can still
    // be made (Docker's default rules allow mknod of any device), but not opened for
    // writing under either name.
    assert_eq!(init_out, "mknod\nread\nno-write\nno-write-2\n");
    assert_eq!(out, "read\nno-write\nno-write-2\n", "{err}");
}

/// `--init` with `bin`: PID 1 is the init, the command its child, the exit code passes.
fn check_init(bin: &Path, readonly: bool) {
    let (out, err, code) = run_with(
        &["sh", "-c", "busybox ps -o pid,ppid,comm,args; exit 7"],
        |_, cfg| {
            cfg.init = Some(bin.to_path_buf());
            cfg.rootfs.readonly = readonly;
        },
    );
    assert_eq!(code, 7, "{out}{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let init = rows
        .iter()
        .find(|r| r[0] == "1")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(init[2], "docker-init", "{out}");
    assert_eq!(init[3..5], ["/sbin/docker-init", "--"], "{out}");
    let sh = rows
        .iter()
        .find(|r| r[2] == "sh")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(sh[1], "1", "{out}");
}

#[test]
fn init_runs_as_pid_1_with_the_command_as_its_child() {
    check_init(Path::new(env!("CARGO_BIN_EXE_arca-init")), false);
    check_init(Path::new(env!("CARGO_BIN_EXE_arca-init")), true);
}

#[test]
fn tini_static_works_as_the_init_too() {
    // Docker's own docker-init is tini: the mount and argv contract must suit it as well.
    let tini = Path::new("/usr/bin/tini-static");
    assert!(
        tini.exists(),
        "/usr/bin/tini-static is missing: apt-get install tini"
    );
    check_init(tini, true);
}

fn remap(host: u32) -> IdMaps {
    let map = vec![IdMap {
        container_id: 0,
        host_id: host,
        size: 65_536,
    }];
    IdMaps {
        uid: map.clone(),
        gid: map,
    }
}

/// `/proc/<pid>/status` once the process runs `name` (an exec has exec'd).
fn poll_status(pid: i32, name: &str) -> String {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.starts_with(&format!("Name:\t{name}\n")) {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn owner(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

#[test]
fn userns_runs_as_mapped_root_with_a_writable_rootfs_and_untouched_layers() {
    let f = Fixture::new();
    let mut cfg = f.config(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map; id; echo hi > /new && mkdir -p /newdir/sub && \
         echo 'x:x:5:5::/:/bin/sh' >> /etc/passwd && echo written; \
         busybox stat -c '%u:%g %n' / /bin/busybox /new /made; sleep 60",
    ]);
    cfg.process.cwd = "/made".into();
    cfg.namespaces.userns = Some(remap(100_000));
    let shim = spawn(&cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let (_, attach) = shim.request(&arca_api::shim::Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    let wait = shim.wait_conn();
    shim.start();
    let (exec_out, exec_err, code) = shim.exec_output(
        "e1",
        exec_process(&["sh", "-c", "id; cat /proc/self/gid_map; touch /from-exec"]),
    );
    assert_eq!(code, 0, "{exec_err}");
    // Seen from the host, an exec is the mapped user, never host root.
    let mut as_user = exec_process(&["sleep", "30"]);
    as_user.user = "1000:1000".into();
    let (reply, _stream) = shim.exec("e2", as_user, false);
    let arca_api::shim::Reply::Ok {
        pid: Some(exec_pid),
    } = reply
    else {
        panic!("{reply:?}")
    };
    let status = poll_status(exec_pid, "sleep");
    assert!(
        status.contains("\nUid:\t101000\t101000\t101000\t101000\n"),
        "{status}"
    );
    assert!(
        status.contains("\nGid:\t101000\t101000\t101000\t101000\n"),
        "{status}"
    );
    assert!(status.contains("\nGroups:\t101000 \n"), "{status}");
    assert!(status.contains("\nSeccomp:\t2\n"), "{status}");
    let pid = shim.ready.pid.expect("pid");
    let host_uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).expect("uid_map");
    shim.stop(wait);
    let (out, err) = demux(&read_to_end(attach));
    assert_eq!(
        out.split_whitespace().take(3).collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{out}{err}"
    );
    assert_eq!(host_uid_map.split_whitespace().nth(1), Some("100000"));
    assert!(
        out.contains("uid=0(root) gid=0(root) groups=0(root),10(wheel)\nwritten\n"),
        "{out}{err}"
    );
    for path in ["/", "/bin/busybox", "/new", "/made"] {
        assert!(out.contains(&format!("0:0 {path}\n")), "{path}: {out}");
    }
    assert!(
        exec_out.starts_with("uid=0(root) gid=0(root)"),
        "{exec_out}"
    );
    assert!(exec_out.contains("100000"), "{exec_out}");

    // In the upper directory: what the container wrote, owned by the mapped host IDs.
    for p in ["new", "newdir/sub", "etc/passwd", "made", "from-exec"] {
        assert_eq!(owner(&f.path("upper").join(p)), (100_000, 100_000), "{p}");
    }
    assert_eq!(owner(&f.path("upper")), (100_000, 100_000));
    // The shared layer is untouched.
    assert_eq!(owner(&f.path("lower/bin/busybox")), (0, 0));
    assert_eq!(owner(&f.path("lower/etc/passwd")), (0, 0));
    let passwd = std::fs::read_to_string(f.path("lower/etc/passwd")).expect("passwd");
    assert!(!passwd.contains("x:x:5"));
    // No idmapped layer mount is left behind.
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    assert!(
        !mounts.contains(&f.path("bundle").display().to_string()),
        "{mounts}"
    );
}

#[test]
fn userns_without_a_mapped_root_is_refused() {
    let f = Fixture::new();
    let mut cfg = f.config(&["true"]);
    let mut maps = remap(100_000);
    maps.uid[0].container_id = 1;
    cfg.namespaces.userns = Some(maps);
    let e = creation_error(&cfg);
    assert!(e.contains("must map the container's root"), "{e}");
}

#[test]
fn userns_with_the_hosts_network_binds_sys_from_the_host() {
    // sysfs can only be mounted for a network namespace the user namespace owns.
    let (out, err, code) = run_with(
        &["sh", "-c", "cat /sys/class/net/lo/operstate; id -u"],
        |_, cfg| {
            cfg.namespaces.userns = Some(remap(200_000));
            cfg.network = arca_api::shim::NetworkConfig::Host;
        },
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "unknown\n0\n");
}
