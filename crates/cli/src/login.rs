//! `arca login` / `arca logout`, and the registry credentials `pull`, `push` and `run` send
//! as `X-Registry-Auth`.
//!
//! Credentials live where the docker CLI keeps them, found through
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Server keys are Docker's:
//! `https://index.docker.io/v1/` for Docker Hub, `host[:port]` for others. For a server, the
//! store is (docker's `GetCredentialsStore`):
//! 1. the helper `credHelpers[<server key>]` names, else
//! 2. the helper `credsStore` names, else
//! 3. `auths`: `{"auths":{"<server>":{"auth":"<base64 user:password>"}}}`.
//!
//! A helper `<name>` is the program `docker-credential-<name>` on `PATH`, spoken to as in
//! [`crate::credhelper`]. With a helper, its answer is all that counts (a password left in
//! `auths` is not used); a helper that has nothing means anonymous. `arca login` stores
//! through the helper and writes an empty `auths` entry (`{}`) for the server, as docker
//! does; `arca logout` asks the helper to erase the server (and its `http://`/`https://`
//! spellings) and then drops the `auths` entry. A helper's Username `<token>` marks an
//! identity token, sent as `identitytoken` (arcad does not use identity tokens yet).
//!
//! Errors: `login` fails with docker's `Error saving credentials: error storing credentials
//! - err: …` when the helper fails; `logout` warns and succeeds, as docker does; `pull`,
//! `push` and `search` warn on stderr and go on anonymously (docker 28 goes on silently);
//! [`lookup`] returns the error for callers that would rather stop.
//!
//! Other keys of config.json are kept; it is written atomically with mode 0600. Not done:
//! `DOCKER_AUTH_CONFIG`, logging in with stored credentials when no username is given, and
//! Docker Hub's web (device-code) login.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::Context;
use arca_model::Reference;
use bollard::auth::DockerCredentials;
use clap::Args;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::client::{Cli, Plain};
use crate::credhelper::{CredHelperError, Exec, Helper, HelperCredentials, Runner, TOKEN_USERNAME};

/// Docker Hub's server address as the docker CLI names it.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    /// Registry server (default: Docker Hub)
    server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry server (default: Docker Hub)
    server: Option<String>,
}

/// Docker's `ConvertToHostname` plus its Docker Hub aliases: the key a server is stored under.
pub fn server_key(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
        h => h.to_owned(),
    }
}

/// The docker CLI's config file.
pub fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".docker").join("config.json"))
}

fn read_config(path: &std::path::Path) -> anyhow::Result<Value> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(json!({})),
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("reading {}: invalid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the config atomically, readable by its owner only.
fn write_config(path: &std::path::Path, v: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(serde_json::to_string_pretty(v)?.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        // Nothing half-written stays next to the user's config.
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

/// Credentials for one registry, as the docker CLI's `AuthConfig` carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub username: String,
    pub password: String,
    /// Sent instead of a password when a helper or the daemon handed out a token.
    pub identity_token: String,
    /// The server key the credentials belong to.
    pub server_address: String,
}

impl AuthConfig {
    fn is_empty(&self) -> bool {
        self.username.is_empty() && self.password.is_empty() && self.identity_token.is_empty()
    }
}

/// Where the credentials of one server are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CredStore {
    /// `auths` in config.json.
    File,
    /// `docker-credential-<name>`.
    Helper(String),
}

/// Docker's `getConfiguredCredentialStore`: `credHelpers[key]`, else `credsStore`, else the
/// file. A `credHelpers` key written another way (`https://host`) also counts.
fn store_for(config: &Value, key: &str) -> CredStore {
    let named = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(helpers) = config.get("credHelpers").and_then(Value::as_object) {
        let found = helpers.get(key).and_then(named).or_else(|| {
            helpers
                .iter()
                .find(|(k, _)| server_key(k) == key)
                .and_then(|(_, v)| named(v))
        });
        if let Some(h) = found {
            return CredStore::Helper(h);
        }
    }
    config
        .get("credsStore")
        .and_then(named)
        .map_or(CredStore::File, CredStore::Helper)
}

/// The `auths` entry for `key`: the exact key, else one written another way (`http://host`).
fn file_entry<'a>(config: &'a Value, key: &str) -> Option<&'a Value> {
    let auths = config.get("auths")?.as_object()?;
    auths.get(key).or_else(|| {
        auths
            .iter()
            .find(|(k, _)| server_key(k) == key)
            .map(|(_, v)| v)
    })
}

