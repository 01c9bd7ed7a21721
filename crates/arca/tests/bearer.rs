//! The registry Bearer token flow through arcad: Debian's docker-registry configured with
//! `auth: token` sends clients to a test token server (common/token_server.rs) that signs
//! ES256 JWTs; `docker login`/`arca login` (`POST /auth`), `docker push`, `docker pull`,
//! `arca pull` and `docker run`'s pull of a missing image all go through it, asking for the
//! scopes Docker asks for (both repositories' for a cross-repository blob mount), and fail
//! in Docker's words when the token server refuses the credentials or the token lacks a
//! right.

mod common;

use std::path::Path;
use std::process::Output;

use common::registry::Registry;
use common::token_server::TokenRequest;
use common::{Daemon, assert_ok, stderr, stdout};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";

/// The arca CLI with its own docker config directory (never the user's `~/.docker`).
fn arca(d: &Daemon, config: &Path, args: &[&str], input: &[u8]) -> Output {
    common::feed(
        d.client(env!("CARGO_BIN_EXE_arca"))
            .env("DOCKER_CONFIG", config)
            .args(args),
        input,
    )
}

/// `docker login` through arcad as [`USER`] with `password` on stdin.
fn docker_login(d: &Daemon, host: &str, password: &str) -> Output {
    d.with_input(
        common::DOCKER,
        &["login", "-u", USER, "--password-stdin", host],
        format!("{password}\n").as_bytes(),
    )
}

/// The `<tag>: digest: sha256:… size: N` line's digest.
fn pushed_digest(text: &str, tag: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{tag}: digest: sha256:")))
        .unwrap_or_else(|| panic!("no digest line in {text}"));
    let rest = line.split("digest: ").nth(1).expect("digest");
    rest.split_once(" size: ").expect("size").0.to_owned()
}

fn token_requests(reg: &Registry) -> Vec<TokenRequest> {
    reg.tokens.as_ref().expect("a token registry").requests()
}

/// Docker's words for a pull the registry refused (moby's `notFoundError`).
fn access_denied(repo: &str) -> String {
    format!(
        "pull access denied for {repo}, repository does not exist or may require 'docker login'"
    )
}

#[test]
fn login_through_arcad_checks_the_password_at_the_token_server() {
    let reg = Registry::start_with_token_auth(USER, PASSWORD);
    let host = reg.host();
    let d = Daemon::start();

    // Docker's words: the ping of /v2/ failed because the token request did.
    let refused =
        format!("Get \"http://{host}/v2/\": unauthorized: incorrect username or password");
    let out = docker_login(&d, &host, "nope");
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(
        stderr(&out).trim(),
        format!("Error response from daemon: {refused}")
    );
    assert!(
        token_requests(&reg)
            .iter()
            .any(|r| r.had_credentials && r.status == 401),
        "{:?}",
        token_requests(&reg)
    );

    let out = docker_login(&d, &host, PASSWORD);
    assert_ok(&out, "docker login");
    assert!(stdout(&out).contains("Login Succeeded"), "{}", stdout(&out));
    assert!(
        token_requests(&reg)
            .iter()
            .any(|r| r.user.as_deref() == Some(USER) && r.status == 200),
        "{:?}",
        token_requests(&reg)
    );

    let cfg = d.dir.path().join("arca-config");
    let out = arca(&d, &cfg, &["login", "-u", USER, "-p", "nope", &host], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains(&refused), "{}", stderr(&out));
    let stored = std::fs::read_to_string(cfg.join("config.json")).unwrap_or_default();
    assert!(
        !stored.contains(&host),
        "a refused login stored nothing: {stored}"
    );
    let out = arca(
        &d,
        &cfg,
        &["login", "-u", USER, "--password-stdin", &host],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert_ok(&out, "arca login");
    assert_eq!(stdout(&out).trim(), "Login Succeeded");
}

#[test]
fn docker_push_asks_for_push_scope_and_a_fresh_daemon_pulls_the_same_digest() {
    let reg = Registry::start_with_token_auth(USER, PASSWORD);
    let host = reg.host();
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{host}/private/busybox:1");
    assert_ok(&d.docker(&["tag", "busybox", &name]), "docker tag");

    // Anonymous: the anonymous token grants nothing, and the registry says
    // `insufficient_scope`, which Docker words this way.
    let out = d.docker(&["push", &name]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("denied: requested access to the resource is denied"),
        "{}",
        stderr(&out)
    );
    // Credentials the token server refuses: its words, not an anonymous attempt's.
    let cfg = d.dir.path().join("arca-config");
    std::fs::create_dir_all(&cfg).expect("config dir");
    // alice:nope
    let wrong = format!(r#"{{"auths":{{"{host}":{{"auth":"YWxpY2U6bm9wZQ=="}}}}}}"#);
    std::fs::write(cfg.join("config.json"), wrong).expect("config.json");
    let out = arca(&d, &cfg, &["push", &name], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("unauthorized: incorrect username or password"),
        "{}",
        stderr(&out)
    );

    assert_ok(&docker_login(&d, &host, PASSWORD), "docker login");
    let out = d.docker(&["push", &name]);
    assert_ok(&out, "docker push");
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.ends_with(": Pushed")), "{text}");
    let digest = pushed_digest(&text, "1");
    assert!(
        token_requests(&reg)
            .iter()
            .any(|r| r.user.as_deref() == Some(USER)
                && r.asked_for("private/busybox", &["pull", "push"])),
        "no push scope asked for: {:?}",
        token_requests(&reg)
    );
    // Another repository of the same registry: the layer is mounted from the first one,
    // with a token for push on the target and pull on the source, as Docker asks for.
    let other = format!("{host}/other/busybox:1");
    assert_ok(&d.docker(&["tag", "busybox", &other]), "docker tag");
    let out = d.docker(&["push", &other]);
    assert_ok(&out, "docker push to a second repository");
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.ends_with(": Mounted from private/busybox")),
        "{text}"
    );
    assert_eq!(pushed_digest(&text, "1"), digest);
    assert!(
        token_requests(&reg)
            .iter()
            .any(|r| r.user.as_deref() == Some(USER)
                && r.asked_for("other/busybox", &["pull", "push"])
                && r.asked_for("private/busybox", &["pull"])),
        "no mount scopes asked for: {:?}",
        token_requests(&reg)
    );

    // A fresh daemon: refused anonymously, in Docker's words; pulls after a login.
    let fresh = Daemon::start();
    let out = fresh.docker(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let repo = format!("{host}/private/busybox");
    assert!(
        stderr(&out).contains(&access_denied(&repo)),
        "{}",
        stderr(&out)
    );

    let before = token_requests(&reg).len();
    assert_ok(&docker_login(&fresh, &host, PASSWORD), "docker login");
    let out = fresh.docker(&["pull", &name]);
    assert_ok(&out, "docker pull after docker login");
    assert!(
        stdout(&out).contains(&format!("Digest: {digest}")),
        "{}",
        stdout(&out)
    );
    assert!(
        token_requests(&reg)[before..]
            .iter()
            .any(|r| r.user.as_deref() == Some(USER) && r.asked_for("private/busybox", &["pull"])),
        "no pull scope asked for: {:?}",
        token_requests(&reg)
    );
    let id = |d: &Daemon| stdout(&d.docker(&["inspect", "--format", "{{.Id}}", &name]));
    assert_eq!(id(&fresh), id(&d));
}

