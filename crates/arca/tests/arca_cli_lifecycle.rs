//! The arca CLI's lifecycle verbs and run flags, end to end against a test arcad: attach
//! and detach, `start -ai`, `create`, `logs --since/--until/-t`, `wait`, capabilities and
//! the other create flags, pause/unpause, update, stats, top, diff, port and `ps --filter`.
//! Where docker's CLI behaves observably, the same command through docker is the reference.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pty::Pty;
use common::{DOCKER, Daemon, assert_ok, poll_until, stderr, stdout};

const ARCA: &str = env!("CARGO_BIN_EXE_arca");

fn inspect(d: &Daemon, name: &str) -> serde_json::Value {
    let out = d.arca(&["inspect", name]);
    assert_ok(&out, "arca inspect");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("inspect json");
    v[0].clone()
}

fn running(d: &Daemon, name: &str) -> bool {
    inspect(d, name)["State"]["Running"] == true
}

#[test]
fn attach_streams_output_and_exits_with_the_container_status() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.arca(&[
            "run",
            "-d",
            "--name",
            "ticker",
            "busybox",
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do echo tick; sleep 0.1; done; echo done; echo oops >&2; exit 3",
        ]),
        "run -d",
    );
    let mut child = Command::new(ARCA)
        .args(["attach", "ticker"])
        .env("ARCA_HOST", d.host())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arca attach");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().expect("a line").expect("utf8"), "tick");
    assert_ok(&d.arca(&["exec", "ticker", "touch", "/tmp/go"]), "exec");
    let rest: Vec<String> = lines.map(|l| l.expect("utf8")).collect();
    assert_eq!(rest.last().map(String::as_str), Some("done"), "{rest:?}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert_eq!(err, "oops\n");
    assert_eq!(child.wait().expect("wait").code(), Some(3));

    // A stopped container is refused, in docker's words.
    let out = d.arca(&["attach", "ticker"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "You cannot attach to a stopped container, start it first\n"
    );
    let out = d.arca(&["attach", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("Error response from daemon: No such container"));
}

#[test]
fn detach_keys_leave_the_container_running_like_docker() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.arca(&["run", "-dit", "--name", "shell", "busybox", "sh"]),
        "run -dit",
    );
    // Docker's CLI and ours: the default keys end `attach` with "read escape sequence",
    // status 1; the container keeps running.
    for prog in [DOCKER, ARCA] {
        let mut s = Pty::spawn(&d, &format!("{prog} attach shell"));
        s.send(b"echo hi-$((40+2))\n");
        s.wait_for("hi-42");
        s.send(b"\x10\x11");
        let (code, text) = s.finish();
        assert!(text.contains("read escape sequence"), "{prog}: {text:?}");
        assert_eq!(code, Some(1), "{prog}: {text:?}");
        assert!(running(&d, "shell"), "{prog}");
    }
    // Custom keys on attach; `run --detach-keys` and `exec --detach-keys` too.
    let mut s = Pty::spawn(&d, &format!("{ARCA} attach --detach-keys ctrl-a,x shell"));
    s.send(b"echo again-$((1+1))\n");
    s.wait_for("again-2");
    s.send(b"\x01x");
    assert_eq!(s.finish().0, Some(1));
    assert!(running(&d, "shell"));

    let mut s = Pty::spawn(
        &d,
        &format!("{ARCA} run -it --name r --detach-keys ctrl-a,x busybox sh"),
    );
    s.send(b"echo run-$((2+2))\n");
    s.wait_for("run-4");
    s.send(b"\x01x");
    let (code, text) = s.finish();
    assert_eq!(code, Some(0), "run detaches silently: {text:?}");
    assert!(!text.contains("read escape sequence"), "{text:?}");
    assert!(running(&d, "r"));

    let mut s = Pty::spawn(&d, &format!("{ARCA} exec -it --detach-keys ctrl-a,x r sh"));
    s.send(b"echo exec-$((3+3))\n");
    s.wait_for("exec-6");
    s.send(b"\x01x");
    let (code, text) = s.finish();
    assert_eq!(code, Some(1), "{text:?}");
    assert!(text.contains("read escape sequence"), "{text:?}");

    // start -ai on a TTY container: detaching ends the client with status 0.
    assert_ok(
        &d.arca(&["create", "-it", "--name", "st", "busybox", "sh"]),
        "create",
    );
    let mut s = Pty::spawn(&d, &format!("{ARCA} start -ai st"));
    s.send(b"echo st-$((4+4))\n");
    s.wait_for("st-8");
    s.send(b"\x10\x11");
    assert_eq!(s.finish().0, Some(0));
    assert!(running(&d, "st"));
}

