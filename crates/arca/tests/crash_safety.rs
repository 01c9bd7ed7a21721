//! A daemon killed in the middle of an import leaves a store it starts from, with nothing
//! partial visible.

mod common;

use common::{Daemon, http, poll_until};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn dir_is_empty_or_missing(p: &std::path::Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn sigkill_during_import_leaves_no_partial_image() {
    let mut d = Daemon::start();
    // A tar stream announcing 64 MiB, of which only the first 8 MiB arrive.
    let mut header = tar::Header::new_gnu();
    header.set_path("big.bin").expect("path");
    header.set_size(64 << 20);
    header.set_mode(0o644);
    header.set_cksum();
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    write!(
        s,
        "POST /v1.51/images/create?fromSrc=-&repo=partial&tag=1 HTTP/1.1\r\nHost: arca\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        (64 << 20) + 1024 + 512
    )
    .expect("headers");
    s.write_all(header.as_bytes()).expect("tar header");
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..8 {
        s.write_all(&chunk).expect("body");
    }
    // The import is under way once its scratch data exists on disk.
    let root = d.root.clone();
    poll_until(
        "import to write scratch data",
        Duration::from_secs(10),
        || {
            ["tmp", "content/tmp"]
                .iter()
                .any(|t| !dir_is_empty_or_missing(&root.join(t)))
                || std::fs::read_dir(root.join("snapshots"))
                    .map(|r| {
                        r.flatten()
                            .any(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
                    })
                    .unwrap_or(false)
        },
    );
    d.crash();
    drop(s);
    d.spawn();
    let (code, list) = http(&d.socket, "GET", "/images/json", None).expect("list");
    assert_eq!(code, 200);
    assert!(!list.contains("partial"), "partial image visible: {list}");
    assert!(
        dir_is_empty_or_missing(&d.root.join("tmp")),
        "scratch left in tmp/"
    );
    assert!(
        dir_is_empty_or_missing(&d.root.join("content/tmp")),
        "scratch left in content/tmp/"
    );
    let leftover: Vec<_> = std::fs::read_dir(d.root.join("snapshots"))
        .expect("snapshots")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
        .collect();
    assert!(
        leftover.is_empty(),
        "half-unpacked snapshots left: {leftover:?}"
    );
    // And the store still works.
    let out = d.arca(&["run", "--rm", "hello-world"]);
    common::assert_ok(&out, "run after crash");
}

/// A registry scripted on 127.0.0.1 serving one image of two gzipped layers; the second
/// layer's blob stops halfway until `release` is set.
struct GatedRegistry {
    addr: std::net::SocketAddr,
    state: std::sync::Arc<Gate>,
}

struct Gate {
    /// Path → body.
    files: std::collections::HashMap<String, (String, Vec<u8>)>,
    gated: String,
    release: std::sync::atomic::AtomicBool,
    done: std::sync::atomic::AtomicBool,
    /// Paths requested, in order.
    seen: std::sync::Mutex<Vec<String>>,
}

impl GatedRegistry {
    fn start(files: Vec<(String, String, Vec<u8>)>, gated: &str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let state = std::sync::Arc::new(Gate {
            files: files.into_iter().map(|(p, t, b)| (p, (t, b))).collect(),
            gated: gated.to_owned(),
            release: Default::default(),
            done: Default::default(),
            seen: Default::default(),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            while !st.done.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || serve_gated(s, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        GatedRegistry { addr, state }
    }

    fn requests(&self, path: &str) -> usize {
        let seen = self.state.seen.lock().expect("lock");
        seen.iter().filter(|p| p.as_str() == path).count()
    }
}

impl Drop for GatedRegistry {
    fn drop(&mut self) {
        self.state
            .done
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn serve_gated(mut s: std::net::TcpStream, st: &Gate) {
    use std::io::Read;
    use std::sync::atomic::Ordering;
    let _ = s.set_nonblocking(false);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_owned();
    st.seen.lock().expect("lock").push(path.clone());
    let Some((media_type, body)) = (if path == "/v2/" {
        Some(("application/json".to_owned(), b"{}".to_vec()))
    } else {
        st.files.get(&path).cloned()
    }) else {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let digest = format!("sha256:{}", hex_sha256(&body));
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {media_type}\r\nDocker-Content-Digest: {digest}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if path == st.gated {
        let half = body.len() / 2;
        let _ = s.write_all(&body[..half]);
        let _ = s.flush();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !st.release.load(Ordering::SeqCst)
            && !st.done.load(Ordering::SeqCst)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !st.release.load(Ordering::SeqCst) {
            return;
        }
        let _ = s.write_all(&body[half..]);
    } else {
        let _ = s.write_all(&body);
    }
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A one-file layer tar.
fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, name, content).expect("append");
    b.into_inner().expect("tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn sigkill_during_a_pull_leaves_a_store_that_starts_and_resumes_the_pull() {
    // Layer two is large and incompressible, so half of it is a real partial download.
    let noise: Vec<u8> = (0u32..(1 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let tars = [layer_tar("one.txt", b"one"), layer_tar("two.bin", &noise)];
    let blobs: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/two.bin"]},
        "rootfs": {"type": "layers", "diff_ids": tars.iter()
            .map(|t| format!("sha256:{}", hex_sha256(t))).collect::<Vec<_>>()},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config.len(), "digest": format!("sha256:{}", hex_sha256(&config))},
        "layers": blobs.iter().map(|b| serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": b.len(), "digest": format!("sha256:{}", hex_sha256(b))})).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let blob_path = |b: &[u8]| format!("/v2/crash/blobs/sha256:{}", hex_sha256(b));
    let (one, two) = (blob_path(&blobs[0]), blob_path(&blobs[1]));
    let reg = GatedRegistry::start(
        vec![
            (
                "/v2/crash/manifests/1".into(),
                "application/vnd.docker.distribution.manifest.v2+json".into(),
                manifest,
            ),
            (
                blob_path(&config),
                "application/octet-stream".into(),
                config.clone(),
            ),
            (
                one.clone(),
                "application/octet-stream".into(),
                blobs[0].clone(),
            ),
            (
                two.clone(),
                "application/octet-stream".into(),
                blobs[1].clone(),
            ),
        ],
        &two,
    );
    let name = format!("{}/crash:1", reg.addr);

    let mut d = Daemon::start();
    let mut first = d
        .client("docker")
        .args(["pull", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker pull starts");
    // Layer one is in the store (its snapshot unpacked), layer two is half downloaded.
    let snapshot_one = d.root.join("snapshots").join(hex_sha256(&tars[0]));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(snapshot_one.is_dir() && reg.requests(&two) == 1) {
        if std::time::Instant::now() > deadline {
            let _ = first.kill();
            let out = first.wait_with_output().expect("docker pull output");
            panic!(
                "layer one was never unpacked; requests {:?}; docker pull said: {}{}",
                reg.state.seen.lock().expect("lock"),
                common::stdout(&out),
                common::stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    d.crash();
    let _ = first.wait();
    d.spawn();

    // Nothing of the pull is visible, nothing partial is on disk.
    let (code, list) = http(&d.socket, "GET", "/images/json", None).expect("list");
    assert_eq!(code, 200);
    assert!(!list.contains("crash"), "partial image visible: {list}");
    assert!(
        dir_is_empty_or_missing(&d.root.join("content/tmp")),
        "partial download left in content/tmp/"
    );
    assert!(
        !d.root
            .join("content/blobs/sha256")
            .join(hex_sha256(&blobs[1]))
            .exists(),
        "the half-downloaded blob was published"
    );

    // Pulling again finishes the job; layer one is not fetched again.
    reg.state
        .release
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let out = d.docker(&["pull", &name]);
    common::assert_ok(&out, "pull after the crash");
    let text = common::stdout(&out);
    assert!(
        text.contains(&format!("{}: Already exists", &hex_sha256(&blobs[0])[..12])),
        "{text}"
    );
    assert_eq!(reg.requests(&one), 1, "layer one downloaded once");
    assert_eq!(reg.requests(&two), 2);
    let inspect = d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        &name,
    ]);
    common::assert_ok(&inspect, "inspect");
    assert_eq!(common::stdout(&inspect).trim(), "2");
}
