//! The archive API through the real `docker cp`: both ways, running and stopped containers,
//! volumes, read-only targets, and archives or container symlinks that try to reach the host.

mod common;

use std::path::Path;

use common::{Daemon, assert_ok, http, stderr, stdout};

fn docker_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert_ok(&out, &args.join(" "));
    stdout(&out)
}

#[test]
fn docker_cp_copies_files_and_directories_both_ways_on_a_running_container() {
    let d = Daemon::start();
    d.load_busybox();
    let host = tempfile::tempdir().expect("tempdir");
    let h = host.path();
    docker_ok(
        &d,
        &["run", "-d", "--name", "c", "busybox", "sleep", "1000"],
    );

    // A file into an existing directory, and under a new name.
    std::fs::write(h.join("greeting.txt"), "hello from the host\n").expect("write");
    let src = h.join("greeting.txt");
    docker_ok(&d, &["cp", src.to_str().expect("utf8"), "c:/tmp/"]);
    docker_ok(
        &d,
        &["cp", src.to_str().expect("utf8"), "c:/tmp/renamed.txt"],
    );
    assert_eq!(
        docker_ok(
            &d,
            &["exec", "c", "cat", "/tmp/greeting.txt", "/tmp/renamed.txt"]
        ),
        "hello from the host\nhello from the host\n"
    );

    // A directory tree into a new path, with its modes and a symlink.
    let tree = h.join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    std::fs::write(tree.join("sub/run.sh"), "#!/bin/sh\necho ran\n").expect("write");
    std::fs::set_permissions(
        tree.join("sub/run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("sub/run.sh", tree.join("link")).expect("symlink");
    docker_ok(&d, &["cp", tree.to_str().expect("utf8"), "c:/tmp/tree"]);
    assert_eq!(docker_ok(&d, &["exec", "c", "/tmp/tree/link"]), "ran\n");

    // Out again: a file, a directory, a directory's content (`/.`).
    let out = h.join("out");
    std::fs::create_dir(&out).expect("mkdir");
    docker_ok(
        &d,
        &[
            "cp",
            "c:/tmp/tree",
            out.join("copy").to_str().expect("utf8"),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("copy/sub/run.sh")).expect("copied"),
        "#!/bin/sh\necho ran\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("copy/link")).expect("link kept"),
        Path::new("sub/run.sh")
    );
    docker_ok(&d, &["cp", "c:/tmp/tree/.", out.to_str().expect("utf8")]);
    assert!(out.join("sub/run.sh").is_file(), "content copied into out/");
    docker_ok(&d, &["exec", "c", "sh", "-c", "echo changed > /etc/motd"]);
    docker_ok(&d, &["cp", "c:/etc/motd", out.to_str().expect("utf8")]);
    assert_eq!(
        std::fs::read_to_string(out.join("motd")).expect("file out"),
        "changed\n"
    );

    // To stdout as a tar.
    let tar = d.docker(&["cp", "c:/tmp/greeting.txt", "-"]);
    assert_ok(&tar, "cp to stdout");
    let mut a = tar::Archive::new(&tar.stdout[..]);
    let names: Vec<String> = a
        .entries()
        .expect("tar")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["greeting.txt"]);

    // A missing path is a clear 404.
    let missing = d.docker(&["cp", "c:/nope", out.to_str().expect("utf8")]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("Could not find the file /nope in container c"),
        "{}",
        stderr(&missing)
    );
    docker_ok(&d, &["rm", "-f", "c"]);
}

#[test]
fn docker_cp_works_on_created_and_stopped_containers_and_their_volumes() {
    let d = Daemon::start();
    d.load_busybox();
    let host = tempfile::tempdir().expect("tempdir");
    let h = host.path();
    std::fs::write(h.join("config.txt"), "configured\n").expect("write");
    std::fs::write(h.join("data.txt"), "in the volume\n").expect("write");
    docker_ok(
        &d,
        &[
            "create",
            "--name",
            "s",
            "-v",
            "vol:/data",
            "busybox",
            "cat",
            "/config.txt",
            "/data/data.txt",
        ],
    );
    docker_ok(
        &d,
        &["cp", h.join("config.txt").to_str().expect("utf8"), "s:/"],
    );
    docker_ok(
        &d,
        &["cp", h.join("data.txt").to_str().expect("utf8"), "s:/data/"],
    );
    // The volume got the file, not the container's own layer.
    let mp = docker_ok(&d, &["volume", "inspect", "-f", "{{.Mountpoint}}", "vol"]);
    assert_eq!(
        std::fs::read_to_string(Path::new(mp.trim()).join("data.txt")).expect("in volume"),
        "in the volume\n"
    );
    let run = d.docker(&["start", "-a", "s"]);
    assert_ok(&run, "start -a");
    assert_eq!(stdout(&run), "configured\nin the volume\n");

    // Out of the exited container.
    docker_ok(
        &d,
        &[
            "cp",
            "s:/config.txt",
            h.join("back.txt").to_str().expect("utf8"),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(h.join("back.txt")).expect("back"),
        "configured\n"
    );
    // Nothing of the helper's mounts stays behind.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&d.root.display().to_string()),
        "a mount under the daemon's root stayed: {mounts}"
    );
    docker_ok(&d, &["rm", "s"]);
}

#[test]
fn docker_cp_refuses_read_only_targets() {
    let d = Daemon::start();
    d.load_busybox();
    let host = tempfile::tempdir().expect("tempdir");
    let h = host.path();
    let ro = h.join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    std::fs::write(h.join("f.txt"), "x\n").expect("write");
    let f = h.join("f.txt");
    let bind = format!("{}:/ro:ro", ro.display());
    docker_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "r",
            "--read-only",
            "-v",
            &bind,
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let into_bind = d.docker(&["cp", f.to_str().expect("utf8"), "r:/ro/"]);
    assert!(!into_bind.status.success());
    assert!(
        stderr(&into_bind).contains("mounted volume is marked read-only"),
        "{}",
        stderr(&into_bind)
    );
    assert!(
        !ro.join("f.txt").exists(),
        "the read-only bind stayed read-only"
    );
    let into_root = d.docker(&["cp", f.to_str().expect("utf8"), "r:/tmp/"]);
    assert!(!into_root.status.success());
    assert!(
        stderr(&into_root).contains("container rootfs is marked read-only"),
        "{}",
        stderr(&into_root)
    );
    // Reading still works.
    docker_ok(
        &d,
        &[
            "cp",
            "r:/etc/passwd",
            h.join("passwd").to_str().expect("utf8"),
        ],
    );
    assert!(h.join("passwd").is_file());
    docker_ok(&d, &["rm", "-f", "r"]);
}

/// A tar whose entries are given as (name, type, link target, content).
fn tar_of(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut hd = tar::Header::new_gnu();
        hd.set_entry_type(*kind);
        hd.set_mode(0o644);
        hd.set_size(data.len() as u64);
        // Set raw bytes: the tar crate refuses `..` in set_path.
        let raw = &mut hd.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        if !link.is_empty() {
            hd.set_link_name(link).expect("link name");
        }
        hd.set_cksum();
        b.append(&hd, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

#[test]
fn archives_and_container_symlinks_cannot_write_outside_the_container() {
    let d = Daemon::start();
    d.load_busybox();
    docker_ok(
        &d,
        &["run", "-d", "--name", "e", "busybox", "sleep", "1000"],
    );
    let marker = format!("arca-cp-escape-{}", std::process::id());
    let socket = d.socket.clone();
    let put = |path: &str, body: &[u8]| {
        http(
            &socket,
            "PUT",
            &format!("/containers/e/archive?path={path}&noOverwriteDirNonDir=true"),
            Some(("application/x-tar", body)),
        )
        .expect("http")
    };

    // `../` out of the extraction directory.
    let name = format!("../../../../../../tmp/{marker}");
    let (status, body) = put(
        "/tmp",
        &tar_of(&[(&name, tar::EntryType::Regular, "", b"x")]),
    );
    assert_eq!(status, 400, "{body}");
    assert!(!Path::new("/tmp").join(&marker).exists());

    // A symlink to the host's /tmp, then a file through it.
    let (status, body) = put(
        "/tmp",
        &tar_of(&[
            ("out", tar::EntryType::Symlink, "../../../../../tmp", b""),
            (&format!("out/{marker}"), tar::EntryType::Regular, "", b"x"),
        ]),
    );
    assert_eq!(status, 400, "{body}");
    assert!(!Path::new("/tmp").join(&marker).exists());

    // A hard link to a host file.
    let (status, body) = put(
        "/tmp",
        &tar_of(&[("pw", tar::EntryType::Link, "../../../../etc/passwd", b"")]),
    );
    assert_eq!(status, 400, "{body}");

    // A symlink the container made to "/tmp" leads to the container's /tmp, never the
    // host's: `docker cp` through it lands inside the container.
    docker_ok(&d, &["exec", "e", "ln", "-s", "/tmp", "/hostlink"]);
    let host = tempfile::tempdir().expect("tempdir");
    let f = host.path().join(&marker);
    std::fs::write(&f, "inside\n").expect("write");
    docker_ok(&d, &["cp", f.to_str().expect("utf8"), "e:/hostlink/"]);
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "wrote to the host"
    );
    assert_eq!(
        docker_ok(&d, &["exec", "e", "cat", &format!("/tmp/{marker}")]),
        "inside\n"
    );
    // Reading through an absolute symlink reads the container's file.
    docker_ok(
        &d,
        &[
            "exec",
            "e",
            "sh",
            "-c",
            "echo container-passwd > /tmp/pw; ln -s /tmp/pw /pwlink",
        ],
    );
    let out = host.path().join("read");
    docker_ok(&d, &["cp", "-L", "e:/pwlink", out.to_str().expect("utf8")]);
    assert_eq!(
        std::fs::read_to_string(&out).expect("read"),
        "container-passwd\n"
    );
    docker_ok(&d, &["rm", "-f", "e"]);
}

#[test]
fn docker_cp_maps_ids_through_the_user_namespace() {
    let d = Daemon::start_with(&["--userns-remap", "210000:210000:65536"]);
    d.load_busybox();
    let host = tempfile::tempdir().expect("tempdir");
    let f = host.path().join("owned.txt");
    std::fs::write(&f, "mapped\n").expect("write");
    std::os::unix::fs::chown(&f, Some(1000), Some(1000)).expect("chown");
    docker_ok(
        &d,
        &["run", "-d", "--name", "u", "busybox", "sleep", "1000"],
    );
    docker_ok(&d, &["cp", f.to_str().expect("utf8"), "u:/tmp/"]);
    // Inside, the file has the archive's owner; on the host, that owner mapped.
    assert_eq!(
        docker_ok(&d, &["exec", "u", "stat", "-c", "%u:%g", "/tmp/owned.txt"]),
        "1000:1000\n"
    );
    let id = docker_ok(&d, &["inspect", "-f", "{{.Id}}", "u"]);
    let upper = d
        .root
        .join("containers")
        .join(id.trim())
        .join("rw/upper/tmp/owned.txt");
    let meta = std::fs::metadata(&upper).expect("in the upper layer");
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta)
        ),
        (211_000, 211_000)
    );
    // Out again, the archive shows the container's IDs, image files included.
    let tar = d.docker(&["cp", "u:/tmp/owned.txt", "-"]);
    assert_ok(&tar, "cp out");
    let mut a = tar::Archive::new(&tar.stdout[..]);
    let e = a
        .entries()
        .expect("tar")
        .next()
        .expect("one entry")
        .expect("entry");
    assert_eq!(
        (e.header().uid().ok(), e.header().gid().ok()),
        (Some(1000), Some(1000))
    );
    let tar = d.docker(&["cp", "u:/etc/passwd", "-"]);
    let mut a = tar::Archive::new(&tar.stdout[..]);
    let e = a
        .entries()
        .expect("tar")
        .next()
        .expect("one entry")
        .expect("entry");
    assert_eq!(e.header().uid().ok(), Some(0));
    // arcad's own files (/etc/hosts...) are outside the map: the overflow ID, as inside.
    let tar = d.docker(&["cp", "u:/etc", "-"]);
    assert_ok(&tar, "cp /etc out");
    let mut a = tar::Archive::new(&tar.stdout[..]);
    let hosts = a
        .entries()
        .expect("tar")
        .map(|e| e.expect("entry"))
        .find(|e| e.path().expect("path").ends_with("hosts"))
        .expect("etc/hosts in the archive");
    assert_eq!(hosts.header().uid().ok(), Some(65534));
    docker_ok(&d, &["rm", "-f", "u"]);
}

