//! Docker credential helpers (`credsStore`) with an htpasswd registry on 127.0.0.1: `arca
//! login` stores through the helper and leaves no secret in config.json, `arca pull` uses
//! what the helper answers, `arca logout` erases it, and the real docker CLI shares the
//! helper and the config both ways.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::Registry;
use common::{Daemon, assert_ok, stderr, stdout};

const USER: &str = "carol";
const PASSWORD: &str = "hunter2-secret";

/// `docker-credential-arcatest`: keeps credentials as JSON lines in `creds.jsonl` next to
/// itself and logs each action (`<action> <input>`) to `calls.log`. It speaks the protocol
/// of docker/docker-credential-helpers, including its "not found" message.
const HELPER: &str = r#"#!/bin/sh
set -eu
dir=$(dirname "$0")
db="$dir/creds.jsonl"
touch "$db"
input=$(cat)
printf '%s %s\n' "$1" "$(printf '%s' "$input" | tr -d '\n')" >> "$dir/calls.log"
case "$1" in
get)
    found=$(jq -c --arg u "$input" 'select(.ServerURL == $u)' "$db")
    if [ -z "$found" ]; then
        echo "credentials not found in native keychain"
        exit 1
    fi
    printf '%s\n' "$found"
    ;;
store)
    url=$(printf '%s' "$input" | jq -r .ServerURL)
    jq -c --arg u "$url" 'select(.ServerURL != $u)' "$db" > "$db.new"
    printf '%s' "$input" | jq -c . >> "$db.new"
    mv "$db.new" "$db"
    ;;
erase)
    if ! jq -e --arg u "$input" 'select(.ServerURL == $u)' "$db" > /dev/null; then
        echo "credentials not found in native keychain"
        exit 1
    fi
    jq -c --arg u "$input" 'select(.ServerURL != $u)' "$db" > "$db.new"
    mv "$db.new" "$db"
    ;;
list)
    jq -s -c 'map({(.ServerURL): .Username}) | add // {}' "$db"
    ;;
*)
    echo "unknown action $1" >&2
    exit 2
    ;;
esac
"#;

/// A directory holding the helper, to put first on PATH.
struct HelperDir {
    dir: tempfile::TempDir,
}

impl HelperDir {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("arca-credhelper-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let script = dir.path().join("docker-credential-arcatest");
        std::fs::write(&script, HELPER).expect("write helper");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("chmod helper");
        Self { dir }
    }

    fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// The stored JSON lines.
    fn stored(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("creds.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("helper line"))
            .collect()
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A client (arca or docker) for `d` that finds the helper on its PATH.
fn client(d: &Daemon, helper: &HelperDir, prog: &str) -> Command {
    let mut cmd = d.client(prog);
    cmd.env("PATH", helper.path_var());
    cmd
}

fn run(d: &Daemon, helper: &HelperDir, prog: &str, args: &[&str], input: &[u8]) -> Output {
    common::feed(client(d, helper, prog).args(args), input)
}

fn config_file(d: &Daemon) -> PathBuf {
    d.dir.path().join("docker-config").join("config.json")
}

fn read_config(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("config.json")).expect("config json")
}

/// Docker's words for a pull the registry refused.
fn access_denied(repo: &str) -> String {
    format!(
        "pull access denied for {repo}, repository does not exist or may require 'docker login'"
    )
}

#[test]
fn creds_store_helper_keeps_logins_for_arca_and_docker() {
    const ARCA: &str = env!("CARGO_BIN_EXE_arca");
    let reg = Registry::start_with_htpasswd(USER, PASSWORD);
    let host = reg.host();
    let digest = reg.push_busybox("busybox:latest");
    let image = format!("{host}/busybox:latest");
    let repo = format!("{host}/busybox");
    let d = Daemon::start();
    let helper = HelperDir::new();
    let cfg = config_file(&d);
    std::fs::create_dir_all(cfg.parent().expect("dir")).expect("config dir");
    std::fs::write(
        &cfg,
        r#"{"credsStore":"arcatest","psFormat":"table {{.ID}}"}"#,
    )
    .expect("config.json");

    // Nothing in the helper yet: "not found" is no error, the pull is anonymous.
    let out = run(&d, &helper, ARCA, &["pull", &image], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&access_denied(&repo)),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    assert!(
        helper.calls().contains(&format!("get {host}")),
        "{:?}",
        helper.calls()
    );

    // Login stores through the helper; config.json keeps an empty entry and no secret.
    let out = run(
        &d,
        &helper,
        ARCA,
        &["login", "-u", USER, "--password-stdin", &host],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert_ok(&out, "arca login");
    assert_eq!(stdout(&out).trim(), "Login Succeeded");
    assert_eq!(
        helper.stored(),
        [serde_json::json!({"ServerURL": host, "Username": USER, "Secret": PASSWORD})]
    );
    let config = read_config(&cfg);
    assert_eq!(config["credsStore"], "arcatest");
    assert_eq!(config["psFormat"], "table {{.ID}}");
    assert_eq!(config["auths"], serde_json::json!({ &host: {} }));
    let text = std::fs::read_to_string(&cfg).expect("config.json");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!text.contains("\"auth\""), "{text}");

    // Pull with what the helper answers.
    let out = run(&d, &helper, ARCA, &["pull", &image], b"");
    assert_ok(&out, "arca pull through the helper");
    assert!(
        stdout(&out).contains(&format!("Digest: {digest}")),
        "{}",
        stdout(&out)
    );

    // The docker CLI reads the same config and asks the same helper.
    assert_ok(&d.arca(&["rmi", &image]), "arca rmi");
    let asked = helper.calls().len();
    let out = run(&d, &helper, common::DOCKER, &["pull", &image], b"");
    assert_ok(&out, "docker pull through the helper");
    assert!(
        stdout(&out).contains(&format!("Digest: {digest}")),
        "{}",
        stdout(&out)
    );
    assert!(
        helper.calls()[asked..].contains(&format!("get {host}")),
        "docker did not ask the helper: {:?}",
        helper.calls()
    );

    // Logout erases from the helper and drops the entry; the next pull is refused.
    let out = run(&d, &helper, ARCA, &["logout", &host], b"");
    assert_ok(&out, "arca logout");
    assert_eq!(
        stdout(&out).trim(),
        format!("Removing login credentials for {host}")
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(helper.stored().is_empty(), "{:?}", helper.stored());
    assert!(
        helper.calls().contains(&format!("erase {host}")),
        "{:?}",
        helper.calls()
    );
    let config = read_config(&cfg);
    assert!(config["auths"].get(&host).is_none(), "{config}");
    assert_eq!(config["credsStore"], "arcatest");
    assert_ok(&d.arca(&["rmi", &image]), "arca rmi");
    let out = run(&d, &helper, ARCA, &["pull", &image], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&access_denied(&repo)),
        "{}",
        stderr(&out)
    );

    // The other way round: docker login stores through the helper, arca pulls with it.
    let out = run(
        &d,
        &helper,
        common::DOCKER,
        &["login", "-u", USER, "--password-stdin", &host],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert_ok(&out, "docker login");
    assert_eq!(
        helper.stored(),
        [serde_json::json!({"ServerURL": host, "Username": USER, "Secret": PASSWORD})]
    );
    assert_eq!(read_config(&cfg)["auths"], serde_json::json!({ &host: {} }));
    let out = run(&d, &helper, ARCA, &["pull", &image], b"");
    assert_ok(&out, "arca pull after docker login");
}

#[test]
fn a_missing_helper_is_named_in_login_and_logout() {
    let d = Daemon::start();
    let reg = Registry::start_with_htpasswd(USER, PASSWORD);
    let host = reg.host();
    let helper = HelperDir::new();
    let cfg = config_file(&d);
    std::fs::create_dir_all(cfg.parent().expect("dir")).expect("config dir");
    std::fs::write(
        &cfg,
        r#"{"credHelpers":{"HOST":"arcamissing"}}"#.replace("HOST", &host),
    )
    .expect("config.json");
    let before = std::fs::read(&cfg).expect("config.json");

    let out = run(
        &d,
        &helper,
        env!("CARGO_BIN_EXE_arca"),
        &["login", "-u", USER, "--password-stdin", &host],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stderr(&out).trim(),
        "Error saving credentials: error storing credentials - err: exec: \
         \"docker-credential-arcamissing\": executable file not found in $PATH, out: ``"
    );
    assert_eq!(std::fs::read(&cfg).expect("config.json"), before);

    // docker's logout: a warning naming the helper, and success.
    let out = run(
        &d,
        &helper,
        env!("CARGO_BIN_EXE_arca"),
        &["logout", &host],
        b"",
    );
    assert_ok(&out, "arca logout");
    let err = stderr(&out);
    assert!(
        err.starts_with("WARNING: could not erase credentials:\n"),
        "{err}"
    );
    assert!(err.contains("\"docker-credential-arcamissing\""), "{err}");

    // A pull says why it goes on anonymously.
    let out = run(
        &d,
        &helper,
        env!("CARGO_BIN_EXE_arca"),
        &["pull", &format!("{host}/busybox")],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(
            "WARNING: error getting credentials - err: exec: \"docker-credential-arcamissing\""
        ),
        "{}",
        stderr(&out)
    );
}
