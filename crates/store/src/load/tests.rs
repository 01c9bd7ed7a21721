use std::fs;
use std::os::unix::fs::MetadataExt;

use arca_model::ErrorKind;
use serde_json::json;

use crate::testutil::{RawTar, append, busybox_layer, config_for, empty_store, gzip};

use super::*;

/// A `docker save` archive in the classic layout: `<n>/layer.tar`, `<config-hex>.json`.
/// The last layer, if equal to the first, is stored as a symlink to it.
fn docker_archive_classic(layers: &[Vec<u8>], config: &[u8], tags: &[&str]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut names = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("{i:064x}/layer.tar");
        if i > 0 && *layer == layers[0] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &name, format!("../{:064x}/layer.tar", 0))
                .expect("link");
        } else {
            append(&mut b, &name, layer);
        }
        names.push(name);
    }
    let config_name = format!("{}.json", Digest::of(config).hex());
    append(&mut b, &config_name, config);
    let manifest = json!([{ "Config": config_name, "RepoTags": tags, "Layers": names }]);
    append(&mut b, "manifest.json", manifest.to_string().as_bytes());
    append(&mut b, "repositories", b"{}");
    b.into_inner().expect("tar")
}

/// A `docker save` archive of Docker 25+: everything under `blobs/sha256/`, plus an OCI
/// `index.json` that must be ignored in favour of `manifest.json`.
fn docker_archive_blobs(layers: &[Vec<u8>], config: &[u8], tags: &[&str]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let blob = |d: &[u8]| format!("blobs/sha256/{}", Digest::of(d).hex());
    for layer in layers {
        append(&mut b, &blob(layer), layer);
    }
    append(&mut b, &blob(config), config);
    let names: Vec<String> = layers.iter().map(|l| blob(l)).collect();
    let manifest = json!([{ "Config": blob(config), "RepoTags": tags, "Layers": names }]);
    append(&mut b, "manifest.json", manifest.to_string().as_bytes());
    append(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    append(
        &mut b,
        "index.json",
        br#"{"schemaVersion":2,"manifests":[]}"#,
    );
    b.into_inner().expect("tar")
}

/// An OCI layout with gzip layers, a nested index (arm64, host, attestation) and the given
/// top-level annotations.
fn oci_layout(layers: &[Vec<u8>], config: &[u8], annotations: serde_json::Value) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let add_blob = |b: &mut tar::Builder<Vec<u8>>, data: &[u8]| {
        let d = Digest::of(data);
        append(b, &format!("blobs/sha256/{}", d.hex()), data);
        d
    };
    let mut descs = Vec::new();
    for layer in layers {
        let gz = gzip(layer);
        let d = add_blob(&mut b, &gz);
        descs.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d, "size": gz.len(),
        }));
    }
    let config_digest = add_blob(&mut b, config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": descs,
    })
    .to_string();
    let manifest_digest = add_blob(&mut b, manifest.as_bytes());
    let decoy = json!({
        "schemaVersion": 2,
        "config": { "digest": Digest::of(b"missing"), "size": 1 },
        "layers": [],
    })
    .to_string();
    let decoy_digest = add_blob(&mut b, decoy.as_bytes());
    let nested = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": decoy_digest, "size": decoy.len(),
              "platform": { "architecture": "s390x", "os": "linux" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len(),
              "platform": { "architecture": crate::import::host_arch(), "os": "linux" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": decoy_digest, "size": decoy.len(),
              "platform": { "architecture": "unknown", "os": "unknown" } },
        ],
    })
    .to_string();
    let nested_digest = add_blob(&mut b, nested.as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": nested_digest, "size": nested.len(),
            "annotations": annotations,
        }],
    });
    append(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    append(&mut b, "index.json", index.to_string().as_bytes());
    b.into_inner().expect("tar")
}

fn load(store: &Store, archive: &[u8]) -> Result<(Vec<Image>, Vec<String>), StoreError> {
    let mut lines = Vec::new();
    let images = store.load(archive, &mut |l| lines.push(l))?;
    Ok((images, lines))
}

