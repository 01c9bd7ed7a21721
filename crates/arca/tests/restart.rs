//! Restart policies: on-failure with a limit, always until stopped, and what comes back
//! when arcad starts.

mod common;

use common::{Daemon, assert_ok, http, poll_until, stdout};
use std::time::Duration;

fn inspect(d: &Daemon, name: &str, field: &str) -> String {
    stdout(&d.docker(&["inspect", "-f", field, name]))
        .trim()
        .to_owned()
}

#[test]
fn restart_policies_follow_docker() {
    let mut d = Daemon::start();
    d.load_busybox();

    assert_ok(
        &d.docker(&[
            "run",
            "-d",
            "--name",
            "rf",
            "--restart",
            "on-failure:2",
            "busybox",
            "sh",
            "-c",
            "exit 1",
        ]),
        "run rf",
    );
    poll_until(
        "on-failure to give up after 2 restarts",
        Duration::from_secs(20),
        || inspect(&d, "rf", "{{.RestartCount}} {{.State.Status}}") == "2 exited",
    );
    assert_eq!(inspect(&d, "rf", "{{.State.ExitCode}}"), "1");

    assert_ok(
        &d.docker(&[
            "run",
            "-d",
            "--name",
            "ra",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "sleep 0.2",
        ]),
        "run ra",
    );
    poll_until("always to restart", Duration::from_secs(20), || {
        inspect(&d, "ra", "{{.RestartCount}}")
            .parse::<i64>()
            .unwrap_or(0)
            >= 2
    });
    assert_ok(&d.docker(&["stop", "-t", "1", "ra"]), "stop ra");
    poll_until("ra to stay stopped", Duration::from_secs(10), || {
        inspect(&d, "ra", "{{.State.Status}}") == "exited"
    });
    let count = inspect(&d, "ra", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        inspect(&d, "ra", "{{.RestartCount}} {{.State.Status}}"),
        format!("{count} exited"),
        "a stopped container is not restarted"
    );

    assert_ok(
        &d.docker(&[
            "run",
            "-d",
            "--name",
            "us",
            "--restart",
            "unless-stopped",
            "busybox",
            "sleep",
            "60",
        ]),
        "run us",
    );
    assert_ok(&d.docker(&["stop", "-t", "1", "us"]), "stop us");
    // arcad starting again brings back `always` (even stopped) but not a stopped
    // `unless-stopped`.
    d.stop();
    d.spawn();
    poll_until(
        "always to come back with arcad",
        Duration::from_secs(20),
        || {
            inspect(&d, "ra", "{{.RestartCount}}") != count
                || inspect(&d, "ra", "{{.State.Status}}") == "running"
        },
    );
    assert_eq!(inspect(&d, "us", "{{.State.Status}}"), "exited");
    assert_ok(&d.docker(&["rm", "-f", "ra", "rf", "us"]), "rm");

    // Bad policies are refused.
    let body = br#"{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"always","MaximumRetryCount":3}}}"#;
    let (code, text) = http(
        &d.socket,
        "POST",
        "/containers/create",
        Some(("application/json", body)),
    )
    .expect("http");
    assert_eq!(code, 400, "{text}");
    let body = br#"{"Image":"busybox","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#;
    let (code, _) = http(
        &d.socket,
        "POST",
        "/containers/create",
        Some(("application/json", body)),
    )
    .expect("http");
    assert_eq!(code, 400);
}
