//! The real docker CLI (28.x) drives arcad: the issue's acceptance list.

mod common;

use common::{Daemon, assert_ok, poll_until, stderr, stdout};
use std::time::Duration;

#[test]
fn docker_run_hello_world_prints_greeting() {
    let d = Daemon::start();
    let out = d.docker(&["run", "hello-world"]);
    assert_ok(&out, "docker run hello-world");
    let text = stdout(&out);
    assert!(text.contains("Hello from arca!"), "got: {text}");
    assert!(
        text.contains("arcad created a new container"),
        "got: {text}"
    );
    // The container stays (no --rm) and exited 0.
    let ps = d.docker(&["ps", "-a"]);
    assert!(stdout(&ps).contains("Exited (0)"), "{}", stdout(&ps));
}

#[test]
fn docker_cli_runs_busybox_lifecycle() {
    let d = Daemon::start();
    let load = d.docker(&["load", "-i", common::busybox_tar().to_str().expect("utf8")]);
    assert_ok(&load, "docker load");
    assert!(
        stdout(&load).contains("Loaded image: busybox:latest"),
        "{}",
        stdout(&load)
    );

    let out = d.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_ok(&out, "docker run --rm busybox echo hi");
    assert_eq!(stdout(&out), "hi\n");
    let ps = d.docker(&["ps", "-aq"]);
    assert_eq!(stdout(&ps).trim(), "", "--rm container must be gone");

    let out = d.docker(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code must propagate: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err"));

    let id = d.docker(&[
        "run",
        "-d",
        "--name",
        "x",
        "busybox",
        "sh",
        "-c",
        "echo started; sleep 60",
    ]);
    assert_ok(&id, "docker run -d");
    let id = stdout(&id).trim().to_owned();
    assert_eq!(id.len(), 64);
    let ps = d.docker(&["ps"]);
    let ps_text = stdout(&ps);
    assert!(
        ps_text.contains(" x\n") || ps_text.trim_end().ends_with(" x"),
        "{ps_text}"
    );
    assert!(ps_text.contains("Up "), "{ps_text}");
    poll_until("log line", Duration::from_secs(10), || {
        stdout(&d.docker(&["logs", "x"])) == "started\n"
    });
    let insp = d.docker(&["inspect", "x"]);
    assert_ok(&insp, "docker inspect");
    let v: serde_json::Value = serde_json::from_str(&stdout(&insp)).expect("inspect json");
    assert_eq!(v[0]["State"]["Running"], true);
    assert_eq!(v[0]["Name"], "/x");

    // Name in use → conflict.
    let dup = d.docker(&["run", "-d", "--name", "x", "busybox", "true"]);
    assert!(!dup.status.success());
    assert!(
        stderr(&dup).contains("is already in use"),
        "{}",
        stderr(&dup)
    );
    // rm of a running container without -f → refused.
    let rm = d.docker(&["rm", "x"]);
    assert!(!rm.status.success());
    assert!(
        stderr(&rm).contains("stop the container before removing"),
        "{}",
        stderr(&rm)
    );

    let stop = d.docker(&["stop", "-t", "1", "x"]);
    assert_ok(&stop, "docker stop");
    let insp = d.docker(&["inspect", "x"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&insp)).expect("inspect json");
    assert_eq!(v[0]["State"]["Status"], "exited");
    // busybox sh as PID 1 ignores SIGTERM: stop kills it after the timeout.
    assert_eq!(v[0]["State"]["ExitCode"], 137);
    assert_ok(&d.docker(&["rm", "x"]), "docker rm");
    assert!(!d.docker(&["inspect", "x"]).status.success());

    // Images: list, tag, rmi (untag), import.
    let images = stdout(&d.docker(&["images"]));
    assert!(
        images.contains("busybox") && images.contains("hello-world"),
        "{images}"
    );
    assert_ok(&d.docker(&["tag", "busybox", "mybox:1"]), "docker tag");
    let rmi = d.docker(&["rmi", "mybox:1"]);
    assert_ok(&rmi, "docker rmi");
    assert!(
        stdout(&rmi).contains("Untagged: mybox:1"),
        "{}",
        stdout(&rmi)
    );
    assert!(
        !stdout(&rmi).contains("Deleted"),
        "busybox still tagged, only untag"
    );

    // docker import of a rootfs tar: export the fixture's layer as a plain rootfs.
    let rootfs = d.dir.path().join("rootfs.tar");
    extract_first_layer(&common::busybox_tar(), &rootfs);
    let imp = d.docker(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        rootfs.to_str().expect("utf8"),
        "imported:v1",
    ]);
    assert_ok(&imp, "docker import");
    let out = d.docker(&["run", "--rm", "imported:v1", "sh", "-c", "echo from-import"]);
    assert_ok(&out, "run imported image");
    assert_eq!(stdout(&out), "from-import\n");

    let rmi = d.docker(&["rmi", "imported:v1"]);
    assert_ok(&rmi, "rmi imported");
    assert!(
        stdout(&rmi).contains("Deleted: sha256:"),
        "{}",
        stdout(&rmi)
    );
}