#[test]
fn load_docker_archive_with_classic_layer_paths() {
    let (_tmp, store) = empty_store();
    let base = busybox_layer();
    let top = RawTar::new()
        .file("etc/hostname", b"box\n")
        .file("bin/.wh.ls", b"")
        .finish();
    let layers = vec![base.clone(), top.clone(), base.clone()];
    let config = config_for(&[&base, &top, &base]);
    let archive =
        docker_archive_classic(&layers, &config, &["busybox:latest", "localhost:5000/bb:1"]);
    let (images, lines) = load(&store, &archive).expect("load");
    assert_eq!(
        lines,
        vec![
            "Loaded image: busybox:latest",
            "Loaded image: localhost:5000/bb:1"
        ]
    );
    assert_eq!(images.len(), 1);
    let img = store.get("busybox").expect("tagged");
    assert_eq!(img.id, Digest::of(&config));
    assert_eq!(img.repo_tags, vec!["busybox:latest", "localhost:5000/bb:1"]);
    assert_eq!(
        img.config["config"]["Healthcheck"],
        json!({"Test": ["NONE"]}),
        "config kept verbatim"
    );
    assert_eq!(img.created, "2025-06-01T12:00:00Z");
    assert_eq!(img.layers.len(), 3);
    assert_eq!(img.layers[0].blob, Digest::of(&base));
    assert_eq!(img.layers[0].size, base.len() as u64);
    let dirs = store.layer_dirs(&img);
    assert_eq!(dirs.len(), 3);
    assert_eq!(dirs[0], dirs[2], "shared layer, one snapshot");
    assert_eq!(dirs[1], store.snapshot_dir(&Digest::of(&top)));
    let bb = fs::metadata(dirs[2].join("bin/busybox")).expect("busybox");
    assert_eq!(
        img.size,
        2 * (bb.len() + 30) + 4,
        "sum of unpacked layer sizes"
    );
    assert_eq!(
        fs::read_link(dirs[2].join("bin/sh")).expect("link"),
        Path::new("/bin/busybox")
    );
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &fs::symlink_metadata(dirs[1].join("bin/ls"))
            .expect("whiteout")
            .file_type()
    ));
    // The unpacked busybox really runs, through its absolute `/bin/sh` symlink.
    let out = std::process::Command::new("chroot")
        .arg(&dirs[2])
        .args(["/bin/sh", "-c", "echo unpacked"])
        .output()
        .expect("chroot");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "unpacked\n",
        "{out:?}"
    );
    assert!(
        fs::read_dir(store.layout.tmp())
            .expect("tmp")
            .next()
            .is_none(),
        "scratch removed"
    );
}

#[test]
fn load_docker_archive_with_blob_paths_gzipped_as_a_whole() {
    let (_tmp, store) = empty_store();
    let layer = RawTar::new().file("app", b"v2").finish();
    let config = config_for(&[&layer]);
    let archive = gzip(&docker_archive_blobs(
        std::slice::from_ref(&layer),
        &config,
        &["app:2"],
    ));
    let (images, lines) = load(&store, &archive).expect("load");
    assert_eq!(lines, vec!["Loaded image: app:2"]);
    assert_eq!(images[0].repo_tags, vec!["app:2"]);
    assert_eq!(
        images[0].layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert!(store.has_blob(&Digest::of(&layer)));
}

#[test]
fn load_oci_layout_follows_index_to_host_manifest() {
    let (_tmp, store) = empty_store();
    let layer = RawTar::new().file("oci", b"yes").finish();
    let config = config_for(&[&layer]);
    let ann = json!({
        "io.containerd.image.name": "docker.io/library/ocitest:3",
        "org.opencontainers.image.ref.name": "3",
    });
    let (images, lines) = load(
        &store,
        &oci_layout(std::slice::from_ref(&layer), &config, ann),
    )
    .expect("load");
    assert_eq!(lines, vec!["Loaded image: ocitest:3"]);
    let img = &images[0];
    assert_eq!(img.id, Digest::of(&config));
    assert_eq!(
        img.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(img.layers[0].blob, Digest::of(&gzip(&layer)));
    assert_eq!(img.layers[0].diff_id, Digest::of(&layer));
    assert_eq!(
        fs::read(store.layer_dirs(img)[0].join("oci")).expect("read"),
        b"yes"
    );
}

#[test]
fn load_oci_layout_with_bare_tag_name_stays_untagged() {
    let (_tmp, store) = empty_store();
    let layer = RawTar::new().file("x", b"1").finish();
    let config = config_for(&[&layer]);
    let ann = json!({ "org.opencontainers.image.ref.name": "latest" });
    let (images, lines) = load(&store, &oci_layout(&[layer], &config, ann)).expect("load");
    assert_eq!(
        lines,
        vec![format!("Loaded image ID: {}", Digest::of(&config))]
    );
    assert!(images[0].repo_tags.is_empty());
    assert!(store.get("latest").is_err());
}

#[test]
fn failed_load_leaves_no_image_and_no_tag() {
    let (_tmp, store) = empty_store();
    let before: Vec<Digest> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    // First image fine, second has an escaping entry: nothing of either may appear.
    let good = RawTar::new().file("ok", b"ok").finish();
    let evil = RawTar::new().file("../../evil", b"x").finish();
    let mut b = tar::Builder::new(Vec::new());
    let (gc, ec) = (config_for(&[&good]), config_for(&[&evil, &good]));
    append(&mut b, "good.tar", &good);
    append(&mut b, "evil.tar", &evil);
    append(&mut b, "good.json", &gc);
    append(&mut b, "evil.json", &ec);
    let manifest = json!([
        { "Config": "good.json", "RepoTags": ["good:1"], "Layers": ["good.tar"] },
        { "Config": "evil.json", "RepoTags": ["evil:1"], "Layers": ["evil.tar", "good.tar"] },
    ]);
    append(&mut b, "manifest.json", manifest.to_string().as_bytes());
    let err = load(&store, &b.into_inner().expect("tar")).expect_err("escape");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("escapes the layer root"), "{err}");
    let after: Vec<Digest> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(before, after);
    assert!(store.get("good:1").is_err() && store.get("evil:1").is_err());
    let leftovers: Vec<_> = fs::read_dir(store.layout.snapshots())
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "partial snapshots removed");
    assert!(!store.layout.snapshot(&Digest::of(&evil)).exists());
}

