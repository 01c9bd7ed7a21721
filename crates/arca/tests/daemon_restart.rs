//! Containers outlive arcad: after a crash (SIGKILL) or a graceful stop, a new arcad finds
//! them again and logs, wait, stop and rm work.

mod common;

use common::{Daemon, assert_ok, poll_until, stdout};
use std::time::Duration;

#[test]
fn containers_survive_daemon_crash_and_restart() {
    let mut d = Daemon::start();
    d.load_busybox();
    let out = d.arca(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 1; echo two; sleep 60",
    ]);
    assert_ok(&out, "arca run -d");
    let done = d.arca(&[
        "run",
        "-d",
        "--name",
        "quick",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 7",
    ]);
    assert_ok(&done, "arca run -d quick");

    d.crash();
    // While arcad is down, "quick" exits; "survivor" keeps running.
    std::thread::sleep(Duration::from_millis(1500));
    d.spawn();

    let ps = stdout(&d.arca(&["ps"]));
    assert!(ps.contains("survivor"), "running container lost: {ps}");
    poll_until("logs after restart", Duration::from_secs(10), || {
        stdout(&d.arca(&["logs", "survivor"])) == "one\ntwo\n"
    });
    let insp = d.arca(&["inspect", "quick"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&insp)).expect("json");
    assert_eq!(v[0]["State"]["Status"], "exited", "{v}");
    assert_eq!(v[0]["State"]["ExitCode"], 7);

    // A graceful stop of arcad leaves it running too.
    d.stop();
    d.spawn();
    assert!(stdout(&d.arca(&["ps"])).contains("survivor"));

    assert_ok(&d.arca(&["stop", "-t", "1", "survivor"]), "arca stop");
    assert_ok(&d.arca(&["rm", "survivor", "quick"]), "arca rm");
    assert_eq!(stdout(&d.arca(&["ps", "-aq"])).trim(), "");
}