#[test]
fn docker_cli_reports_bad_input() {
    let d = Daemon::start();
    // A registry on loopback that refuses connections: the pull fails without network.
    let out = d.docker(&["run", "--rm", "127.0.0.1:9/nosuchimage"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("Unable to find image '127.0.0.1:9/nosuchimage:latest' locally"),
        "{}",
        stderr(&out)
    );

    d.load_busybox();
    let out = d.docker(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("executable file not found"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));

    let out = d.docker(&["run", "--rm", "-m", "1k", "busybox", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Minimum memory limit"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["kill", "-s", "SIGBOGUS", "nosuch"]);
    assert!(!out.status.success());
}

/// The first layer of a docker-archive, written out as a plain tar.
fn extract_first_layer(archive: &std::path::Path, out: &std::path::Path) {
    let mut a = tar::Archive::new(std::fs::File::open(archive).expect("archive"));
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let p = e.path().expect("path").to_string_lossy().into_owned();
        if p.ends_with("layer.tar") {
            let mut f = std::fs::File::create(out).expect("out");
            std::io::copy(&mut e, &mut f).expect("copy");
            return;
        }
    }
    panic!("no layer in {}", archive.display());
}

/// `-i` pipes stdin; `-it` gets a terminal (driven through `script`, which provides a pty).
#[test]
fn stdin_and_tty_sessions_work_with_both_clients() {
    let d = Daemon::start();
    d.load_busybox();
    for prog in [common::DOCKER, env!("CARGO_BIN_EXE_arca")] {
        let out = d.with_input(
            prog,
            &["run", "-i", "--rm", "busybox", "tr", "a-z", "A-Z"],
            b"piped input\n",
        );
        assert_ok(&out, "run -i");
        assert_eq!(stdout(&out), "PIPED INPUT\n", "{prog}");

        let out = d.in_pty(
            &format!("{prog} run -it --rm busybox sh"),
            b"echo tty-$((6*7)); tty; exit 5\n",
        );
        let text = stdout(&out);
        assert!(text.contains("tty-42"), "{prog}: {text}");
        assert!(text.contains("/dev/pts/0"), "{prog}: {text}");
        assert_eq!(out.status.code(), Some(5), "{prog}: {text}");
    }
}

#[test]
fn docker_cli_filters_containers_and_images() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.docker(&["run", "--name", "done", "-l", "job=42", "busybox", "true"]),
        "run done",
    );
    assert_ok(
        &d.docker(&[
            "run", "-d", "--name", "up", "-l", "job=7", "busybox", "sleep", "30",
        ]),
        "run up",
    );
    let names = |args: &[&str]| {
        let mut v: Vec<String> = stdout(&d.docker(args)).lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&["ps", "-a", "--format", "{{.Names}}", "-f", "label=job=42"]),
        vec!["done"]
    );
    assert_eq!(
        names(&["ps", "-a", "--format", "{{.Names}}", "-f", "status=running"]),
        vec!["up"]
    );
    assert_eq!(
        names(&["ps", "-a", "--format", "{{.Names}}", "-f", "name=do"]),
        vec!["done"]
    );
    assert_eq!(
        names(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "-f",
            "ancestor=busybox"
        ]),
        vec!["done", "up"]
    );
    let bad = d.docker(&["ps", "-f", "bogus=1"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("invalid filter 'bogus'"),
        "{}",
        stderr(&bad)
    );
    assert_eq!(
        names(&["images", "--format", "{{.Repository}}", "busybox"]),
        vec!["busybox"]
    );
    assert_eq!(
        names(&["images", "--format", "{{.Repository}}", "hello*"]),
        vec!["hello-world"]
    );
    // rmi -f of an image a container uses: untagged, kept for the container.
    let rmi = d.docker(&["rmi", "-f", "busybox"]);
    assert_ok(&rmi, "rmi -f");
    assert!(!stdout(&rmi).contains("Deleted"), "{}", stdout(&rmi));
    assert_ok(&d.docker(&["start", "done"]), "container still starts");
}

