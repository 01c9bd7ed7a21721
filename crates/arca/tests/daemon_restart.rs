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

/// arcad stopped between spawning a shim and recording the start (simulated by rewriting
/// the record as "created" while arcad is down): the restarted arcad ends that shim, and the
/// container starts again normally.
#[test]
fn a_shim_left_by_an_unfinished_start_is_ended_on_restart() {
    let mut d = Daemon::start();
    d.load_busybox();
    let out = d.docker(&["run", "-d", "--name", "half", "busybox", "sleep", "600"]);
    assert_ok(&out, "docker run -d");
    let id = stdout(&out).trim().to_owned();
    let pid: i32 = stdout(&d.docker(&["inspect", "-f", "{{.State.Pid}}", "half"]))
        .trim()
        .parse()
        .expect("pid");
    d.crash();
    let record = d.root.join("containers").join(&id).join("config.v1.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("read record")).expect("json");
    v["state"]["status"] = serde_json::json!("created");
    std::fs::write(&record, serde_json::to_vec(&v).expect("json")).expect("write record");
    d.spawn();

    poll_until(
        "the stray container to be killed",
        Duration::from_secs(10),
        || !std::path::Path::new(&format!("/proc/{pid}")).exists(),
    );
    assert_eq!(
        stdout(&d.docker(&["inspect", "-f", "{{.State.Status}}", "half"])).trim(),
        "created"
    );
    assert_ok(&d.docker(&["start", "half"]), "start after recovery");
    assert_eq!(
        stdout(&d.docker(&["inspect", "-f", "{{.State.Running}}", "half"])).trim(),
        "true"
    );
    assert_ok(&d.docker(&["rm", "-f", "half"]), "rm");
}
