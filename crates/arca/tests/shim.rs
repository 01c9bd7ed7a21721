//! `arca-shim` end to end, through its protocol only: a busybox rootfs in a temporary
//! directory, one shim per test with its own cgroup parent (`/arca-test-<random>`), and a
//! check that nothing is left behind (mounts, runtime state, socket, cgroups).
//!
//! Runs as root (namespaces, overlayfs, cgroups), as every privileged test here does.

mod shim_harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use arca_api::shim::{ExitStatus, MountConfig, ProcessConfig, Reply, Request, ResourcesConfig};
use shim_harness::*;

#[test]
fn runs_a_command_with_framed_output_a_json_log_and_its_exit_code() {
    let f = Fixture::new();
    let cfg = f.config(&["sh", "-c", "echo hi; echo err >&2; exit 3"]);
    let (out, err, status) = run(&cfg);
    assert_eq!(out, "hi\n");
    assert_eq!(err, "err\n");
    assert_eq!(status.exit_code, 3);
    assert!(!status.oom_killed);
    assert!(status.finished_at.ends_with('Z'), "{}", status.finished_at);

    let on_disk: ExitStatus =
        serde_json::from_slice(&std::fs::read(&cfg.exit_file).expect("exit file")).expect("json");
    assert_eq!(on_disk, status);

    let log = std::fs::read_to_string(&cfg.log_path).expect("json log");
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("log line is json"))
        .collect();
    assert_eq!(entries.len(), 2, "{log}");
    let find = |stream: &str| {
        entries
            .iter()
            .find(|e| e["stream"] == stream)
            .unwrap_or_else(|| panic!("no {stream} entry in {log}"))
    };
    assert_eq!(find("stdout")["log"], "hi\n");
    assert_eq!(find("stderr")["log"], "err\n");
    let time = find("stdout")["time"].as_str().expect("time");
    assert!(
        time.len() > 20 && time.ends_with('Z') && time.contains('T'),
        "{time}"
    );
}

#[test]
fn container_sees_dockers_environment() {
    let f = Fixture::new();
    let mut cfg = f.config(&[
        "sh",
        "-c",
        "id; pwd; echo $HOME; hostname; cat /proc/self/status | grep -E '^(CapEff|Seccomp):'; \
         ls /dev; cat /sys/class/net/lo/operstate",
    ]);
    cfg.process.cwd = "/made/for/you".into();
    let (out, err, status) = run(&cfg);
    assert_eq!(status.exit_code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "uid=0(root) gid=0(root) groups=0(root),10(wheel)");
    assert_eq!(lines[1], "/made/for/you");
    assert_eq!(lines[2], "/root");
    assert_eq!(lines[3], cfg.hostname);
    // Docker's 14 default capabilities, and seccomp in filter mode.
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd", "stdin", "stdout",
        "stderr", "pts", "shm", "mqueue",
    ] {
        assert!(lines.contains(&dev), "/dev/{dev} missing: {out}");
    }
    // --network none: loopback is up.
    assert_eq!(lines.last().copied(), Some("unknown"), "lo state: {out}");
}

#[test]
fn command_lookup_failures_have_dockers_exit_codes() {
    let f = Fixture::new();
    let shim = spawn(&f.config(&["no-such-command"]));
    assert_eq!(shim.ready.pid, None);
    assert_eq!(shim.ready.exit_code, Some(127));
    assert_eq!(
        shim.ready.error.as_deref(),
        Some("exec: \"no-such-command\": executable file not found in $PATH")
    );
    shim.finish();

    let shim = spawn(&f.config(&["/etc/notexec"]));
    assert_eq!(shim.ready.exit_code, Some(126));
    assert_eq!(
        shim.ready.error.as_deref(),
        Some("exec: \"/etc/notexec\": permission denied")
    );
    shim.finish();

    // Found through an absolute symlink that only resolves inside the rootfs.
    let (out, _, status) = run(&f.config(&["env"]));
    assert_eq!(status.exit_code, 0);
    assert!(out.contains("PATH=/usr/bin:/bin"), "{out}");

    let mut cfg = f.config(&["true"]);
    cfg.process.user = "nobody".into();
    let shim = spawn(&cfg);
    assert_eq!(
        shim.ready.error.as_deref(),
        Some("unable to find user nobody: no matching entries in passwd file")
    );
    shim.finish();
}