#[test]
fn create_then_start_ai_pipes_stdin_and_returns_the_status() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.arca(&[
        "create",
        "-i",
        "--name",
        "upper",
        "busybox",
        "sh",
        "-c",
        "tr a-z A-Z; exit 4",
    ]);
    assert_ok(&out, "create");
    let id = stdout(&out).trim().to_owned();
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(inspect(&d, "upper")["State"]["Status"], "created");
    let out = d.with_input(ARCA, &["start", "-ai", "upper"], b"hello\n");
    assert_eq!(stdout(&out), "HELLO\n");
    assert_eq!(out.status.code(), Some(4));

    // Without -i, start -a still streams the output.
    assert_ok(
        &d.arca(&["create", "--name", "hi", "busybox", "echo", "hi"]),
        "create",
    );
    let out = d.arca(&["start", "-a", "hi"]);
    assert_ok(&out, "start -a");
    assert_eq!(stdout(&out), "hi\n");

    // Bad flags are refused before anything is created (125); daemon errors are 1.
    let out = d.arca(&["create", "--ulimit", "nofile=9:1", "busybox"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let out = d.arca(&["create", "--name", "upper", "busybox"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is already in use"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logs_filter_by_time_and_show_timestamps_like_docker() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.arca(&[
            "run",
            "--name",
            "talker",
            "busybox",
            "sh",
            "-c",
            "echo one; echo two >&2",
        ]),
        "run",
    );
    let out = d.arca(&["logs", "talker"]);
    assert_eq!(
        (stdout(&out), stderr(&out)),
        ("one\n".into(), "two\n".into())
    );
    for since in ["1h", "2000-01-01", "2000-01-01T00:00:00Z", "946684800"] {
        let out = d.arca(&["logs", "--since", since, "talker"]);
        assert_eq!(stdout(&out), "one\n", "--since {since}");
    }
    let future = (chrono_like_now() + 3600).to_string();
    for (flag, value) in [
        ("--since", future.as_str()),
        ("--until", "1h"),
        ("--until", "2000-01-01"),
    ] {
        let out = d.arca(&["logs", flag, value, "talker"]);
        assert_ok(&out, "logs");
        assert_eq!(stdout(&out), "", "{flag} {value}");
        // The docker CLI sends the same thing, and gets the same nothing.
        assert_eq!(stdout(&d.docker(&["logs", flag, value, "talker"])), "");
    }
    let out = d.arca(&["logs", "-t", "talker"]);
    let line = stdout(&out);
    let (ts, text) = line.trim_end().split_once(' ').expect("timestamp and text");
    assert_eq!(text, "one");
    assert!(
        ts.len() >= 20 && ts.ends_with('Z') && ts.contains('T'),
        "{ts}"
    );
    let out = d.arca(&["logs", "-n", "0", "talker"]);
    assert_eq!(stdout(&out), "");

    let out = d.arca(&["logs", "--since", "yesterday", "talker"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("invalid value for \"since\""),
        "{}",
        stderr(&out)
    );
    let out = d.arca(&["logs", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No such container: nosuch"));
}

fn chrono_like_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[test]
fn wait_prints_each_exit_status() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.arca(&[
            "run",
            "-d",
            "--name",
            "three",
            "busybox",
            "sh",
            "-c",
            "sleep 0.3; exit 3",
        ]),
        "run",
    );
    assert_ok(
        &d.arca(&["run", "-d", "--name", "zero", "busybox", "true"]),
        "run",
    );
    let out = d.arca(&["wait", "three", "zero"]);
    assert_ok(&out, "wait");
    assert_eq!(stdout(&out), "3\n0\n");
    let out = d.arca(&["wait", "nosuch", "zero"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "0\n");
    assert!(
        stderr(&out).contains("No such container: nosuch"),
        "{}",
        stderr(&out)
    );
}

/// The CapEff mask of a container's process.
fn cap_eff(d: &Daemon, flags: &[&str]) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "grep", "CapEff", "/proc/self/status"]);
    let out = d.arca(&args);
    assert_ok(&out, &format!("run {flags:?}"));
    stdout(&out)
        .split_whitespace()
        .nth(1)
        .expect("CapEff value")
        .to_owned()
}