/// A client that reads slower than the container writes gets every byte (the container
/// waits for it, as with Docker), and the log still gets everything too.
#[test]
fn slow_attached_reader_gets_all_output_and_the_log_too() {
    use std::io::Read;
    let d = Daemon::start();
    d.load_busybox();
    const BYTES: usize = 12_000_000;
    let script = format!("yes 0123456789abcdef0123456789abcdef | head -c {BYTES}; echo; echo end");
    let mut child = std::process::Command::new(common::DOCKER)
        .args(["run", "--name", "slow", "busybox", "sh", "-c", &script])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("docker run");
    let mut out = child.stdout.take().expect("stdout");
    // Fall behind first: the container's output piles up against its backpressure.
    std::thread::sleep(Duration::from_millis(1500));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = out.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        assert!(
            std::time::Instant::now() < deadline,
            "reading took too long"
        );
    }
    assert!(child.wait().expect("wait").success());
    assert_eq!(got.len(), BYTES + "\nend\n".len(), "bytes received");
    assert!(got.ends_with(b"\nend\n"));
    let logs = d.docker(&["logs", "--tail", "1", "slow"]);
    assert_eq!(stdout(&logs), "end\n", "the log has the end of the output");
    assert_ok(&d.docker(&["rm", "slow"]), "rm");
}

/// `--log-driver none`: attached clients still get the output, nothing is written to
/// disk, and reading logs is refused as Docker refuses it.
#[test]
fn log_driver_none_writes_no_log_and_refuses_reading() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.docker(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hello",
    ]);
    assert_ok(&out, "run --log-driver none");
    assert_eq!(stdout(&out), "hello\n");
    let id = stdout(&d.docker(&["inspect", "-f", "{{.Id}}", "quiet"]))
        .trim()
        .to_owned();
    let dir = d.root.join("containers").join(&id);
    let logs: Vec<_> = std::fs::read_dir(&dir)
        .expect("container dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .collect();
    assert!(logs.is_empty(), "no log file expected in {}", dir.display());
    let out = d.docker(&["logs", "quiet"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("configured logging driver does not support reading"),
        "{}",
        stderr(&out)
    );
    // The docker CLI refuses options for `none` itself; the daemon does too.
    let body = r#"{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"none","Config":{"max-size":"1m"}}}}"#;
    let (code, reply) = common::http(
        &d.socket,
        "POST",
        "/containers/create",
        Some(("application/json", body.as_bytes())),
    )
    .expect("create");
    assert_eq!(code, 400, "{reply}");
    assert!(
        reply.contains("unknown log opt 'max-size' for none log driver"),
        "{reply}"
    );
    assert_ok(&d.docker(&["rm", "quiet"]), "rm");
}
