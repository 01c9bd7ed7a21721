//! Slow and hanging registries, scripted on 127.0.0.1: two pulls that need the same blob
//! while it trickles in share one download; a registry that stops answering fails the pull
//! (after its retries) naming the registry, and leaves nothing behind.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arca_model::{Digest, Reference};
use arca_registry::{PullOptions, pull};
use arca_store::Store;
use support::*;

/// How the scripted registry sends the layer blob.
#[derive(Clone, Copy, PartialEq)]
enum Blob {
    /// Half, then the rest once `release` is set (or after 10 s).
    Gated,
    /// Half, then silence until the test ends.
    Hang,
}

struct Script {
    manifest: Vec<u8>,
    config: Vec<u8>,
    blob: Vec<u8>,
    mode: Blob,
    /// Manifest requests get no answer at all.
    hang_manifest: bool,
    blob_requests: AtomicUsize,
    release: AtomicBool,
    done: AtomicBool,
    /// Connections still being served (so the test can wait for them).
    conns: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn head(s: &mut TcpStream, status: &str, headers: &[(&str, String)], len: usize) {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {len}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = s.write_all(out.as_bytes());
}

/// Waits until `cond` holds or the test is over (bounded: 10 s).
fn wait(script: &Script, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() && !script.done.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serve(mut s: TcpStream, script: &Script) {
    let request = read_head(&mut s);
    let path = request.split(' ').nth(1).unwrap_or("").to_owned();
    let blob_digest = Digest::of(&script.blob).to_string();
    if path == "/v2/" {
        head(&mut s, "200 OK", &[], 2);
        let _ = s.write_all(b"{}");
    } else if path.contains("/manifests/") {
        if script.hang_manifest {
            wait(script, || false);
            return;
        }
        let headers = [
            ("Content-Type", DOCKER_MANIFEST.to_owned()),
            (
                "Docker-Content-Digest",
                Digest::of(&script.manifest).to_string(),
            ),
        ];
        head(&mut s, "200 OK", &headers, script.manifest.len());
        let _ = s.write_all(&script.manifest);
    } else if path.ends_with(&format!("/blobs/{}", Digest::of(&script.config))) {
        head(&mut s, "200 OK", &[], script.config.len());
        let _ = s.write_all(&script.config);
    } else if path.ends_with(&format!("/blobs/{blob_digest}")) {
        script.blob_requests.fetch_add(1, Ordering::SeqCst);
        let blob = &script.blob;
        let half = blob.len() / 2;
        let from = request
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("range: bytes=")
                    .map(|r| r.trim_end_matches('-').trim().to_owned())
            })
            .and_then(|r| r.parse::<usize>().ok());
        match from {
            Some(from) => {
                let headers = [(
                    "Content-Range",
                    format!("bytes {from}-{}/{}", blob.len() - 1, blob.len()),
                )];
                head(&mut s, "206 Partial Content", &headers, blob.len() - from);
                if script.mode == Blob::Hang {
                    wait(script, || false);
                    return;
                }
                let _ = s.write_all(&blob[from..]);
            }
            None => {
                head(&mut s, "200 OK", &[], blob.len());
                let _ = s.write_all(&blob[..half]);
                let _ = s.flush();
                match script.mode {
                    Blob::Gated => wait(script, || script.release.load(Ordering::SeqCst)),
                    Blob::Hang => {
                        wait(script, || false);
                        return;
                    }
                }
                let _ = s.write_all(&blob[half..]);
            }
        }
    } else {
        head(&mut s, "404 Not Found", &[], 0);
    }
}

