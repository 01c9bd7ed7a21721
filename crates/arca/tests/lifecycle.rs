//! Container lifecycle beyond start and stop, through the real docker CLI (and raw HTTP
//! where the CLI cannot say it): pause/unpause, update, health checks, OOM kills, the pids
//! limit, stop signal and timeout, detach keys, several attached clients, and the
//! HostConfig fields that shape namespaces, devices, ulimits, /dev/shm, groups and init.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::pty::Pty;
use common::{DOCKER, Daemon, assert_ok, http, poll_until, stderr, stdout};

fn now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

fn inspect(d: &Daemon, name: &str, format: &str) -> String {
    let out = d.docker(&["inspect", "--format", format, name]);
    assert_ok(&out, &format!("docker inspect {format}"));
    stdout(&out).trim().to_owned()
}

fn run_d(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(args);
    let out = d.docker(&a);
    assert_ok(&out, &format!("docker run -d {args:?}"));
    stdout(&out).trim().to_owned()
}

/// Event actions for `name` since `since`, one per line.
fn events(d: &Daemon, since: &str, name: &str) -> String {
    let until = now();
    let out = d.docker(&[
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        &format!("container={name}"),
        "--format",
        "{{.Action}}",
    ]);
    assert_ok(&out, "docker events");
    stdout(&out)
}

/// A file of container `id`'s cgroup: `v1` in `controller`'s hierarchy, else `v2` in the
/// unified tree. Panics if it cannot be read: a test must not pass by not looking.
fn cgroup_file(d: &Daemon, controller: &str, id: &str, v1: &str, v2: &str) -> String {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let rel = format!("{}/{id}", d.cgroup_parent.trim_start_matches('/'));
    let p = if root.join(controller).is_dir() {
        root.join(controller).join(rel).join(v1)
    } else {
        root.join(rel).join(v2)
    };
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

#[test]
fn pause_and_unpause_follow_docker_states_messages_and_events() {
    let d = Daemon::start();
    d.load_busybox();
    let t0 = now();
    run_d(&d, &["--name", "p", "busybox", "sleep", "300"]);
    assert_ok(&d.docker(&["pause", "p"]), "docker pause");
    assert_eq!(
        inspect(
            &d,
            "p",
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}"
        ),
        "paused true true"
    );
    let ps = stdout(&d.docker(&["ps", "--format", "{{.Status}}"]));
    assert!(ps.contains("(Paused)"), "{ps}");
    let id = inspect(&d, "p", "{{.Id}}");
    let frozen = cgroup_file(&d, "freezer", &id, "freezer.state", "cgroup.freeze");
    assert!(frozen == "FROZEN" || frozen == "1", "freezer: {frozen}");

    let again = d.docker(&["pause", "p"]);
    assert!(stderr(&again).contains("is already paused"), "{again:?}");
    let exec = d.docker(&["exec", "p", "true"]);
    assert!(
        stderr(&exec).contains("is paused, unpause the container before exec"),
        "{exec:?}"
    );

    assert_ok(&d.docker(&["unpause", "p"]), "docker unpause");
    assert_eq!(
        inspect(&d, "p", "{{.State.Status}} {{.State.Paused}}"),
        "running false"
    );
    let again = d.docker(&["unpause", "p"]);
    assert!(stderr(&again).contains("is not paused"), "{again:?}");
    assert_ok(&d.docker(&["exec", "p", "true"]), "exec after unpause");

    // Not running.
    assert_ok(
        &d.docker(&["create", "--name", "c", "busybox", "true"]),
        "create",
    );
    let not_running = d.docker(&["pause", "c"]);
    assert!(
        stderr(&not_running).contains("is not running"),
        "{not_running:?}"
    );

    // A paused container stops (its stop signal, then thawed), restarts, and dies by
    // kill -9 and rm -f.
    assert_ok(&d.docker(&["pause", "p"]), "pause");
    assert_ok(
        &d.docker(&["restart", "-t", "1", "p"]),
        "restart a paused container",
    );
    assert_eq!(inspect(&d, "p", "{{.State.Status}}"), "running");
    assert_ok(&d.docker(&["pause", "p"]), "pause");
    assert_ok(
        &d.docker(&["stop", "-t", "1", "p"]),
        "stop a paused container",
    );
    assert_eq!(
        inspect(&d, "p", "{{.State.Status}} {{.State.Paused}}"),
        "exited false"
    );
    assert_ok(&d.docker(&["start", "p"]), "start");
    assert_ok(&d.docker(&["pause", "p"]), "pause");
    assert_ok(&d.docker(&["kill", "p"]), "kill a paused container");
    poll_until(
        "the killed container to exit",
        Duration::from_secs(10),
        || inspect(&d, "p", "{{.State.Status}}") == "exited",
    );
    assert_ok(&d.docker(&["start", "p"]), "start");
    assert_ok(&d.docker(&["pause", "p"]), "pause");
    assert_ok(&d.docker(&["rm", "-f", "p"]), "rm -f a paused container");

    let ev = events(&d, &t0, "p");
    assert!(ev.contains("pause\n") && ev.contains("unpause\n"), "{ev}");
}

