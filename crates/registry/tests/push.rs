//! Pushes to a real registry (Debian's docker-registry on 127.0.0.1), then pulls back into a
//! fresh store: same image, same layers; second pushes and other repositories reuse blobs.

mod support;

use std::sync::Arc;

use arca_model::{ErrorKind, Reference};
use arca_registry::{
    Credentials, Progress, PullOptions, PushError, PushOptions, Pushed, login, pull, push,
};
use arca_store::{LayerBlob, Store};
use support::*;

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&tmp.path().join("root")).expect("open store");
    (tmp, Arc::new(store))
}

async fn push_ref(store: &Arc<Store>, reference: &str) -> (Result<Pushed, PushError>, Vec<String>) {
    let r: Reference = reference.parse().expect("reference");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = push(store.clone(), &r, &PushOptions::default(), tx).await;
    let mut lines = Vec::new();
    while let Ok(p) = rx.try_recv() {
        lines.push(status(&p));
    }
    (result, lines)
}

fn status(p: &Progress) -> String {
    match &p.id {
        Some(id) => format!("{id}: {}", p.status),
        None => p.status.clone(),
    }
}

async fn pull_ref(store: &Arc<Store>, reference: &str) -> arca_registry::Pulled {
    let r: Reference = reference.parse().expect("reference");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    pull(store.clone(), &r, &PullOptions::default(), tx)
        .await
        .expect("pull")
}

/// An image in `store` made from an uncompressed busybox layer, tagged `reference`.
fn local_image(store: &Store, reference: &str) -> arca_store::Image {
    let layer = busybox_layer();
    let (digest, _) = store.write_blob(&layer[..], None).expect("blob");
    let r: Reference = reference.parse().expect("reference");
    store
        .create_image(
            &config(&layer, "amd64"),
            &[LayerBlob {
                digest,
                media_type: String::new(),
            }],
            &[r],
        )
        .expect("image")
}