#[test]
fn docker_cp_into_a_tmpfs_is_refused_and_archive_mode_keeps_owners() {
    let d = Daemon::start();
    d.load_busybox();
    let host = tempfile::tempdir().expect("tempdir");
    let f = host.path().join("owned.txt");
    std::fs::write(&f, "x\n").expect("write");
    std::os::unix::fs::chown(&f, Some(1234), Some(4321)).expect("chown");
    docker_ok(
        &d,
        &[
            "run", "-d", "--name", "t", "--tmpfs", "/scratch", "busybox", "sleep", "1000",
        ],
    );
    let into = d.docker(&["cp", f.to_str().expect("utf8"), "t:/scratch/"]);
    assert!(!into.status.success());
    assert!(
        stderr(&into).contains("cannot copy into /scratch: it is a tmpfs mount"),
        "{}",
        stderr(&into)
    );
    // `-a` into a container without --user keeps the archive's owners (moby).
    docker_ok(&d, &["cp", "-a", f.to_str().expect("utf8"), "t:/tmp/"]);
    assert_eq!(
        docker_ok(&d, &["exec", "t", "stat", "-c", "%u:%g", "/tmp/owned.txt"]),
        "1234:4321\n"
    );
    docker_ok(&d, &["rm", "-f", "t"]);
}

#[test]
fn a_start_waits_for_a_copy_into_the_stopped_container() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let d = Daemon::start();
    d.load_busybox();
    docker_ok(
        &d,
        &["create", "--name", "w", "busybox", "cat", "/tmp/late.txt"],
    );
    let tar = tar_of(&[("late.txt", tar::EntryType::Regular, "", b"arrived\n")]);
    // A PUT whose body comes in two halves, the second one late.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    let head = format!(
        "PUT /containers/w/archive?path=/tmp HTTP/1.1\r\nHost: arca\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        tar.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    let (first, rest) = tar.split_at(512);
    s.write_all(first).expect("first half");
    let mut start = d
        .client(common::DOCKER)
        .args(["start", "-a", "w"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("docker start");
    // The start must not get past the copy's lock while the archive is still coming.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert!(
            start.try_wait().expect("try_wait").is_none(),
            "the start finished during the copy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.write_all(rest).expect("second half");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let out = start.wait_with_output().expect("start output");
    assert!(out.status.success());
    // It started after the copy, with the file in place.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "arrived\n");
    docker_ok(&d, &["rm", "w"]);
}
