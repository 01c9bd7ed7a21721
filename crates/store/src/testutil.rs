//! Test helpers: stores on temporary directories, hand-built tars and image archives.

use std::io::Write;

use arca_model::{Digest, Reference};
use serde_json::json;
use tar::{EntryType, Header};

use crate::{Image, Store};

/// A fresh store in a temporary directory (with the hello-world image seeded).
pub(crate) fn empty_store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&tmp.path().join("root")).expect("open store");
    (tmp, store)
}

/// Imports a layer holding `files`, tagged `tag`.
pub(crate) fn import_files(store: &Store, files: &[(&str, &[u8])], tag: Option<&str>) -> Image {
    let mut tar = RawTar::new();
    for (path, data) in files {
        tar.file(path, data);
    }
    let tag: Option<Reference> = tag.map(|t| t.parse().expect("tag"));
    store
        .import(&tar.finish()[..], tag.as_ref(), &[], None)
        .expect("import")
}

/// Like [`import_files`], untagged, with a distinct history message.
pub(crate) fn import_files_with_message(
    store: &Store,
    files: &[(&str, &[u8])],
    msg: &str,
) -> Image {
    let mut tar = RawTar::new();
    for (path, data) in files {
        tar.file(path, data);
    }
    store
        .import(&tar.finish()[..], None, &[], Some(msg))
        .expect("import")
}

/// An image config for uncompressed layer tars `layers`.
pub(crate) fn config_for(layers: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2025-06-01T12:00:00Z",
        "config": { "Cmd": ["/bin/sh"], "Healthcheck": { "Test": ["NONE"] } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .expect("json")
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// A realistic layer from the host's static busybox: `bin/busybox`, `bin/sh` and `bin/ls`
/// as symlinks, `etc/passwd`.
pub(crate) fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is installed");
    RawTar::new()
        .dir("bin/")
        .add("bin/busybox", EntryType::Regular, &busybox, "", 0o755)
        .symlink("bin/sh", "/bin/busybox")
        .symlink("bin/ls", "busybox")
        .dir("etc/")
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        .finish()
}

/// Appends a regular file to a builder.
pub(crate) fn append(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_path(path).expect("path");
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

/// Builds tars with raw, unvalidated names (the `tar` crate refuses to write `..`).
pub(crate) struct RawTar(pub(crate) tar::Builder<Vec<u8>>);

impl RawTar {
    pub(crate) fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    pub(crate) fn add(
        &mut self,
        path: &str,
        kind: EntryType,
        data: &[u8],
        link: &str,
        mode: u32,
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        let old = h.as_old_mut();
        old.name.fill(0);
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname.fill(0);
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).expect("append");
        self
    }

    pub(crate) fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.add(path, EntryType::Regular, data, "", 0o644)
    }

    pub(crate) fn dir(&mut self, path: &str) -> &mut Self {
        self.add(path, EntryType::Directory, b"", "", 0o755)
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add(path, EntryType::Symlink, b"", target, 0o777)
    }

    pub(crate) fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add(path, EntryType::Link, b"", target, 0o644)
    }

    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        b.into_inner().expect("finish tar")
    }
}
