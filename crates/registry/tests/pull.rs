//! Pulls from a real registry (Debian's docker-registry on 127.0.0.1) into a fresh store.

mod support;

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use arca_model::{Digest, ErrorKind, Reference};
use arca_registry::{Progress, PullError, PullOptions, Pulled, pull};
use arca_store::Store;
use serde_json::json;
use support::*;

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&tmp.path().join("root")).expect("open store");
    (tmp, Arc::new(store))
}

async fn pull_with(
    store: &Arc<Store>,
    reference: &str,
    opts: PullOptions,
) -> (Result<Pulled, PullError>, Vec<Progress>) {
    let r: Reference = reference.parse().expect("reference");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = pull(store.clone(), &r, &opts, tx).await;
    let mut progress = Vec::new();
    while let Ok(p) = rx.try_recv() {
        progress.push(p);
    }
    (result, progress)
}

async fn pull_ref(
    store: &Arc<Store>,
    reference: &str,
) -> (Result<Pulled, PullError>, Vec<Progress>) {
    pull_with(store, reference, PullOptions::default()).await
}

fn statuses(progress: &[Progress]) -> Vec<String> {
    progress
        .iter()
        .map(|p| match &p.id {
            Some(id) => format!("{id}: {}", p.status),
            None => p.status.clone(),
        })
        .collect()
}

/// Nothing half-done in the store: no temporaries, no blob or snapshot of `layer`.
fn assert_nothing_partial(store: &Store, layer: &Digest, diff_id: &Digest) {
    let root = store.root();
    let tmp: Vec<_> = std::fs::read_dir(root.join("content/tmp"))
        .expect("content tmp")
        .collect();
    assert!(tmp.is_empty(), "leftover temporaries: {tmp:?}");
    let snaps: Vec<_> = std::fs::read_dir(root.join("snapshots"))
        .expect("snapshots")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tmp-"))
        .collect();
    assert!(snaps.is_empty(), "leftover snapshots: {snaps:?}");
    assert!(!store.has_blob(layer));
    assert!(!store.snapshot_dir(diff_id).exists());
    let images = store.list().expect("list");
    assert_eq!(images.len(), 1, "only hello-world: {images:?}");
}

#[tokio::test]
async fn pulls_a_schema2_image_with_docker_progress_then_is_up_to_date() {
    let reg = Registry::start();
    let (manifest, layer) = push_schema2(&reg, "busybox", "1");
    let (_tmp, store) = store();
    let name = format!("{}/busybox:1", reg.addr);
    let (result, progress) = pull_ref(&store, &name).await;
    let pulled = result.expect("pull");
    assert!(!pulled.up_to_date);
    assert_eq!(pulled.digest, manifest);
    assert_eq!(pulled.image.repo_tags, vec![name.clone()]);
    assert_eq!(
        pulled.image.repo_digests,
        vec![format!("{}/busybox@{manifest}", reg.addr)]
    );
    let dirs = store.layer_dirs(&pulled.image);
    assert!(dirs[0].join("bin/busybox").is_file());
    let id = layer.short();
    let expected_order = [
        "1: Pulling from busybox".to_owned(),
        format!("{id}: Pulling fs layer"),
        format!("{id}: Verifying Checksum"),
        format!("{id}: Download complete"),
        format!("{id}: Extracting"),
        format!("{id}: Pull complete"),
        format!("Digest: {manifest}"),
        format!("Status: Downloaded newer image for {name}"),
    ];
    let got = statuses(&progress);
    let mut at = 0;
    for want in &expected_order {
        at += got[at..]
            .iter()
            .position(|s| s == want)
            .unwrap_or_else(|| panic!("{want:?} missing or out of order in {got:#?}"));
    }
    assert!(got.iter().any(|s| s == &format!("{id}: Downloading")));
    let downloading = progress
        .iter()
        .filter(|p| p.status == "Downloading")
        .count();
    assert!(downloading <= 10, "throttled: {downloading}");

    // The second pull fetches no blob: corrupt the registry's copy to prove it.
    std::fs::write(reg.blob_file(&layer), b"corrupt").expect("corrupt");
    let (result, progress) = pull_ref(&store, &name).await;
    let again = result.expect("second pull");
    assert!(again.up_to_date);
    assert_eq!(again.image.id, pulled.image.id);
    assert_eq!(
        statuses(&progress),
        vec![
            "1: Pulling from busybox".to_owned(),
            format!("Digest: {manifest}"),
            format!("Status: Image is up to date for {name}"),
        ]
    );
}

