//! Named volumes and bind mounts through the real docker CLI (first slice of issue 6).

mod common;

use common::{Daemon, assert_ok, stderr, stdout};

#[test]
fn named_volumes_keep_data_between_containers_and_cannot_be_removed_in_use() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.docker(&["volume", "create", "--label", "app=test", "data"]);
    assert_ok(&out, "volume create");
    assert_eq!(stdout(&out).trim(), "data");
    let ls = d.docker(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(stdout(&ls).trim(), "data local");
    let mp = d.docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.Mountpoint}} {{.Labels.app}}",
        "data",
    ]);
    assert_ok(&mp, "volume inspect");
    let text = stdout(&mp);
    assert!(
        text.starts_with(&d.root.display().to_string()) && text.trim().ends_with(" test"),
        "{text}"
    );

    let w = d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_ok(&w, "write into the volume");
    let r = d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_ok(&r, "read from the volume");
    assert_eq!(stdout(&r), "kept\n");

    assert_ok(
        &d.docker(&[
            "run",
            "-d",
            "--name",
            "user",
            "-v",
            "data:/data",
            "busybox",
            "sleep",
            "60",
        ]),
        "run user",
    );
    let mounts = d.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}",
        "user",
    ]);
    assert_eq!(stdout(&mounts).trim(), "volume data /data");
    let rm = d.docker(&["volume", "rm", "data"]);
    assert!(!rm.status.success());
    assert!(stderr(&rm).contains("volume is in use"), "{}", stderr(&rm));
    assert_ok(&d.docker(&["rm", "-f", "user"]), "rm user");
    assert_ok(&d.docker(&["volume", "rm", "data"]), "volume rm");
    let ls = d.docker(&["volume", "ls", "-q"]);
    assert_eq!(stdout(&ls).trim(), "");

    // `-v name:/path` creates a missing volume; prune --all removes unused ones.
    assert_ok(
        &d.docker(&["run", "--rm", "-v", "auto:/x", "busybox", "true"]),
        "auto volume",
    );
    assert_eq!(stdout(&d.docker(&["volume", "ls", "-q"])).trim(), "auto");
    let prune = d.docker(&["volume", "prune", "--all", "-f"]);
    assert_ok(&prune, "volume prune");
    assert!(stdout(&prune).contains("auto"), "{}", stdout(&prune));
    assert_eq!(stdout(&d.docker(&["volume", "ls", "-q"])).trim(), "");
}

#[test]
fn read_only_binds_stay_read_only_and_bad_specs_are_refused() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("keep"), b"host\n").expect("write");
    let spec = format!("{}:/ro:ro", dir.path().display());
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "cat /ro/keep; echo x > /ro/keep",
    ]);
    assert!(!out.status.success(), "wrote through a read-only bind");
    assert_eq!(stdout(&out), "host\n");
    assert_eq!(
        std::fs::read(dir.path().join("keep")).expect("read"),
        b"host\n"
    );
    // A missing host directory is created, as docker's -v does.
    let missing = dir.path().join("new/dir");
    let spec = format!("{}:/n", missing.display());
    assert_ok(
        &d.docker(&["run", "--rm", "-v", &spec, "busybox", "true"]),
        "missing host dir",
    );
    assert!(missing.is_dir());
    for bad in ["/a:relative", "/a:/", "bad$name:/x"] {
        let out = d.docker(&["run", "--rm", "-v", bad, "busybox", "true"]);
        assert!(!out.status.success(), "{bad} accepted");
    }
}

#[test]
fn arca_volume_commands_print_like_docker() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.arca(&["volume", "create", "--label", "k=v", "mine"]);
    assert_ok(&out, "arca volume create");
    assert_eq!(stdout(&out), "mine\n");
    assert_ok(
        &d.docker(&["volume", "create", "theirs"]),
        "docker volume create",
    );
    for args in [
        vec!["volume", "ls"],
        vec!["volume", "ls", "-q"],
        vec!["volume", "ls", "-f", "label=k=v"],
        vec!["volume", "inspect", "mine"],
    ] {
        let (a, b) = (d.arca(&args), d.docker(&args));
        assert_ok(&a, "arca");
        assert_eq!(stdout(&a), stdout(&b), "{args:?}");
    }
    let out = d.arca(&["volume", "rm", "mine", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "mine\n");
    assert!(stderr(&out).contains("no such volume"), "{}", stderr(&out));
    let out = d.arca(&["volume", "prune", "-a", "-f"]);
    assert_ok(&out, "arca volume prune");
    assert!(
        stdout(&out).starts_with("Deleted Volumes:\ntheirs\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("Total reclaimed space: "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn mount_and_tmpfs_flags_work_with_docker_and_arca() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("f"), b"bound\n").expect("write");
    let bind = format!(
        "type=bind,source={},target=/b,readonly",
        dir.path().display()
    );
    for cli in ["docker", "arca"] {
        let run = |args: &[&str]| {
            if cli == "docker" {
                d.docker(args)
            } else {
                d.arca(args)
            }
        };
        let out = run(&["run", "--rm", "--mount", &bind, "busybox", "cat", "/b/f"]);
        assert_ok(&out, &format!("{cli} --mount type=bind"));
        assert_eq!(stdout(&out), "bound\n");
        let out = run(&["run", "--rm", "--mount", &bind, "busybox", "touch", "/b/x"]);
        assert!(
            !out.status.success(),
            "{cli}: wrote through a readonly --mount"
        );
        // A missing bind source is an error with --mount (not created, unlike -v).
        let missing = format!("type=bind,source={}/nope,target=/b", dir.path().display());
        let out = run(&["run", "--rm", "--mount", &missing, "busybox", "true"]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("bind source path does not exist"),
            "{}",
            stderr(&out)
        );
        assert!(!dir.path().join("nope").exists());
        // A volume by --mount, then a tmpfs with a size.
        let vol = format!("type=volume,source=m{cli},target=/v");
        let out = run(&[
            "run",
            "--rm",
            "--mount",
            &vol,
            "busybox",
            "sh",
            "-c",
            "echo v > /v/f && cat /v/f",
        ]);
        assert_ok(&out, "volume --mount");
        let out = run(&[
            "run",
            "--rm",
            "--tmpfs",
            "/scratch:size=1m",
            "busybox",
            "sh",
            "-c",
            "grep ' /scratch ' /proc/mounts",
        ]);
        assert_ok(&out, "--tmpfs");
        assert!(
            stdout(&out).starts_with("tmpfs /scratch tmpfs "),
            "{}",
            stdout(&out)
        );
        assert!(stdout(&out).contains("size=1024k"), "{}", stdout(&out));
    }
    let ls = d.docker(&["volume", "ls", "-q"]);
    assert_eq!(stdout(&ls), "marca\nmdocker\n");
}