#[test]
fn limits_reach_the_cgroup_and_kill_9_exits_137() {
    let f = Fixture::new();
    let mut cfg = f.config(&["sleep", "30"]);
    cfg.resources = ResourcesConfig {
        memory: Some(64 << 20),
        memory_swap: None,
        nano_cpus: Some(500_000_000),
        cpu_shares: None,
        pids_limit: Some(42),
    };
    let shim = spawn(&cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let wait = shim.wait_conn();
    shim.start();

    let rel = cfg.cgroup_path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_owned()
    };
    if root.join("memory").is_dir() {
        assert_eq!(
            read(root.join("memory").join(rel).join("memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(read(root.join("pids").join(rel).join("pids.max")), "42");
        assert_eq!(
            read(root.join("cpu").join(rel).join("cpu.cfs_quota_us")),
            "50000"
        );
        let devices = read(root.join("devices").join(rel).join("devices.list"));
        assert!(
            devices.contains("c 1:3 rwm") && !devices.contains("a *:* rwm"),
            "{devices}"
        );
        let memsw = root
            .join("memory")
            .join(rel)
            .join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            assert_eq!(read(memsw), "134217728");
        }
    } else {
        assert_eq!(read(root.join(rel).join("memory.max")), "67108864");
        assert_eq!(read(root.join(rel).join("pids.max")), "42");
        assert_eq!(read(root.join(rel).join("cpu.max")), "50000 100000");
    }

    let (reply, _) = shim.request(&Request::Kill { signal: 9 });
    assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
    let status = exited(wait);
    assert_eq!(status.exit_code, 137);
    shim.finish();
}

#[test]
fn requests_after_exit_and_malformed_requests_get_errors() {
    let f = Fixture::new();
    let shim = spawn(&f.config(&["sleep", "30"]));
    let (reply, _) = shim.request(&Request::Resize { rows: 1, cols: 1 });
    assert!(matches!(reply, Reply::Error { .. }), "no tty: {reply:?}");
    let mut s = UnixStream::connect(&shim.cfg.socket).expect("connect");
    s.write_all(b"{\"op\":\"dance\"}\n").expect("write");
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).expect("read");
    assert!(line.contains("\"reply\":\"error\""), "{line}");

    // Killing a created (not started) container ends it.
    let wait = shim.wait_conn();
    let (reply, _) = shim.request(&Request::Kill { signal: 9 });
    assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
    assert_eq!(exited(wait).exit_code, 137);
    shim.finish();
}

#[test]
fn stdin_once_closes_the_containers_stdin_at_client_eof() {
    let f = Fixture::new();
    let mut cfg = f.config(&["sh", "-c", "read x; echo got:$x; cat; echo done"]);
    cfg.process.open_stdin = true;
    cfg.process.stdin_once = true;
    let shim = spawn(&cfg);
    let (_, mut attach) = shim.request(&Request::Attach {
        stdin: true,
        stdout: true,
        stderr: true,
    });
    let wait = shim.wait_conn();
    shim.start();
    attach.write_all(b"line1\nrest").expect("stdin");
    attach
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let (out, _) = demux(&read_to_end(attach));
    assert_eq!(out, "got:line1\nrestdone\n");
    assert_eq!(exited(wait).exit_code, 0);
    shim.finish();
}

#[test]
fn tty_output_is_raw_and_the_window_is_sized() {
    let f = Fixture::new();
    let mut cfg = f.config(&["sh", "-c", "tty; stty size"]);
    cfg.process.tty = true;
    cfg.process.console_size = Some([30, 100]);
    let shim = spawn(&cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let (_, attach) = shim.request(&Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    let wait = shim.wait_conn();
    shim.start();
    let out = String::from_utf8_lossy(&read_to_end(attach)).into_owned();
    assert_eq!(out, "/dev/pts/0\r\n30 100\r\n");
    assert_eq!(exited(wait).exit_code, 0);
    shim.finish();
}

#[test]
fn seccomp_refuses_clone_with_namespace_flags() {
    let f = Fixture::new();
    // A static helper that calls clone(2) with the flags it is given.
    let src = f.path("clone.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <stdlib.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
         int main(int c, char **v) { long r = syscall(SYS_clone, strtoul(v[1], 0, 16), 0, 0, 0, 0);\n\
         if (r == 0) _exit(0); if (r < 0) { perror(\"clone\"); return 1; } puts(\"ok\"); return 0; }\n",
    )
    .expect("write helper");
    let built = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(f.path("lower/bin/clonetest"))
        .arg(&src)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("skipping: no C compiler for the clone helper");
        return;
    }
    // SIGCHLD only, then CLONE_NEWUSER (needs no capability, so only seccomp refuses it).
    let cfg = f.config(&["sh", "-c", "clonetest 11; clonetest 10000011"]);
    let (out, err, _) = run(&cfg);
    assert_eq!(out, "ok\n", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

/// Median spawn -> `Exited` time of `n` runs of `/bin/true` with the shim at `bin`.
fn latency(f: &Fixture, bin: &str, n: usize) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..n {
        let cfg = f.config(&["/bin/true"]);
        let t0 = Instant::now();
        let shim = spawn_with(bin, &cfg);
        let wait = shim.wait_conn();
        shim.start();
        let status = exited(wait);
        samples.push(t0.elapsed());
        assert_eq!(status.exit_code, 0);
        shim.finish();
    }
    samples.sort();
    samples
}

/// Prints the latency; with `ARCA_SHIM_BASELINE=<another arca-shim>` set, measures both
/// binaries alternately in the same run, for a side-by-side comparison.
#[test]
#[ignore = "a measurement, not a check: cargo test --release -p arca --test shim latency_from_spawn_to_exited_for_true -- --ignored --nocapture"]
fn latency_from_spawn_to_exited_for_true() {
    let f = Fixture::new();
    let baseline = std::env::var("ARCA_SHIM_BASELINE").ok();
    let rounds = if baseline.is_some() { 5 } else { 1 };
    let n = 20 / rounds;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.extend(latency(&f, SHIM, n));
        if let Some(b) = &baseline {
            theirs.extend(latency(&f, b, n));
        }
    }
    let report = |name: &str, mut s: Vec<Duration>| {
        s.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "{name} spawn -> Exited for /bin/true: median {:.1} ms (min {:.1}, max {:.1}, n={}, {} build)",
            ms(s[s.len() / 2]),
            ms(s[0]),
            ms(s[s.len() - 1]),
            s.len(),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        );
    };
    report("arca-shim", ours);
    if let Some(b) = baseline {
        report(&b, theirs);
    }
}

/// Assembles and links a static program with GNU as and ld (no libc needed, so no
/// multilib for i386). False if the tools are missing.
fn assemble(f: &Fixture, name: &str, src: &str, i386: bool) -> bool {
    let s = f.path(&format!("{name}.s"));
    let o = f.path(&format!("{name}.o"));
    std::fs::write(&s, src).expect("write asm");
    let mut as_cmd = Command::new("as");
    let mut ld = Command::new("ld");
    if i386 {
        as_cmd.arg("--32");
        ld.args(["-m", "elf_i386"]);
    }
    let ok = |c: &mut Command| c.status().is_ok_and(|st| st.success());
    ok(as_cmd.arg("-o").arg(&o).arg(&s))
        && ok(ld
            .arg("-static")
            .arg("-o")
            .arg(f.path(&format!("lower/bin/{name}")))
            .arg(&o))
}

const I386_PROBE: &str = r#"
# i386 syscalls through int $0x80; exit status = the first check that failed.
.globl _start
.text
_start:
    movl $20, %eax          # getpid: allowed
    int $0x80
    movl $1, %ebx
    testl %eax, %eax
    jle fail
    movl $310, %eax         # unshare(CLONE_NEWUSER): EPERM
    movl $0x10000000, %ebx
    int $0x80
    movl $2, %ebx
    cmpl $-1, %eax
    jne fail
    movl $21, %eax          # mount(0, 0, 0, 0, 0): EPERM
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    int $0x80
    movl $3, %ebx
    cmpl $-1, %eax
    jne fail
    movl $359, %eax         # socket(AF_VSOCK, SOCK_STREAM, 0): EPERM
    movl $40, %ebx
    movl $1, %ecx
    xorl %edx, %edx
    int $0x80
    movl $4, %ebx
    cmpl $-1, %eax
    jne fail
    movl $359, %eax         # socket(AF_UNIX, SOCK_STREAM, 0): allowed
    movl $1, %ebx
    movl $1, %ecx
    xorl %edx, %edx
    int $0x80
    movl $5, %ebx
    testl %eax, %eax
    js fail
    movl $4, %eax           # write(1, msg, len)
    movl $1, %ebx
    movl $msg, %ecx
    movl $len, %edx
    int $0x80
    xorl %ebx, %ebx
fail:
    movl $1, %eax           # exit(%ebx)
    int $0x80
.data
msg: .ascii "i386 filtered\n"
len = . - msg
"#;

const X32_PROBE: &str = r#"
# getpid through the x32 ABI: the filter kills the process with SIGSYS.
.globl _start
.text
_start:
    movl $0x40000027, %eax
    syscall
    movl $60, %eax          # exit(0), only if the x32 call was let through
    xorl %edi, %edi
    syscall
"#;

#[test]
fn seccomp_filters_i386_syscalls_and_kills_x32_ones() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let f = Fixture::new();
    if !(assemble(&f, "i386probe", I386_PROBE, true) && assemble(&f, "x32probe", X32_PROBE, false))
    {
        eprintln!("skipping: no GNU as/ld for the probes");
        return;
    }
    let cfg = f.config(&["sh", "-c", "i386probe; echo i386=$?; x32probe; echo x32=$?"]);
    let (out, err, status) = run(&cfg);
    assert_eq!(status.exit_code, 0, "{err}");
    // 159 = 128 + SIGSYS.
    assert_eq!(out, "i386 filtered\ni386=0\nx32=159\n", "{err}");
}

/// `/proc/self/status` lines of a process in a container, as a map.
fn status_fields(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(":\t"))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

const STATUS_FIELDS: &str =
    "grep -E '^(Seccomp|NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status";

#[test]
fn root_gets_dockers_capabilities_and_seccomp_refuses_mount_and_unshare() {
    let f = Fixture::new();
    let cfg = f.config(&[
        "sh",
        "-c",
        &format!(
            "{STATUS_FIELDS}; busybox mount -t tmpfs none /tmp; busybox unshare -U true; echo done"
        ),
    ]);
    let (out, err, status) = run(&cfg);
    assert_eq!(status.exit_code, 0, "{err}");
    let st = status_fields(&out);
    for (k, v) in [
        ("Seccomp", "2"),
        ("NoNewPrivs", "0"),
        ("CapInh", "0000000000000000"),
        ("CapPrm", "00000000a80425fb"),
        ("CapEff", "00000000a80425fb"),
        ("CapBnd", "00000000a80425fb"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert_eq!(st.get(k).map(String::as_str), Some(v), "{k}: {out}");
    }
    // busybox words mount's EPERM as "permission denied".
    assert!(
        err.contains("mount: permission denied")
            && err.contains("unshare(0x10000000): Operation not permitted"),
        "{err}"
    );
    assert!(out.ends_with("done\n"), "{out}");
}

#[test]
fn a_non_root_user_keeps_the_bounding_set_but_no_capabilities() {
    let f = Fixture::new();
    let mut cfg = f.config(&["sh", "-c", &format!("id; {STATUS_FIELDS}")]);
    cfg.process.user = "65534:65534".into();
    cfg.security.no_new_privileges = true;
    let (out, err, status) = run(&cfg);
    assert_eq!(status.exit_code, 0, "{err}");
    assert!(out.starts_with("uid=65534 gid=65534"), "{out}");
    let st = status_fields(&out);
    for (k, v) in [
        ("Seccomp", "2"),
        ("NoNewPrivs", "1"),
        ("CapInh", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapEff", "0000000000000000"),
        ("CapBnd", "00000000a80425fb"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert_eq!(st.get(k).map(String::as_str), Some(v), "{k}: {out}");
    }
}

#[test]
fn unconfined_container_with_every_capability_gets_what_the_host_allows() {
    let f = Fixture::new();
    let all = arca_model::caps::ALL;
    let mut cfg = f.config(&[
        "sh",
        "-c",
        &format!("{STATUS_FIELDS}; busybox mount -t tmpfs none /tmp && echo mounted"),
    ]);
    cfg.security.capabilities = all.iter().map(|s| (*s).to_owned()).collect();
    cfg.security.seccomp = false;
    let (out, err, status) = run(&cfg);
    assert_eq!(status.exit_code, 0, "{err}");
    let st = status_fields(&out);
    // Every capability the shim has (this test's own bounding set; a host may lack some).
    let own = status_fields(&std::fs::read_to_string("/proc/self/status").expect("status"));
    assert_eq!(st.get("Seccomp").map(String::as_str), Some("0"), "{out}");
    assert_eq!(st.get("CapBnd"), own.get("CapBnd"), "{out}");
    assert_eq!(st.get("CapEff"), own.get("CapBnd"), "{out}");
    assert!(out.ends_with("mounted\n"), "{out}");
}

#[test]
fn bind_mounts_and_readonly_rootfs() {
    let f = Fixture::new();
    std::fs::write(f.path("hosts"), "127.0.0.1 localhost\n").expect("write");
    let mut cfg = f.config(&[
        "sh",
        "-c",
        "cat /etc/hosts; echo x > /etc/hosts; echo x > /probe",
    ]);
    cfg.rootfs.readonly = true;
    cfg.mounts = vec![MountConfig {
        source: f.path("hosts"),
        destination: "/etc/hosts".into(),
        readonly: true,
        tmpfs: None,
        propagation: None,
    }];
    let (out, err, status) = run(&cfg);
    assert_eq!(out, "127.0.0.1 localhost\n");
    assert_eq!(err.matches("Read-only file system").count(), 2, "{err}");
    assert_eq!(status.exit_code, 1);
}

// ---- exec ----

#[test]
fn exec_output_is_framed_and_kept_out_of_the_log() {
    let f = Fixture::new();
    let cfg = f.config(&["sh", "-c", "echo init; exec sleep 60"]);
    let (shim, wait) = running(&cfg);
    let (out, err, code) = shim.exec_output(
        "e1",
        exec_process(&["sh", "-c", "echo out; echo err >&2; exit 4"]),
    );
    assert_eq!((out.as_str(), err.as_str(), code), ("out\n", "err\n", 4));
    // Kept after the exit, for any number of waiters.
    assert_eq!(shim.exec_wait("e1").exit_code, 4);
    let (reply, _) = shim.request(&Request::ExecWait {
        exec_id: "nope".into(),
    });
    assert!(error_message(reply).contains("no such exec"));
    let (reply, _) = shim.exec("e1", exec_process(&["true"]), false);
    assert!(error_message(reply).contains("already exists"));
    // libcontainer's per-exec sockets are gone.
    let state: Vec<String> = std::fs::read_dir(cfg.state_root.join(&cfg.id))
        .expect("state dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!state.iter().any(|n| n.starts_with("tenant-")), "{state:?}");
    shim.stop(wait);
    let log = std::fs::read_to_string(&cfg.log_path).expect("json log");
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains("\"log\":\"init\\n\""), "{log}");
}

#[test]
fn exec_joins_the_containers_namespaces_cgroup_and_confinement() {
    let f = Fixture::new();
    let cfg = f.config(&["sleep", "60"]);
    let (shim, wait) = running(&cfg);
    let sh = |script: &str| exec_process(&["sh", "-c", script]);

    let (out, err, code) = shim.exec_output("host", sh("hostname; cat /proc/self/cgroup"));
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(cfg.hostname.as_str()));
    // The container's cgroup namespace: every hierarchy at its root.
    for l in lines {
        assert!(l.ends_with(":/"), "not in the container's cgroup: {out}");
    }
    let (out, _, _) = shim.exec_output("pid1", exec_process(&["cat", "/proc/1/cmdline"]));
    assert_eq!(out, "sleep\u{0}60\u{0}");
    // Not the shim's signal state (SIGCHLD blocked, SIGPIPE ignored).
    let (out, _, _) = shim.exec_output("sigs", exec_process(&["cat", "/proc/self/status"]));
    let st = status_fields(&out);
    assert_eq!(
        st.get("SigBlk").map(String::as_str),
        Some("0000000000000000")
    );
    assert_eq!(
        st.get("SigIgn").map(String::as_str),
        Some("0000000000000000")
    );

    let (out, err, code) = shim.exec_output("caps", sh(STATUS_FIELDS));
    assert_eq!(code, 0, "{err}");
    let st = status_fields(&out);
    for (k, v) in [
        ("Seccomp", "2"),
        ("NoNewPrivs", "0"),
        ("CapInh", "0000000000000000"),
        ("CapEff", "00000000a80425fb"),
        ("CapBnd", "00000000a80425fb"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert_eq!(st.get(k).map(String::as_str), Some(v), "{k}: {out}");
    }
    // Seccomp refuses what Docker's profile refuses without CAP_SYS_ADMIN.
    let (_, err, _) = shim.exec_output("unshare", sh("busybox unshare -U true"));
    assert!(err.contains("Operation not permitted"), "{err}");

    let (out, err, code) = shim.exec_output_with("priv", sh(STATUS_FIELDS), true);
    assert_eq!(code, 0, "{err}");
    let st = status_fields(&out);
    let own = status_fields(&std::fs::read_to_string("/proc/self/status").expect("status"));
    assert_eq!(st.get("CapBnd"), own.get("CapBnd"), "{out}");
    assert_eq!(st.get("CapEff"), own.get("CapBnd"), "{out}");
    // Still the container's seccomp filter.
    assert_eq!(st.get("Seccomp").map(String::as_str), Some("2"), "{out}");
    shim.stop(wait);
}

#[test]
fn exec_no_new_privileges_follows_the_container() {
    let f = Fixture::new();
    let mut cfg = f.config(&["sleep", "60"]);
    cfg.security.no_new_privileges = true;
    let (shim, wait) = running(&cfg);
    let (out, _, _) = shim.exec_output("nnp", exec_process(&["sh", "-c", STATUS_FIELDS]));
    let st = status_fields(&out);
    assert_eq!(st.get("NoNewPrivs").map(String::as_str), Some("1"), "{out}");
    assert_eq!(st.get("Seccomp").map(String::as_str), Some("2"), "{out}");
    shim.stop(wait);
}

#[test]
fn exec_stdin_is_fed_and_closed_at_half_close() {
    let f = Fixture::new();
    let (shim, wait) = running(&f.config(&["sleep", "60"]));
    let mut p = exec_process(&["cat"]);
    p.open_stdin = true;
    let (reply, mut stream) = shim.exec("cat", p, false);
    assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
    stream.write_all(b"hello\nworld").expect("stdin");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let (out, _) = demux(&read_to_end(stream));
    assert_eq!(out, "hello\nworld");
    assert_eq!(shim.exec_wait("cat").exit_code, 0);
    shim.stop(wait);
}

#[test]
fn exec_with_a_tty_is_raw_sized_and_resizable() {
    let f = Fixture::new();
    let (shim, wait) = running(&f.config(&["sleep", "60"]));
    let mut p = exec_process(&["sh", "-c", "tty; stty size; read x; stty size"]);
    p.tty = true;
    p.open_stdin = true;
    p.console_size = Some([30, 100]);
    let (reply, mut stream) = shim.exec("tty", p, false);
    assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
    // Wait for the first size before resizing, so the resize cannot come first.
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("30 100\r\n") {
        let n = stream.read(&mut buf).expect("read tty");
        assert!(
            n > 0,
            "tty closed early: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let (reply, _) = shim.request(&Request::ExecResize {
        exec_id: "tty".into(),
        rows: 40,
        cols: 120,
    });
    assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
    stream.write_all(b"go\n").expect("input");
    seen.extend(read_to_end(stream));
    let out = String::from_utf8_lossy(&seen).into_owned();
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(lines[1], "30 100", "{out:?}");
    // The echo of the input, then the new size.
    assert_eq!(&lines[2..], ["go", "40 120", ""], "{out:?}");
    assert_eq!(shim.exec_wait("tty").exit_code, 0);

    let (reply, _) = shim.request(&Request::ExecResize {
        exec_id: "tty".into(),
        rows: 1,
        cols: 1,
    });
    assert!(error_message(reply).contains("not running"));
    shim.exec_output("notty", exec_process(&["true"]));
    let (reply, _) = shim.request(&Request::ExecResize {
        exec_id: "nope".into(),
        rows: 1,
        cols: 1,
    });
    assert!(error_message(reply).contains("no such exec"));
    shim.stop(wait);
}

#[test]
fn exec_failures_have_dockers_wording_and_leave_no_process() {
    let f = Fixture::new();
    // Passes the lookup, fails in execve (after the fork).
    std::fs::write(f.path("lower/bin/garbage"), b"\x01\x02\x03 not a program\n").expect("w");
    std::fs::set_permissions(
        f.path("lower/bin/garbage"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let cfg = f.config(&["sleep", "60"]);

    let shim = spawn(&cfg);
    let wait = shim.wait_conn();
    let (reply, _) = shim.exec("early", exec_process(&["true"]), false);
    assert_eq!(error_message(reply), "container is not running");
    shim.start();
    let init = shim.ready.pid.expect("init pid");

    let cases: [(&str, ProcessConfig, &str); 5] = [
        (
            "missing",
            exec_process(&["no-such-command"]),
            "exec: \"no-such-command\": executable file not found in $PATH",
        ),
        (
            "notexec",
            exec_process(&["/etc/notexec"]),
            "exec: \"/etc/notexec\": permission denied",
        ),
        (
            "user",
            ProcessConfig {
                user: "nobody".into(),
                ..exec_process(&["true"])
            },
            "unable to find user nobody: no matching entries in passwd file",
        ),
        (
            "cwd",
            ProcessConfig {
                cwd: "/nope".into(),
                ..exec_process(&["true"])
            },
            "chdir to cwd (\"/nope\") set in config.json failed: no such file or directory",
        ),
        (
            "garbage",
            exec_process(&["garbage"]),
            "exec: \"/bin/garbage\": exec format error",
        ),
    ];
    for (id, process, want) in cases {
        let (reply, _) = shim.exec(id, process, false);
        let message = error_message(reply);
        assert!(message.contains(want), "{id}: {message}");
        let (reply, _) = shim.request(&Request::ExecWait { exec_id: id.into() });
        assert!(error_message(reply).contains("no such exec"), "{id}");
        // Only the init is left: a process that failed after the fork exits just after
        // reporting its error, and the shim reaps it.
        let deadline = Instant::now() + IO_TIMEOUT;
        while shim.children() != [init] {
            assert!(Instant::now() < deadline, "{id}: {:?}", shim.children());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The container is unharmed.
    let (out, _, code) = shim.exec_output("ok", exec_process(&["echo", "fine"]));
    assert_eq!((out.as_str(), code), ("fine\n", 0));
    shim.stop(wait);
}

#[test]
fn exec_user_defaults_to_the_containers() {
    let f = Fixture::new();
    let mut cfg = f.config(&["sleep", "60"]);
    cfg.process.user = "65534:65534".into();
    let (shim, wait) = running(&cfg);
    let (out, _, _) = shim.exec_output("default", exec_process(&["id"]));
    assert!(out.starts_with("uid=65534 gid=65534"), "{out}");
    let root = ProcessConfig {
        user: "root".into(),
        ..exec_process(&["id", "-u"])
    };
    assert_eq!(shim.exec_output("root", root).0, "0\n");
    let (out, _, _) = shim.exec_output(
        "status",
        ProcessConfig {
            user: "0".into(),
            ..exec_process(&["sh", "-c", STATUS_FIELDS])
        },
    );
    assert_eq!(
        status_fields(&out).get("CapEff").map(String::as_str),
        Some("00000000a80425fb"),
        "{out}"
    );
    shim.stop(wait);

    let (shim, wait) = running(&f.config(&["sleep", "60"]));
    let nobody = ProcessConfig {
        user: "65534:65534".into(),
        cwd: "/tmp".into(),
        ..exec_process(&["sh", "-c", "id -u; id -g; pwd; echo $HOME"])
    };
    assert_eq!(
        shim.exec_output("nobody", nobody).0,
        "65534\n65534\n/tmp\n/\n"
    );
    shim.stop(wait);
}

#[test]
fn exec_outlives_its_client_and_dies_with_the_container() {
    let f = Fixture::new();
    let (shim, wait) = running(&f.config(&["sleep", "60"]));
    shim.exec_output("mkfifo", exec_process(&["sh", "-c", "mkfifo /tmp/f"]));
    // Its client goes away; it keeps running until the FIFO gives it a line.
    let (reply, stream) = shim.exec(
        "reader",
        exec_process(&["sh", "-c", "read x < /tmp/f; echo $x; exit 7"]),
        false,
    );
    assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
    drop(stream);
    shim.exec_output("writer", exec_process(&["sh", "-c", "echo go > /tmp/f"]));
    assert_eq!(shim.exec_wait("reader").exit_code, 7);

    // A long exec is killed with the container; its waiters and stream are answered.
    let (reply, stream) = shim.exec("long", exec_process(&["sleep", "60"]), false);
    let Reply::Ok { pid: Some(pid) } = reply else {
        panic!("{reply:?}");
    };
    assert!(shim.children().contains(&pid));
    let waiters = [shim.exec_wait_conn("long"), shim.exec_wait_conn("long")];
    let (reply, _) = shim.request(&Request::Kill { signal: 9 });
    assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
    assert_eq!(exited(wait).exit_code, 137);
    for w in waiters {
        assert_eq!(exited(w).exit_code, 137);
    }
    assert!(read_to_end(stream).is_empty());
    shim.finish();
}

#[test]
fn execs_leave_no_descriptors_or_files_behind() {
    let f = Fixture::new();
    std::fs::write(f.path("lower/bin/garbage"), b"\x01\x02 not a program\n").expect("w");
    std::fs::set_permissions(
        f.path("lower/bin/garbage"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let cfg = f.config(&["sleep", "60"]);
    let (shim, wait) = running(&cfg);
    let fds = || {
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", shim.ready.shim_pid))
            .expect("fds")
            .flatten()
            // An fd closed between the listing and the readlink (a connection the shim is
            // closing) has no target: skip it rather than report it.
            .filter_map(|e| {
                let target = std::fs::read_link(e.path()).ok()?;
                Some(format!(
                    "{} {}",
                    e.file_name().to_string_lossy(),
                    target.display()
                ))
            })
            // Client connections come and go with the test's requests.
            .filter(|l| !l.contains("socket:"))
            .collect();
        v.sort();
        v
    };
    let listing = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let state_dir = cfg.state_root.join(&cfg.id);
    let (fds_before, state_before, bundle_before) =
        (fds(), listing(&state_dir), listing(&cfg.bundle));
    shim.exec_output("pipes", exec_process(&["echo", "x"]));
    let mut stdin = exec_process(&["cat"]);
    stdin.open_stdin = true;
    let (_, s) = shim.exec("stdin", stdin, false);
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    read_to_end(s);
    assert_eq!(shim.exec_wait("stdin").exit_code, 0);
    let mut tty = exec_process(&["true"]);
    tty.tty = true;
    tty.open_stdin = true;
    shim.exec_output("tty", tty);
    let (reply, _) = shim.exec("garbage", exec_process(&["garbage"]), false);
    assert!(matches!(reply, Reply::Error { .. }), "{reply:?}");
    let (reply, _) = shim.exec("missing", exec_process(&["missing"]), false);
    assert!(matches!(reply, Reply::Error { .. }), "{reply:?}");
    // A request round trip: the shim has closed what it closes after each of them.
    shim.exec_wait("tty");
    assert_eq!(fds(), fds_before);
    assert_eq!(listing(&state_dir), state_before);
    assert_eq!(listing(&cfg.bundle), bundle_before);
    shim.stop(wait);
}

#[test]
fn exec_output_held_open_by_a_background_process_is_given_up_after_a_while() {
    let f = Fixture::new();
    let (shim, wait) = running(&f.config(&["sleep", "60"]));
    let (out, _, code) =
        shim.exec_output("bg", exec_process(&["sh", "-c", "sleep 60 & echo started"]));
    assert_eq!((out.as_str(), code), ("started\n", 0));
    shim.stop(wait);
}

/// Prints the median time from an `Exec` request to its `Ok` reply, and to the `Exited`
/// of `ExecWait`, for `true` (n = 20).
#[test]
#[ignore = "a measurement, not a check: cargo test --release -p arca --test shim latency_of_exec_for_true -- --ignored --nocapture"]
fn latency_of_exec_for_true() {
    let f = Fixture::new();
    let (shim, wait) = running(&f.config(&["sleep", "60"]));
    let (mut to_ok, mut to_exit) = (Vec::new(), Vec::new());
    for n in 0..20 {
        let id = format!("true-{n}");
        let t0 = Instant::now();
        let (reply, stream) = shim.exec(&id, exec_process(&["true"]), false);
        to_ok.push(t0.elapsed());
        assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
        let status = shim.exec_wait(&id);
        to_exit.push(t0.elapsed());
        assert_eq!(status.exit_code, 0);
        drop(stream);
    }
    shim.stop(wait);
    let median = |mut s: Vec<Duration>| {
        s.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "median {:.2} ms (min {:.2}, max {:.2})",
            ms(s[s.len() / 2]),
            ms(s[0]),
            ms(s[s.len() - 1])
        )
    };
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "exec `true`, n=20, {build} build: Exec -> Ok {}; Exec -> Exited {}",
        median(to_ok),
        median(to_exit)
    );
}

/// A shim that was killed leaves libcontainer's state directory behind; the next shim for
/// the same container removes it instead of failing with "container already exists".
#[test]
fn stale_runtime_state_of_a_killed_shim_does_not_block_the_next_start() {
    let f = Fixture::new();
    let cfg = f.config(&["echo", "again"]);
    let stale = cfg.state_root.join(&cfg.id);
    std::fs::create_dir_all(&stale).expect("mkdir");
    std::fs::write(stale.join("state.json"), b"{\"left\":\"by a killed shim\"}").expect("w");
    let (out, _, status) = run(&cfg);
    assert_eq!((out.as_str(), status.exit_code), ("again\n", 0));
    assert!(!stale.exists());
}
