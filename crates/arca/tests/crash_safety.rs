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