fn file_get(config: &Value, key: &str) -> Option<AuthConfig> {
    let entry = file_entry(config, key)?;
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (username, password) = match entry.get("auth").and_then(Value::as_str) {
        Some(a) if !a.is_empty() => {
            let raw = String::from_utf8(base64_decode(a)?).ok()?;
            let (u, p) = raw.split_once(':')?;
            (u.to_owned(), p.trim_end_matches('\0').to_owned())
        }
        _ => (field("username"), field("password")),
    };
    let auth = AuthConfig {
        username,
        password,
        identity_token: field("identitytoken"),
        server_address: key.to_owned(),
    };
    (!auth.is_empty()).then_some(auth)
}

/// The credentials config.json names for server `key` (a [`server_key`]), asking the
/// configured helper through `runner`. `Ok(None)`: anonymous.
fn lookup_in(
    config: &Value,
    key: &str,
    runner: &dyn Runner,
) -> Result<Option<AuthConfig>, CredHelperError> {
    let name = match store_for(config, key) {
        CredStore::File => return Ok(file_get(config, key)),
        CredStore::Helper(name) => name,
    };
    // As docker's native store: what the helper says replaces the auths entry entirely.
    let Some(c) = Helper::new(&name, runner).get(key)? else {
        return Ok(None);
    };
    let mut auth = AuthConfig {
        server_address: key.to_owned(),
        ..Default::default()
    };
    if c.username == TOKEN_USERNAME {
        auth.identity_token = c.secret;
    } else {
        auth.username = c.username;
        auth.password = c.secret;
    }
    Ok((!auth.is_empty()).then_some(auth))
}

/// The stored credentials for the registry of `reference` (`Ok(None)`: none, or no readable
/// config.json); `Err` when the configured helper fails.
pub fn lookup(reference: &Reference) -> Result<Option<AuthConfig>, CredHelperError> {
    let key = server_key(reference.domain());
    let Some(config) = config_path().and_then(|p| read_config(&p).ok()) else {
        return Ok(None);
    };
    lookup_in(&config, &key, &Exec)
}

/// [`lookup`] for commands that go on anonymously when the helper fails (as docker 28's
/// pull and push do), saying why on stderr.
fn lookup_or_warn(reference: &Reference) -> Option<AuthConfig> {
    lookup(reference).unwrap_or_else(|e| {
        eprintln!("WARNING: {e}");
        None
    })
}

/// What bollard sends as `X-Registry-Auth` for `reference`'s registry (`None`: anonymous).
pub fn docker_credentials(reference: &Reference) -> Option<DockerCredentials> {
    let a = lookup_or_warn(reference)?;
    let some = |s: String| (!s.is_empty()).then_some(s);
    Some(DockerCredentials {
        username: some(a.username),
        password: some(a.password),
        identitytoken: some(a.identity_token),
        serveraddress: some(a.server_address),
        ..Default::default()
    })
}

/// The `X-Registry-Auth` JSON for `auth`: docker's field names, empty fields left out.
fn auth_json(auth: &AuthConfig) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("username", &auth.username),
        ("password", &auth.password),
        ("serveraddress", &auth.server_address),
        ("identitytoken", &auth.identity_token),
    ] {
        if !v.is_empty() {
            m.insert(k.to_owned(), Value::String(v.clone()));
        }
    }
    Value::Object(m)
}

/// The `X-Registry-Auth` header value (base64url JSON, as the docker CLI sends it); `e30=`
/// (`{}`) when no credentials are stored.
pub fn registry_auth_header(reference: &Reference) -> String {
    let v = lookup_or_warn(reference).map_or_else(|| json!({}), |a| auth_json(&a));
    base64_encode(v.to_string().as_bytes(), true)
}