#[tokio::test]
async fn pushes_an_uncompressed_image_that_pulls_back_identical() {
    let reg = Registry::start();
    let (_t, src) = store();
    let name = format!("{}/plain:1", reg.addr);
    let image = local_image(&src, &name);
    let (pushed, lines) = push_ref(&src, &name).await;
    let pushed = pushed.expect("push");
    let layer = &image.layers[0];
    let id = &layer.diff_id.hex()[..12];
    assert_eq!(
        lines.first().map(String::as_str),
        Some(format!("The push refers to repository [{}/plain]", reg.addr).as_str())
    );
    assert!(lines.contains(&format!("{id}: Preparing")), "{lines:?}");
    assert!(lines.contains(&format!("{id}: Pushing")), "{lines:?}");
    assert!(lines.contains(&format!("{id}: Pushed")), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some(format!("1: digest: {} size: {}", pushed.digest, pushed.size).as_str())
    );
    // The RepoDigest is recorded.
    let after = src.get(&name).expect("image");
    assert!(
        after
            .repo_digests
            .contains(&format!("{}/plain@{}", reg.addr, pushed.digest)),
        "{:?}",
        after.repo_digests
    );

    let (_t2, dst) = store();
    let pulled = pull_ref(&dst, &name).await;
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(pulled.image.id, image.id);
    assert_eq!(pulled.image.layers.len(), 1);
    assert_eq!(pulled.image.layers[0].diff_id, layer.diff_id);
    assert_eq!(pulled.image.layers[0].blob, layer.blob);
    assert_eq!(
        pulled.image.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar"
    );

    // A second push finds everything there, and the digest is the same.
    let (again, lines) = push_ref(&src, &name).await;
    assert_eq!(again.expect("push again").digest, pushed.digest);
    assert!(
        lines.contains(&format!("{id}: Layer already exists")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn pushing_to_another_repository_mounts_the_layers() {
    let reg = Registry::start();
    let (_, layer_blob) = push_schema2(&reg, "lib/busybox", "1");
    let (_t, s) = store();
    let pulled = pull_ref(&s, &format!("{}/lib/busybox:1", reg.addr)).await;
    let target: Reference = format!("{}/copy/busybox:2", reg.addr).parse().expect("ref");
    s.tag(&pulled.image.id, &target).expect("tag");
    let (pushed, lines) = push_ref(&s, &target.to_string()).await;
    let pushed = pushed.expect("push");
    let id = &pulled.image.layers[0].diff_id.hex()[..12];
    assert!(
        lines.contains(&format!("{id}: Mounted from lib/busybox")),
        "{lines:?}"
    );
    // Same blobs, same manifest (the layer stays gzip with its registry digest).
    assert_eq!(pulled.image.layers[0].blob, layer_blob);
    let (_t2, fresh) = store();
    let back = pull_ref(&fresh, &target.to_string()).await;
    assert_eq!(back.image.id, pulled.image.id);
    assert_eq!(back.digest, pushed.digest);
}

#[tokio::test]
async fn pushing_a_missing_image_names_it_in_docker_wording() {
    let (_t, s) = store();
    let (r, lines) = push_ref(&s, "127.0.0.1:1/nothing:1").await;
    let e = r.expect_err("missing image");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        e.to_string(),
        "An image does not exist locally with the tag: 127.0.0.1:1/nothing"
    );
    assert!(lines.is_empty(), "{lines:?}");
}

#[tokio::test]
async fn login_to_an_open_registry_succeeds() {
    let reg = Registry::start();
    let c = Credentials {
        username: "u".into(),
        password: "p".into(),
    };
    login(&reg.addr, &c, &[]).await.expect("login");
}

/// A proxy on 127.0.0.1 in front of `upstream` that answers the first `fail` blob uploads
/// (`PUT …/blobs/uploads/…`) with 503 and forwards everything else; each request gets a
/// connection of its own (`Connection: close`) so each can be looked at.
fn flaky_proxy(upstream: String, fail: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let failed = Arc::new(AtomicUsize::new(0));
    let count = failed.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { break };
            let (upstream, count) = (upstream.clone(), count.clone());
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                if text.starts_with("PUT ")
                    && text.contains("/blobs/uploads/")
                    && count.fetch_add(1, Ordering::SeqCst) < fail
                {
                    let _ = client.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy",
                    );
                    return;
                }
                let head: String = text
                    .split("\r\n")
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("{l}\r\n"))
                    .collect::<String>()
                    + "Connection: close\r\n\r\n";
                let Ok(mut up) = TcpStream::connect(&upstream) else {
                    return;
                };
                if up.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let (mut c2, mut u2) = (
                    client.try_clone().expect("clone"),
                    up.try_clone().expect("clone"),
                );
                let to_upstream = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut u2);
                    let _ = u2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut up, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = to_upstream.join();
            });
        }
    });
    (addr, failed)
}

#[tokio::test]
async fn a_failed_blob_upload_is_retried() {
    let reg = Registry::start();
    let (proxy, uploads) = flaky_proxy(reg.addr.clone(), 2);
    let (_t, src) = store();
    let name = format!("{proxy}/retry:1");
    let image = local_image(&src, &name);
    let (pushed, lines) = push_ref(&src, &name).await;
    let pushed = pushed.expect("push survives two 503s");
    let id = &image.layers[0].diff_id.hex()[..12];
    assert_eq!(
        lines
            .iter()
            .filter(|l| **l == format!("{id}: Retrying"))
            .count(),
        2,
        "{lines:?}"
    );
    assert!(lines.contains(&format!("{id}: Pushed")), "{lines:?}");
    assert!(uploads.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    // The registry really has it: a fresh store pulls it back.
    let (_t2, dst) = store();
    let pulled = pull_ref(&dst, &format!("{}/retry:1", reg.addr)).await;
    assert_eq!(pulled.digest, pushed.digest);
}
