//! Volumes (named, anonymous, from images, with driver options), bind mounts,
//! `--volumes-from` and inspect's `Mounts`, through the real docker CLI and arca.

mod common;

use std::time::Duration;

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

/// The mount points of this process's namespace (arcad's: tests run in the host's).
fn is_mount_point(path: &std::path::Path) -> bool {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| std::path::Path::new(p) == path)
}

/// An image with `VOLUME /data` whose /data holds a file with its own owner and mode.
fn image_with_volume(d: &Daemon) {
    let out = d.docker(&[
        "run",
        "--name",
        "volbase",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo seeded > /data/f && chown 1234:5678 /data/f \
         && chmod 640 /data/f && chmod 710 /data && ln -s f /data/link",
    ]);
    assert_ok(&out, "prepare the image's content");
    assert_ok(
        &d.docker(&["commit", "--change", "VOLUME /data", "volbase", "withvol"]),
        "commit with VOLUME",
    );
    assert_ok(&d.docker(&["rm", "volbase"]), "rm volbase");
}

fn volume_names(d: &Daemon) -> Vec<String> {
    stdout(&d.docker(&["volume", "ls", "-q"]))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn mount_names(d: &Daemon, container: &str) -> String {
    let out = d.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}}{{end}}",
        container,
    ]);
    assert_ok(&out, "inspect mounts");
    stdout(&out).trim().to_owned()
}

#[test]
fn image_volumes_become_anonymous_volumes_seeded_from_the_image_and_rm_v_removes_them() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = Daemon::start();
    d.load_busybox();
    image_with_volume(&d);
    assert_ok(
        &d.docker(&["create", "--name", "c1", "withvol", "cat", "/data/f"]),
        "create",
    );
    let name = mount_names(&d, "c1");
    assert_eq!(name.len(), 64, "a random 64-hex name: {name}");
    assert_eq!(volume_names(&d), vec![name.clone()]);
    let labels = d.docker(&["volume", "inspect", "-f", "{{json .Labels}}", &name]);
    assert_eq!(
        stdout(&labels).trim(),
        r#"{"com.docker.volume.anonymous":""}"#
    );
    // Seeded at create, keeping owner, mode and links.
    let data = d.root.join("volumes").join(&name).join("_data");
    assert_eq!(
        std::fs::read_to_string(data.join("f")).expect("seeded"),
        "seeded\n"
    );
    let f = std::fs::metadata(data.join("f")).expect("stat");
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1234, 5678, 0o640));
    let root = std::fs::metadata(&data).expect("stat");
    assert_eq!(root.permissions().mode() & 0o7777, 0o710);
    assert_eq!(
        std::fs::read_link(data.join("link")).expect("link"),
        std::path::Path::new("f")
    );
    assert!(data.join("sub").is_dir());
    let out = d.docker(&["start", "-a", "c1"]);
    assert_ok(&out, "start");
    assert_eq!(stdout(&out), "seeded\n");
    let mounts = d.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}}|{{.Destination}}|{{.Driver}}|{{.Mode}}|{{.RW}}|{{.Propagation}}{{end}}",
        "c1",
    ]);
    assert_eq!(stdout(&mounts).trim(), "volume|/data|local||true|");
    let cfg = d.docker(&["inspect", "-f", "{{json .Config.Volumes}}", "c1"]);
    assert_eq!(stdout(&cfg).trim(), r#"{"/data":{}}"#);

    // A container removed without -v leaves its volume; with -v it goes.
    assert_ok(
        &d.docker(&["create", "--name", "c2", "withvol", "true"]),
        "c2",
    );
    let second = mount_names(&d, "c2");
    assert_ne!(second, name, "each container gets its own");
    assert_ok(&d.docker(&["rm", "c2"]), "rm c2");
    assert!(volume_names(&d).contains(&second));
    assert_ok(&d.docker(&["rm", "-v", "c1"]), "rm -v c1");
    assert_eq!(volume_names(&d), vec![second.clone()]);
    assert_ok(&d.docker(&["volume", "rm", &second]), "volume rm");

    // --rm containers take their anonymous volumes with them, not named ones.
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        "keep:/kept",
        "withvol",
        "sh",
        "-c",
        "echo x > /kept/x; cat /data/f",
    ]);
    assert_ok(&out, "run --rm");
    assert_eq!(stdout(&out), "seeded\n");
    common::poll_until(
        "the anonymous volume to go",
        Duration::from_secs(10),
        || volume_names(&d) == vec!["keep".to_owned()],
    );

    // A bind on the image volume's path replaces it: no anonymous volume.
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("h"), b"host\n").expect("write");
    let bind = format!("{}:/data", host.path().display());
    let out = d.docker(&["run", "--rm", "-v", &bind, "withvol", "ls", "/data"]);
    assert_ok(&out, "bind over the image volume");
    assert_eq!(stdout(&out), "h\n");
    assert_eq!(volume_names(&d), vec!["keep".to_owned()]);
}

