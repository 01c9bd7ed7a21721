//! A real registry for tests: Debian's `docker-registry` on a free 127.0.0.1 port with its
//! storage in a temporary directory (killed on drop), a minimal HTTP/1.1 client to upload
//! blobs and manifests into it, and a one-layer busybox image to upload.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arca_model::Digest;
use serde_json::json;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

pub struct Registry {
    child: Child,
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`
    pub addr: String,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .expect("config");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed");
        let registry = Registry { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = registry.request("GET", "/v2/", &[], b"")
                && resp.status == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// One HTTP/1.1 request (connection closed after it).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, _) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        Ok(Response { status, headers })
    }

    /// Uploads a blob (POST an upload, PUT it with its digest) and returns its digest.
    pub fn put_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::of(data);
        let resp = self
            .request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"")
            .expect("start upload");
        assert_eq!(resp.status, 202, "start upload");
        let location = resp.header("location").expect("upload location");
        let path = location
            .strip_prefix(&format!("http://{}", self.addr))
            .unwrap_or(location);
        let sep = if path.contains('?') { '&' } else { '?' };
        let resp = self
            .request(
                "PUT",
                &format!("{path}{sep}digest={digest}"),
                &[("Content-Type", "application/octet-stream")],
                data,
            )
            .expect("finish upload");
        assert_eq!(resp.status, 201, "finish upload");
        digest
    }

    /// PUTs a manifest under `reference` (a tag or digest) and returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Digest {
        let resp = self
            .request(
                "PUT",
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Content-Type", media_type)],
                body,
            )
            .expect("put manifest");
        assert_eq!(resp.status, 201, "put manifest");
        Digest::of(body)
    }

    /// Where the registry keeps blob `digest`.
    pub fn blob_file(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir.path().join(format!(
            "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// An uncompressed layer holding the host's static busybox as `bin/busybox`, `bin/sh`.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is installed");
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(1_600_000_000);
    dir.set_uid(0);
    dir.set_gid(0);
    dir.set_cksum();
    b.append_data(&mut dir, "bin/", &[][..]).expect("dir");
    let mut file = tar::Header::new_gnu();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o755);
    file.set_size(busybox.len() as u64);
    file.set_mtime(1_600_000_000);
    file.set_uid(0);
    file.set_gid(0);
    file.set_cksum();
    b.append_data(&mut file, "bin/busybox", &busybox[..])
        .expect("busybox");
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    link.set_mtime(1_600_000_000);
    link.set_uid(0);
    link.set_gid(0);
    b.append_link(&mut link, "bin/sh", "busybox").expect("link");
    b.into_inner().expect("tar")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).expect("zstd")
}

/// A minimal image config for one layer whose uncompressed tar is `layer`.
pub fn config(layer: &[u8], arch: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "created": "2025-06-01T12:00:00Z",
        "config": { "Cmd": ["/bin/sh"] },
        "rootfs": { "type": "layers", "diff_ids": [Digest::of(layer)] },
    }))
    .expect("json")
}

/// An image manifest body.
pub fn manifest(
    media_type: &str,
    config_type: &str,
    layer_type: &str,
    config: &[u8],
    blob: &[u8],
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": { "mediaType": config_type, "digest": Digest::of(config), "size": config.len() },
        "layers": [{ "mediaType": layer_type, "digest": Digest::of(blob), "size": blob.len() }],
    }))
    .expect("json")
}

/// Uploads a one-layer schema2 busybox image (gzip) as `repo:tag`; returns (manifest digest,
/// layer blob digest).
pub fn push_schema2(reg: &Registry, repo: &str, tag: &str) -> (Digest, Digest) {
    let layer = busybox_layer();
    let blob = gzip(&layer);
    let config = config(&layer, "amd64");
    let layer_digest = reg.put_blob(repo, &blob);
    reg.put_blob(repo, &config);
    let body = manifest(
        DOCKER_MANIFEST,
        DOCKER_CONFIG,
        DOCKER_LAYER_GZIP,
        &config,
        &blob,
    );
    (
        reg.put_manifest(repo, tag, DOCKER_MANIFEST, &body),
        layer_digest,
    )
}
