//! `docker save`: images as a tar in Docker 25's format, an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) plus the docker-archive `manifest.json`,
//! so both `docker load` (old and new) and OCI tools read it, and so does our `load`.
//!
//! Blobs go out exactly as stored (config bytes, layer blobs compressed or not), so a
//! save → rmi → load round trip gives the same image ID, layer digests and diff_ids. Each
//! image gets a generated OCI manifest. The tar is written straight to the output, one blob
//! at a time; nothing is built in memory but the small JSON documents.
//!
//! Names follow Docker: a tag saves that tag, a repository without a tag saves all its tags,
//! an ID saves the image untagged.

use std::collections::HashSet;
use std::io::{self, Write};

use arca_model::{Digest, Reference};
use serde_json::{Value, json};

use crate::image::Image;
use crate::record::ref_key;
use crate::{Store, StoreError};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// One image to save and the tags to record for it.
struct Entry {
    image: Image,
    tags: Vec<Reference>,
}

impl Store {
    /// Writes the images named by `names` to `out` (see the module docs). All names are
    /// resolved before the first byte is written, so a missing image fails cleanly.
    pub fn save(&self, names: &[String], out: impl Write) -> Result<(), StoreError> {
        // Leased: a concurrent `rmi` leaves the blobs being streamed in place.
        let _lease = self.lease();
        let entries = self.save_entries(names)?;
        write_archive(self, &entries, out).map_err(StoreError::Output)
    }

    fn save_entries(&self, names: &[String]) -> Result<Vec<Entry>, StoreError> {
        let refs = self.lock_refs().clone();
        let mut entries: Vec<Entry> = Vec::new();
        let mut add = |image: Image, tag: Option<Reference>| {
            let pos = match entries.iter().position(|e| e.image.id == image.id) {
                Some(p) => p,
                None => {
                    entries.push(Entry {
                        image,
                        tags: Vec::new(),
                    });
                    entries.len() - 1
                }
            };
            if let Some(t) = tag
                && !entries[pos].tags.contains(&t)
            {
                entries[pos].tags.push(t);
            }
        };
        for name in names {
            let resolved = self.resolve(name, &refs);
            // A repository without a tag means all of its tags (Docker's rule).
            let repo_only = name
                .parse::<Reference>()
                .ok()
                .filter(|r| r.tag().is_none() && r.digest().is_none() && !name.contains("sha256:"));
            if let Some(repo) = repo_only.as_ref().map(Reference::full_repo) {
                let mut found = false;
                for (key, id) in &refs {
                    let Ok(r) = key.parse::<Reference>() else {
                        continue;
                    };
                    if r.digest().is_none() && r.full_repo() == repo {
                        add(self.image_by_id(id)?, Some(r));
                        found = true;
                    }
                }
                if found {
                    continue;
                }
            }
            let resolved = resolved?;
            let image = self.image_by_id(&resolved.id)?;
            let tag = match resolved.via_ref {
                Some(key) => key
                    .parse::<Reference>()
                    .ok()
                    .filter(|r| r.digest().is_none()),
                None => None,
            };
            add(image, tag);
        }
        Ok(entries)
    }
}

/// The OCI manifest for `image`: its config and layers as stored.
fn manifest(store: &Store, image: &Image) -> Result<Vec<u8>, StoreError> {
    let config_size = store.blob_size(&image.id)?;
    let layers: Vec<Value> = image
        .layers
        .iter()
        .map(|l| json!({"mediaType": l.media_type, "digest": l.blob, "size": l.size}))
        .collect();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": image.id, "size": config_size},
        "layers": layers,
    });
    Ok(serde_json::to_vec(&m).expect("a JSON value always serializes"))
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn write_archive(store: &Store, entries: &[Entry], out: impl Write) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    dir(&mut tar, "blobs/")?;
    dir(&mut tar, "blobs/sha256/")?;
    let mut written: HashSet<Digest> = HashSet::new();
    let mut index = Vec::new();
    let mut docker_manifest = Vec::new();
    for e in entries {
        let img = &e.image;
        for d in img.layers.iter().map(|l| &l.blob).chain([&img.id]) {
            if written.insert(d.clone()) {
                let file = store.open_blob(d).map_err(io::Error::other)?;
                let len = file.metadata()?.len();
                append(&mut tar, &blob_name(d), len, file)?;
            }
        }
        let m = manifest(store, img).map_err(io::Error::other)?;
        let m_digest = Digest::of(&m);
        if written.insert(m_digest.clone()) {
            append(&mut tar, &blob_name(&m_digest), m.len() as u64, &m[..])?;
        }
        let descriptor = |annotations: Option<Value>| {
            let mut d = json!({"mediaType": MANIFEST_TYPE, "digest": m_digest, "size": m.len()});
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            d
        };
        if e.tags.is_empty() {
            index.push(descriptor(None));
        }
        for t in &e.tags {
            let t = t.clone().with_default_tag();
            index.push(descriptor(Some(json!({
                "io.containerd.image.name": ref_key(&t),
                "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
            }))));
        }
        let repo_tags: Option<Vec<String>> = (!e.tags.is_empty()).then(|| {
            e.tags
                .iter()
                .map(|t| t.clone().with_default_tag().to_string())
                .collect()
        });
        docker_manifest.push(json!({
            "Config": blob_name(&img.id),
            "RepoTags": repo_tags,
            "Layers": img.layers.iter().map(|l| blob_name(&l.blob)).collect::<Vec<_>>(),
        }));
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append(&mut tar, "oci-layout", layout.len() as u64, &layout[..])?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index,
    }))
    .expect("a JSON value always serializes");
    append(&mut tar, "index.json", index.len() as u64, &index[..])?;
    let manifest = serde_json::to_vec(&docker_manifest).expect("a JSON value always serializes");
    append(
        &mut tar,
        "manifest.json",
        manifest.len() as u64,
        &manifest[..],
    )?;
    // Docker's legacy `repositories` file is left out: it names v1 layer IDs we do not have,
    // and no loader needs it when manifest.json is present.
    tar.into_inner()?.flush()
}

