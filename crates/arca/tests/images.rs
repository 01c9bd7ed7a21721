//! Image management against arcad: `commit`, `history`, `save`/`load` round trips,
//! `image prune` and `system df`, through our CLI and the real docker CLI.

mod common;

use common::{Daemon, assert_ok, stderr, stdout};

fn inspect(d: &Daemon, format: &str, name: &str) -> String {
    let out = d.docker(&["image", "inspect", "--format", format, name]);
    assert_ok(&out, "docker image inspect");
    stdout(&out).trim().to_owned()
}

#[test]
fn commit_captures_new_deleted_and_opaque_paths_and_applies_changes() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.arca(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo hi > /new && rm /etc/group && rm -rf /var && mkdir /var && touch /var/x",
    ]);
    assert_ok(&out, "arca run");
    let out = d.arca(&[
        "commit",
        "-a",
        "tester",
        "-m",
        "made by a test",
        "-c",
        r#"CMD ["cat","/new"]"#,
        "-c",
        "ENV COMMITTED=yes",
        "src",
        "committed:1",
    ]);
    assert_ok(&out, "arca commit");
    let id = stdout(&out).trim().to_owned();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(inspect(&d, "{{.Id}}", "committed:1"), id);
    assert_eq!(inspect(&d, "{{.Author}}", "committed:1"), "tester");
    assert_eq!(inspect(&d, "{{.Comment}}", "committed:1"), "made by a test");
    assert!(inspect(&d, "{{.Config.Env}}", "committed:1").contains("COMMITTED=yes"));

    // The new command runs by default.
    let out = d.arca(&["run", "--rm", "committed:1"]);
    assert_ok(&out, "run committed image");
    assert_eq!(stdout(&out), "hi\n");
    // The deletion and the opaque directory survived; untouched files are still there.
    let out = d.arca(&[
        "run",
        "--rm",
        "committed:1",
        "sh",
        "-c",
        "ls -A /var; test -e /etc/group && echo group; test -e /etc/passwd && echo passwd",
    ]);
    assert_ok(&out, "inspect committed fs");
    assert_eq!(stdout(&out), "x\npasswd\n");
    // The runtime's mount points are not part of the layer.
    let out = d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "committed:1",
    ]);
    assert_ok(&out, "docker history");
    let first = stdout(&out).lines().next().unwrap_or_default().to_owned();
    assert!(
        first.contains("rm /etc/group") && first.ends_with("|made by a test"),
        "{first}"
    );

    // The real docker CLI commits too; a commit without changes adds no layer.
    let out = d.docker(&["commit", "-c", "WORKDIR /var", "src", "viadocker"]);
    assert_ok(&out, "docker commit");
    let out = d.docker(&["run", "--rm", "viadocker", "pwd"]);
    assert_ok(&out, "run docker-committed image");
    assert_eq!(stdout(&out), "/var\n");
    let layers = |n: &str| inspect(&d, "{{len .RootFS.Layers}}", n);
    assert_eq!(layers("viadocker"), layers("committed:1"));
    let out = d.docker(&["run", "--name", "empty", "busybox", "true"]);
    assert_ok(&out, "run empty");
    let out = d.docker(&["commit", "empty", "nochange"]);
    assert_ok(&out, "docker commit");
    assert_eq!(layers("nochange"), layers("busybox"));

    let out = d.docker(&["commit", "nosuch", "x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("No such container"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn commit_of_a_running_container_pauses_it_and_leaves_it_running() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo up > /state; sleep 300",
    ]);
    assert_ok(&out, "docker run -d");
    common::poll_until(
        "the file is written",
        std::time::Duration::from_secs(10),
        || stdout(&d.docker(&["diff", "live"])).contains("/state"),
    );
    let out = d.docker(&["commit", "live", "snap"]);
    assert_ok(&out, "docker commit of a running container");
    let out = d.docker(&["inspect", "--format", "{{.State.Status}}", "live"]);
    assert_eq!(stdout(&out).trim(), "running");
    let out = d.docker(&["run", "--rm", "snap", "cat", "/state"]);
    assert_ok(&out, "run snapshot");
    assert_eq!(stdout(&out), "up\n");
    let out = d.docker(&["commit", "--pause=false", "live", "snap2"]);
    assert_ok(&out, "docker commit --pause=false");
}

#[test]
fn save_rmi_load_round_trips_ids_and_digests() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = tempfile::tempdir().expect("tmp");
    let id = inspect(&d, "{{.Id}}", "busybox");
    let layers = inspect(&d, "{{.RootFS.Layers}}", "busybox");

    // Our CLI.
    let file = dir.path().join("ours.tar");
    let f = file.to_str().expect("utf8");
    let out = d.arca(&["save", "-o", f, "busybox"]);
    assert_ok(&out, "arca save");
    let listing = std::process::Command::new("tar")
        .args(["tf", f])
        .output()
        .expect("tar");
    let listing = stdout(&listing);
    for member in ["index.json", "manifest.json", "oci-layout"] {
        assert!(listing.lines().any(|l| l == member), "{listing}");
    }
    assert!(listing.contains(&format!(
        "blobs/sha256/{}",
        id.trim_start_matches("sha256:")
    )));
    assert_ok(&d.arca(&["rmi", "busybox"]), "arca rmi");
    let out = d.arca(&["load", "-i", f]);
    assert_ok(&out, "arca load");
    assert_eq!(stdout(&out).trim(), "Loaded image: busybox:latest");
    assert_eq!(inspect(&d, "{{.Id}}", "busybox"), id);
    assert_eq!(inspect(&d, "{{.RootFS.Layers}}", "busybox"), layers);

    // The real docker CLI, with two images in one archive.
    assert_ok(&d.docker(&["tag", "busybox", "other:2"]), "docker tag");
    let file = dir.path().join("docker.tar");
    let f = file.to_str().expect("utf8");
    let out = d.docker(&["save", "-o", f, "busybox", "other:2", "hello-world"]);
    assert_ok(&out, "docker save");
    let out = d.docker(&["rmi", "busybox", "other:2", "hello-world"]);
    assert_ok(&out, "docker rmi");
    let out = d.docker(&["load", "-i", f]);
    assert_ok(&out, "docker load");
    let text = stdout(&out);
    for tag in ["busybox:latest", "other:2", "hello-world:latest"] {
        assert!(text.contains(&format!("Loaded image: {tag}")), "{text}");
    }
    assert_eq!(inspect(&d, "{{.Id}}", "other:2"), id);
    assert_eq!(inspect(&d, "{{.RootFS.Layers}}", "busybox"), layers);
    let out = d.docker(&["run", "--rm", "hello-world"]);
    assert_ok(&out, "run loaded hello-world");

    // Saving a missing image fails before any archive is written.
    let missing = dir.path().join("missing.tar");
    let out = d.arca(&["save", "-o", missing.to_str().expect("utf8"), "nope"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("No such image: nope:latest"),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists());
}