#[test]
fn arca_pull_and_run_use_the_credentials_of_arca_login() {
    let reg = Registry::start_with_token_auth(USER, PASSWORD);
    let host = reg.host();
    let digest = reg.push_busybox("team/busybox:latest");
    reg.push_busybox("team/runme:latest");
    let name = format!("{host}/team/busybox");
    let d = Daemon::start();
    let cfg = d.dir.path().join("arca-config");

    let out = arca(&d, &cfg, &["pull", &name], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&access_denied(&name)),
        "{}",
        stderr(&out)
    );
    // Credentials the token server refuses: its words, as Docker shows them.
    std::fs::create_dir_all(&cfg).expect("config dir");
    // alice:nope
    let wrong = format!(r#"{{"auths":{{"{host}":{{"auth":"YWxpY2U6bm9wZQ=="}}}}}}"#);
    std::fs::write(cfg.join("config.json"), wrong).expect("config.json");
    let out = arca(&d, &cfg, &["pull", &name], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "Head \"http://{host}/v2/team/busybox/manifests/latest\": unauthorized: incorrect username or password"
        )),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(cfg.join("config.json")).expect("remove config.json");

    let out = arca(
        &d,
        &cfg,
        &["login", "-u", USER, "--password-stdin", &host],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert_ok(&out, "arca login");
    let out = arca(&d, &cfg, &["pull", &name], b"");
    assert_ok(&out, "arca pull after arca login");
    assert!(
        stdout(&out).contains(&format!("Digest: {digest}")),
        "{}",
        stdout(&out)
    );
    assert!(
        token_requests(&reg)
            .iter()
            .any(|r| r.user.as_deref() == Some(USER) && r.asked_for("team/busybox", &["pull"])),
        "{:?}",
        token_requests(&reg)
    );
    // `arca run` of an image not there yet pulls it with the same credentials.
    let missing = format!("{host}/team/runme");
    let run = arca(&d, &cfg, &["run", "--rm", &missing, "echo", "bearer"], b"");
    assert_ok(&run, "arca run (pull on missing)");
    assert_eq!(stdout(&run), "bearer\n");
    assert!(
        stderr(&run).contains(&format!("Unable to find image '{missing}:latest' locally")),
        "{}",
        stderr(&run)
    );
}

#[test]
fn docker_run_pulls_a_missing_image_with_a_bearer_token() {
    let reg = Registry::start_with_token_auth(USER, PASSWORD);
    let host = reg.host();
    reg.push_busybox("team/runme:latest");
    let name = format!("{host}/team/runme");
    let d = Daemon::start();
    assert_ok(&docker_login(&d, &host, PASSWORD), "docker login");
    let out = d.docker(&["run", "--rm", &name, "echo", "hi"]);
    assert_ok(&out, "docker run (pull on missing)");
    assert_eq!(stdout(&out), "hi\n");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Unable to find image '{name}:latest' locally")),
        "{err}"
    );
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {name}:latest")),
        "{err}"
    );
}

#[test]
fn anonymous_pull_of_a_public_repository_uses_an_anonymous_token() {
    let reg = Registry::start_with_token_auth(USER, PASSWORD);
    let host = reg.host();
    let digest = reg.push_busybox("public/busybox:latest");
    let name = format!("{host}/public/busybox");
    let d = Daemon::start();
    let out = d.docker(&["pull", &name]);
    assert_ok(&out, "anonymous docker pull");
    assert!(
        stdout(&out).contains(&format!("Digest: {digest}")),
        "{}",
        stdout(&out)
    );
    assert!(
        token_requests(&reg)
            .iter()
            .any(|r| !r.had_credentials && r.asked_for("public/busybox", &["pull"])),
        "{:?}",
        token_requests(&reg)
    );
}
