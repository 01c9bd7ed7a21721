//! A private Distribution registry for a test: Debian's `docker-registry` serving plain
//! HTTP on 127.0.0.1 with temporary storage, and a push of the busybox fixture through the
//! registry's HTTP API (blob uploads, then a schema 2 manifest), so tests need no network
//! and no other engine. Variants require HTTP Basic auth (htpasswd) or Bearer tokens from a
//! test token server ([`super::token_server`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest as _;

use super::token_server::{self, TokenServer};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
    /// `Authorization` sent by [`Registry::request`] (the htpasswd variant's user; the token
    /// variant mints a token for the repository in each request's path instead).
    basic: Option<String>,
    /// The token server of [`Registry::start_with_token_auth`].
    pub tokens: Option<TokenServer>,
}

/// How the registry authenticates clients.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Htpasswd(&'a str, &'a str),
    /// A token server accepting these credentials.
    Token(&'a str, &'a str),
}

/// An HTTP response: status, headers (lowercase names), body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex(&sha2::Sha256::digest(b)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers.
    pub fn start() -> Self {
        Self::start_with(Auth::None)
    }

    /// A registry that requires HTTP Basic authentication as `user`/`password` (an htpasswd
    /// file with a bcrypt hash made by Python's `crypt`, which uses libxcrypt here).
    pub fn start_with_htpasswd(user: &str, password: &str) -> Self {
        Self::start_with(Auth::Htpasswd(user, password))
    }

    /// A registry that requires Bearer tokens (`auth: token`) from a token server of its own
    /// ([`Registry::tokens`]) that accepts `user`/`password` and grants anonymous clients
    /// pull access to `public/…` repositories only.
    pub fn start_with_token_auth(user: &str, password: &str) -> Self {
        Self::start_with(Auth::Token(user, password))
    }

    fn start_with(auth: Auth<'_>) -> Self {
        // The port is free when picked but could be taken before the registry binds it:
        // a registry that exits at once is retried on another port.
        for _ in 0..5 {
            if let Some(r) = Self::try_start(auth) {
                return r;
            }
        }
        panic!("docker-registry did not start (is the docker-registry package installed?)");
    }

    fn try_start(auth: Auth<'_>) -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("arca-registry-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let port = free_port();
        let config = dir.path().join("config.yml");
        let mut auth_config = String::new();
        let mut basic = None;
        let mut tokens = None;
        match auth {
            Auth::None => {}
            Auth::Htpasswd(user, password) => {
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{}\n", bcrypt(password)))
                    .expect("write htpasswd");
                auth_config = format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    htpasswd.display()
                );
                basic = Some(format!(
                    "Basic {}",
                    base64(format!("{user}:{password}").as_bytes())
                ));
            }
            Auth::Token(user, password) => {
                let server = TokenServer::start(user, password);
                auth_config = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    token_server::SERVICE,
                    token_server::ISSUER,
                    server.cert_pem().display()
                );
                tokens = Some(server);
            }
        }
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_config}",
                dir.path().join("data").display()
            ),
        )
        .expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let mut r = Self {
            dir,
            port,
            child,
            basic,
            tokens,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = r.child.try_wait() {
                return None;
            }
            // The token variant challenges even `GET /v2/`.
            let ready = if r.tokens.is_some() { 401 } else { 200 };
            if r.request("GET", "/v2/", &[], &[])
                .is_ok_and(|x| x.status == ready)
            {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("docker-registry did not answer in time:\n{}", r.log());
    }

    /// `127.0.0.1:<port>`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// One HTTP/1.1 request (`Connection: close`); `path` may also be an absolute URL on
    /// this registry (upload locations are).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let path = path
            .strip_prefix(&format!("http://{}", self.host()))
            .unwrap_or(path);
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host(),
            body.len()
        );
        if let Some(b) = &self.basic {
            req.push_str(&format!("Authorization: {b}\r\n"));
        }
        if let (Some(t), Some(repo)) = (&self.tokens, path_repository(path)) {
            let token = t.token_for(&[&format!("repository:{repo}:pull,push,delete")]);
            req.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no end of headers"))?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(Response {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        })
    }

    /// Uploads a blob (monolithic: POST an upload, PUT it with its digest).
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let start = self
            .request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[])
            .expect("start upload");
        assert_eq!(start.status, 202, "start upload of {digest}");
        let location = start.header("location").expect("upload location");
        let sep = if location.contains('?') { '&' } else { '?' };
        let done = self
            .request(
                "PUT",
                &format!("{location}{sep}digest={digest}"),
                &[("Content-Type", "application/octet-stream")],
                data,
            )
            .expect("finish upload");
        assert_eq!(done.status, 201, "upload of {digest}");
        digest
    }

    /// Pushes the busybox fixture as `repo:tag` (layer gzipped on the way) and returns the
    /// manifest digest.
    pub fn push_busybox(&self, name_tag: &str) -> String {
        let (repo, tag) = name_tag.rsplit_once(':').unwrap_or((name_tag, "latest"));
        let (config, layer) = read_docker_archive(&super::busybox_tar());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer).expect("gzip layer");
        let layer_gz = gz.finish().expect("gzip layer");
        let config_digest = self.push_blob(repo, &config);
        let layer_digest = self.push_blob(repo, &layer_gz);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config.len(),
                "digest": config_digest,
            },
            "layers": [{
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": layer_gz.len(),
                "digest": layer_digest,
            }],
        })
        .to_string();
        let r = self
            .request(
                "PUT",
                &format!("/v2/{repo}/manifests/{tag}"),
                &[(
                    "Content-Type",
                    "application/vnd.docker.distribution.manifest.v2+json",
                )],
                manifest.as_bytes(),
            )
            .expect("put manifest");
        assert_eq!(
            r.status,
            201,
            "put manifest: {}",
            String::from_utf8_lossy(&r.body)
        );
        sha256(manifest.as_bytes())
    }
}

/// The repository a `/v2/<name>/{blobs,manifests,tags}/…` path names.
fn path_repository(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/blobs/", "/manifests/", "/tags/"]
        .iter()
        .filter_map(|k| rest.rfind(k))
        .max()
        .map(|i| &rest[..i])
}

/// A bcrypt hash of `password` (cost 4: fast, the registry accepts any cost). Go's bcrypt
/// reads `$2a$`; libxcrypt writes `$2b$`, the same algorithm for short passwords.
fn bcrypt(password: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
            password,
        ])
        .output()
        .expect("run python3 for a bcrypt hash");
    let hash = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert!(
        hash.starts_with("$2"),
        "no bcrypt hash from python3: {hash:?}"
    );
    hash.replacen("$2b$", "$2a$", 1)
}

fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | (u32::from(*c) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                A[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// The config and the single layer of a docker-archive tar.
fn read_docker_archive(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut files = std::collections::HashMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).expect("open archive"));
    for e in ar.entries().expect("archive entries") {
        let mut e = e.expect("archive entry");
        let name = e.path().expect("entry path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read entry");
        files.insert(name, data);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    let config = manifest[0]["Config"].as_str().expect("Config");
    let layer = manifest[0]["Layers"][0].as_str().expect("Layers");
    (files[config].clone(), files[layer].clone())
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