#[test]
fn capability_flags_change_the_effective_set() {
    let d = Daemon::start();
    d.load_busybox();
    assert_eq!(cap_eff(&d, &[]), "00000000a80425fb");
    // NET_ADMIN is capability 12.
    assert_eq!(
        cap_eff(&d, &["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"]),
        "0000000000001000"
    );
    // With or without the CAP_ prefix; SYS_TIME is 25, CHOWN is 0.
    assert_eq!(
        cap_eff(&d, &["--cap-add", "CAP_SYS_TIME", "--cap-drop=chown"]),
        "00000000aa0425fa"
    );
    assert_eq!(cap_eff(&d, &["--cap-drop", "ALL"]), "0000000000000000");
}

#[test]
fn create_flags_reach_the_config_as_docker_sends_them() {
    let d = Daemon::start();
    d.load_busybox();
    let flags = [
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "7",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--restart",
        "on-failure:3",
        "--ulimit",
        "nofile=512:1024",
        "--shm-size",
        "32m",
        "--cap-add",
        "NET_ADMIN",
        "--group-add",
        "123",
        "--init",
        "--memory-swap",
        "-1",
        "--cpu-shares",
        "512",
    ];
    let mut ours = vec!["create", "--name", "ours"];
    ours.extend_from_slice(&flags);
    ours.extend_from_slice(&["busybox", "sleep", "1"]);
    assert_ok(&d.arca(&ours), "arca create");
    let mut theirs = vec!["create", "--name", "theirs"];
    theirs.extend_from_slice(&flags);
    theirs.extend_from_slice(&["busybox", "sleep", "1"]);
    assert_ok(&d.docker(&theirs), "docker create");
    let (a, b) = (inspect(&d, "ours"), inspect(&d, "theirs"));
    assert_eq!(a["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(a["Config"]["StopTimeout"], 7);
    assert_eq!(
        a["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(a["Config"]["Healthcheck"]["Interval"], 1_000_000_000i64);
    for field in ["StopSignal", "StopTimeout", "Healthcheck"] {
        assert_eq!(a["Config"][field], b["Config"][field], "Config.{field}");
    }
    for field in [
        "RestartPolicy",
        "Ulimits",
        "ShmSize",
        "CapAdd",
        "GroupAdd",
        "Init",
        "MemorySwap",
        "CpuShares",
    ] {
        assert_eq!(
            a["HostConfig"][field], b["HostConfig"][field],
            "HostConfig.{field}"
        );
    }
    let out = d.arca(&[
        "run",
        "--rm",
        "--no-healthcheck",
        "--health-retries",
        "1",
        "busybox",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("--no-healthcheck conflicts with --health-* options"));
}

#[test]
fn run_flags_shape_the_container() {
    let d = Daemon::start();
    d.load_busybox();
    let run = |flags: &[&str], script: &str| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        let out = d.arca(&args);
        assert_ok(&out, &format!("run {flags:?}"));
        stdout(&out)
    };
    assert_eq!(
        run(&["--ulimit", "nofile=512:1024"], "ulimit -Sn; ulimit -Hn"),
        "512\n1024\n"
    );
    assert_eq!(
        run(
            &["--device", "/dev/null:/dev/mynull"],
            "test -c /dev/mynull && echo dev"
        ),
        "dev\n"
    );
    assert!(
        run(&["--shm-size", "32m"], "df -k /dev/shm").contains("32768"),
        "shm size"
    );
    assert!(
        run(&["--group-add", "123"], "id -G")
            .split_whitespace()
            .any(|g| g == "123"),
        "group-add"
    );
    let host_init = std::fs::read_to_string("/proc/1/comm").expect("host pid 1");
    assert_eq!(run(&["--pid", "host"], "cat /proc/1/comm"), host_init);
    assert_ne!(run(&["--init"], "cat /proc/1/comm"), "sh\n");
    assert_eq!(
        run(&["--uts", "host"], "hostname"),
        format!("{}\n", hostname())
    );
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned()
}

#[test]
fn pause_unpause_and_update_act_on_a_running_container() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.arca(&["run", "-d", "--name", "box", "busybox", "sleep", "60"]),
        "run",
    );
    let out = d.arca(&["pause", "box"]);
    assert_ok(&out, "pause");
    assert_eq!(stdout(&out), "box\n");
    assert_eq!(inspect(&d, "box")["State"]["Status"], "paused");
    let out = d.arca(&["attach", "box"]);
    assert_eq!(
        stderr(&out),
        "You cannot attach to a paused container, unpause it first\n"
    );
    assert_ok(&d.arca(&["unpause", "box"]), "unpause");
    assert_eq!(inspect(&d, "box")["State"]["Status"], "running");
    let out = d.arca(&["pause", "box", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "box\n");
    assert!(stderr(&out).contains("No such container: nosuch"));
    assert_ok(&d.arca(&["unpause", "box"]), "unpause");

    let out = d.arca(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        "--restart",
        "always",
        "box",
    ]);
    assert_ok(&out, "update");
    assert_eq!(stdout(&out), "box\n");
    let h = inspect(&d, "box")["HostConfig"].clone();
    assert_eq!(h["Memory"], 64 << 20);
    assert_eq!(h["PidsLimit"], 20);
    assert_eq!(h["NanoCpus"], 500_000_000);
    assert_eq!(h["RestartPolicy"]["Name"], "always");
    let pids = stdout(&d.arca(&[
        "exec",
        "box",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null",
    ]));
    assert_eq!(pids.trim(), "20");
    let out = d.arca(&["update", "box"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "you must provide one or more flags when using this command\n"
    );
}

#[test]
fn stats_top_diff_and_port_describe_a_container() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.arca(&[
            "run",
            "-d",
            "--name",
            "web",
            "-m",
            "64m",
            "-l",
            "tier=front",
            "busybox",
            "sh",
            "-c",
            "touch /added; rm /bin/ls; sleep 60",
        ]),
        "run",
    );
    assert_ok(
        &d.arca(&["run", "-d", "--name", "other", "busybox", "sleep", "60"]),
        "run",
    );
    let out = d.arca(&["stats", "--no-stream", "web"]);
    assert_ok(&out, "stats --no-stream");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT"),
        "{text}"
    );
    assert!(
        lines[1].contains(" web ") && lines[1].contains("/ 64MiB"),
        "{text}"
    );
    let out = d.arca(&["stats", "--no-stream", "--no-trunc"]);
    assert_ok(&out, "stats --no-stream (all running)");
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    let out = d.arca(&["stats", "--no-stream", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));

    poll_until("touch and rm done", Duration::from_secs(10), || {
        stdout(&d.arca(&["diff", "web"])).contains("D /bin/ls")
    });
    let diff = stdout(&d.arca(&["diff", "web"]));
    assert!(diff.lines().any(|l| l == "A /added"), "{diff}");
    assert!(diff.lines().any(|l| l == "C /bin"), "{diff}");

    let out = d.arca(&["top", "web"]);
    assert_ok(&out, "top");
    let top = stdout(&out);
    assert!(
        top.lines().next().is_some_and(|h| h.contains("PID")),
        "{top}"
    );
    assert!(top.contains("sleep 60"), "{top}");
    let out = d.arca(&["top", "web", "-o", "pid,comm"]);
    assert_ok(&out, "top -o");
    assert!(stdout(&out).contains("sleep"), "{}", stdout(&out));

    let out = d.arca(&["port", "web"]);
    assert_ok(&out, "port");
    assert_eq!(stdout(&out), "");
    let out = d.arca(&["port", "web", "80"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: No public port '80' published for web\n"
    );

    let ps = stdout(&d.arca(&["ps", "-q", "--filter", "label=tier=front"]));
    assert_eq!(ps.lines().count(), 1, "{ps}");
    let ps = stdout(&d.arca(&["ps", "--filter", "name=other"]));
    assert!(ps.contains("other") && !ps.contains("web"), "{ps}");
}

#[test]
fn health_checks_show_in_inspect_and_ps_filters() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.arca(&[
            "run",
            "-d",
            "--name",
            "doc",
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
            "busybox",
            "sleep",
            "60",
        ]),
        "run with health",
    );
    poll_until("unhealthy", Duration::from_secs(15), || {
        inspect(&d, "doc")["State"]["Health"]["Status"] == "unhealthy"
    });
    assert_ok(&d.arca(&["exec", "doc", "touch", "/tmp/ok"]), "exec");
    poll_until("healthy", Duration::from_secs(15), || {
        inspect(&d, "doc")["State"]["Health"]["Status"] == "healthy"
    });
    let ps = stdout(&d.arca(&["ps", "--filter", "health=healthy"]));
    assert!(ps.contains("doc"), "{ps}");
    let ps = stdout(&d.arca(&["ps", "-q", "--filter", "health=unhealthy"]));
    assert_eq!(ps, "");
}
