//! `exec` through the real docker CLI and arca.

mod common;

use common::{Daemon, assert_ok, poll_until, stderr, stdout};
use std::time::Duration;

#[test]
fn exec_runs_commands_in_a_running_container() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.docker(&[
            "run",
            "-d",
            "--name",
            "box",
            "--hostname",
            "boxhost",
            "busybox",
            "sleep",
            "60",
        ]),
        "run -d",
    );

    let out = d.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo $(hostname) $$; echo err >&2",
    ]);
    assert_ok(&out, "docker exec");
    let text = stdout(&out);
    assert!(text.starts_with("boxhost "), "{text}");
    assert_ne!(
        text.trim_end().rsplit(' ').next(),
        Some("1"),
        "exec is not PID 1"
    );
    assert_eq!(stderr(&out), "err\n");

    assert_eq!(
        d.docker(&["exec", "box", "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    let out = d.docker(&["exec", "box", "nosuchcmd"]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        format!("{}{}", stdout(&out), stderr(&out)).contains("executable file not found"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );

    // The init's process is visible (same pid namespace); the container's caps apply.
    let out = d.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; grep CapBnd /proc/self/status",
    ]);
    let text = stdout(&out);
    assert!(text.starts_with("sleep 60"), "{text}");
    assert!(text.contains("00000000a80425fb"), "{text}");

    let out = d.arca(&[
        "exec",
        "-u",
        "65534",
        "-e",
        "X=y",
        "-w",
        "/tmp",
        "box",
        "sh",
        "-c",
        "echo $(id -u) $X $(pwd)",
    ]);
    assert_ok(&out, "arca exec");
    assert_eq!(stdout(&out), "65534 y /tmp\n");

    // Detached exec leaves its mark.
    assert_ok(
        &d.docker(&["exec", "-d", "box", "sh", "-c", "echo done > /tmp/mark"]),
        "exec -d",
    );
    poll_until("detached exec", Duration::from_secs(10), || {
        stdout(&d.docker(&["exec", "box", "cat", "/tmp/mark"])) == "done\n"
    });

    // stdin.
    let out = d.with_input(
        common::DOCKER,
        &["exec", "-i", "box", "tr", "a-z", "A-Z"],
        b"shout\n",
    );
    assert_eq!(stdout(&out), "SHOUT\n");

    // A terminal.
    for prog in [common::DOCKER, env!("CARGO_BIN_EXE_arca")] {
        let out = d.in_pty(&format!("{prog} exec -it box sh"), b"tty; exit 6\n");
        assert!(
            stdout(&out).contains("/dev/pts/"),
            "{prog}: {}",
            stdout(&out)
        );
        assert_eq!(out.status.code(), Some(6), "{prog}");
    }

    // Not into a stopped container.
    assert_ok(&d.docker(&["kill", "box"]), "kill");
    poll_until("box to stop", Duration::from_secs(10), || {
        stdout(&d.docker(&["inspect", "-f", "{{.State.Running}}", "box"])).trim() == "false"
    });
    let out = d.docker(&["exec", "box", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
}