#[test]
fn dash_v_path_and_anonymous_mounts_make_volumes_named_ones_are_seeded_unless_nocopy() {
    let d = Daemon::start();
    d.load_busybox();
    image_with_volume(&d);
    // `-v /path`: the docker CLI sends Config.Volumes, arca Binds; both are anonymous.
    for cli in ["docker", "arca"] {
        let run = |args: &[&str]| {
            if cli == "docker" {
                d.docker(args)
            } else {
                d.arca(args)
            }
        };
        let name = format!("anon{cli}");
        assert_ok(
            &run(&[
                "run",
                "--name",
                &name,
                "-v",
                "/scratch",
                "busybox",
                "touch",
                "/scratch/x",
            ]),
            &format!("{cli} run -v /scratch"),
        );
        let vol = mount_names(&d, &name);
        assert_eq!(vol.len(), 64, "{cli}: {vol}");
        let mode = d.docker(&["inspect", "-f", "{{range .Mounts}}{{.Mode}}{{end}}", &name]);
        let want = if cli == "docker" { "" } else { "z" };
        assert_eq!(stdout(&mode).trim(), want, "{cli}: Mode as Docker shows it");
        assert_ok(&run(&["rm", "-v", &name]), "rm -v");
        assert!(
            !volume_names(&d).contains(&vol),
            "{cli}: rm -v removed {vol}"
        );
    }
    // `--mount type=volume` without a source keeps one volume across starts.
    assert_ok(
        &d.docker(&[
            "create",
            "--name",
            "m",
            "--mount",
            "type=volume,dst=/m",
            "busybox",
            "true",
        ]),
        "create --mount anonymous",
    );
    let vol = mount_names(&d, "m");
    for _ in 0..2 {
        assert_ok(&d.docker(&["start", "-a", "m"]), "start");
    }
    assert_eq!(mount_names(&d, "m"), vol);
    assert_eq!(volume_names(&d), vec![vol.clone()]);
    assert_ok(&d.docker(&["rm", "-v", "m"]), "rm -v");

    // A named volume on a path with image content is seeded once, unless nocopy.
    let cat = |spec: &str| {
        let out = d.docker(&["run", "--rm", "-v", spec, "withvol", "ls", "/data"]);
        assert_ok(&out, spec);
        stdout(&out)
    };
    assert_eq!(cat("named:/data"), "f\nlink\nsub\n");
    assert_eq!(cat("empty:/data:nocopy"), "");
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=viamount,dst=/data,volume-nocopy",
        "withvol",
        "ls",
        "/data",
    ]);
    assert_ok(&out, "--mount volume-nocopy");
    assert_eq!(stdout(&out), "");
    // Not empty any more: not seeded again.
    assert_ok(
        &d.docker(&[
            "run",
            "--rm",
            "-v",
            "named:/data",
            "busybox",
            "rm",
            "/data/f",
        ]),
        "rm a seeded file",
    );
    assert_eq!(cat("named:/data"), "link\nsub\n");
    // Removing containers never removes named volumes.
    let mut names = volume_names(&d);
    names.sort();
    assert_eq!(names, vec!["empty", "named", "viamount"]);
}

