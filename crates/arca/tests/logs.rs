//! json-file log rotation through the real docker CLI: `--log-opt max-size/max-file`, and
//! `docker logs` reading across the rotated files.

mod common;

use common::{Daemon, assert_ok, stderr, stdout};

#[test]
fn logs_rotate_by_log_opts_and_read_across_files() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.docker(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 1 200); do echo line-$i; done",
    ]);
    assert_ok(&out, "docker run with log opts");
    let id = stdout(&out).trim().to_owned();
    let out = d.docker(&["wait", &id]);
    assert_ok(&out, "docker wait");
    assert_eq!(stdout(&out).trim(), "0");

    let out = d.docker(&["logs", &id]);
    assert_ok(&out, "docker logs");
    let logs = stdout(&out);
    assert!(logs.ends_with("line-200\n"), "{logs}");
    assert!(!logs.contains("line-1\n"), "old lines must be rotated away");
    // Two files of at most 1 KiB each: roughly 2 KiB of JSON, far from 200 lines.
    let lines: Vec<&str> = logs.lines().collect();
    assert!(lines.len() > 1 && lines.len() < 50, "{}", lines.len());
    let tail = d.docker(&["logs", "--tail", "3", &id]);
    assert_eq!(stdout(&tail), "line-198\nline-199\nline-200\n");

    let out = d.docker(&["inspect", "-f", "{{.LogPath}}", &id]);
    assert_ok(&out, "docker inspect");
    let log_path = std::path::PathBuf::from(stdout(&out).trim());
    let dir = log_path.parent().expect("container dir");
    let prefix = format!("{id}-json.log");
    let files: Vec<String> = std::fs::read_dir(dir)
        .expect("read container dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(
        !files.is_empty() && files.len() <= 2,
        "log files: {files:?}"
    );
    for f in &files {
        let len = std::fs::metadata(dir.join(f)).expect("stat").len();
        assert!(len <= 1024, "{f} is {len} bytes");
    }

    // Invalid options are refused at create time.
    for opt in ["max-size=ten", "max-file=0"] {
        let out = d.docker(&["create", "--log-opt", opt, "busybox", "true"]);
        assert!(!out.status.success(), "{opt} accepted");
        assert!(stderr(&out).contains("invalid"), "{}", stderr(&out));
    }
    let out = d.docker(&["create", "--log-driver", "syslog", "busybox", "true"]);
    assert!(!out.status.success(), "syslog accepted");
}

/// arcad's `--log-opt` is the default of containers that set none (recorded in their
/// HostConfig, as Docker does); a container's own options win.
#[test]
fn daemon_log_opts_are_the_default_rotation() {
    let d = common::Daemon::start_with(&["--log-opt", "max-size=1k", "--log-opt", "max-file=2"]);
    d.load_busybox();
    let script =
        "i=0; while [ $i -lt 200 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done";
    let out = d.docker(&["run", "--name", "small", "busybox", "sh", "-c", script]);
    common::assert_ok(&out, "run");
    let cfg = common::stdout(&d.docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}} {{index .HostConfig.LogConfig.Config \"max-file\"}}",
        "small",
    ]));
    assert_eq!(cfg.trim(), "json-file 1k 2");
    let id = common::stdout(&d.docker(&["inspect", "-f", "{{.Id}}", "small"]))
        .trim()
        .to_owned();
    let log = d
        .root
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    let rotated = |n: u32| std::path::PathBuf::from(format!("{}.{n}", log.display()));
    assert!(log.exists() && rotated(1).exists(), "rotated at 1k");
    assert!(!rotated(2).exists(), "only 2 files kept");
    assert!(std::fs::metadata(&log).expect("stat").len() <= 1024);

    let out = d.docker(&[
        "run",
        "--name",
        "own",
        "--log-opt",
        "max-size=1m",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    common::assert_ok(&out, "run with its own max-size");
    let cfg = common::stdout(&d.docker(&[
        "inspect",
        "-f",
        "{{index .HostConfig.LogConfig.Config \"max-size\"}} {{index .HostConfig.LogConfig.Config \"max-file\"}}",
        "own",
    ]));
    assert_eq!(cfg.trim(), "1m 2", "own max-size, the daemon's max-file");

    // Times are parsed as /events parses them: "NaN" or "1e9" are not timestamps.
    for bad in ["NaN", "1e9", "inf"] {
        let (code, body) = common::http(
            &d.socket,
            "GET",
            &format!("/containers/own/logs?stdout=1&since={bad}"),
            None,
        )
        .expect("logs");
        assert_eq!(code, 400, "since={bad}: {body}");
    }
}