fn header(size: u64, kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut h = header(0, tar::EntryType::Directory, 0o755);
    tar.append_data(&mut h, name, io::empty())
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl io::Read,
) -> io::Result<()> {
    let mut h = header(size, tar::EntryType::Regular, 0o644);
    tar.append_data(&mut h, name, data)
}

impl Store {
    /// The size of blob `digest` in bytes.
    pub(crate) fn blob_size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.layout.blob(digest);
        std::fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => StoreError::MissingBlob(digest.clone()),
                _ => StoreError::io("stat", &path)(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{empty_store, import_files};

    use super::*;

    fn names_in(archive: &[u8]) -> Vec<String> {
        let mut ar = tar::Archive::new(archive);
        ar.entries()
            .expect("entries")
            .map(|e| String::from_utf8_lossy(&e.expect("entry").path_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn save_then_load_round_trips_ids_and_digests() {
        let (_tmp, store) = empty_store();
        let img = import_files(&store, &[("etc/motd", b"hi")], Some("app:1"));
        store
            .tag(&img.id, &"app:2".parse().expect("ref"))
            .expect("tag");
        let mut out = Vec::new();
        store.save(&["app".to_owned()], &mut out).expect("save");
        let names = names_in(&out);
        for n in ["oci-layout", "index.json", "manifest.json"] {
            assert!(names.contains(&n.to_owned()), "{names:?}");
        }
        assert!(names.contains(&blob_name(&img.id)));
        let manifest: Value = tar_member(&out, "manifest.json");
        assert_eq!(manifest[0]["RepoTags"], json!(["app:1", "app:2"]));
        let index: Value = tar_member(&out, "index.json");
        assert_eq!(index["manifests"].as_array().expect("list").len(), 2);

        store
            .remove(&img.id.to_string(), true, &|_| false)
            .expect("rmi");
        let mut lines = Vec::new();
        let loaded = store.load(&out[..], &mut |l| lines.push(l)).expect("load");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].id, img.id);
        assert_eq!(loaded[0].layers, img.layers);
        assert_eq!(loaded[0].repo_tags, vec!["app:1", "app:2"]);
    }

    #[test]
    fn save_by_id_is_untagged_and_missing_names_fail_before_writing() {
        let (_tmp, store) = empty_store();
        let img = import_files(&store, &[("a", b"1")], Some("app"));
        let mut out = Vec::new();
        store.save(&[img.id.to_string()], &mut out).expect("save");
        let manifest: Value = tar_member(&out, "manifest.json");
        assert_eq!(manifest[0]["RepoTags"], Value::Null);
        let mut out = Vec::new();
        let err = store
            .save(&["app".to_owned(), "nope:1".to_owned()], &mut out)
            .expect_err("missing");
        assert_eq!(err.kind(), arca_model::ErrorKind::NotFound);
        assert!(out.is_empty());
    }

    fn tar_member(archive: &[u8], name: &str) -> Value {
        let mut ar = tar::Archive::new(archive);
        for e in ar.entries().expect("entries") {
            let e = e.expect("entry");
            if e.path_bytes().as_ref() == name.as_bytes() {
                return serde_json::from_reader(e).expect("json");
            }
        }
        panic!("{name} not in archive");
    }
}
