//! `docker stats`, `docker top`, `docker diff` and `docker port` (the real docker CLI)
//! against arcad.

mod common;

use std::time::Duration;

use common::{Daemon, assert_ok, poll_until, stderr, stdout};

/// Starts `docker run -d <args>` and returns the container ID.
fn run_d(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    let out = d.docker(&all);
    assert_ok(&out, "docker run -d");
    stdout(&out).trim().to_owned()
}

/// "1.5MiB" → bytes (the units docker stats prints).
fn parse_size(s: &str) -> f64 {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().unwrap_or_else(|_| panic!("size {s:?}"));
    n * match unit {
        "B" => 1.0,
        "KiB" | "kB" => 1024.0,
        "MiB" | "MB" => 1024.0 * 1024.0,
        "GiB" | "GB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other:?} in {s:?}"),
    }
}

#[test]
fn docker_stats_no_stream_shows_memory_pids_and_limit() {
    let d = Daemon::start();
    d.load_busybox();
    run_d(
        &d,
        &[
            "--name",
            "busy",
            "-m",
            "64m",
            "busybox",
            "sh",
            "-c",
            "sleep 300 & sleep 300",
        ],
    );
    let out = d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}",
        "busy",
    ]);
    assert_ok(&out, "docker stats --no-stream");
    let line = stdout(&out);
    let f: Vec<&str> = line.trim().split('|').collect();
    assert_eq!(f.len(), 4, "{line}");
    assert_eq!(f[0], "busy");
    let (used, limit) = f[1].split_once(" / ").expect("usage / limit");
    assert!(
        parse_size(used) > 0.0,
        "memory usage must be non-zero: {line}"
    );
    assert_eq!(limit, "64MiB", "{line}");
    let top = d.docker(&["top", "busy"]);
    assert_ok(&top, "docker top");
    let procs = stdout(&top).lines().count() - 1;
    assert_eq!(f[2], procs.to_string(), "{line}\n{}", stdout(&top));
    assert!(f[3].ends_with('%'), "{line}");

    // The default table too, and a container without a limit gets the host's memory.
    run_d(&d, &["--name", "free", "busybox", "sleep", "300"]);
    let out = d.docker(&["stats", "--no-stream", "busy", "free"]);
    assert_ok(&out, "docker stats table");
    let text = stdout(&out);
    assert!(text.starts_with("CONTAINER ID"), "{text}");
    assert!(text.lines().any(|l| l.contains(" free ")), "{text}");
    let out = d.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "free"]);
    let mem = stdout(&out);
    let (_, limit) = mem.trim().split_once(" / ").expect("usage / limit");
    assert!(parse_size(limit) > 64.0 * 1024.0 * 1024.0, "{mem}");
}

#[test]
fn docker_stats_of_a_stopped_container_is_zero() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.docker(&["run", "--name", "done", "busybox", "true"]);
    assert_ok(&out, "docker run");
    let out = d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}}|{{.PIDs}}",
        "done",
    ]);
    assert_ok(&out, "docker stats of a stopped container");
    assert_eq!(stdout(&out).trim(), "0B / 0B|0");
}

#[test]
fn docker_top_lists_container_processes_only() {
    let d = Daemon::start();
    d.load_busybox();
    let id = run_d(
        &d,
        &[
            "--name",
            "t",
            "busybox",
            "sh",
            "-c",
            "sleep 301 & sleep 302",
        ],
    );
    poll_until("both sleeps", Duration::from_secs(10), || {
        stdout(&d.docker(&["top", "t"])).contains("sleep 302")
            && stdout(&d.docker(&["top", "t"])).contains("sleep 301")
    });
    let out = d.docker(&["top", "t"]);
    let text = stdout(&out);
    let mut lines = text.lines();
    let titles: Vec<&str> = lines.next().expect("titles").split_whitespace().collect();
    assert_eq!(
        titles,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{text}"
    );
    let rows: Vec<&str> = lines.collect();
    // The shell execs its last command: two sleeps, nothing of the host.
    assert_eq!(rows.len(), 2, "the two sleeps only: {text}");
    assert!(rows.iter().all(|r| r.starts_with("root")), "{text}");

    // ps arguments pass through; the PID column is still used to filter.
    let out = d.docker(&["top", "t", "-o", "pid,comm"]);
    assert_ok(&out, "docker top -o pid,comm");
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("COMMAND") && text.contains("sleep"), "{text}");

    let out = d.docker(&["stop", "-t", "0", "t"]);
    assert_ok(&out, "docker stop");
    let out = d.docker(&["top", "t"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("Container {id} is not running")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn docker_diff_lists_added_deleted_and_changed_paths() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.docker(&[
        "run",
        "--name",
        "ch",
        "busybox",
        "sh",
        "-c",
        "touch /new; rm /etc/group; mkdir -p /data/sub; echo x > /data/sub/f",
    ]);
    assert_ok(&out, "docker run");
    // Stopped containers keep their changes.
    let out = d.docker(&["diff", "ch"]);
    assert_ok(&out, "docker diff");
    assert_eq!(
        stdout(&out),
        "A /data\nA /data/sub\nA /data/sub/f\nC /etc\nD /etc/group\nA /new\n"
    );

    // A fresh container shows no changes (the runtime's mount points are not changes).
    let out = d.docker(&["create", "--name", "fresh", "busybox", "sleep", "300"]);
    assert_ok(&out, "docker create");
    assert_eq!(stdout(&d.docker(&["diff", "fresh"])), "");
    assert_ok(&d.docker(&["start", "fresh"]), "docker start");
    let out = d.docker(&["diff", "fresh"]);
    assert_ok(&out, "docker diff of a running container");
    assert_eq!(stdout(&out), "");
}

#[test]
fn docker_port_reads_inspect_ports() {
    let d = Daemon::start();
    d.load_busybox();
    run_d(&d, &["--name", "p", "busybox", "sleep", "300"]);
    let out = d.docker(&["port", "p"]);
    assert_ok(&out, "docker port");
    assert_eq!(stdout(&out), "");
    let out = d.docker(&["inspect", "-f", "{{json .NetworkSettings.Ports}}", "p"]);
    assert_ok(&out, "docker inspect");
    assert_eq!(stdout(&out).trim(), "{}");
}
