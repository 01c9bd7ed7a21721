//! Blob downloads survive a 5xx answer and a connection cut mid-body: the pull retries and
//! resumes with an HTTP Range request. Served by a scripted registry on 127.0.0.1.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use arca_model::{Digest, Reference};
use arca_registry::{PullOptions, pull};
use arca_store::Store;
use support::*;

/// What the scripted registry serves, and the blob requests it saw.
struct Script {
    manifest: Vec<u8>,
    config: Vec<u8>,
    blob: Vec<u8>,
    /// The `Range` header (or "-") of each blob request, in order.
    blob_requests: Mutex<Vec<String>>,
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

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8], len: usize) {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {len}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = s.write_all(out.as_bytes());
    let _ = s.write_all(body);
}

fn serve(s: &mut TcpStream, script: &Script) {
    let head = read_head(s);
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    let range = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("range: bytes=")
            .map(str::to_owned)
    });
    let blob_digest = Digest::of(&script.blob).to_string();
    if path == "/v2/" {
        respond(s, "200 OK", &[], b"{}", 2);
    } else if path.ends_with("/manifests/1") {
        let headers = [
            ("Content-Type", DOCKER_MANIFEST.to_owned()),
            (
                "Docker-Content-Digest",
                Digest::of(&script.manifest).to_string(),
            ),
        ];
        respond(
            s,
            "200 OK",
            &headers,
            &script.manifest,
            script.manifest.len(),
        );
    } else if path.ends_with(&format!("/blobs/{}", Digest::of(&script.config))) {
        respond(s, "200 OK", &[], &script.config, script.config.len());
    } else if path.ends_with(&format!("/blobs/{blob_digest}")) {
        let n = {
            let mut seen = script.blob_requests.lock().expect("lock");
            seen.push(range.clone().unwrap_or_else(|| "-".into()));
            seen.len()
        };
        let blob = &script.blob;
        match (n, range) {
            (1, _) => respond(s, "503 Service Unavailable", &[], b"busy", 4),
            // Promise the whole blob, send half, hang up.
            (2, _) => respond(s, "200 OK", &[], &blob[..blob.len() / 2], blob.len()),
            (_, Some(r)) => {
                let from: usize = r.trim_end_matches('-').trim().parse().expect("range start");
                let headers = [(
                    "Content-Range",
                    format!("bytes {from}-{}/{}", blob.len() - 1, blob.len()),
                )];
                respond(
                    s,
                    "206 Partial Content",
                    &headers,
                    &blob[from..],
                    blob.len() - from,
                );
            }
            (_, None) => respond(s, "200 OK", &[], blob, blob.len()),
        }
    } else {
        respond(s, "404 Not Found", &[], b"", 0);
    }
}

#[tokio::test]
async fn blob_download_retries_and_resumes_with_range() {
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
    let script = Arc::new(Script {
        manifest,
        config,
        blob,
        blob_requests: Mutex::new(Vec::new()),
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = {
        let script = script.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { break };
                if Arc::strong_count(&script) == 1 {
                    break;
                }
                serve(&mut s, &script);
            }
        })
    };

    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&tmp.path().join("root")).expect("store"));
    let reference: Reference = format!("{addr}/flaky:1").parse().expect("ref");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let pulled = pull(store.clone(), &reference, &PullOptions::default(), tx)
        .await
        .expect("pull survives a 503 and a cut connection");
    assert!(
        store.layer_dirs(&pulled.image)[0]
            .join("bin/busybox")
            .is_file()
    );
    let seen = script.blob_requests.lock().expect("lock").clone();
    let half = script.blob.len() / 2;
    assert_eq!(
        seen,
        vec!["-".to_owned(), "-".to_owned(), format!("{half}-")]
    );

    // Stop the server: drop our handle, then wake its accept loop.
    drop(script);
    let _ = TcpStream::connect(addr);
    server.join().expect("server thread");
}