#[test]
fn load_rejects_diff_id_and_blob_digest_mismatches() {
    let (_tmp, store) = empty_store();
    let layer = RawTar::new().file("a", b"a").finish();
    let other = RawTar::new().file("b", b"b").finish();
    let config = config_for(&[&other]);
    let err = load(
        &store,
        &docker_archive_classic(std::slice::from_ref(&layer), &config, &["x:1"]),
    )
    .expect_err("diff_id");
    assert!(err.to_string().contains("has diff_id"), "{err}");
    let mut b = tar::Builder::new(Vec::new());
    append(
        &mut b,
        &format!("blobs/sha256/{}", Digest::of(b"lie").hex()),
        &layer,
    );
    append(&mut b, "c.json", &config_for(&[&layer]));
    let manifest = json!([{ "Config": "c.json", "Layers": [format!("blobs/sha256/{}", Digest::of(b"lie").hex())] }]);
    append(&mut b, "manifest.json", manifest.to_string().as_bytes());
    let err = load(&store, &b.into_inner().expect("tar")).expect_err("digest");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = load(&store, &RawTar::new().file("x", b"x").finish()).expect_err("no manifest");
    assert!(err.to_string().starts_with("invalid archive"));
}

#[test]
fn interrupted_load_is_invisible_and_open_cleans_up() {
    let (tmp, store) = empty_store();
    let layer = RawTar::new().file("data", b"payload").finish();
    let config = config_for(&[&layer]);
    let id = Digest::of(&config);
    // A load that got as far as blobs and snapshots, then crashed before the record.
    let (blob, _) = store.write_blob(&layer[..], None).expect("blob");
    let blobs = [LayerBlob {
        digest: blob,
        media_type: String::new(),
    }];
    store
        .prepare(&config, &blobs, &HashSet::new())
        .expect("prepare");
    let layout = store.layout.clone();
    // And leftovers of other crashed operations.
    fs::write(layout.content_tmp().join("partial"), b"x").expect("write");
    fs::create_dir_all(layout.snapshots().join("tmp-dead/fs/etc")).expect("mkdir");
    fs::create_dir_all(layout.tmp().join("load-dead")).expect("mkdir");
    fs::write(layout.images().join(".tmp-abc-x.json"), b"{").expect("write");
    drop(store);

    let store = Store::open(&tmp.path().join("root")).expect("reopen");
    assert_eq!(
        store.get(&id.to_string()).expect_err("invisible").kind(),
        ErrorKind::NotFound
    );
    assert!(store.list().expect("list").iter().all(|i| i.id != id));
    for dir in [layout.content_tmp(), layout.tmp()] {
        assert!(
            fs::read_dir(&dir).expect("ls").next().is_none(),
            "{} emptied",
            dir.display()
        );
    }
    assert!(!layout.snapshots().join("tmp-dead").exists());
    assert!(!layout.images().join(".tmp-abc-x.json").exists());

    // Loading it for real reuses the snapshot rather than unpacking again.
    let file = store.snapshot_dir(&Digest::of(&layer)).join("data");
    let ino = fs::metadata(&file).expect("stat").ino();
    load(
        &store,
        &docker_archive_classic(&[layer], &config, &["resumed:1"]),
    )
    .expect("load");
    assert_eq!(fs::metadata(&file).expect("stat").ino(), ino);
    assert_eq!(store.get("resumed:1").expect("visible").id, id);
}

#[test]
fn open_drops_refs_to_missing_records() {
    let (tmp, store) = empty_store();
    let layer = RawTar::new().file("a", b"a").finish();
    let config = config_for(&[&layer]);
    load(
        &store,
        &docker_archive_classic(&[layer], &config, &["gone:1"]),
    )
    .expect("load");
    let record = store.layout.record(&Digest::of(&config));
    drop(store);
    fs::remove_file(record).expect("simulate crash mid-removal");
    let store = Store::open(&tmp.path().join("root")).expect("reopen");
    assert_eq!(
        store.get("gone:1").expect_err("dropped").to_string(),
        "No such image: gone:1"
    );
    let refs = fs::read_to_string(store.layout.refs()).expect("refs");
    assert!(!refs.contains("gone"), "{refs}");
    assert!(refs.contains("\"version\": 1"));
}

#[test]
fn concurrent_loads_of_the_same_archive_both_succeed() {
    let (_tmp, store) = empty_store();
    let layer = RawTar::new().file("c", b"concurrent").finish();
    let config = config_for(&[&layer]);
    let archive = docker_archive_classic(std::slice::from_ref(&layer), &config, &["conc:1"]);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(|| load(&store, &archive))).collect();
        for h in handles {
            h.join().expect("thread").expect("load");
        }
    });
    assert_eq!(store.get("conc:1").expect("get").id, Digest::of(&config));
    let snapshots: Vec<_> = fs::read_dir(store.layout.snapshots())
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        snapshots.iter().all(|n| !n.starts_with("tmp-")),
        "{snapshots:?}"
    );
}
