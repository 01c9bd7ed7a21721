//! The arca CLI: run flags, exit codes, limits, tables, and the raw API's error statuses.

mod common;

use common::{Daemon, assert_ok, http, stderr, stdout};

#[test]
fn arca_run_applies_flags_and_limits() {
    let d = Daemon::start();
    let out = d.arca(&["run", "--rm", "hello-world"]);
    assert_ok(&out, "arca run hello-world");
    assert!(stdout(&out).contains("Hello from arca!"));

    d.load_busybox();
    let out = d.arca(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u) $(hostname)",
    ]);
    assert_ok(&out, "arca run with flags");
    assert_eq!(stdout(&out), "bar /tmp 65534 box\n");

    let out = d.arca(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "busybox",
        "via",
        "entrypoint",
    ]);
    assert_eq!(stdout(&out), "via entrypoint\n");

    let out = d.arca(&["run", "--rm", "busybox", "sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    let out = d.arca(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    // A registry on loopback that refuses connections: the pull fails without network.
    let out = d.arca(&["run", "--rm", "127.0.0.1:9/nosuchimage"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("Unable to find image"),
        "{}",
        stderr(&out)
    );

    // Limits land in the container's cgroup (v1 or v2 file names).
    let out = d.arca(&[
        "run", "--rm", "-m", "64m", "--pids-limit", "50", "--cpus", "0.5", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; \
         cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; \
         cat /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null | head -1",
    ]);
    assert_ok(&out, "limits");
    let text = stdout(&out);
    assert!(text.contains("67108864"), "memory limit missing: {text}");
    assert!(
        text.lines().any(|l| l.trim() == "50"),
        "pids limit missing: {text}"
    );
    assert!(text.contains("50000"), "cpu quota missing: {text}");

    // rlimits are inherited from arcad (here: from this test), never raised.
    let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
    let hard_nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .expect("nofile")
        .to_owned();
    let out = d.arca(&["run", "--rm", "busybox", "sh", "-c", "ulimit -Hn"]);
    assert_eq!(stdout(&out).trim(), hard_nofile);

    // Isolation basics: PID 1 is the command, default capabilities only, ro /sys.
    let out = d.arca(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo $$; grep CapBnd /proc/self/status; touch /sys/x 2>&1 || true",
    ]);
    let text = stdout(&out);
    assert!(text.starts_with("1\n"), "{text}");
    assert!(
        text.contains("00000000a80425fb"),
        "docker's default capability set: {text}"
    );
    assert!(text.contains("Read-only file system"), "{text}");

    let out = d.arca(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "30"]);
    assert_ok(&out, "run -d");
    let ps = stdout(&d.arca(&["ps"]));
    let header = ps.lines().next().expect("header");
    assert!(header.starts_with("CONTAINER ID   IMAGE"), "{ps}");
    assert!(ps.contains("\"sleep 30\""), "{ps}");
    assert_ok(&d.arca(&["kill", "sleeper"]), "kill");
    // kill returns once the signal is sent; the exit is recorded right after.
    let mut insp = serde_json::Value::Null;
    common::poll_until(
        "exit after kill",
        std::time::Duration::from_secs(10),
        || {
            insp = serde_json::from_str(&stdout(&d.arca(&["inspect", "sleeper"]))).expect("json");
            insp[0]["State"]["Status"] == "exited"
        },
    );
    assert_eq!(insp[0]["State"]["ExitCode"], 137);
    assert_ok(&d.arca(&["rm", "sleeper"]), "rm");

    let images = stdout(&d.arca(&["images"]));
    assert!(
        images.starts_with("REPOSITORY ") && images.contains("IMAGE ID"),
        "{images}"
    );
    assert!(images.contains("busybox"));
}

