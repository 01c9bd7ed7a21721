use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use arca_model::Reference;

use crate::image::{Image, LayerBlob};
use crate::testutil::{RawTar, config_for, empty_store};

use super::*;

/// How long a test waits for another thread before failing.
const DEADLINE: Duration = Duration::from_secs(30);

fn unused(_: &Digest) -> bool {
    false
}

fn layer(name: &str) -> Vec<u8> {
    RawTar::new().file(name, name.as_bytes()).finish()
}

/// A config for `layers` that differs from other images' by `note`.
fn config(layers: &[&[u8]], note: &str) -> Vec<u8> {
    let mut config: serde_json::Value = serde_json::from_slice(&config_for(layers)).expect("json");
    config["comment"] = note.into();
    serde_json::to_vec(&config).expect("json")
}

/// Writes the layer blobs and creates an image of them tagged `tag`, as a pull does.
fn create(store: &Store, layers: &[&[u8]], tag: &str) -> Image {
    let _lease = store.lease();
    let mut blobs = Vec::new();
    let mut verified = HashSet::new();
    for l in layers {
        let (digest, _) = store.write_blob(*l, None).expect("blob");
        let diff_id = Digest::of(l);
        store.unpack_layer(&digest, &diff_id).expect("unpack");
        verified.insert((digest.clone(), diff_id));
        blobs.push(LayerBlob {
            digest,
            media_type: String::new(),
        });
    }
    let config = config(layers, tag);
    let tag: Reference = tag.parse().expect("tag");
    store
        .create_image_verified(&config, &blobs, &[tag], &verified)
        .expect("create")
}

/// Whether every snapshot and blob of `image` is on disk.
fn has_content(store: &Store, image: &Image) -> bool {
    store.has_blob(&image.id)
        && image
            .layers
            .iter()
            .all(|l| store.has_blob(&l.blob) && store.snapshot_dir(&l.diff_id).is_dir())
}

/// Whether none of `image`'s snapshots and blobs is on disk.
fn has_no_content(store: &Store, image: &Image) -> bool {
    !store.has_blob(&image.id)
        && image
            .layers
            .iter()
            .all(|l| !store.has_blob(&l.blob) && !store.snapshot_dir(&l.diff_id).exists())
}

fn marker(root: &Path) -> bool {
    root.join("gc-pending").exists()
}

#[test]
fn removal_under_a_lease_deletes_content_only_when_the_last_lease_drops() {
    let (_tmp, store) = empty_store();
    let (shared, own) = (layer("shared"), layer("own"));
    let a = create(&store, &[&shared], "a");
    let x = create(&store, &[&own], "x");
    assert!(!marker(store.root()), "nothing owed after creations");

    // A pull in progress, which already has the shared layer (blob and snapshot).
    let pull = store.lease();
    store.remove("a", false, &unused).expect("rmi a");
    store.remove("x", false, &unused).expect("rmi x");
    assert!(
        store.get("a").is_err() && store.get("x").is_err(),
        "records go at once"
    );
    assert!(has_content(&store, &a) && has_content(&store, &x));
    assert!(marker(store.root()), "the owed sweep is on disk");

    // The pull's image, referencing the shared layer, is created before its lease drops.
    let b = create(&store, &[&shared], "b");
    let other = store.lease();
    drop(pull);
    assert!(has_content(&store, &x), "another lease is still alive");
    drop(other);

    assert!(has_no_content(&store, &x), "x's content is swept");
    assert!(!store.has_blob(&a.id), "a's config is swept");
    assert!(has_content(&store, &b), "the shared layer survives");
    assert_eq!(a.layers[0].diff_id, b.layers[0].diff_id);
    assert!(!marker(store.root()), "nothing owed any more");
    assert!(store.get("b").is_ok());
}

#[test]
fn removal_without_a_lease_deletes_content_at_once() {
    let (_tmp, store) = empty_store();
    let x = create(&store, &[&layer("own")], "x");
    // An orphan of an interrupted creation goes with the sweep too.
    let (orphan, _) = store.write_blob(&b"orphan"[..], None).expect("blob");
    store.remove("x", false, &unused).expect("rmi");
    assert!(has_no_content(&store, &x));
    assert!(!store.has_blob(&orphan));
    assert!(!marker(store.root()));
    let hello = store.get("hello-world").expect("hello");
    assert!(has_content(&store, &hello));
}