#[test]
fn paused_state_survives_a_daemon_restart() {
    let mut d = Daemon::start();
    d.load_busybox();
    run_d(&d, &["--name", "p", "busybox", "sleep", "300"]);
    assert_ok(&d.docker(&["pause", "p"]), "docker pause");
    d.stop();
    d.spawn();
    assert_eq!(inspect(&d, "p", "{{.State.Status}}"), "paused");
    assert_ok(
        &d.docker(&["unpause", "p"]),
        "unpause after a daemon restart",
    );
    assert_ok(&d.docker(&["rm", "-f", "p"]), "rm");
}

#[test]
fn update_changes_limits_of_a_running_container_and_its_restart_policy() {
    let d = Daemon::start();
    d.load_busybox();
    let t0 = now();
    let id = run_d(&d, &["--name", "u", "-m", "32m", "busybox", "sleep", "300"]);
    let out = d.docker(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "40",
        "u",
    ]);
    assert_ok(&out, "docker update");
    assert_eq!(
        inspect(
            &d,
            "u",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}}"
        ),
        "67108864 134217728 40"
    );
    let limit = cgroup_file(&d, "memory", &id, "memory.limit_in_bytes", "memory.max");
    assert_eq!(limit, "67108864");
    assert_eq!(cgroup_file(&d, "pids", &id, "pids.max", "pids.max"), "40");
    // Below the 6 MB floor: refused, nothing changes.
    let tiny = d.docker(&["update", "--memory", "1m", "u"]);
    assert!(stderr(&tiny).contains("Minimum memory limit"), "{tiny:?}");
    assert_eq!(inspect(&d, "u", "{{.HostConfig.Memory}}"), "67108864");

    assert_ok(
        &d.docker(&["update", "--restart", "on-failure:3", "u"]),
        "update restart",
    );
    assert_eq!(
        inspect(
            &d,
            "u",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:3"
    );
    assert!(events(&d, &t0, "u").contains("update\n"));

    // The raw API answers Docker's shape.
    let (code, body) = http(
        &d.socket,
        "POST",
        "/containers/u/update",
        Some(("application/json", br#"{"CpuShares": 512}"#)),
    )
    .expect("http");
    assert_eq!((code, body.trim()), (200, r#"{"Warnings":[]}"#));

    // A stopped container's record changes too.
    assert_ok(&d.docker(&["stop", "-t", "0", "u"]), "stop");
    assert_ok(
        &d.docker(&["update", "--memory", "48m", "u"]),
        "update stopped",
    );
    assert_eq!(inspect(&d, "u", "{{.HostConfig.Memory}}"), "50331648");

    run_d(&d, &["--rm", "--name", "r", "busybox", "sleep", "300"]);
    let refused = d.docker(&["update", "--restart", "always", "r"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("AutoRemove"), "{refused:?}");
}

fn create_with_health(d: &Daemon, name: &str, health: &str, cmd: &str) {
    let body = format!(r#"{{"Image":"busybox","Cmd":["sh","-c",{cmd:?}],"Healthcheck":{health}}}"#);
    let (code, resp) = http(
        &d.socket,
        "POST",
        &format!("/containers/create?name={name}"),
        Some(("application/json", body.as_bytes())),
    )
    .expect("http");
    assert_eq!(code, 201, "{resp}");
    assert_ok(&d.docker(&["start", name]), "start");
}

#[test]
fn health_checks_report_status_streak_log_and_events() {
    let d = Daemon::start();
    d.load_busybox();
    let t0 = now();
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "h",
        "--health-cmd",
        "test -e /tmp/ok && echo fine",
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "5s",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 300",
    ]);
    assert_ok(&out, "docker run with a healthcheck");
    poll_until("healthy", Duration::from_secs(20), || {
        inspect(&d, "h", "{{.State.Health.Status}}") == "healthy"
    });
    let ps = stdout(&d.docker(&["ps", "--format", "{{.Status}}"]));
    assert!(ps.contains("(healthy)"), "{ps}");
    let filtered = stdout(&d.docker(&["ps", "-q", "--filter", "health=healthy"]));
    assert_eq!(filtered.lines().count(), 1, "{filtered}");
    assert_eq!(
        stdout(&d.docker(&["ps", "-q", "--filter", "health=unhealthy"])),
        ""
    );
    assert!(inspect(&d, "h", "{{(index .State.Health.Log 0).Output}}").contains("fine"));

    assert_ok(&d.docker(&["exec", "h", "rm", "/tmp/ok"]), "exec rm");
    poll_until("unhealthy", Duration::from_secs(20), || {
        inspect(&d, "h", "{{.State.Health.Status}}") == "unhealthy"
    });
    let streak: i64 = inspect(&d, "h", "{{.State.Health.FailingStreak}}")
        .parse()
        .expect("number");
    assert!(streak >= 2, "streak {streak}");
    let log_len: usize = inspect(&d, "h", "{{len .State.Health.Log}}")
        .parse()
        .expect("n");
    assert!(log_len <= 5 && log_len > 0, "log {log_len}");

    let ev = events(&d, &t0, "h");
    assert!(ev.contains("health_status: healthy\n"), "{ev}");
    assert!(ev.contains("health_status: unhealthy\n"), "{ev}");
    assert!(
        ev.contains("exec_create: /bin/sh -c test -e /tmp/ok && echo fine\n"),
        "{ev}"
    );
    assert!(
        ev.contains("exec_start: /bin/sh -c test -e /tmp/ok && echo fine\n"),
        "{ev}"
    );
    assert!(ev.contains("exec_die\n"), "{ev}");

    // The monitor ends with the container; the last state stays visible.
    assert_ok(&d.docker(&["stop", "-t", "0", "h"]), "stop");
    let t1 = now();
    poll_until("no more probes", Duration::from_secs(5), || {
        !events(&d, &t1, "h").contains("exec_")
    });
    assert_eq!(inspect(&d, "h", "{{.State.Health.Status}}"), "unhealthy");

    // --no-healthcheck: no Health at all.
    run_d(
        &d,
        &["--name", "n", "--no-healthcheck", "busybox", "sleep", "300"],
    );
    assert_eq!(inspect(&d, "n", "{{.Config.Healthcheck.Test}}"), "[NONE]");
    assert_eq!(inspect(&d, "n", "{{.State.Health}}"), "<nil>");
}

#[test]
fn health_probe_timeout_and_start_period_follow_docker() {
    let d = Daemon::start();
    d.load_busybox();
    // 100 ms interval, 100 ms timeout, probes that hang.
    create_with_health(
        &d,
        "slow",
        r#"{"Test":["CMD","sleep","10"],"Interval":100000000,"Timeout":100000000,"Retries":1}"#,
        "sleep 300",
    );
    poll_until("a timed-out probe", Duration::from_secs(20), || {
        inspect(&d, "slow", "{{.State.Health.Status}}") == "unhealthy"
    });
    let entry = inspect(
        &d,
        "slow",
        "{{(index .State.Health.Log 0).ExitCode}} {{(index .State.Health.Log 0).Output}}",
    );
    assert_eq!(entry, "-1 Health check exceeded timeout (100ms)");
    // The probe was killed: no `sleep 10` piles up in the container.
    let ps = stdout(&d.docker(&["exec", "slow", "ps"]));
    assert!(ps.matches("sleep 10").count() <= 1, "{ps}");

    // Failures within the start period do not count.
    create_with_health(
        &d,
        "sp",
        r#"{"Test":["CMD","false"],"Interval":50000000,"StartInterval":50000000,"Retries":1,"StartPeriod":3000000000}"#,
        "sleep 300",
    );
    poll_until("three failed probes", Duration::from_secs(20), || {
        inspect(&d, "sp", "{{len .State.Health.Log}}")
            .parse::<usize>()
            .is_ok_and(|n| n >= 3)
    });
    // Three probes of `false` take far less than the 3 s start period.
    let state = inspect(
        &d,
        "sp",
        "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
    );
    assert_eq!(state, "starting 0");
    poll_until(
        "unhealthy after the start period",
        Duration::from_secs(20),
        || inspect(&d, "sp", "{{.State.Health.Status}}") == "unhealthy",
    );

    // Invalid durations are refused at create.
    let bad = d.docker(&[
        "create",
        "--health-cmd",
        "true",
        "--health-interval",
        "1ns",
        "busybox",
    ]);
    assert!(!bad.status.success(), "{bad:?}");
}

#[test]
fn oom_kill_is_reported_and_fork_bombs_stay_within_the_pids_limit() {
    let d = Daemon::start();
    d.load_busybox();
    let t0 = now();
    let out = d.docker(&[
        "run",
        "--name",
        "oom",
        "-m",
        "8m",
        "--memory-swap",
        "8m",
        "busybox",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    assert_eq!(
        inspect(&d, "oom", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    let ev = events(&d, &t0, "oom");
    let oom = ev.find("oom\n").expect("an oom event");
    let die = ev.find("die\n").expect("a die event");
    assert!(oom < die, "{ev}");

    // A fork bomb for a few seconds, bounded by `timeout` inside the container.
    let id = run_d(
        &d,
        &[
            "--name",
            "bomb",
            "--pids-limit",
            "50",
            "busybox",
            "sh",
            "-c",
            "timeout 3 sh -c 'b() { b | b & }; b'; sleep 300",
        ],
    );
    let mut max_seen = 0u64;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        // The container may end (and its cgroup go) only when the test removes it.
        let n: u64 = cgroup_file(&d, "pids", &id, "pids.current", "pids.current")
            .parse()
            .expect("pids.current");
        max_seen = max_seen.max(n);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        (2..=50).contains(&max_seen),
        "pids.current reached {max_seen}: the bomb must fork, and stay within the limit"
    );
    assert_ok(&d.docker(&["ps"]), "the daemon still answers");
    assert_ok(&d.docker(&["rm", "-f", "bomb"]), "rm -f the bomb");
}

#[test]
fn stop_signal_and_stop_timeout_come_from_the_config() {
    let d = Daemon::start();
    d.load_busybox();
    run_d(
        &d,
        &[
            "--name",
            "sig",
            "--stop-signal",
            "USR1",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-usr1; exit 3' USR1; while true; do sleep 0.1; done",
        ],
    );
    assert_eq!(inspect(&d, "sig", "{{.Config.StopSignal}}"), "USR1");
    assert_ok(&d.docker(&["stop", "sig"]), "docker stop");
    assert_eq!(inspect(&d, "sig", "{{.State.ExitCode}}"), "3");
    assert!(stdout(&d.docker(&["logs", "sig"])).contains("got-usr1"));

    // PID 1 ignores SIGTERM: the 1 s stop timeout, not the default 10 s, ends it.
    run_d(
        &d,
        &[
            "--name",
            "slow",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    assert_eq!(inspect(&d, "slow", "{{.Config.StopTimeout}}"), "1");
    let t = Instant::now();
    assert_ok(&d.docker(&["stop", "slow"]), "docker stop");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(inspect(&d, "slow", "{{.State.ExitCode}}"), "137");

    let bad = d.docker(&["create", "--stop-signal", "SIGBOGUS", "busybox"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).to_lowercase().contains("signal"), "{bad:?}");
}

/// A hijacked attach on the raw socket: the stream after the 101 response.
fn raw_attach(d: &Daemon, path: &str) -> UnixStream {
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: arca\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("response head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads until `want` is in the stream (or panics at the deadline).
fn read_until(s: &mut UnixStream, want: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.windows(want.len()).any(|w| w == want) {
        assert!(Instant::now() < deadline, "never saw {want:?} in {got:?}");
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "stream ended before {want:?}: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn detach_keys_end_an_attach_and_leave_the_container_running() {
    let d = Daemon::start();
    d.load_busybox();
    run_d(&d, &["-i", "--name", "cat", "busybox", "cat"]);
    let path = "/containers/cat/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x,ctrl-y";
    let mut s = raw_attach(&d, path);
    s.write_all(b"hello\n").expect("write");
    read_until(&mut s, b"hello\n");
    // A partial match followed by something else is passed through.
    s.write_all(b"\x18a\n").expect("write");
    read_until(&mut s, b"\x18a\n");
    // Split across writes, the sequence detaches.
    s.write_all(b"\x18").expect("write");
    s.flush().expect("flush");
    s.write_all(b"\x19more\n").expect("write");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(!rest.windows(4).any(|w| w == b"more"), "{rest:?}");
    assert_eq!(inspect(&d, "cat", "{{.State.Running}}"), "true");
    let logs = stdout(&d.docker(&["logs", "cat"]));
    assert!(logs.contains("hello") && !logs.contains("more"), "{logs:?}");

    // Invalid keys are a 400 before any upgrade.
    let (code, body) = http(
        &d.socket,
        "POST",
        "/containers/cat/attach?stream=1&stdin=1&detachKeys=ctrl-1",
        None,
    )
    .expect("http");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Invalid detach keys"), "{body}");

    // Without detachKeys, Docker's default ctrl-p,ctrl-q applies.
    let mut s = raw_attach(&d, "/containers/cat/attach?stream=1&stdin=1&stdout=1");
    s.write_all(b"again\n\x10\x11").expect("write");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(inspect(&d, "cat", "{{.State.Running}}"), "true");

    // The docker CLI with a TTY: the keys detach, the shell keeps running with its stdin
    // open. Typing waits for the session's output, so the CLI has made the terminal raw.
    let mut session = Pty::spawn(
        &d,
        &format!("{DOCKER} run -it --detach-keys ctrl-a,ctrl-b --name tty busybox sh"),
    );
    session.wait_for("/ # ");
    session.send(b"echo in-$((40+2))\n");
    session.wait_for("in-42");
    session.send(b"\x01\x02");
    // docker 28 detaches silently (exit 0); older CLIs printed "read escape sequence".
    let (code, text) = session.finish();
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(inspect(&d, "tty", "{{.State.Running}}"), "true");
    assert!(stdout(&d.docker(&["logs", "tty"])).contains("in-42"));
    // `docker attach` prints nothing until typed into, and input typed before it has
    // attached may be lost: type until the shell answers (bounded), then detach.
    let mut session = Pty::spawn(
        &d,
        &format!("{DOCKER} attach --detach-keys ctrl-a,ctrl-b tty"),
    );
    poll_until(
        "the reattached shell to answer",
        Duration::from_secs(15),
        || {
            session.send(b"echo again-$((1+1))\n");
            std::thread::sleep(Duration::from_millis(300));
            session.text().contains("again-2")
        },
    );
    session.send(b"\x01\x02");
    let (_, text) = session.finish();
    // `docker attach` reports the detach (and exits 1), `docker run` detaches silently.
    assert!(text.contains("read escape sequence"), "{text:?}");
    assert!(stdout(&d.docker(&["logs", "tty"])).contains("again-2"));
    assert_eq!(inspect(&d, "tty", "{{.State.Running}}"), "true");

    // Exec sessions detach the same way.
    let e = http(
        &d.socket,
        "POST",
        "/containers/cat/exec",
        Some((
            "application/json",
            br#"{"Cmd":["cat"],"AttachStdin":true,"AttachStdout":true,"DetachKeys":"ctrl-x,ctrl-y"}"#,
        )),
    )
    .expect("exec create");
    assert_eq!(e.0, 201, "{}", e.1);
    let exec_id = e.1.split('"').nth(3).expect("exec id").to_owned();
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = br#"{"Detach":false,"Tty":false}"#;
    let req = format!(
        "POST /exec/{exec_id}/start HTTP/1.1\r\nHost: arca\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    read_until(&mut s, b"\r\n\r\n");
    s.write_all(b"ping\n").expect("write");
    read_until(&mut s, b"ping\n");
    s.write_all(b"\x18\x19").expect("write");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(inspect(&d, "cat", "{{.State.Running}}"), "true");
}

#[test]
fn several_attached_clients_all_get_output_and_logs_keep_what_came_before() {
    let d = Daemon::start();
    d.load_busybox();
    let t0 = now();
    run_d(
        &d,
        &[
            "--name",
            "multi",
            "busybox",
            "sh",
            "-c",
            "echo early; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo late",
        ],
    );
    let attach = || {
        Command::new(DOCKER)
            .args(["attach", "--no-stdin", "multi"])
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker attach")
    };
    let a = attach();
    let b = attach();
    poll_until("two attach sessions", Duration::from_secs(10), || {
        events(&d, &t0, "multi").matches("attach\n").count() >= 2
    });
    // The attach event comes with the upgrade; give the splices a moment to reach the
    // shim by checking its output reaches a third client first.
    let mut s = raw_attach(&d, "/containers/multi/attach?stream=1&stdout=1&stderr=1");
    assert_ok(
        &d.docker(&["exec", "multi", "touch", "/tmp/go"]),
        "exec touch",
    );
    read_until(&mut s, b"late\n");
    for child in [a, b] {
        let out = child.wait_with_output().expect("attach output");
        assert!(stdout(&out).contains("late"), "{out:?}");
    }
    let logs = stdout(&d.docker(&["logs", "multi"]));
    assert_eq!(logs, "early\nlate\n");
}

#[test]
fn host_config_fields_reach_the_container() {
    let d = Daemon::start();
    d.load_busybox();
    let run = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        let out = d.docker(&a);
        assert_ok(&out, &format!("docker run {args:?}"));
        stdout(&out).trim().to_owned()
    };
    assert_eq!(
        run(&[
            "--ulimit",
            "nofile=1024:2048",
            "busybox",
            "sh",
            "-c",
            "echo $(ulimit -n) $(ulimit -Hn)"
        ]),
        "1024 2048"
    );
    assert_eq!(
        run(&[
            "--device",
            "/dev/null:/dev/mynull",
            "busybox",
            "sh",
            "-c",
            "test -c /dev/mynull && echo dev"
        ]),
        "dev"
    );
    let shm = run(&[
        "--shm-size",
        "16m",
        "busybox",
        "sh",
        "-c",
        "df -k /dev/shm | tail -1",
    ]);
    assert!(shm.split_whitespace().nth(1) == Some("16384"), "{shm}");
    let shm = run(&["busybox", "sh", "-c", "df -k /dev/shm | tail -1"]);
    assert!(shm.split_whitespace().nth(1) == Some("65536"), "{shm}");
    assert!(
        run(&["--group-add", "1234", "busybox", "id", "-G"])
            .split_whitespace()
            .any(|g| g == "1234")
    );
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(
        run(&["--uts", "host", "busybox", "hostname"]),
        host_name.trim()
    );
    // Host PID namespace: PID 1 is the host's init, not the container's process.
    let comm1 = std::fs::read_to_string("/proc/1/comm").expect("comm");
    assert_eq!(
        run(&["--pid", "host", "busybox", "cat", "/proc/1/comm"]),
        comm1.trim()
    );
    assert_eq!(
        run(&[
            "--pid",
            "host",
            "--privileged",
            "busybox",
            "cat",
            "/proc/1/comm"
        ]),
        comm1.trim()
    );
    // Joining another container's PID namespace.
    run_d(&d, &["--name", "target", "busybox", "sleep", "321"]);
    let ps = run(&["--pid", "container:target", "busybox", "ps"]);
    assert!(ps.contains("sleep 321"), "{ps}");
    assert_ok(&d.docker(&["stop", "-t", "0", "target"]), "stop target");
    let refused = d.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:target",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&refused).contains("non running container"),
        "{refused:?}"
    );

    // Invalid modes are a 400 at create, naming the field.
    let (code, body) = http(
        &d.socket,
        "POST",
        "/containers/create",
        Some((
            "application/json",
            br#"{"Image":"busybox","HostConfig":{"PidMode":"bogus"}}"#,
        )),
    )
    .expect("http");
    assert_eq!(
        (code, body.contains("invalid PID mode: bogus")),
        (400, true),
        "{body}"
    );
    let (code, body) = http(
        &d.socket,
        "POST",
        "/containers/create",
        Some((
            "application/json",
            br#"{"Image":"busybox","HostConfig":{"UsernsMode":"private"}}"#,
        )),
    )
    .expect("http");
    assert_eq!(code, 400, "{body}");
}

#[test]
fn init_runs_as_pid_one_and_reaps() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.docker(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert_ok(&out, "docker run --init");
    assert!(stdout(&out).starts_with("/sbin/docker-init -- "), "{out:?}");

    // An orphan (its parent subshell exits at once) is re-parented to PID 1. The command
    // then becomes `sleep`, which never reaps: only the init can, and must.
    run_d(
        &d,
        &[
            "--name",
            "z",
            "--init",
            "busybox",
            "sh",
            "-c",
            "(sleep 0.2 &); exec sleep 30",
        ],
    );
    std::thread::sleep(Duration::from_millis(1000));
    let ps = stdout(&d.docker(&["exec", "z", "ps", "-o", "stat=,comm="]));
    assert!(ps.contains("docker-init"), "{ps}");
    assert!(
        !ps.lines().any(|l| l.trim_start().starts_with('Z')),
        "zombie left: {ps}"
    );
    assert_ok(&d.docker(&["rm", "-f", "z"]), "rm");
}