/// Starts the scripted registry; returns its address.
fn start(script: &Arc<Script>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let script = script.clone();
    std::thread::spawn(move || {
        while !script.done.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let sc = script.clone();
                    let t = std::thread::spawn(move || serve(s, &sc));
                    script.conns.lock().expect("lock").push(t);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    addr
}

fn script(mode: Blob, hang_manifest: bool) -> Arc<Script> {
    let layer = busybox_layer();
    let blob = gzip(&layer);
    let config = config(&layer, "amd64");
    let manifest = manifest(
        DOCKER_MANIFEST,
        DOCKER_CONFIG,
        DOCKER_LAYER_GZIP,
        &config,
        &blob,
    );
    Arc::new(Script {
        manifest,
        config,
        blob,
        mode,
        hang_manifest,
        blob_requests: AtomicUsize::new(0),
        release: AtomicBool::new(false),
        done: AtomicBool::new(false),
        conns: Mutex::new(Vec::new()),
    })
}

fn finish(script: &Script) {
    script.done.store(true, Ordering::SeqCst);
    for t in script.conns.lock().expect("lock").drain(..) {
        t.join().expect("connection thread");
    }
}

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&tmp.path().join("root")).expect("store"));
    (tmp, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_blob_share_its_download() {
    let script = script(Blob::Gated, false);
    let addr = start(&script);
    let (_tmp, store) = store();
    let one: Reference = format!("{addr}/app:1").parse().expect("ref");
    let two: Reference = format!("{addr}/other:1").parse().expect("ref");
    let (tx1, mut rx1) = tokio::sync::mpsc::unbounded_channel();
    let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel();
    let opts = PullOptions::default();
    let first = tokio::spawn({
        let (store, opts) = (store.clone(), opts.clone());
        async move { pull(store, &one, &opts, tx1).await }
    });
    // Wait until the first pull is downloading (the blob is half sent and held back).
    let deadline = Instant::now() + Duration::from_secs(10);
    while script.blob_requests.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first pull never asked for the blob"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = tokio::spawn({
        let store = store.clone();
        async move { pull(store, &two, &opts, tx2).await }
    });
    // The second pull reaches the layer and waits on the first's download.
    let mut second_status = Vec::new();
    while !second_status
        .iter()
        .any(|s: &String| s == "Pulling fs layer")
    {
        let p = tokio::time::timeout(Duration::from_secs(10), rx2.recv())
            .await
            .expect("second pull progresses")
            .expect("second pull running");
        second_status.push(p.status);
    }
    script.release.store(true, Ordering::SeqCst);
    let a = first.await.expect("task").expect("first pull");
    let b = second.await.expect("task").expect("second pull");
    assert_eq!(a.image.id, b.image.id);
    assert_eq!(
        script.blob_requests.load(Ordering::SeqCst),
        1,
        "one download for both pulls"
    );
    assert!(store.layer_dirs(&b.image)[0].join("bin/busybox").is_file());
    rx1.close();
    while let Ok(p) = rx2.try_recv() {
        second_status.push(p.status);
    }
    assert!(
        second_status.iter().any(|s| s == "Download complete"),
        "{second_status:?}"
    );
    finish(&script);
}

#[tokio::test]
async fn a_registry_that_stops_answering_fails_the_pull_and_leaves_nothing() {
    // The blob stops halfway, and every resumed request gets headers and then silence.
    let script = script(Blob::Hang, false);
    let addr = start(&script);
    let (tmp, store) = store();
    let reference: Reference = format!("{addr}/stuck:1").parse().expect("ref");
    let opts = PullOptions {
        read_timeout: Some(Duration::from_millis(500)),
        ..PullOptions::default()
    };
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let err = pull(store.clone(), &reference, &opts, tx)
        .await
        .expect_err("a silent registry fails the pull");
    let elapsed = started.elapsed();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("registry {addr} is unavailable")) && msg.contains("blob"),
        "{msg}"
    );
    assert_eq!(
        script.blob_requests.load(Ordering::SeqCst),
        4,
        "the first request and three resumed retries"
    );
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    assert!(store.get(&reference.to_string()).is_err());
    assert!(
        store
            .list()
            .expect("list")
            .iter()
            .all(|i| i.repo_tags != vec![reference.to_string()])
    );
    let blobs: Vec<_> = walk(&tmp.path().join("root"))
        .into_iter()
        .filter(|p| p.contains(&Digest::of(&script.blob).hex().to_owned()))
        .collect();
    assert!(blobs.is_empty(), "partial blob left: {blobs:?}");
    finish(&script);

    // A manifest that never comes fails too.
    let script = self::script(Blob::Hang, true);
    let addr = start(&script);
    let reference: Reference = format!("{addr}/stuck:1").parse().expect("ref");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let err = pull(store.clone(), &reference, &opts, tx)
        .await
        .expect_err("a silent registry fails the pull");
    assert_eq!(err.kind(), arca_model::ErrorKind::Unavailable, "{err}");
    finish(&script);
}

/// Every path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            }
        }
    }
    out
}
