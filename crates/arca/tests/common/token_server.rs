//! A registry token server for tests: the Bearer half of the Docker registry auth flow
//! (<https://distribution.github.io/distribution/spec/auth/token/>), enough for Debian's
//! docker-registry (distribution 2.8) configured with `auth: token`.
//!
//! It answers `GET /token?service=…&scope=…[&account=…]` on 127.0.0.1 with
//! `{"token", "access_token", "expires_in"}`: a JWT signed ES256 by a P-256 key whose
//! self-signed certificate (made with the `openssl` CLI at start) is in the header's `x5c`
//! and in the registry's `rootcertbundle` (distribution verifies the chain against it, then
//! the signature with the leaf's key; its claims: `iss`, `aud` = the service, `exp`/`nbf`
//! with a minute of leeway, and the `access` list).
//!
//! Access: the one user with the right Basic credentials gets every action it asks for;
//! an anonymous request gets `pull` on repositories under [`PUBLIC_PREFIX`] and nothing
//! else (so the registry answers `insufficient_scope`); wrong credentials get 401 with
//! Docker Hub's body (`{"details":"incorrect username or password"}`). Every request is
//! recorded, so tests can check which scopes a client asked for.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// The `service` the registry names in its challenge and expects as the token's audience.
pub const SERVICE: &str = "arca-test-registry";
/// The token's `iss`, as the registry is configured to trust.
pub const ISSUER: &str = "arca-test-token-issuer";
/// Repositories anyone may pull without credentials.
pub const PUBLIC_PREFIX: &str = "public/";
/// How long a token lasts, in seconds.
const LIFETIME: u64 = 300;

/// One request the token server answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The Basic user, when the credentials were right.
    pub user: Option<String>,
    /// Whether the request carried credentials at all.
    pub had_credentials: bool,
    pub account: Option<String>,
    pub service: Option<String>,
    /// The scopes asked for (`repository:name:pull,push`), one per item.
    pub scopes: Vec<String>,
    /// The HTTP status answered.
    pub status: u16,
}

impl TokenRequest {
    /// Whether this request asked for `actions` (all of them) on `repository`.
    pub fn asked_for(&self, repository: &str, actions: &[&str]) -> bool {
        self.scopes.iter().any(|s| {
            parse_scope(s).is_some_and(|(kind, name, acts)| {
                kind == "repository"
                    && name == repository
                    && actions.iter().all(|a| acts.contains(a))
            })
        })
    }
}

struct Shared {
    user: String,
    password: String,
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    rng: SystemRandom,
    requests: Mutex<Vec<TokenRequest>>,
    stop: AtomicBool,
    serial: AtomicU64,
}

/// A running token server; stops when dropped.
pub struct TokenServer {
    pub port: u16,
    /// Holds the key and `cert.pem`.
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Starts a token server accepting `user`/`password`.
    pub fn start(user: &str, password: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("arca-token-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let (pkcs8, cert_der) = make_key_and_cert(dir.path());
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .expect("openssl's PKCS#8 P-256 key");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            user: user.to_owned(),
            password: password.to_owned(),
            key,
            cert_der,
            rng,
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            serial: AtomicU64::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(&s, conn));
            }
        });
        Self {
            port,
            dir,
            shared,
            thread: Some(thread),
        }
    }

    /// The realm the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The PEM certificate the registry trusts (its `rootcertbundle`).
    pub fn cert_pem(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The requests answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared
            .requests
            .lock()
            .expect("token server lock")
            .clone()
    }

    /// A token for the server's user granting `access` (`repository:name:actions` items),
    /// for tests that talk to the registry directly.
    pub fn token_for(&self, access: &[&str]) -> String {
        let granted: Vec<String> = access.iter().map(|s| (*s).to_owned()).collect();
        sign(&self.shared, &self.shared.user, &granted)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A P-256 key (PKCS#8 DER) and its self-signed certificate (DER; PEM in `dir/cert.pem`).
fn make_key_and_cert(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run the openssl CLI");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-subj",
        "/CN=arca test token issuer",
    ]);
    run(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der",
    ]);
    run(&[
        "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
    ]);
    let read = |f: &str| std::fs::read(dir.join(f)).expect("read openssl output");
    (read("key.der"), read("cert.der"))
}

/// Answers one connection (one request; `Connection: close`).
fn serve(s: &Shared, mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if raw.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_owned());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path != "/token" {
        respond(&mut conn, 404, r#"{"details":"not found"}"#);
        return;
    }
    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // Docker repeats `scope`; some clients join scopes with spaces.
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect();
    let credentials = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| base64_decode(b.trim()))
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|c| c.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
    let user = match &credentials {
        Some((u, p)) if *u == s.user && *p == s.password => Some(u.clone()),
        _ => None,
    };
    let mut record = TokenRequest {
        user: user.clone(),
        had_credentials: credentials.is_some(),
        account: param("account"),
        service: param("service"),
        scopes: scopes.clone(),
        status: 200,
    };
    if credentials.is_some() && user.is_none() {
        record.status = 401;
        s.requests.lock().expect("token server lock").push(record);
        respond(
            &mut conn,
            401,
            r#"{"details":"incorrect username or password"}"#,
        );
        return;
    }
    let granted: Vec<String> = scopes
        .iter()
        .filter_map(|scope| grant(scope, user.is_some()))
        .collect();
    let token = sign(s, user.as_deref().unwrap_or(""), &granted);
    s.requests.lock().expect("token server lock").push(record);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": LIFETIME,
        "issued_at": rfc3339_now(),
    });
    respond(&mut conn, 200, &body.to_string());
}

/// `type:name:actions` (the name may contain `:` only in theory; split at the ends).
fn parse_scope(scope: &str) -> Option<(&str, &str, Vec<&str>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((kind, name, actions.split(',').collect()))
}

/// What of `scope` the requester gets, as a `type:name:actions` item (None: nothing).
fn grant(scope: &str, authenticated: bool) -> Option<String> {
    let (kind, name, actions) = parse_scope(scope)?;
    let actions: Vec<&str> = if authenticated {
        actions
    } else if kind == "repository" && name.starts_with(PUBLIC_PREFIX) {
        actions.into_iter().filter(|a| *a == "pull").collect()
    } else {
        Vec::new()
    };
    (!actions.is_empty()).then(|| format!("{kind}:{name}:{}", actions.join(",")))
}

/// A JWT for `subject` with `granted` access, as distribution verifies it.
fn sign(s: &Shared, subject: &str, granted: &[String]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let access: Vec<serde_json::Value> = granted
        .iter()
        .filter_map(|g| parse_scope(g))
        .map(|(kind, name, actions)| {
            serde_json::json!({"type": kind, "name": name, "actions": actions})
        })
        .collect();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64(&s.cert_der, STD, true)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + LIFETIME,
        "nbf": now.saturating_sub(1),
        "iat": now,
        "jti": format!("{}-{}", std::process::id(), s.serial.fetch_add(1, Ordering::SeqCst)),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        base64(header.to_string().as_bytes(), URL, false),
        base64(claims.to_string().as_bytes(), URL, false)
    );
    let sig = s
        .key
        .sign(&s.rng, input.as_bytes())
        .expect("ECDSA signing with a system RNG");
    format!("{input}.{}", base64(sig.as_ref(), URL, false))
}

fn respond(conn: &mut TcpStream, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 401 {
        head.push_str("WWW-Authenticate: Basic realm=\"arca-test-token\"\r\n");
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}

fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | (u32::from(*c) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = STD.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Some(out)
}
