//! Pulling from a registry through arcad: Debian's docker-registry on 127.0.0.1 holds the
//! busybox fixture (pushed with a gzipped layer), and the real docker CLI, the arca CLI and
//! bollard pull it, run it, and pull it again.

mod common;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::{ClientVersion, Docker};
use common::registry::Registry;
use common::{Daemon, assert_ok, http, stderr, stdout};
use futures_util::StreamExt;

/// A registry with `busybox:latest`, its manifest digest, and a fresh daemon.
fn setup() -> (Registry, String, Daemon) {
    let reg = Registry::start();
    let digest = reg.push_busybox("busybox:latest");
    (reg, digest, Daemon::start())
}

#[test]
fn docker_pull_shows_progress_digest_and_reference() {
    let (reg, digest, d) = setup();
    let name = format!("{}/busybox", reg.host());
    let out = d.docker(&["pull", &name]);
    assert_ok(&out, "docker pull");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Using default tag: latest", "{text}");
    assert_eq!(lines[1], "latest: Pulling from busybox", "{text}");
    assert!(
        lines.iter().any(|l| l.ends_with(": Pull complete")),
        "{text}"
    );
    assert!(text.contains(&format!("\nDigest: {digest}\n")), "{text}");
    assert!(
        text.contains(&format!(
            "\nStatus: Downloaded newer image for {name}:latest\n"
        )),
        "{text}"
    );
    assert_eq!(lines.last(), Some(&format!("{name}:latest").as_str()));

    // The second pull downloads nothing.
    let again = d.docker(&["pull", &name]);
    assert_ok(&again, "second docker pull");
    assert!(
        stdout(&again).contains(&format!("Status: Image is up to date for {name}:latest")),
        "{}",
        stdout(&again)
    );

    let images = d.docker(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    assert_ok(&images, "docker images --digests");
    assert!(
        stdout(&images).contains(&format!("{name} latest {digest}")),
        "{}",
        stdout(&images)
    );

    // An image `pull` event named by the reference.
    let (_, events) = http(
        &d.socket,
        "GET",
        &format!(
            "/events?since=0&until={}&filters=%7B%22type%22%3A%5B%22image%22%5D%7D",
            now_unix() + 1
        ),
        None,
    )
    .expect("events");
    assert!(
        events
            .lines()
            .any(|l| l.contains(r#""Action":"pull""#)
                && l.contains(&format!(r#""id":"{name}:latest""#))),
        "{events}"
    );
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[test]
fn docker_run_pulls_a_missing_image_and_again_after_rmi() {
    let (reg, _digest, d) = setup();
    let name = format!("{}/busybox", reg.host());
    let out = d.docker(&["run", "--rm", &name, "echo", "hi"]);
    assert_ok(&out, "docker run (pull on missing)");
    assert_eq!(stdout(&out), "hi\n");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Unable to find image '{name}:latest' locally")),
        "{err}"
    );
    assert!(err.contains("Pull complete"), "{err}");
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {name}:latest")),
        "{err}"
    );

    assert_ok(&d.docker(&["rmi", &name]), "docker rmi");
    let out = d.docker(&["run", "--rm", &name, "echo", "hi"]);
    assert_ok(&out, "docker run after rmi");
    assert_eq!(stdout(&out), "hi\n");
}

#[test]
fn arca_run_pulls_a_missing_image_and_honours_pull_policy() {
    let (reg, _digest, d) = setup();
    let name = format!("{}/busybox", reg.host());

    let never = d.arca(&["run", "--rm", "--pull", "never", &name, "true"]);
    assert_eq!(never.status.code(), Some(125), "{}", stderr(&never));
    assert!(
        stderr(&never).contains("No such image"),
        "{}",
        stderr(&never)
    );
    assert!(!stderr(&never).contains("Unable to find image"));

    let out = d.arca(&["run", "--rm", &name, "echo", "hi"]);
    assert_ok(&out, "arca run (pull on missing)");
    assert_eq!(stdout(&out), "hi\n");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Unable to find image '{name}:latest' locally")),
        "{err}"
    );
    assert!(err.contains("Pull complete"), "{err}");

    let always = d.arca(&["create", "--pull", "always", &name]);
    assert_ok(&always, "arca create --pull always");
    assert!(
        stderr(&always).contains(&format!("Status: Image is up to date for {name}:latest")),
        "{}",
        stderr(&always)
    );
    assert_eq!(stdout(&always).trim().len(), 64, "only the ID on stdout");
}

#[test]
fn arca_pull_prints_docker_lines_and_quiet_prints_the_reference() {
    let (reg, digest, d) = setup();
    let name = format!("{}/busybox", reg.host());
    let out = d.arca(&["pull", &name]);
    assert_ok(&out, "arca pull");
    let text = stdout(&out);
    assert!(
        text.starts_with("Using default tag: latest\nlatest: Pulling from busybox\n"),
        "{text}"
    );
    assert!(text.contains(": Pull complete\n"), "{text}");
    assert!(text.contains(&format!("Digest: {digest}\n")), "{text}");
    assert!(
        text.ends_with(&format!(
            "Status: Downloaded newer image for {name}:latest\n{name}:latest\n"
        )),
        "{text}"
    );
    // Byte counts are for terminals only.
    assert!(!text.contains("Downloading"), "{text}");

    let quiet = d.arca(&["pull", "-q", &format!("{name}:latest")]);
    assert_ok(&quiet, "arca pull -q");
    assert_eq!(stdout(&quiet), format!("{name}:latest\n"));
}

#[test]
fn pulling_a_missing_tag_fails_like_docker() {
    let (reg, _digest, d) = setup();
    let missing = format!("{}/busybox:nope", reg.host());
    let out = d.docker(&["pull", &missing]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "Error response from daemon: manifest for {missing} not found"
        )),
        "{err}"
    );
    let out = d.arca(&["pull", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    // Nothing was streamed: the API answers 404 with Docker's error body.
    let (status, body) = http(
        &d.socket,
        "POST",
        &format!("/images/create?fromImage={}/busybox&tag=nope", reg.host()),
        None,
    )
    .expect("http");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(r#""message":"manifest for"#), "{body}");
}

#[test]
fn pull_by_digest_records_it_and_runs() {
    let (reg, digest, d) = setup();
    let pinned = format!("{}/busybox@{digest}", reg.host());
    let out = d.docker(&["pull", &pinned]);
    assert_ok(&out, "docker pull by digest");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {pinned}")),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some(pinned.as_str()));
    let run = d.docker(&["run", "--rm", &pinned, "echo", "pinned"]);
    assert_ok(&run, "docker run by digest");
    assert_eq!(stdout(&run), "pinned\n");
    let inspect = d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &pinned,
    ]);
    assert_ok(&inspect, "docker image inspect");
    assert!(stdout(&inspect).contains(&pinned), "{}", stdout(&inspect));
}

#[test]
fn bollard_create_image_streams_progress_and_records_the_repo_digest() {
    let reg = Registry::start();
    let digest = reg.push_busybox("busybox:latest");
    // Options the pull path reads: an insecure registry list, and credentials (this
    // registry needs none, so they must simply not get in the way).
    let d = Daemon::start_with(&["--insecure-registry", "registry.invalid:5000"]);
    let version = ClientVersion {
        major_version: 1,
        minor_version: 51,
    };
    let docker = Docker::connect_with_unix(d.socket.to_str().expect("utf8"), 60, &version)
        .expect("bollard connects");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let name = format!("{}/busybox", reg.host());
    let statuses: Vec<String> = rt.block_on(async {
        let opts = CreateImageOptionsBuilder::new()
            .from_image(&name)
            .tag("latest")
            .build();
        let auth = DockerCredentials {
            username: Some("user".into()),
            password: Some("secret".into()),
            serveraddress: Some(reg.host()),
            ..Default::default()
        };
        docker
            .create_image(Some(opts), None, Some(auth))
            .map(|m| m.expect("progress message").status.unwrap_or_default())
            .collect()
            .await
    });
    assert!(
        statuses.iter().any(|s| s == "Pull complete"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some(format!("Status: Downloaded newer image for {name}:latest").as_str())
    );
    let image = rt
        .block_on(docker.inspect_image(&format!("{name}:latest")))
        .expect("inspect");
    assert_eq!(
        image.repo_digests.unwrap_or_default(),
        vec![format!("{name}@{digest}")]
    );

    // A missing repository is an HTTP error, not a stream error.
    let err = rt.block_on(async {
        let opts = CreateImageOptionsBuilder::new()
            .from_image(&format!("{}/nothing", reg.host()))
            .tag("latest")
            .build();
        docker
            .create_image(Some(opts), None, None)
            .collect::<Vec<_>>()
            .await
    });
    assert!(
        matches!(
            err.first(),
            Some(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }))
        ),
        "{err:?}"
    );
}

#[test]
fn a_layer_missing_from_the_registry_ends_the_stream_with_an_error() {
    let (reg, digest, d) = setup();
    let manifest = reg
        .request(
            "GET",
            &format!("/v2/busybox/manifests/{digest}"),
            &[(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )],
            &[],
        )
        .expect("get manifest");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.body).expect("json");
    let layer = manifest["layers"][0]["digest"].as_str().expect("layer");
    let del = reg
        .request("DELETE", &format!("/v2/busybox/blobs/{layer}"), &[], &[])
        .expect("delete blob");
    assert_eq!(del.status, 202, "delete blob");

    let name = format!("{}/busybox", reg.host());
    let out = d.docker(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // The progress had started: the error comes in the stream, and names the layer.
    assert!(
        stdout(&out).contains("Pulling fs layer"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(&layer[7..19]) || stderr(&out).contains(layer),
        "{}",
        stderr(&out)
    );
    let images = d.docker(&["images", "-q", &name]);
    assert_eq!(stdout(&images), "", "nothing partial is visible");
}

#[test]
fn pull_all_tags_pulls_every_tag_with_one_status_line() {
    let reg = Registry::start();
    reg.push_busybox("busybox:1");
    reg.push_busybox("busybox:2");
    let d = Daemon::start();
    let name = format!("{}/busybox", reg.host());
    let out = d.docker(&["pull", "-a", &name]);
    assert_ok(&out, "docker pull -a");
    let text = stdout(&out);
    assert!(
        text.contains("1: Pulling from busybox\n") && text.contains("2: Pulling from busybox\n"),
        "{text}"
    );
    assert_eq!(text.matches("Digest: ").count(), 2, "{text}");
    assert_eq!(text.matches("Status: ").count(), 1, "{text}");
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{text}"
    );
    let tags = d.docker(&["images", "--format", "{{.Tag}}", &name]);
    assert_ok(&tags, "docker images");
    let mut tags: Vec<String> = stdout(&tags).lines().map(str::to_owned).collect();
    tags.sort();
    assert_eq!(tags, ["1", "2"]);

    let again = d.arca(&["pull", "-a", &name]);
    assert_ok(&again, "arca pull -a");
    assert!(
        stdout(&again).contains(&format!("Status: Image is up to date for {name}\n")),
        "{}",
        stdout(&again)
    );
    let tagged = d.arca(&["pull", "-a", &format!("{name}:1")]);
    assert!(!tagged.status.success());
    assert!(
        stderr(&tagged).contains("tag can't be used with --all-tags/-a"),
        "{}",
        stderr(&tagged)
    );
}

#[test]
fn docker_hub_images_come_from_the_first_registry_mirror_that_answers() {
    let reg = Registry::start();
    let digest = reg.push_busybox("library/busybox:latest");
    // Nothing listens on the first mirror: it is skipped.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let live = format!("http://{}", reg.host());
    let d = Daemon::start_with(&["--registry-mirror", &dead, "--registry-mirror", &live]);
    let out = d.docker(&["pull", "busybox"]);
    assert_ok(&out, "docker pull busybox through the mirror");
    let text = stdout(&out);
    assert!(text.contains(&format!("Digest: {digest}\n")), "{text}");
    assert!(
        text.contains("Status: Downloaded newer image for busybox:latest\n"),
        "{text}"
    );
    let run = d.docker(&["run", "--rm", "busybox", "echo", "from-mirror"]);
    assert_ok(&run, "docker run");
    assert_eq!(stdout(&run).trim(), "from-mirror");
    let info = d.docker(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"]);
    assert_ok(&info, "docker info");
    assert_eq!(
        stdout(&info).trim(),
        format!("[\"{dead}/\",\"{live}/\"]"),
        "mirrors listed as docker does"
    );

    // arcad refuses a mirror that is not an http(s) URL, before touching anything.
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_arcad"))
        .args(["--registry-mirror", "mirror.example.com"])
        .arg("--root")
        .arg(tmp.path().join("root"))
        .arg("--exec-root")
        .arg(tmp.path().join("run"))
        .arg("--host")
        .arg(format!("unix://{}", tmp.path().join("s.sock").display()))
        .output()
        .expect("arcad runs");
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("invalid mirror: no scheme specified: mirror.example.com"),
        "{}",
        stderr(&bad)
    );
    assert!(!tmp.path().join("root").exists());
}