#[test]
fn api_rejects_bad_input_with_docker_statuses() {
    let d = Daemon::start();
    let s = &d.socket;
    let (code, body) = http(
        s,
        "POST",
        "/v1.51/containers/create",
        Some(("application/json", b"{not json")),
    )
    .expect("http");
    assert_eq!(code, 400, "{body}");
    let (code, body) = http(
        s,
        "POST",
        "/containers/create",
        Some(("application/json", br#"{"Image":"nosuch"}"#)),
    )
    .expect("http");
    assert_eq!(code, 404);
    assert_eq!(body.trim(), r#"{"message":"No such image: nosuch:latest"}"#);
    let (code, _) = http(
        s,
        "POST",
        "/containers/create",
        Some((
            "application/json",
            br#"{"Image":"hello-world","HostConfig":{"Memory":"lots"}}"#,
        )),
    )
    .expect("http");
    assert_eq!(code, 400);
    let (code, body) = http(s, "GET", "/v1.99/version", None).expect("http");
    assert_eq!(code, 400);
    assert!(body.contains("too new"), "{body}");
    let (code, _) = http(s, "GET", "/v1.12/version", None).expect("http");
    assert_eq!(code, 400);
    let (code, body) = http(s, "GET", "/v1.41/version", None).expect("http");
    assert_eq!(code, 200);
    assert!(body.contains("\"ApiVersion\":\"1.51\""), "{body}");
    let (code, _) = http(s, "GET", "/containers/nosuch/json", None).expect("http");
    assert_eq!(code, 404);
    let (code, _) = http(s, "HEAD", "/_ping", None).expect("http");
    assert_eq!(code, 200);
    let (code, _) = http(s, "GET", "/nosuch/endpoint", None).expect("http");
    assert_eq!(code, 404);
    // A layer tar that escapes its root is refused and leaves no image behind.
    let mut tarball = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let name = b"../escape";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    tarball.append(&h, &b"evil"[..]).expect("append");
    let bytes = tarball.into_inner().expect("tar");
    let (code, body) = http(
        s,
        "POST",
        "/images/create?fromSrc=-&repo=evil",
        Some(("application/x-tar", &bytes)),
    )
    .expect("http");
    assert_eq!(code, 400, "{body}");
    assert!(!d.dir.path().join("escape").exists() && !d.root.join("escape").exists());
    let (_, list) = http(s, "GET", "/images/json", None).expect("http");
    assert!(!list.contains("evil"), "{list}");
}

#[test]
fn arca_says_clearly_when_arcad_is_not_running() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arca"))
        .args([
            "-H",
            &format!("unix://{}/none.sock", dir.path().display()),
            "ps",
        ])
        .output()
        .expect("run arca");
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("Is arcad running?"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

#[test]
fn rename_keeps_the_container_and_frees_the_old_name() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.arca(&["run", "--name", "first", "busybox", "true"]),
        "run first",
    );
    assert_ok(
        &d.arca(&["run", "--name", "other", "busybox", "true"]),
        "run other",
    );
    let out = d.docker(&["rename", "first", "other"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is already in use"),
        "{}",
        stderr(&out)
    );
    assert_ok(&d.docker(&["rename", "first", "second"]), "docker rename");
    assert!(!d.docker(&["inspect", "first"]).status.success());
    let insp: serde_json::Value =
        serde_json::from_str(&stdout(&d.docker(&["inspect", "second"]))).expect("json");
    assert_eq!(insp[0]["Name"], "/second");
    assert_ok(&d.arca(&["rename", "second", "third"]), "arca rename");
    assert_ok(
        &d.arca(&["run", "--name", "first", "busybox", "true"]),
        "old name reusable",
    );
    let (code, _) = http(
        &d.socket,
        "POST",
        "/containers/third/rename?name=bad%20name",
        None,
    )
    .expect("http");
    assert_eq!(code, 400);
}

/// `arca logout` only edits the client's config.json: like docker's, it works with no
/// daemon running.
#[test]
fn logout_needs_no_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arca"))
        .args([
            "-H",
            "unix:///nonexistent/arca.sock",
            "logout",
            "127.0.0.1:5000",
        ])
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .expect("run arca");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "Not logged in to 127.0.0.1:5000\n");
}
