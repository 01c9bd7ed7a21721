//! `arcad --userns-remap`: containers run in a user namespace, root inside is an unprivileged
//! host user, and the image's layers (shared by every container) are never chowned.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{Daemon, assert_ok, stdout};

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn userns_remap_runs_containers_as_mapped_root_without_touching_layers() {
    let d = Daemon::start_with(&["--userns-remap", "200000:200000:65536"]);
    d.load_busybox();

    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; id -g; echo hi > /made && cat /made",
    ]);
    assert_ok(&o, "run with a remapped root");
    let out = words(&stdout(&o));
    assert_eq!(out, ["0", "200000", "65536", "0", "0", "hi"], "{out:?}");

    // What container root writes belongs to the mapped host user; the layers stay root's.
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "keep",
        "busybox",
        "sh",
        "-c",
        "echo x > /made; sleep 60",
    ]);
    assert_ok(&o, "run -d");
    let id = stdout(&o).trim().to_owned();
    let made = d.root.join("containers").join(&id).join("rw/upper/made");
    common::poll_until(
        "the file in the upper dir",
        std::time::Duration::from_secs(10),
        || made.exists(),
    );
    let meta = std::fs::metadata(&made).expect("stat");
    assert_eq!((meta.uid(), meta.gid()), (200000, 200000));
    let o = d.docker(&[
        "exec",
        "keep",
        "stat",
        "-c",
        "%u:%g",
        "/made",
        "/bin/busybox",
    ]);
    assert_ok(&o, "exec stat");
    assert_eq!(
        words(&stdout(&o)),
        ["0:0", "0:0"],
        "owners as the container sees them"
    );
    let o = d.docker(&["exec", "keep", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        words(&stdout(&o)),
        ["0", "200000", "65536"],
        "execs join the user namespace"
    );
    assert_ok(&d.docker(&["rm", "-f", "keep"]), "rm");

    // --userns host opts a container out.
    let o = d.docker(&[
        "run",
        "--rm",
        "--userns",
        "host",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]);
    assert_ok(&o, "run --userns host");
    assert_eq!(words(&stdout(&o)), ["0", "0", "4294967295"]);
}
