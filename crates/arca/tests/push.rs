//! Pushing through arcad to Debian's docker-registry on 127.0.0.1, with the real docker CLI
//! and the arca CLI: Docker's progress and digest line, "Layer already exists", pulling the
//! pushed image back from a fresh daemon, and an htpasswd-protected registry with `login`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::registry::Registry;
use common::{Daemon, assert_ok, stderr, stdout};

/// The `<tag>: digest: sha256:… size: N` line's digest.
fn pushed_digest(text: &str, tag: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{tag}: digest: sha256:")))
        .unwrap_or_else(|| panic!("no digest line in {text}"));
    let rest = line.split("digest: ").nth(1).expect("digest");
    let (digest, size) = rest.split_once(" size: ").expect("size");
    assert!(size.parse::<u64>().is_ok_and(|n| n > 0), "{line}");
    digest.to_owned()
}

/// The arca CLI with its own docker config directory (never the user's `~/.docker`).
fn arca(d: &Daemon, config: &Path, args: &[&str], input: &[u8]) -> Output {
    common::feed(
        d.client(env!("CARGO_BIN_EXE_arca"))
            .env("DOCKER_CONFIG", config)
            .args(args),
        input,
    )
}

#[test]
fn docker_push_prints_the_digest_and_a_fresh_daemon_pulls_the_same_image() {
    let reg = Registry::start();
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/mine:1", reg.host());
    assert_ok(&d.docker(&["tag", "busybox", &name]), "docker tag");
    let out = d.docker(&["push", &name]);
    assert_ok(&out, "docker push");
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "The push refers to repository [{}/mine]\n",
            reg.host()
        )),
        "{text}"
    );
    assert!(text.lines().any(|l| l.ends_with(": Pushed")), "{text}");
    let digest = pushed_digest(&text, "1");

    let again = d.docker(&["push", &name]);
    assert_ok(&again, "second docker push");
    let text = stdout(&again);
    assert!(
        text.lines().any(|l| l.ends_with(": Layer already exists")),
        "{text}"
    );
    assert_eq!(pushed_digest(&text, "1"), digest);

    // The push recorded the RepoDigest.
    let digests = d.docker(&["inspect", "--format", "{{json .RepoDigests}}", &name]);
    assert_ok(&digests, "docker inspect");
    assert!(
        stdout(&digests).contains(&format!("{}/mine@{digest}", reg.host())),
        "{}",
        stdout(&digests)
    );

    let fresh = Daemon::start();
    let pulled = fresh.docker(&["pull", &name]);
    assert_ok(&pulled, "docker pull from a fresh daemon");
    assert!(
        stdout(&pulled).contains(&format!("Digest: {digest}")),
        "{}",
        stdout(&pulled)
    );
    let id = |d: &Daemon| stdout(&d.docker(&["inspect", "--format", "{{.Id}}", &name]));
    assert_eq!(id(&fresh), id(&d));
    let run = fresh.docker(&["run", "--rm", &name, "echo", "pushed"]);
    assert_ok(&run, "run the pulled image");
    assert_eq!(stdout(&run).trim(), "pushed");
}

#[test]
fn arca_push_shows_progress_and_a_missing_image_is_docker_s_error() {
    let reg = Registry::start();
    let d = Daemon::start();
    d.load_busybox();
    let cfg = d.dir.path().join("arca-config");
    let name = format!("{}/arca/busybox", reg.host());
    assert_ok(&arca(&d, &cfg, &["tag", "busybox", &name], b""), "arca tag");
    let out = arca(&d, &cfg, &["push", &name], b"");
    assert_ok(&out, "arca push");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Using default tag: latest", "{text}");
    assert_eq!(
        lines[1],
        format!(
            "The push refers to repository [{}/arca/busybox]",
            reg.host()
        ),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.ends_with(": Preparing")), "{text}");
    assert!(lines.iter().any(|l| l.ends_with(": Pushed")), "{text}");
    pushed_digest(&text, "latest");

    let missing = format!("{}/nothing", reg.host());
    let out = arca(&d, &cfg, &["push", &missing], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "Error response from daemon: An image does not exist locally with the tag: {missing}"
        )
    );
}

#[test]
fn htpasswd_registry_needs_login_then_push_and_pull_succeed() {
    let reg = Registry::start_with_htpasswd("alice", "s3cret");
    let host = reg.host();
    let d = Daemon::start();
    d.load_busybox();
    let cfg = d.dir.path().join("arca-config");
    std::fs::create_dir_all(&cfg).expect("config dir");
    std::fs::write(cfg.join("config.json"), r#"{"psFormat":"table {{.ID}}"}"#).expect("config");
    let name = format!("{host}/private:1");
    assert_ok(&arca(&d, &cfg, &["tag", "busybox", &name], b""), "arca tag");

    // Anonymous: Docker's message from the registry.
    let out = arca(&d, &cfg, &["push", &name], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("unauthorized: authentication required"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["push", &name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unauthorized: authentication required"),
        "{}",
        stderr(&out)
    );

    // Wrong password: refused, nothing stored.
    let out = arca(
        &d,
        &cfg,
        &["login", "-u", "alice", "-p", "nope", &host],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("401 Unauthorized"),
        "{}",
        stderr(&out)
    );

    let out = arca(
        &d,
        &cfg,
        &["login", "-u", "alice", "--password-stdin", &host],
        b"s3cret\n",
    );
    assert_ok(&out, "arca login");
    assert_eq!(stdout(&out).trim(), "Login Succeeded");
    let file = cfg.join("config.json");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("config.json")).expect("json");
    assert_eq!(config["auths"][&host]["auth"], "YWxpY2U6czNjcmV0");
    assert_eq!(config["psFormat"], "table {{.ID}}", "other keys are kept");
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = arca(&d, &cfg, &["push", &name], b"");
    assert_ok(&out, "authenticated arca push");
    let digest = pushed_digest(&stdout(&out), "1");

    let fresh = Daemon::start();
    let out = arca(&fresh, &cfg, &["pull", &name], b"");
    assert_ok(&out, "authenticated arca pull");
    assert!(stdout(&out).contains(&format!("Digest: {digest}")));

    let out = arca(&d, &cfg, &["logout", &host], b"");
    assert_ok(&out, "arca logout");
    assert_eq!(
        stdout(&out).trim(),
        format!("Removing login credentials for {host}")
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("config.json")).expect("json");
    assert!(config["auths"].get(&host).is_none(), "{config}");

    // The docker CLI logs in through arcad's /auth and then pushes with X-Registry-Auth.
    let out = d.with_input(
        common::DOCKER,
        &["login", "-u", "alice", "--password-stdin", &host],
        b"s3cret\n",
    );
    assert_ok(&out, "docker login");
    assert!(stdout(&out).contains("Login Succeeded"), "{}", stdout(&out));
    let out = d.docker(&["push", &name]);
    assert_ok(&out, "docker push after docker login");
    assert_eq!(pushed_digest(&stdout(&out), "1"), digest);
}
