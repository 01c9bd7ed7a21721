//! `arca login` / `arca logout`, and the registry credentials `pull`, `push` and `run` send
//! as `X-Registry-Auth`.
//!
//! Credentials live where the docker CLI keeps them: `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`, as `{"auths":{"<server>":{"auth":"<base64 user:password>"}}}`.
//! Other keys of the file are kept; it is written atomically with mode 0600. Server keys are
//! Docker's: `https://index.docker.io/v1/` for Docker Hub, `host[:port]` for others.
//! Credential helpers (`credsStore`, `credHelpers`) are not run: their entries are ignored.

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

/// The stored user name and password for the registry of `reference`, if any.
pub fn stored_credentials(reference: &Reference) -> Option<(String, String, String)> {
    let key = server_key(reference.domain());
    let config = read_config(&config_path()?).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let entry = auths
        .iter()
        .find(|(k, _)| server_key(k) == key)
        .map(|(_, v)| v)?;
    let (user, pass) = match entry.get("auth").and_then(Value::as_str) {
        Some(a) => {
            let raw = String::from_utf8(base64_decode(a)?).ok()?;
            let (u, p) = raw.split_once(':')?;
            (u.to_owned(), p.to_owned())
        }
        None => (
            entry.get("username")?.as_str()?.to_owned(),
            entry.get("password")?.as_str()?.to_owned(),
        ),
    };
    Some((user, pass, key))
}

/// What bollard sends as `X-Registry-Auth` for `reference`'s registry (`None`: anonymous).
pub fn docker_credentials(reference: &Reference) -> Option<DockerCredentials> {
    let (username, password, server) = stored_credentials(reference)?;
    Some(DockerCredentials {
        username: Some(username),
        password: Some(password),
        serveraddress: Some(server),
        ..Default::default()
    })
}

/// The `X-Registry-Auth` header value (base64url JSON, as the docker CLI sends it); `e30=`
/// (`{}`) when no credentials are stored.
pub fn registry_auth_header(reference: &Reference) -> String {
    let v = match stored_credentials(reference) {
        Some((u, p, s)) => json!({"username": u, "password": p, "serveraddress": s}),
        None => json!({}),
    };
    base64_encode(v.to_string().as_bytes(), true)
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 with padding, in the standard or (`url`) URL-safe alphabet.
pub fn base64_encode(data: &[u8], url: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | (u32::from(*c) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let c = STD[((n >> (18 - 6 * i)) & 63) as usize];
                out.push(match (url, c) {
                    (true, b'+') => '-',
                    (true, b'/') => '_',
                    _ => c as char,
                });
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64 in either alphabet, padded or not.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            c => STD.iter().position(|x| *x == c)? as u8,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
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
        .await?;
    // The answer is `{"Status":"Login Succeeded",…}`; a refusal was an error status above.
    drop(answer);
    let path = config_path().ok_or_else(|| {
        anyhow::anyhow!("cannot find the docker config directory: set DOCKER_CONFIG or HOME")
    })?;
    let mut config = read_config(&path)?;
    let auth = base64_encode(format!("{username}:{password}").as_bytes(), false);
    if !config.is_object() {
        config = json!({});
    }
    let auths = config
        .as_object_mut()
        .expect("made an object above")
        .entry("auths")
        .or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    auths
        .as_object_mut()
        .expect("made an object above")
        .insert(server, json!({ "auth": auth }));
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
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .map(|auths| {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| server_key(k) == server)
                .cloned()
                .collect();
            for k in &keys {
                auths.remove(k);
            }
            !keys.is_empty()
        })
        .unwrap_or(false);
    if !removed {
        println!("Not logged in to {server}");
        return Ok(0);
    }
    println!("Removing login credentials for {server}");
    write_config(&path, &config)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