/// config.json's `auths`, made an object (and config.json with it) if it was not one.
fn auths_mut(config: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !config.is_object() {
        *config = json!({});
    }
    let auths = config
        .as_object_mut()
        .expect("made an object above")
        .entry("auths")
        .or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    auths.as_object_mut().expect("made an object above")
}

/// Docker's `storeCredentials`: through the server's helper, leaving an empty `auths`
/// entry, or into `auths` as base64 `user:password` (plus `identitytoken`).
fn store_credentials(
    config: &mut Value,
    auth: &AuthConfig,
    runner: &dyn Runner,
) -> Result<(), CredHelperError> {
    let server = auth.server_address.clone();
    let entry = match store_for(config, &server) {
        CredStore::Helper(name) => {
            let (username, secret) = if auth.identity_token.is_empty() {
                (auth.username.clone(), auth.password.clone())
            } else {
                (TOKEN_USERNAME.to_owned(), auth.identity_token.clone())
            };
            Helper::new(&name, runner).store(&HelperCredentials {
                server_url: server.clone(),
                username,
                secret,
            })?;
            json!({})
        }
        CredStore::File => {
            let mut e = serde_json::Map::new();
            let plain = format!("{}:{}", auth.username, auth.password);
            e.insert("auth".into(), base64_encode(plain.as_bytes(), false).into());
            if !auth.identity_token.is_empty() {
                e.insert("identitytoken".into(), auth.identity_token.clone().into());
            }
            Value::Object(e)
        }
    };
    auths_mut(config).insert(server, entry);
    Ok(())
}

/// What `arca logout` did to config.json (and to the helpers).
#[derive(Debug, Default, PartialEq)]
struct LogoutOutcome {
    /// A helper was asked to erase, or an `auths` entry went.
    removed: bool,
    /// Set when every helper erase failed: (server URL, why).
    failures: Vec<(String, CredHelperError)>,
}

/// Docker's `runLogout`: erases `server` (and, for registries other than Docker Hub, its
/// `http://` and `https://` spellings) from whichever store holds each spelling; an `auths`
/// entry goes only once its helper has erased the credentials. Failures are reported when
/// every helper erase failed (docker: when every spelling failed, which hides a missing
/// `credHelpers` program behind the spellings kept in the file).
fn logout_in(config: &mut Value, server: &str, runner: &dyn Runner) -> LogoutOutcome {
    let mut spellings = vec![server.to_owned()];
    if server != DOCKER_HUB {
        spellings.push(format!("http://{server}"));
        spellings.push(format!("https://{server}"));
    }
    let mut out = LogoutOutcome::default();
    let mut drop_keys = Vec::new();
    let mut asked = 0;
    for url in spellings {
        match store_for(config, &url) {
            CredStore::File => drop_keys.push(url),
            CredStore::Helper(name) => {
                asked += 1;
                match Helper::new(&name, runner).erase(&url) {
                    Ok(()) => drop_keys.push(url),
                    Err(e) => out.failures.push((url, e)),
                }
            }
        }
    }
    if out.failures.len() < asked {
        out.failures.clear();
    }
    let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) else {
        out.removed = asked > 0;
        return out;
    };
    let gone: Vec<String> = auths
        .keys()
        .filter(|k| {
            if asked == 0 {
                // No helper involved: every spelling of the server goes.
                server_key(k) == server
            } else {
                drop_keys.contains(k)
            }
        })
        .cloned()
        .collect();
    for k in &gone {
        auths.remove(k);
    }
    out.removed = asked > 0 || !gone.is_empty();
    out
}

/// Base64 with padding, in the standard or (`url`) URL-safe alphabet.
pub fn base64_encode(data: &[u8], url: bool) -> String {
    if url {
        arca_api::b64::encode_url(data)
    } else {
        arca_api::b64::encode(data)
    }
}

/// Decodes base64 in either alphabet, padded or not.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    arca_api::b64::decode(s)
}

