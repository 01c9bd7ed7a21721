//! Disk accounting and pruning through the real docker CLI and `arca`: `system df` (with
//! local volumes), `container prune`, `system prune [-a] [--volumes]` and `/build/prune`.
//! The space a prune reports is checked against what the daemon's root really lost.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{DOCKER, Daemon, assert_ok, poll_until, stderr, stdout};

/// Apparent bytes of the files under `dir`, each inode once (what Docker's sizes count).
fn usage(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

/// docker's `units.HumanSize` back to bytes (decimal units).
fn parse_size(s: &str) -> f64 {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("not a size: {s}"));
    n * match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unknown unit {other} in {s}"),
    }
}

fn reclaimed(out: &str) -> f64 {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("no total in {out}"));
    parse_size(line)
}

fn now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

fn id_of(d: &Daemon, name: &str) -> String {
    let out = d.docker(&["inspect", "-f", "{{.Id}}", name]);
    assert_ok(&out, "docker inspect");
    stdout(&out).trim().to_owned()
}

fn names(d: &Daemon) -> Vec<String> {
    let out = d.docker(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_ok(&out, "docker ps");
    let mut n: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    n.sort();
    n
}

fn volumes(d: &Daemon) -> Vec<String> {
    let out = d.docker(&["volume", "ls", "-q"]);
    assert_ok(&out, "docker volume ls");
    let mut v: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    v.sort();
    v
}

/// An anonymous volume (created without a name) holding `bytes` bytes.
fn filled_volume(d: &Daemon, name: Option<&str>, bytes: usize) -> String {
    let mut args = vec!["volume", "create"];
    args.extend(name);
    let out = d.docker(&args);
    assert_ok(&out, "docker volume create");
    let vol = stdout(&out).trim().to_owned();
    let mount = format!("{vol}:/v");
    let script = format!("head -c {bytes} /dev/urandom > /v/data");
    let out = d.docker(&["run", "--rm", "-v", &mount, "busybox", "sh", "-c", &script]);
    assert_ok(&out, "fill the volume");
    vol
}

/// The `.trash-*` directories of removed containers are deleted in the background.
fn wait_for_trash(d: &Daemon) {
    poll_until(
        "removed containers' files to go",
        Duration::from_secs(20),
        || {
            std::fs::read_dir(d.root.join("containers"))
                .map(|r| {
                    r.flatten()
                        .all(|e| !e.file_name().to_string_lossy().starts_with(".trash-"))
                })
                .unwrap_or(true)
        },
    );
}

/// Runs `docker` and `arca` with the same arguments until their outputs agree (a
/// relative time may tick between the two runs); returns docker's.
fn same_output(d: &Daemon, args: &[&str]) -> String {
    let mut last = (String::new(), String::new());
    let mut agreed = None;
    poll_until(
        "docker and arca to print the same",
        Duration::from_secs(10),
        || {
            let ours = d.arca(args);
            let theirs = d.docker(args);
            assert_ok(&ours, "arca");
            assert_ok(&theirs, "docker");
            last = (stdout(&theirs), stdout(&ours));
            if last.0 == last.1 {
                agreed = Some(last.0.clone());
            }
            agreed.is_some()
        },
    );
    agreed.unwrap_or_else(|| panic!("docker:\n{}\narca:\n{}", last.0, last.1))
}

#[test]
fn container_prune_removes_stopped_containers_only_and_reports_their_layers() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.docker(&["run", "-d", "--name", "up", "busybox", "sleep", "600"]),
        "run up",
    );
    assert_ok(
        &d.docker(&[
            "run",
            "--name",
            "done",
            "busybox",
            "sh",
            "-c",
            "head -c 2000000 /dev/urandom > /big",
        ]),
        "run done",
    );
    assert_ok(
        &d.docker(&["create", "--name", "kept", "--label", "keep=yes", "busybox"]),
        "create kept",
    );
    let done = id_of(&d, "done");

    // Without -f, the question comes first; no answer cancels quietly.
    let out = d.docker(&["container", "prune"]);
    assert_ok(&out, "unanswered prune");
    assert_eq!(
        stdout(&out),
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(names(&d), ["done", "kept", "up"]);

    let t0 = now();
    let out = d.docker(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert_ok(&out, "docker container prune");
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "Deleted Containers:\n{done}\n\nTotal reclaimed space: "
        )),
        "{text}"
    );
    let space = reclaimed(&text);
    assert!(
        (2.0e6..2.1e6).contains(&space),
        "the 2 MB written to the layer: {text}"
    );
    assert_eq!(names(&d), ["kept", "up"]);

    // Docker's `prune` event, with the space.
    let mut events = String::new();
    poll_until("the prune event", Duration::from_secs(10), || {
        let until = now();
        let out = d.docker(&[
            "events",
            "--since",
            &t0,
            "--until",
            &until,
            "--filter",
            "event=prune",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.ID}}{{.Actor.Attributes.reclaimed}}",
        ]);
        events = stdout(&out);
        !events.is_empty()
    });
    let exact: f64 = events
        .trim()
        .strip_prefix("container prune ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{events}"));
    assert!((exact - space).abs() / exact < 0.001, "{exact} vs {space}");

    // arca's verb: the created container goes, the running one stays.
    let kept = id_of(&d, "kept");
    let out = d.arca(&["container", "prune", "-f"]);
    assert_ok(&out, "arca container prune");
    assert_eq!(
        stdout(&out),
        format!("Deleted Containers:\n{kept}\n\nTotal reclaimed space: 0B\n")
    );
    assert_eq!(names(&d), ["up"]);
    let out = d.docker(&["container", "prune", "-f"]);
    assert_eq!(stdout(&out), "Total reclaimed space: 0B\n");
    let out = d.docker(&["container", "prune", "-f", "--filter", "nope=1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid filter 'nope'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn container_prune_until_keeps_newer_containers() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(&d.docker(&["create", "--name", "old", "busybox"]), "create");
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // Creation times have one-second resolution in the filter: let the clock move on.
    poll_until("the next second", Duration::from_secs(3), || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|n| n.as_secs() > t)
            .unwrap_or(false)
    });
    assert_ok(&d.docker(&["create", "--name", "new", "busybox"]), "create");
    let out = d.docker(&[
        "container",
        "prune",
        "-f",
        "--filter",
        &format!("until={t}"),
    ]);
    assert_ok(&out, "prune until");
    assert!(
        stdout(&out).starts_with("Deleted Containers:\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(names(&d), ["new"]);
}

#[test]
fn system_df_counts_volume_sizes_and_references_like_docker() {
    let d = Daemon::start();
    d.load_busybox();
    let named = filled_volume(&d, Some("data"), 100_000);
    let anon = filled_volume(&d, None, 50_000);
    assert_eq!(anon.len(), 64, "{anon}");
    assert_ok(
        &d.docker(&["create", "--name", "user", "-v", "data:/data", "busybox"]),
        "create user",
    );
    assert_ok(
        &d.docker(&[
            "run",
            "-d",
            "--name",
            "busy",
            "--mount",
            "type=volume,src=data,dst=/d",
            "busybox",
            "sleep",
            "600",
        ]),
        "run busy",
    );

    let (status, body) =
        common::http(&d.socket, "GET", "/system/df?type=volume", None).expect("GET /system/df");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(
        v.get("Images").is_none() && v.get("Containers").is_none(),
        "{v}"
    );
    let vols = v["Volumes"].as_array().cloned().unwrap_or_default();
    let of = |name: &str| {
        vols.iter()
            .find(|x| x["Name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    assert_eq!(
        of(&named)["UsageData"],
        serde_json::json!({"Size": 100_000, "RefCount": 2})
    );
    assert_eq!(
        of(&anon)["UsageData"],
        serde_json::json!({"Size": 50_000, "RefCount": 0})
    );
    assert_eq!(of(&named)["Driver"], "local");
    let (status, body) =
        common::http(&d.socket, "GET", "/system/df?type=nope", None).expect("bad type");
    assert_eq!(status, 400, "{body}");

    let text = same_output(&d, &["system", "df"]);
    let row = |ty: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(ty))
            .unwrap_or_else(|| panic!("no {ty} in {text}"));
        line[ty.len()..]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        text.lines()
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"])
    );
    assert_eq!(
        row("Local Volumes"),
        ["2", "1", "150kB", "50kB", "(33%)"],
        "{text}"
    );
    assert_eq!(row("Containers")[..2], ["2", "1"], "{text}");
    assert_eq!(row("Images")[1], "1", "one image in use: {text}");
    assert_eq!(row("Build Cache"), ["0", "0", "0B", "0B"], "{text}");

    let text = same_output(&d, &["system", "df", "-v"]);
    let section = |title: &str| -> Vec<String> {
        let start = text
            .find(title)
            .unwrap_or_else(|| panic!("no {title} in {text}"));
        text[start..]
            .split("\n\n")
            .nth(1)
            .unwrap_or("")
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let mut volumes: Vec<String> = section("Local Volumes space usage:")
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    volumes[1..].sort();
    let mut want = vec![format!("{anon} 0 50kB"), "data 2 100kB".to_owned()];
    want.sort();
    want.insert(0, "VOLUME NAME LINKS SIZE".to_owned());
    assert_eq!(volumes, want, "{text}");
    let containers = section("Containers space usage:");
    let busy = containers
        .iter()
        .find(|l| l.ends_with(" busy"))
        .unwrap_or_else(|| panic!("no busy in {text}"));
    assert!(
        busy.contains("\"sleep 600\"   1 "),
        "one local volume: {busy}"
    );
    assert!(text.contains("\nBuild cache usage: 0B\n"), "{text}");

    let json_lines = same_output(&d, &["system", "df", "--format", "{{json .}}"]);
    assert!(
        json_lines.contains(
            r#"{"Active":"1","Reclaimable":"50kB (33%)","Size":"150kB","TotalCount":"2","Type":"Local Volumes"}"#
        ),
        "{json_lines}"
    );
    same_output(
        &d,
        &["system", "df", "--format", "table {{.Type}}\t{{.Size}}"],
    );
    same_output(
        &d,
        &[
            "system",
            "df",
            "-v",
            "--format",
            "{{range .Volumes}}{{.Name}} {{.Links}}\n{{end}}",
        ],
    );
}

#[test]
fn system_prune_frees_what_it_reports() {
    let d = Daemon::start();
    d.load_busybox();
    let named = filled_volume(&d, Some("keepme"), 1_000_000);
    let anon = filled_volume(&d, None, 2_000_000);
    assert_ok(
        &d.docker(&[
            "run",
            "--name",
            "writer",
            "busybox",
            "sh",
            "-c",
            "head -c 3000000 /dev/urandom > /big",
        ]),
        "run writer",
    );
    // An unused image of its own (a commit with 500 kB of layer).
    assert_ok(
        &d.docker(&[
            "run",
            "--name",
            "layer",
            "busybox",
            "sh",
            "-c",
            "head -c 500000 /dev/urandom > /layer",
        ]),
        "run layer",
    );
    assert_ok(&d.docker(&["commit", "layer", "extra:1"]), "commit");
    wait_for_trash(&d);
    let before = usage(&d.root);

    // Until and --volumes do not go together (checked by the CLI, before asking).
    for prog in [DOCKER, env!("CARGO_BIN_EXE_arca")] {
        let out = d
            .client(prog)
            .args(["system", "prune", "-f", "--volumes", "--filter", "until=1h"])
            .output()
            .expect("run client");
        assert_eq!(out.status.code(), Some(1), "{prog}: {out:?}");
        assert_eq!(
            stderr(&out).trim(),
            "ERROR: The \"until\" filter is not supported with \"--volumes\"",
            "{prog}"
        );
    }

    let out = d.docker(&["system", "prune", "-a", "--volumes", "-f"]);
    assert_ok(&out, "docker system prune");
    let text = stdout(&out);
    assert!(text.starts_with("Deleted Containers:\n"), "{text}");
    assert!(
        text.contains(&format!("Deleted Volumes:\n{anon}\n\n")),
        "{text}"
    );
    assert!(
        text.contains("Deleted Images:\nuntagged: extra:1\n"),
        "{text}"
    );
    assert!(text.contains("untagged: busybox:latest\n"), "{text}");
    assert!(names(&d).is_empty(), "{:?}", names(&d));
    assert_eq!(volumes(&d), [named], "Docker 28 keeps named volumes");
    let out = d.docker(&["images", "-q"]);
    assert_eq!(stdout(&out), "", "every image went");

    wait_for_trash(&d);
    let after = usage(&d.root);
    let freed = before.saturating_sub(after) as f64;
    let reported = reclaimed(&text);
    assert!(reported > 5.5e6, "containers, volume and images: {text}");
    // What Docker does not count: container records, logs and image metadata.
    let slack = 0.01 * reported + 64.0 * 1024.0;
    assert!(
        (freed - reported).abs() <= slack,
        "reported {reported} bytes, the root lost {freed} ({before} -> {after})\n{text}"
    );

    let out = d.docker(&["system", "prune", "-f"]);
    assert_eq!(stdout(&out), "Total reclaimed space: 0B\n");
}

#[test]
fn system_prune_keeps_running_containers_their_images_and_unasked_volumes() {
    let d = Daemon::start();
    d.load_busybox();
    let anon = filled_volume(&d, None, 10_000);
    assert_ok(
        &d.docker(&["run", "-d", "--name", "up", "busybox", "sleep", "600"]),
        "run up",
    );
    assert_ok(
        &d.docker(&["create", "--name", "idle", "busybox"]),
        "create idle",
    );
    let idle = id_of(&d, "idle");

    // The question lists what goes; "n" cancels.
    let out = d.with_input(
        DOCKER,
        &["system", "prune", "--filter", "label=x=1"],
        b"n\n",
    );
    assert_ok(&out, "cancelled prune");
    assert_eq!(
        stdout(&out),
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\n  Items to be pruned will be filtered with:\n  - label=x=1\n\nAre you sure you want to continue? [y/N] "
    );
    let ours = d.with_input(
        env!("CARGO_BIN_EXE_arca"),
        &["system", "prune", "--filter", "label=x=1"],
        b"n\n",
    );
    assert_eq!(stdout(&ours), stdout(&out), "arca asks the same");
    assert_eq!(names(&d), ["idle", "up"]);

    let out = d.with_input(
        env!("CARGO_BIN_EXE_arca"),
        &["system", "prune", "-a"],
        b"y\n",
    );
    assert_ok(&out, "arca system prune -a");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Deleted Containers:\n{idle}\n\n")),
        "{text}"
    );
    // The built-in hello-world goes with -a; busybox is in use.
    assert!(text.contains("untagged: hello-world:latest\n"), "{text}");
    assert!(!text.contains("busybox"), "busybox is in use: {text}");
    assert!(reclaimed(&text) > 0.0, "{text}");
    assert_eq!(names(&d), ["up"]);
    assert_eq!(volumes(&d), [anon], "no --volumes");
    assert!(d.docker(&["image", "inspect", "busybox"]).status.success());

    let (status, body) =
        common::http(&d.socket, "POST", "/build/prune?all=1", None).expect("POST /build/prune");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json"),
        serde_json::json!({"CachesDeleted": [], "SpaceReclaimed": 0})
    );
}
