//! `docker export` / `arca export` against arcad: the container's filesystem merged from
//! its image's layers and its own changes, for stopped, never-started and running
//! containers, and an export imported back as an image.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{DOCKER, Daemon, assert_ok, http, poll_until, stderr, stdout};

/// What an entry of the archive is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File(String),
    Symlink(String),
    Other,
}

/// The archive's entries by name.
fn entries(tar: &[u8]) -> BTreeMap<String, Kind> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .expect("a tar")
        .map(|e| {
            let mut e = e.expect("entry");
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let kind = match e.header().entry_type() {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink(
                    e.link_name()
                        .expect("link")
                        .expect("target")
                        .display()
                        .to_string(),
                ),
                tar::EntryType::Regular => {
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).expect("content");
                    Kind::File(String::from_utf8_lossy(&data).into_owned())
                }
                _ => Kind::Other,
            };
            (name, kind)
        })
        .collect()
}

fn file(content: &str) -> Kind {
    Kind::File(content.to_owned())
}

#[test]
fn docker_export_of_a_stopped_container_merges_its_changes_over_the_image() {
    let d = Daemon::start();
    d.load_busybox();
    // A second image layer, with a deletion of its own.
    let out = d.docker(&[
        "run",
        "--name",
        "base",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /opt/old /srv && echo a > /opt/old/a && echo k > /opt/keep \
         && echo v1 > /srv/conf && mkdir -p /home/user && echo n > /home/user/notes \
         && rm /etc/group",
    ]);
    assert_ok(&out, "docker run base");
    assert_ok(&d.docker(&["commit", "base", "layered"]), "docker commit");
    // The container creates a file, deletes an image file, replaces a directory with a
    // new one and another with a file, and rewrites a file.
    let out = d.docker(&[
        "run",
        "--name",
        "c",
        "layered",
        "sh",
        "-c",
        "echo hi > /new && rm /etc/passwd && rm -rf /opt && mkdir /opt \
         && echo fresh > /opt/fresh && rm -rf /home && echo f > /home && echo v2 > /srv/conf",
    ]);
    assert_ok(&out, "docker run c");

    // Without -o the archive goes to standard output (not a terminal here).
    let out = d.docker(&["export", "c"]);
    assert_ok(&out, "docker export");
    let tar = out.stdout;
    let e = entries(&tar);
    assert_eq!(e.get("new"), Some(&file("hi\n")), "created file");
    assert_eq!(e.get("srv/conf"), Some(&file("v2\n")), "upper content wins");
    assert_eq!(e.get("home"), Some(&file("f\n")), "a file replaces a dir");
    assert!(!e.contains_key("home/user/notes"));
    assert_eq!(e.get("opt/"), Some(&Kind::Dir));
    assert_eq!(e.get("opt/fresh"), Some(&file("fresh\n")));
    assert!(
        !e.contains_key("opt/old/") && !e.contains_key("opt/old/a") && !e.contains_key("opt/keep"),
        "the replaced directory hides the image's entries: {:?}",
        e.keys()
            .filter(|k| k.starts_with("opt"))
            .collect::<Vec<_>>()
    );
    assert!(!e.contains_key("etc/passwd"), "deleted by the container");
    assert!(!e.contains_key("etc/group"), "deleted in an image layer");
    assert_eq!(e.get("etc/"), Some(&Kind::Dir));
    assert!(matches!(e.get("bin/busybox"), Some(Kind::File(_))));
    assert_eq!(e.get("bin/sh"), Some(&Kind::Symlink("busybox".into())));
    assert!(
        e.keys().all(|k| !k.contains(".wh.")),
        "no whiteouts in an export"
    );
    // The runtime's files are mounted over mount points: their content never leaks.
    for p in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        assert!(
            e.get(p).is_none_or(|k| *k == file("")),
            "{p}: {:?}",
            e.get(p)
        );
    }

    // The export imports back as an image that runs.
    let path = d.dir.path().join("c.tar");
    std::fs::write(&path, &tar).expect("write export");
    let out = d.docker(&["import", path.to_str().expect("utf8"), "imported:1"]);
    assert_ok(&out, "docker import");
    let out = d.docker(&[
        "run",
        "--rm",
        "imported:1",
        "sh",
        "-c",
        "cat /new /srv/conf /home && ls /opt && ls /etc",
    ]);
    assert_ok(&out, "docker run imported");
    let text = stdout(&out);
    assert!(text.starts_with("hi\nv2\nf\nfresh\n"), "{text}");
    assert!(
        !text.contains("passwd") && !text.contains("group"),
        "{text}"
    );

    // A container that never ran exports its image's filesystem.
    assert_ok(
        &d.docker(&["create", "--name", "fresh", "layered"]),
        "docker create",
    );
    let out = d.docker(&["export", "fresh"]);
    assert_ok(&out, "docker export of a created container");
    let e = entries(&out.stdout);
    assert_eq!(e.get("opt/keep"), Some(&file("k\n")));
    assert_eq!(e.get("home/user/notes"), Some(&file("n\n")));
    assert!(!e.contains_key("new") && !e.contains_key("etc/group"));
}

#[test]
fn arca_export_writes_a_running_containers_filesystem_to_a_file() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.arca(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo live > /live; exec sleep 300",
    ]);
    assert_ok(&out, "arca run -d");
    poll_until(
        "the container to write /live",
        Duration::from_secs(20),
        || stdout(&d.arca(&["exec", "live", "cat", "/live"])) == "live\n",
    );

    let path = d.dir.path().join("live.tar");
    let out = d.arca(&["export", "-o", path.to_str().expect("utf8"), "live"]);
    assert_ok(&out, "arca export -o");
    assert_eq!(stdout(&out), "");
    let meta = std::fs::metadata(&path).expect("the archive");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let e = entries(&std::fs::read(&path).expect("read"));
    assert_eq!(e.get("live"), Some(&file("live\n")));
    assert!(matches!(e.get("bin/busybox"), Some(Kind::File(_))));
    assert_eq!(
        stdout(&d.docker(&["inspect", "-f", "{{.State.Status}}", "live"])).trim(),
        "running",
        "exporting does not disturb the container"
    );

    // Standard output is refused when it is a terminal.
    let out = d.in_pty(&format!("{} export live", env!("CARGO_BIN_EXE_arca")), b"");
    assert!(
        stdout(&out)
            .contains("cowardly refusing to save to a terminal. Use the -o flag or redirect"),
        "{}",
        stdout(&out)
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn exporting_an_unknown_container_is_a_404_and_writes_nothing() {
    let d = Daemon::start();
    let (status, body) = http(&d.socket, "GET", "/containers/nosuch/export", None).expect("http");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("No such container: nosuch"), "{body}");

    let dir = d.dir.path().join("out");
    let path = dir.join("x.tar");
    for prog in [DOCKER, env!("CARGO_BIN_EXE_arca")] {
        std::fs::create_dir_all(&dir).expect("mkdir");
        let out = d
            .client(prog)
            .args(["export", "-o", path.to_str().expect("utf8"), "nosuch"])
            .output()
            .expect("run client");
        assert_eq!(out.status.code(), Some(1), "{prog}");
        assert!(
            stderr(&out).contains("Error response from daemon: No such container: nosuch"),
            "{prog}: {}",
            stderr(&out)
        );
        if prog != DOCKER {
            // Neither the file nor its temporary is left behind (docker's own CLI leaves
            // an empty file).
            let left: Vec<_> = std::fs::read_dir(&dir)
                .expect("ls")
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
        std::fs::remove_dir_all(&dir).expect("rm");
    }
}