#[test]
fn volumes_from_shares_binds_and_volumes_read_only_when_asked() {
    let d = Daemon::start();
    d.load_busybox();
    image_with_volume(&d);
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("h"), b"host\n").expect("write");
    let bind = format!("{}:/h", host.path().display());
    assert_ok(
        &d.docker(&[
            "create",
            "--name",
            "src",
            "-v",
            "shared:/s",
            "-v",
            &bind,
            "--tmpfs",
            "/t",
            "withvol",
            "true",
        ]),
        "create src",
    );
    assert_ok(
        &d.docker(&[
            "run",
            "--rm",
            "-v",
            "shared:/s",
            "busybox",
            "sh",
            "-c",
            "echo s > /s/s",
        ]),
        "fill the named volume",
    );
    let anon = mount_names(&d, "src").replace("shared", "");
    for cli in ["docker", "arca"] {
        let run = |args: &[&str]| {
            if cli == "docker" {
                d.docker(args)
            } else {
                d.arca(args)
            }
        };
        let out = run(&[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "busybox",
            "sh",
            "-c",
            "cat /data/f /s/s /h/h; test -d /t && echo tmpfs || echo no-tmpfs; echo w > /s/w",
        ]);
        assert_ok(&out, &format!("{cli} --volumes-from"));
        assert_eq!(stdout(&out), "seeded\ns\nhost\nno-tmpfs\n", "{cli}");
        let out = run(&[
            "run",
            "--rm",
            "--volumes-from",
            "src:ro",
            "busybox",
            "touch",
            "/s/ro",
        ]);
        assert!(
            !out.status.success(),
            "{cli}: wrote through --volumes-from src:ro"
        );
    }
    assert_ok(
        &d.docker(&[
            "create",
            "--name",
            "user",
            "--volumes-from",
            "src",
            "busybox",
            "true",
        ]),
        "create user",
    );
    let mounts = d.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Destination}}={{.Type}}:{{.Name}}:{{.RW}} {{end}}",
        "user",
    ]);
    let text = stdout(&mounts);
    let mut got: Vec<&str> = text.split_whitespace().collect();
    got.sort();
    let want_data = format!("/data=volume:{anon}:true");
    assert_eq!(
        got,
        vec![want_data.as_str(), "/h=bind::true", "/s=volume:shared:true"]
    );
    // The volume stays in use while either container exists; rm -v of the user keeps it.
    assert_ok(&d.docker(&["rm", "-v", "user"]), "rm -v user");
    assert!(volume_names(&d).contains(&anon));
    assert_ok(&d.docker(&["rm", "-v", "src"]), "rm -v src");
    assert!(!volume_names(&d).contains(&anon));
    assert!(volume_names(&d).contains(&"shared".to_owned()));

    // An unknown container is a client error, not a missing image to pull.
    let out = d.docker(&["run", "--rm", "--volumes-from", "nosuch", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("No such container: nosuch"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("Unable to find image"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_lists_binds_volumes_and_mount_tmpfs_with_propagation_like_docker() {
    let d = Daemon::start();
    d.load_busybox();
    let host = tempfile::tempdir().expect("tempdir");
    let src = host.path().display().to_string();
    let v1 = format!("{src}:/b:ro,rshared");
    let m1 = format!("type=bind,src={src},dst=/b2,bind-propagation=rslave");
    assert_ok(
        &d.docker(&[
            "create",
            "--name",
            "m",
            "-v",
            &v1,
            "-v",
            "named:/n",
            "--mount",
            &m1,
            "--mount",
            "type=tmpfs,dst=/t",
            "--tmpfs",
            "/tt",
            "busybox",
            "true",
        ]),
        "create",
    );
    let out = d.docker(&["inspect", "-f", "{{json .Mounts}}", "m"]);
    assert_ok(&out, "inspect");
    let mut mounts: Vec<serde_json::Value> =
        serde_json::from_str(stdout(&out).trim()).expect("json");
    mounts.sort_by_key(|m| m["Destination"].as_str().unwrap_or("").to_owned());
    let data = d.root.join("volumes/named/_data").display().to_string();
    assert_eq!(
        serde_json::Value::Array(mounts),
        serde_json::json!([
            {"Type": "bind", "Source": src, "Destination": "/b", "Mode": "ro,rshared",
             "RW": false, "Propagation": "rshared"},
            {"Type": "bind", "Source": src, "Destination": "/b2", "Mode": "",
             "RW": true, "Propagation": "rslave"},
            {"Type": "volume", "Name": "named", "Source": data, "Destination": "/n",
             "Driver": "local", "Mode": "z", "RW": true, "Propagation": ""},
            {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "",
             "RW": true, "Propagation": ""},
        ])
    );
    // arca's --mount sends the same propagation.
    let out = d.arca(&["create", "--name", "a", "--mount", &m1, "busybox", "true"]);
    assert_ok(&out, "arca create --mount");
    let p = d.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Propagation}}{{end}}",
        "a",
    ]);
    assert_eq!(stdout(&p).trim(), "rslave");
    // `ps` lists the mounts too.
    let ps = d.docker(&["ps", "-a", "--filter", "name=m", "--format", "{{.Mounts}}"]);
    assert!(stdout(&ps).contains("named"), "{}", stdout(&ps));
    // Two mounts on one destination are refused.
    let out = d.docker(&[
        "create",
        "-v",
        "xx:/n",
        "--mount",
        "type=volume,dst=/n",
        "busybox",
    ]);
    assert!(
        stderr(&out).contains("Duplicate mount point: /n"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn volumes_with_mount_options_are_mounted_while_containers_use_them() {
    let host = tempfile::tempdir().expect("tempdir");
    let mut d = Daemon::start();
    d.load_busybox();
    let out = d.docker(&["volume", "create", "-o", "foo=bar", "bad"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"create bad: invalid option: "foo""#),
        "{}",
        stderr(&out)
    );
    assert_ok(
        &d.docker(&[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=10m",
            "tmpv",
        ]),
        "create a tmpfs volume",
    );
    let opts = d.docker(&["volume", "inspect", "-f", "{{json .Options}}", "tmpv"]);
    let opts: serde_json::Value = serde_json::from_str(stdout(&opts).trim()).expect("json");
    assert_eq!(
        opts,
        serde_json::json!({"type": "tmpfs", "device": "tmpfs", "o": "size=10m"})
    );
    let data = d.root.join("volumes/tmpv/_data");
    assert!(!is_mount_point(&data), "not mounted before use");
    for name in ["t1", "t2"] {
        assert_ok(
            &d.docker(&[
                "run", "-d", "--name", name, "-v", "tmpv:/v", "busybox", "sleep", "60",
            ]),
            name,
        );
    }
    assert!(is_mount_point(&data), "mounted while used");
    let df = d.docker(&[
        "exec",
        "t1",
        "sh",
        "-c",
        "echo hi > /v/f; grep ' /v ' /proc/mounts",
    ]);
    assert_ok(&df, "exec");
    assert!(stdout(&df).starts_with("tmpfs /v tmpfs"), "{}", stdout(&df));
    assert_eq!(
        std::fs::read_to_string(data.join("f")).expect("shared"),
        "hi\n"
    );
    assert_ok(&d.docker(&["stop", "-t", "0", "t1"]), "stop t1");
    assert!(is_mount_point(&data), "t2 still uses it");

    // After a crash, arcad finds the mount its running container holds.
    d.crash();
    d.spawn();
    // Another container's exit makes arcad sweep unheld mounts: t2's must survive it.
    assert_ok(&d.docker(&["run", "--rm", "busybox", "true"]), "an exit");
    assert_ok(
        &d.docker(&["run", "--rm", "busybox", "true"]),
        "another exit",
    );
    assert!(
        is_mount_point(&data),
        "the restarted arcad knows t2 holds it"
    );
    assert_eq!(
        stdout(&d.docker(&["exec", "t2", "cat", "/v/f"])),
        "hi\n",
        "t2 still sees the volume's content"
    );
    assert_ok(&d.docker(&["stop", "-t", "0", "t2"]), "stop t2");
    common::poll_until(
        "the last user's exit to unmount",
        Duration::from_secs(10),
        || !is_mount_point(&data),
    );

    // A container that exits while arcad is down: the mount goes when arcad is back.
    assert_ok(
        &d.docker(&[
            "run", "-d", "--name", "t3", "-v", "tmpv:/v", "busybox", "sleep", "60",
        ]),
        "t3",
    );
    let pid = stdout(&d.docker(&["inspect", "-f", "{{.State.Pid}}", "t3"]));
    d.crash();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .expect("kill")
            .success()
    );
    d.spawn();
    common::poll_until(
        "a mount nobody holds to go",
        Duration::from_secs(10),
        || !is_mount_point(&data),
    );

    // type=none,o=bind: a host directory, never deleted with the volume.
    let spec = format!("device={}", host.path().display());
    assert_ok(
        &d.docker(&[
            "volume",
            "create",
            "-o",
            "type=none",
            "-o",
            "o=bind",
            "-o",
            &spec,
            "bindv",
        ]),
        "create a bind volume",
    );
    assert_ok(
        &d.docker(&[
            "run",
            "--rm",
            "-v",
            "bindv:/v",
            "busybox",
            "sh",
            "-c",
            "echo b > /v/g",
        ]),
        "write through",
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("g")).expect("host"),
        "b\n"
    );
    let bdata = d.root.join("volumes/bindv/_data");
    common::poll_until(
        "the bind volume to be unmounted",
        Duration::from_secs(10),
        || !is_mount_point(&bdata),
    );
    assert_ok(&d.docker(&["rm", "t1", "t2", "t3"]), "rm the users");
    assert_ok(&d.docker(&["volume", "rm", "bindv", "tmpv"]), "volume rm");
    assert!(
        host.path().join("g").exists(),
        "the host directory keeps its data"
    );

    // A mount that fails fails the start, with moby's words.
    assert_ok(
        &d.docker(&[
            "volume",
            "create",
            "-o",
            "type=none",
            "-o",
            "o=bind",
            "-o",
            "device=/nonexistent/arca",
            "badv",
        ]),
        "create",
    );
    let out = d.docker(&["run", "--rm", "-v", "badv:/v", "busybox", "true"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("error while mounting volume '")
            && err.contains("failed to mount local volume: mount /nonexistent/arca:")
            && err.contains("no such file or directory"),
        "{err}"
    );
    // Data is never deleted through a mount: `volume rm` unmounts a volume's own mount
    // left behind, and refuses when something else is mounted inside.
    let mount_tmpfs = |path: &std::path::Path| {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(path)
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs on {}", path.display());
    };
    assert_ok(
        &d.docker(&[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "left",
        ]),
        "create",
    );
    let left = d.root.join("volumes/left/_data");
    mount_tmpfs(&left);
    assert_ok(&d.docker(&["volume", "rm", "left"]), "rm a mounted volume");
    assert!(!is_mount_point(&left) && !left.exists());
    assert_ok(&d.docker(&["volume", "create", "plain"]), "create plain");
    let inner = d.root.join("volumes/plain/_data/inner");
    std::fs::create_dir(&inner).expect("mkdir");
    mount_tmpfs(&inner);
    std::fs::write(inner.join("precious"), b"x").expect("write");
    let out = d.docker(&["volume", "rm", "plain"]);
    assert!(!out.status.success(), "removed through a foreign mount");
    assert!(
        stderr(&out).contains("is still mounted"),
        "{}",
        stderr(&out)
    );
    assert!(inner.join("precious").exists());
    let st = std::process::Command::new("umount")
        .arg(&inner)
        .status()
        .expect("umount");
    assert!(st.success());
    assert_ok(&d.docker(&["volume", "rm", "plain"]), "rm plain");
}

/// Unmounts a test's bind mount even if an assertion fails.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn bind_propagation_is_applied_in_the_container() {
    let d = Daemon::start();
    d.load_busybox();
    // A shared mount on the host as the bind source (this host's own mounts are private).
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let s = src.to_str().expect("utf8");
    assert_ok(
        &std::process::Command::new("mount")
            .args(["--bind", s, s])
            .output()
            .expect("mount"),
        "bind the source on itself",
    );
    let _unmount = Unmount(src.clone());
    assert_ok(
        &std::process::Command::new("mount")
            .args(["--make-shared", s])
            .output()
            .expect("mount"),
        "make it shared",
    );
    // The optional fields of the bind's mountinfo line ("-" when there are none).
    let tags = |spec: &str| {
        let out = d.docker(&[
            "run",
            "--rm",
            "-v",
            spec,
            "busybox",
            "grep",
            " /x ",
            "/proc/self/mountinfo",
        ]);
        assert_ok(&out, spec);
        let line = stdout(&out);
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields[6..fields.iter().position(|f| *f == "-").expect("separator")].join(" ")
    };
    assert_eq!(
        tags(&format!("{s}:/x")),
        "",
        "binds are rprivate by default"
    );
    assert!(tags(&format!("{s}:/x:rslave")).starts_with("master:"));
    assert!(tags(&format!("{s}:/x:rshared")).starts_with("shared:"));
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={s},dst=/x,bind-propagation=rslave"),
        "busybox",
        "grep",
        " /x ",
        "/proc/self/mountinfo",
    ]);
    assert_ok(&out, "--mount bind-propagation");
    assert!(stdout(&out).contains(" master:"), "{}", stdout(&out));
}