#[test]
fn an_owed_sweep_left_by_a_crash_runs_at_the_next_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let store = Store::open(&root).expect("open");
    let x = create(&store, &[&layer("own")], "x");
    let (orphan, _) = store.write_blob(&b"orphan"[..], None).expect("blob");
    // A clean open does not sweep: the orphan stays.
    drop(store);
    let store = Store::open(&root).expect("reopen");
    assert!(store.has_blob(&orphan));

    let lease = store.lease();
    store.remove("x", false, &unused).expect("rmi");
    // The process dies with the lease alive: the sweep never runs.
    std::mem::forget(lease);
    drop(store);
    assert!(marker(&root));

    let store = Store::open(&root).expect("open after the crash");
    assert!(has_no_content(&store, &x));
    assert!(!store.has_blob(&orphan));
    assert!(!marker(&root));
    let hello = store.get("hello-world").expect("hello");
    assert!(has_content(&store, &hello));
}

#[test]
fn taking_a_lease_waits_while_a_sweep_runs() {
    let (_tmp, store) = empty_store();
    let x = create(&store, &[&layer("own")], "x");
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    store.gc.hook.set(move || {
        let _ = started_tx.send(());
        let _ = go_rx.lock().expect("lock").recv();
    });
    let store = &store;
    // `move`: if an assertion fails, `go_tx` drops and the held sweep ends, so the scope
    // can join its threads instead of hanging.
    thread::scope(move |s| {
        let remover = s.spawn(|| store.remove("x", false, &unused));
        started_rx
            .recv_timeout(DEADLINE)
            .expect("the sweep started");

        // The sweep is held before it deletes anything; a lease taken now must wait for it.
        let (leased_tx, leased_rx) = mpsc::channel();
        let taker = s.spawn(move || {
            let _lease = store.lease();
            leased_tx.send(has_no_content(store, &x)).expect("send");
        });
        let deadline = Instant::now() + DEADLINE;
        while store.lease_waiters() == 0 {
            assert!(Instant::now() < deadline, "the lease taker never waited");
            thread::yield_now();
        }
        assert!(leased_rx.try_recv().is_err(), "no lease during a sweep");

        go_tx.send(()).expect("release the sweep");
        let swept_first = leased_rx.recv_timeout(DEADLINE).expect("leased");
        assert!(swept_first, "the lease was granted only after the sweep");
        remover.join().expect("join").expect("rmi");
        taker.join().expect("join");
    });
}

#[test]
fn concurrent_creations_and_removals_never_lose_referenced_content() {
    const ROUNDS: usize = 20;
    let (_tmp, store) = empty_store();
    let shared = layer("shared");
    let (created_tx, created_rx) = mpsc::channel::<usize>();
    let store = &store;
    let shared = &shared;
    thread::scope(|s| {
        // Each image shares its layer with the previous one, which is removed meanwhile:
        // without the lease, a sweep could delete the layer between the creator's steps.
        let creator = s.spawn(move || {
            let mut last = None;
            for i in 0..ROUNDS {
                let image = create(
                    store,
                    &[shared, &layer(&format!("own{i}"))],
                    &format!("c:{i}"),
                );
                assert!(has_content(store, &image), "round {i}");
                created_tx.send(i).expect("send");
                last = Some(image);
            }
            last.expect("created")
        });
        let remover = s.spawn(move || {
            // All but the last; the iteration ends when the creator is done.
            for i in created_rx.iter().filter(|i| i + 1 < ROUNDS) {
                store
                    .remove(&format!("c:{i}"), false, &unused)
                    .expect("rmi");
            }
        });
        let last = creator.join().expect("creator");
        remover.join().expect("remover");
        // Whatever ran last, the sweeps are over: no lease is alive.
        assert!(has_content(store, &last));
        let hello = store.get("hello-world").expect("hello");
        let live: BTreeSet<Digest> = [&last, &hello]
            .iter()
            .flat_map(|i| {
                i.layers
                    .iter()
                    .flat_map(|l| [l.blob.clone(), l.diff_id.clone()])
                    .chain([i.id.clone()])
            })
            .collect();
        let stored: BTreeSet<Digest> = store
            .stored_content()
            .expect("list")
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        assert_eq!(
            stored, live,
            "exactly the remaining images' content is left"
        );
        assert!(!marker(store.root()));
    });
}