#[tokio::test]
async fn pulls_the_wanted_platform_from_an_oci_index() {
    let reg = Registry::start();
    let layer = busybox_layer();
    let blob = zstd(&layer);
    let layer_digest = reg.put_blob("multi", &blob);
    let mut manifests = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let config = config(&layer, arch);
        reg.put_blob("multi", &config);
        let body = manifest(OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_ZSTD, &config, &blob);
        let digest = reg.put_manifest("multi", &Digest::of(&body).to_string(), OCI_MANIFEST, &body);
        let mut platform = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        manifests.push(json!({
            "mediaType": OCI_MANIFEST, "digest": digest, "size": body.len(), "platform": platform,
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
    }))
    .expect("json");
    let index_digest = reg.put_manifest("multi", "latest", OCI_INDEX, &index);

    let (_tmp, store) = store();
    let name = format!("{}/multi", reg.addr);
    let (result, _) = pull_ref(&store, &name).await;
    let amd = result.expect("default platform");
    assert_eq!(amd.digest, index_digest, "the index digest is recorded");
    assert_eq!(amd.image.config["architecture"], "amd64");
    assert_eq!(amd.image.repo_tags, vec![format!("{name}:latest")]);

    let opts = PullOptions {
        platform: Some("linux/arm64".into()),
        ..PullOptions::default()
    };
    // The shared layer's snapshot, as the first pull left it: unpacking again would replace
    // the directory (a new inode), re-hashing would not touch it.
    let snapshot = store.layer_dirs(&amd.image)[0].clone();
    let before = std::fs::metadata(&snapshot).expect("snapshot").ino();
    let (result, progress) = pull_with(&store, &name, opts).await;
    let arm = result.expect("arm64");
    assert_eq!(arm.image.config["architecture"], "arm64");
    assert!(!arm.up_to_date, "the tag moved to another image");
    assert!(
        statuses(&progress).contains(&format!("{}: Already exists", layer_digest.short())),
        "{progress:#?}"
    );
    // The shared layer was neither fetched nor unpacked again.
    assert!(
        !progress
            .iter()
            .any(|p| p.status == "Downloading" || p.status == "Extracting")
    );
    assert_eq!(store.layer_dirs(&arm.image), store.layer_dirs(&amd.image));
    let after = std::fs::metadata(&snapshot).expect("snapshot").ino();
    assert_eq!(before, after, "the shared layer was unpacked again");

    let opts = PullOptions {
        platform: Some("linux/s390x".into()),
        ..PullOptions::default()
    };
    let err = pull_with(&store, &name, opts)
        .await
        .0
        .expect_err("no s390x");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries"
    );
}

#[tokio::test]
async fn digest_pinned_pull_records_the_digest_without_a_tag() {
    let reg = Registry::start();
    let (manifest, _) = push_schema2(&reg, "pinned", "v1");
    let (_tmp, store) = store();
    let name = format!("{}/pinned@{manifest}", reg.addr);
    let (result, progress) = pull_ref(&store, &name).await;
    let pulled = result.expect("pull by digest");
    assert!(pulled.image.repo_tags.is_empty());
    assert_eq!(pulled.image.repo_digests, vec![name.clone()]);
    assert_eq!(
        progress[0].id.as_deref(),
        Some(manifest.to_string().as_str())
    );
    let missing = Digest::of(b"no such manifest");
    let err = pull_ref(&store, &format!("{}/pinned@{missing}", reg.addr))
        .await
        .0
        .expect_err("unknown digest");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn missing_tag_is_not_found_in_docker_wording() {
    let reg = Registry::start();
    push_schema2(&reg, "app", "1");
    let (_tmp, store) = store();
    let (result, progress) = pull_ref(&store, &format!("{}/app:2", reg.addr)).await;
    let err = result.expect_err("missing tag");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        format!(
            "manifest for {}/app:2 not found: manifest unknown",
            reg.addr
        )
    );
    assert!(progress.is_empty(), "{progress:?}");
}

#[tokio::test]
async fn corrupted_blob_fails_naming_the_layer_and_leaves_nothing_partial() {
    let reg = Registry::start();
    let (_, layer) = push_schema2(&reg, "bad", "1");
    let original = std::fs::read(reg.blob_file(&layer)).expect("blob");
    let mut corrupt = original.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    std::fs::write(reg.blob_file(&layer), &corrupt).expect("corrupt");
    let (_tmp, store) = store();
    let err = pull_ref(&store, &format!("{}/bad:1", reg.addr))
        .await
        .0
        .expect_err("digest mismatch");
    assert!(err.to_string().contains(&layer.to_string()), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_nothing_partial(&store, &layer, &Digest::of(&busybox_layer()));
}

#[tokio::test]
async fn unreachable_registry_is_unavailable() {
    let (_tmp, store) = store();
    let port = free_port();
    let err = pull_ref(&store, &format!("127.0.0.1:{port}/x:1"))
        .await
        .0
        .expect_err("nothing listens");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_platform_is_refused_before_any_request() {
    let (_tmp, store) = store();
    let opts = PullOptions {
        platform: Some("linux".into()),
        ..PullOptions::default()
    };
    let err = pull_with(&store, "127.0.0.1:1/x", opts)
        .await
        .0
        .expect_err("bad platform");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}