/// Reads one line, prompting on a terminal; with `hidden`, echo is off while typing.
fn prompt(label: &str, hidden: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{label}");
        std::io::stderr().flush()?;
    }
    let saved = (tty && hidden)
        .then(|| nix::sys::termios::tcgetattr(&stdin).ok())
        .flatten();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet
            .local_flags
            .remove(nix::sys::termios::LocalFlags::ECHO);
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = &saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, t);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn login(cli: &Cli, a: LoginArgs) -> anyhow::Result<i32> {
    let server = a
        .server
        .as_deref()
        .map_or_else(|| DOCKER_HUB.to_owned(), server_key);
    if a.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    if a.password_stdin && a.username.is_none() {
        return Err(Plain::new("Must provide --username with --password-stdin", 1).into());
    }
    let username = match a.username {
        Some(u) => u,
        None => prompt("Username: ", false)?,
    };
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().lock().read_line(&mut s)?;
            s.trim_end_matches(['\r', '\n']).to_owned()
        }
        (None, false) => prompt("Password: ", true)?,
    };
    if username.is_empty() || password.is_empty() {
        return Err(Plain::new("Error: Username and password are required", 1).into());
    }
    let body = json!({"username": username, "password": password, "serveraddress": server});
    let answer = crate::push::post(&cli.socket, "/auth", &[], body.to_string().into_bytes())
        .await?
        .collect()
        .await?
        .to_bytes();
    // The answer is `{"Status":"Login Succeeded","IdentityToken":…}`; a refusal was an
    // error status above. A token, when the daemon hands one out, is kept instead of the
    // password (as docker does).
    let answer: Value = serde_json::from_slice(&answer).unwrap_or_default();
    let identity_token = answer
        .get("IdentityToken")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let auth = AuthConfig {
        username,
        password: if identity_token.is_empty() {
            password
        } else {
            String::new()
        },
        identity_token,
        server_address: server,
    };
    let path = config_path().ok_or_else(|| {
        anyhow::anyhow!("cannot find the docker config directory: set DOCKER_CONFIG or HOME")
    })?;
    let mut config = read_config(&path)?;
    store_credentials(&mut config, &auth, &Exec)
        .map_err(|e| Plain::new(format!("Error saving credentials: {e}"), 1))?;
    write_config(&path, &config)?;
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(a: LogoutArgs) -> anyhow::Result<i32> {
    let server = a
        .server
        .as_deref()
        .map_or_else(|| DOCKER_HUB.to_owned(), server_key);
    let Some(path) = config_path() else {
        println!("Not logged in to {server}");
        return Ok(0);
    };
    let mut config = read_config(&path)?;
    let before = config.clone();
    let outcome = logout_in(&mut config, &server, &Exec);
    if !outcome.removed {
        println!("Not logged in to {server}");
        return Ok(0);
    }
    println!("Removing login credentials for {server}");
    if !outcome.failures.is_empty() {
        // Docker's wording and status: a warning, and logout still succeeds.
        eprintln!("WARNING: could not erase credentials:");
        for (url, e) in &outcome.failures {
            eprintln!("{url}: {e}");
        }
    }
    if config != before {
        write_config(&path, &config)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[test]
    fn base64_round_trips_in_both_alphabets() {
        for data in [&b""[..], b"u", b"us", b"user:pass", b"\xfb\xff?>"] {
            for url in [false, true] {
                let enc = base64_encode(data, url);
                assert_eq!(base64_decode(&enc).expect("decode"), data, "{enc}");
            }
        }
        assert_eq!(base64_encode(b"user:pass", false), "dXNlcjpwYXNz");
        assert_eq!(base64_encode(b"\xfb\xff", true), "-_8=");
    }

    #[test]
    fn server_keys_follow_docker() {
        assert_eq!(server_key("docker.io"), DOCKER_HUB);
        assert_eq!(server_key(DOCKER_HUB), DOCKER_HUB);
        assert_eq!(server_key("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(server_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    /// One helper's credentials: server URL → (username, secret).
    type Kept = BTreeMap<String, (String, String)>;

    /// Helpers kept in memory, by program name. A program missing from the map is not on
    /// PATH; `broken` ones fail every action.
    #[derive(Default)]
    struct FakeHelpers {
        stores: RefCell<BTreeMap<String, Kept>>,
        broken: Vec<String>,
        calls: RefCell<Vec<String>>,
    }

    impl FakeHelpers {
        fn with(helpers: &[(&str, &str, &str, &str)]) -> Self {
            let f = Self::default();
            for (name, url, user, secret) in helpers {
                f.stores
                    .borrow_mut()
                    .entry(format!("docker-credential-{name}"))
                    .or_default()
                    .insert((*url).into(), ((*user).into(), (*secret).into()));
            }
            f
        }

        fn installed(self, name: &str) -> Self {
            self.stores
                .borrow_mut()
                .entry(format!("docker-credential-{name}"))
                .or_default();
            self
        }

        fn kept(&self, name: &str, url: &str) -> Option<(String, String)> {
            self.stores
                .borrow()
                .get(&format!("docker-credential-{name}"))?
                .get(url)
                .cloned()
        }
    }

    impl Runner for FakeHelpers {
        fn run(
            &self,
            program: &str,
            action: &str,
            input: &[u8],
        ) -> Result<crate::credhelper::RunOutput, String> {
            let input = String::from_utf8(input.to_vec()).expect("utf8 input");
            self.calls
                .borrow_mut()
                .push(format!("{program} {action} {}", input.trim_end()));
            let mut stores = self.stores.borrow_mut();
            let Some(store) = stores.get_mut(program) else {
                return Err(format!(
                    "exec: \"{program}\": executable file not found in $PATH"
                ));
            };
            let reply = |ok: bool, out: String| crate::credhelper::RunOutput {
                failure: (!ok).then(|| "exit status 1".to_owned()),
                stdout: out.into_bytes(),
            };
            if self.broken.iter().any(|b| b == program) {
                return Ok(reply(false, "the keyring is locked".into()));
            }
            Ok(match action {
                "get" => match store.get(&input) {
                    Some((u, s)) => reply(
                        true,
                        json!({"ServerURL": input, "Username": u, "Secret": s}).to_string(),
                    ),
                    None => reply(false, format!("{}\n", crate::credhelper::NOT_FOUND)),
                },
                "store" => {
                    let v: Value = serde_json::from_str(&input).expect("store json");
                    let f = |k: &str| v[k].as_str().expect("string field").to_owned();
                    store.insert(f("ServerURL"), (f("Username"), f("Secret")));
                    reply(true, String::new())
                }
                "erase" => match store.remove(&input) {
                    Some(_) => reply(true, String::new()),
                    None => reply(false, crate::credhelper::NOT_FOUND.into()),
                },
                other => panic!("unexpected action {other}"),
            })
        }
    }

    fn auth(user: &str, pass: &str, server: &str) -> AuthConfig {
        AuthConfig {
            username: user.into(),
            password: pass.into(),
            identity_token: String::new(),
            server_address: server.into(),
        }
    }

    const REG: &str = "reg.example:5000";

    fn file_auth(user: &str, pass: &str) -> Value {
        json!({ "auth": base64_encode(format!("{user}:{pass}").as_bytes(), false) })
    }

    #[test]
    fn auths_are_used_when_no_helper_is_configured() {
        let config = json!({"auths": {REG: file_auth("alice", "pw")}});
        let got = lookup_in(&config, REG, &FakeHelpers::default()).expect("lookup");
        assert_eq!(got, Some(auth("alice", "pw", REG)));
        // An older spelling of the key counts too.
        let config = json!({"auths": {"https://reg.example:5000/v1/": file_auth("a", "b")}});
        let got = lookup_in(&config, REG, &FakeHelpers::default()).expect("lookup");
        assert_eq!(got, Some(auth("a", "b", REG)));
    }

    #[test]
    fn creds_store_wins_over_auths() {
        let config = json!({"credsStore": "desk", "auths": {REG: file_auth("file", "pw")}});
        let helpers = FakeHelpers::with(&[("desk", REG, "store-user", "store-pw")]);
        let got = lookup_in(&config, REG, &helpers).expect("lookup");
        assert_eq!(got, Some(auth("store-user", "store-pw", REG)));
        assert_eq!(
            *helpers.calls.borrow(),
            [format!("docker-credential-desk get {REG}")]
        );
    }

    #[test]
    fn a_helper_without_credentials_means_anonymous_even_with_auths() {
        let config = json!({"credsStore": "desk", "auths": {REG: file_auth("file", "pw")}});
        let helpers = FakeHelpers::default().installed("desk");
        assert_eq!(lookup_in(&config, REG, &helpers).expect("lookup"), None);
    }

    #[test]
    fn cred_helpers_win_over_creds_store_for_their_server_only() {
        let config = json!({
            "credsStore": "desk",
            "credHelpers": {REG: "special"},
            "auths": {REG: file_auth("file", "pw")},
        });
        let helpers = FakeHelpers::with(&[
            ("desk", REG, "desk-user", "desk-pw"),
            ("desk", "other:1", "o", "opw"),
            ("special", REG, "sp-user", "sp-pw"),
        ]);
        let got = lookup_in(&config, REG, &helpers).expect("lookup");
        assert_eq!(got, Some(auth("sp-user", "sp-pw", REG)));
        let got = lookup_in(&config, "other:1", &helpers).expect("lookup");
        assert_eq!(got, Some(auth("o", "opw", "other:1")));
    }

    #[test]
    fn cred_helpers_alone_leave_other_servers_to_auths() {
        let config = json!({
            "credHelpers": {REG: "special"},
            "auths": {"other:1": file_auth("file", "pw")},
        });
        let helpers = FakeHelpers::default();
        let got = lookup_in(&config, "other:1", &helpers).expect("lookup");
        assert_eq!(got, Some(auth("file", "pw", "other:1")));
        assert!(helpers.calls.borrow().is_empty());
    }

    #[test]
    fn docker_hub_is_asked_for_under_docker_s_index_url() {
        let config = json!({"credsStore": "desk"});
        let helpers = FakeHelpers::with(&[("desk", DOCKER_HUB, "hubber", "pw")]);
        let reference = "busybox".parse::<Reference>().expect("reference");
        let key = server_key(reference.domain());
        let got = lookup_in(&config, &key, &helpers).expect("lookup");
        assert_eq!(got, Some(auth("hubber", "pw", DOCKER_HUB)));
        assert_eq!(
            *helpers.calls.borrow(),
            ["docker-credential-desk get https://index.docker.io/v1/"]
        );
    }

    #[test]
    fn a_token_username_makes_the_secret_an_identity_token() {
        let config = json!({"credsStore": "desk"});
        let helpers = FakeHelpers::with(&[("desk", REG, "<token>", "tok")]);
        let got = lookup_in(&config, REG, &helpers)
            .expect("lookup")
            .expect("credentials");
        assert_eq!(got.identity_token, "tok");
        assert_eq!((got.username.as_str(), got.password.as_str()), ("", ""));
        assert_eq!(
            auth_json(&got),
            json!({"identitytoken": "tok", "serveraddress": REG})
        );
    }

    #[test]
    fn a_missing_helper_is_an_error_naming_it() {
        let config = json!({"credHelpers": {REG: "gone"}});
        let e = lookup_in(&config, REG, &FakeHelpers::default()).expect_err("no program");
        assert_eq!(
            e.to_string(),
            "error getting credentials - err: exec: \"docker-credential-gone\": executable \
             file not found in $PATH, out: ``"
        );
    }

    #[test]
    fn login_through_a_helper_leaves_an_empty_auths_entry() {
        let mut config = json!({
            "credsStore": "desk",
            "psFormat": "x",
            "auths": {REG: file_auth("old", "secret")},
        });
        let helpers = FakeHelpers::default().installed("desk");
        store_credentials(&mut config, &auth("alice", "pw", REG), &helpers).expect("store");
        assert_eq!(config["auths"], json!({REG: {}}));
        assert_eq!(config["psFormat"], "x");
        assert_eq!(
            helpers.kept("desk", REG),
            Some(("alice".into(), "pw".into()))
        );
        // And reading it back goes through the helper.
        let got = lookup_in(&config, REG, &helpers).expect("lookup");
        assert_eq!(got, Some(auth("alice", "pw", REG)));
    }

    #[test]
    fn login_stores_identity_tokens_as_docker_does() {
        let token = AuthConfig {
            identity_token: "tok".into(),
            ..auth("alice", "", REG)
        };
        let mut config = json!({"credsStore": "desk"});
        let helpers = FakeHelpers::default().installed("desk");
        store_credentials(&mut config, &token, &helpers).expect("store");
        assert_eq!(
            helpers.kept("desk", REG),
            Some(("<token>".into(), "tok".into()))
        );
        let mut config = json!({});
        store_credentials(&mut config, &token, &helpers).expect("store");
        assert_eq!(
            config["auths"][REG],
            json!({"auth": "YWxpY2U6", "identitytoken": "tok"})
        );
    }

    #[test]
    fn login_without_a_helper_writes_auths() {
        let mut config = json!({"credHelpers": {"other:1": "desk"}});
        store_credentials(
            &mut config,
            &auth("user", "pass", REG),
            &FakeHelpers::default(),
        )
        .expect("store");
        assert_eq!(config["auths"][REG], json!({"auth": "dXNlcjpwYXNz"}));
    }

    #[test]
    fn a_failing_helper_fails_login_and_changes_nothing() {
        let mut config = json!({"credsStore": "desk"});
        let before = config.clone();
        let helpers = FakeHelpers {
            broken: vec!["docker-credential-desk".into()],
            ..FakeHelpers::default().installed("desk")
        };
        let e = store_credentials(&mut config, &auth("u", "p", REG), &helpers)
            .expect_err("broken helper");
        assert_eq!(
            e.to_string(),
            "error storing credentials - err: docker-credential-desk store: exit status 1, \
             out: `the keyring is locked`"
        );
        assert_eq!(config, before);
    }

    #[test]
    fn logout_erases_through_the_helper_and_drops_the_auths_entry() {
        let mut config = json!({"credsStore": "desk", "auths": {REG: {}, "other:1": {}}});
        let helpers = FakeHelpers::with(&[("desk", REG, "u", "p"), ("desk", "other:1", "o", "p")]);
        let out = logout_in(&mut config, REG, &helpers);
        assert_eq!(
            out,
            LogoutOutcome {
                removed: true,
                failures: vec![]
            }
        );
        assert_eq!(config["auths"], json!({"other:1": {}}));
        assert_eq!(helpers.kept("desk", REG), None);
        assert!(helpers.kept("desk", "other:1").is_some());
        assert_eq!(
            *helpers.calls.borrow(),
            [
                format!("docker-credential-desk erase {REG}"),
                format!("docker-credential-desk erase http://{REG}"),
                format!("docker-credential-desk erase https://{REG}"),
            ]
        );
    }

    #[test]
    fn logout_warns_and_keeps_the_entry_when_every_erase_fails() {
        let mut config = json!({"credHelpers": {REG: "gone"}, "auths": {REG: {}}});
        let out = logout_in(&mut config, REG, &FakeHelpers::default());
        assert!(out.removed);
        assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
        assert_eq!(out.failures[0].0, REG);
        assert!(
            out.failures[0]
                .1
                .to_string()
                .contains("docker-credential-gone")
        );
        assert_eq!(config["auths"], json!({REG: {}}));
    }

    #[test]
    fn logout_without_helpers_drops_every_spelling_or_says_not_logged_in() {
        let mut config =
            json!({"auths": {REG: file_auth("u", "p"), "http://reg.example:5000": {}}});
        let out = logout_in(&mut config, REG, &FakeHelpers::default());
        assert_eq!(
            out,
            LogoutOutcome {
                removed: true,
                failures: vec![]
            }
        );
        assert_eq!(config["auths"], json!({}));
        let out = logout_in(&mut config, REG, &FakeHelpers::default());
        assert!(!out.removed);
    }

    #[test]
    fn logout_from_docker_hub_asks_for_the_index_url_only() {
        let mut config = json!({"credsStore": "desk"});
        let helpers = FakeHelpers::with(&[("desk", DOCKER_HUB, "u", "p")]);
        logout_in(&mut config, DOCKER_HUB, &helpers);
        assert_eq!(
            *helpers.calls.borrow(),
            ["docker-credential-desk erase https://index.docker.io/v1/"]
        );
    }
}