#[test]
fn history_lists_layers_newest_first_with_missing_ids() {
    let d = Daemon::start();
    d.load_busybox();
    assert_ok(
        &d.arca(&["run", "--name", "h", "busybox", "touch", "/f"]),
        "run",
    );
    assert_ok(&d.arca(&["commit", "-m", "top", "h", "hist"]), "commit");
    let out = d.docker(&[
        "history",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Comment}}",
        "hist",
    ]);
    assert_ok(&out, "docker history");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let hist_id = inspect(&d, "{{.Id}}", "hist");
    let bb_id = inspect(&d, "{{.Id}}", "busybox");
    assert!(lines.len() >= 2, "{text}");
    assert_eq!(lines[0], format!("{}|touch /f|top", &hist_id[7..19]));
    // The base image is known locally, so its line has its ID.
    assert!(lines[1].starts_with(&bb_id[7..19]), "{text}");
    let out = d.arca(&["history", "hist"]);
    assert_ok(&out, "arca history");
    assert!(stdout(&out).starts_with("IMAGE"), "{}", stdout(&out));
    assert_ok(&d.arca(&["rm", "h"]), "rm container");
    assert_ok(&d.arca(&["rmi", "busybox"]), "rmi base");
    let out = d.docker(&["history", "--format", "{{.ID}}", "hist"]);
    assert!(
        stdout(&out).lines().nth(1) == Some("<missing>"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn image_prune_removes_unused_images_and_frees_space_and_df_reports_usage() {
    let d = Daemon::start();
    d.load_busybox();
    // A dangling image (untagged commit) no container uses, and one a container uses.
    let run = |name: &str, script: &str| {
        let out = d.arca(&["run", "--name", name, "busybox", "sh", "-c", script]);
        assert_ok(&out, "arca run");
    };
    run("a", "head -c 100000 /bin/busybox > /blob");
    run("b", "touch /small");
    let dangling = stdout(&d.arca(&["commit", "a"])).trim().to_owned();
    let kept = stdout(&d.arca(&["commit", "b"])).trim().to_owned();
    assert_ok(
        &d.arca(&["create", "--name", "user", &kept]),
        "create on dangling image",
    );

    let out = d.docker(&["system", "df"]);
    assert_ok(&out, "docker system df");
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Images") && l.contains(" 4 ")),
        "{text}"
    );
    let (status, body) = common::http(&d.socket, "GET", "/system/df", None).expect("df");
    assert_eq!(status, 200, "{body}");
    let out: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(out["LayersSize"].as_u64().unwrap_or(0) > 100_000, "{out}");
    let rw = out["Containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["Names"][0] == "/a"))
        .map(|c| c["SizeRw"].as_u64().unwrap_or(0))
        .unwrap_or(0);
    assert!(rw >= 100_000, "SizeRw of a: {out}");
    let bb = out["Images"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["RepoTags"][0] == "busybox:latest"))
        .cloned()
        .unwrap_or_default();
    assert!(bb["SharedSize"].as_u64().unwrap_or(0) > 0, "{bb}");
    assert_eq!(bb["Containers"], 2, "{bb}");
    assert_ok(&d.arca(&["system", "df", "-v"]), "arca system df");

    let out = d.docker(&["image", "prune", "-f"]);
    assert_ok(&out, "docker image prune");
    let text = stdout(&out);
    assert!(text.contains(&format!("deleted: {dangling}")), "{text}");
    assert!(!text.contains(&kept), "{text}");
    let reclaimed = text
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_default();
    let kb: f64 = reclaimed
        .strip_suffix("kB")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!(kb >= 100.0, "the 100 kB layer was freed: {text}");
    assert!(!d.docker(&["image", "inspect", &dangling]).status.success());
    assert!(d.docker(&["image", "inspect", &kept]).status.success());

    // -a takes tagged images too, but never one a container uses.
    assert_ok(&d.arca(&["rm", "a", "b", "user"]), "rm containers");
    assert_ok(
        &d.arca(&["create", "--name", "keeper", "busybox"]),
        "create",
    );
    let out = d.arca(&["image", "prune", "-a", "-f"]);
    assert_ok(&out, "arca image prune -a");
    let text = stdout(&out);
    assert!(text.contains("untagged: hello-world:latest"), "{text}");
    assert!(text.contains(&format!("deleted: {kept}")), "{text}");
    assert!(d.docker(&["image", "inspect", "busybox"]).status.success());
    let out = d.docker(&["images", "-q"]);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
}
