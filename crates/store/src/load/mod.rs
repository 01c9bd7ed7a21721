//! `docker load`: images from a `docker save` archive (docker-archive: `manifest.json`,
//! with `<id>/layer.tar` or `blobs/sha256/<hex>` layers) or from an OCI image layout tar
//! (`oci-layout`, `index.json`, `blobs/`). The whole input may be gzip- or zstd-compressed.
//!
//! The archive is first spooled into a scratch directory under `tmp/` (files named by a
//! counter, never by their archive path, so archive names cannot point anywhere on the host),
//! hashing every file on the way. Then each image's blobs are published to the content store,
//! its layers unpacked, and finally all records and tags are committed together: a failure
//! anywhere leaves no image and no tag behind.

mod docker;
mod oci;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use arca_model::{Digest, Reference, random_hex};
use serde::de::DeserializeOwned;

use crate::compress::{HashReader, decompress};
use crate::content::copy;
use crate::image::{Image, LayerBlob};
use crate::layout::remove_any;
use crate::unpack::{Limits, split_path};
use crate::{Store, StoreError};

/// Largest JSON document (manifest, index, config) read from an archive.
const MAX_JSON: u64 = 32 << 20;
/// Most symlink hops followed when looking a name up in an archive.
const MAX_HOPS: usize = 16;

/// One image found in an archive.
pub(crate) struct Spec {
    pub config: Vec<u8>,
    pub layers: Vec<SpecLayer>,
    pub tags: Vec<Reference>,
}

/// One layer of a [`Spec`]: an archive member, and what is known about it.
pub(crate) struct SpecLayer {
    pub name: String,
    /// Empty: detect from the magic bytes.
    pub media_type: String,
}

impl Store {
    /// Loads every image in the archive `input` and tags them as the archive says.
    /// `progress` receives Docker's lines (`Loaded image: busybox:latest`,
    /// `Loaded image ID: sha256:…`).
    pub fn load(
        &self,
        input: impl Read,
        progress: &mut dyn FnMut(String),
    ) -> Result<Vec<Image>, StoreError> {
        let _lease = self.lease();
        let scratch = Scratch::create(&self.layout.tmp())?;
        let archive = Archive::read(input, &scratch.0, &self.limits)?;
        let specs = if archive.has("manifest.json") {
            docker::specs(&archive)?
        } else if archive.has("index.json") {
            oci::specs(&archive)?
        } else {
            return Err(StoreError::Archive(
                "neither manifest.json nor index.json found".into(),
            ));
        };
        if specs.is_empty() {
            return Err(StoreError::Archive("the archive contains no image".into()));
        }
        let mut prepared = Vec::new();
        let mut tags = Vec::new();
        for spec in &specs {
            let mut blobs = Vec::new();
            for layer in &spec.layers {
                blobs.push(LayerBlob {
                    digest: archive.publish(self, &layer.name)?,
                    media_type: layer.media_type.clone(),
                });
            }
            let p = self.prepare(&spec.config, &blobs, &HashSet::new())?;
            tags.extend(spec.tags.iter().map(|t| (t.clone(), p.record.id.clone())));
            prepared.push(p);
        }
        self.commit(&prepared, &tags)?;
        let mut images = Vec::new();
        let mut seen = HashSet::new();
        for (spec, p) in specs.iter().zip(&prepared) {
            let id = &p.record.id;
            if spec.tags.is_empty() {
                progress(format!("Loaded image ID: {id}"));
            }
            for t in &spec.tags {
                progress(format!("Loaded image: {t}"));
            }
            if seen.insert(id.clone()) {
                images.push(self.image_by_id(id)?);
            }
        }
        Ok(images)
    }
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn create(tmp: &Path) -> Result<Self, StoreError> {
        let dir = tmp.join(format!("load-{}", random_hex(8)));
        fs::create_dir(&dir).map_err(StoreError::io("create", &dir))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = remove_any(&self.0) {
            tracing::warn!(error = %e, "failed to remove load scratch directory");
        }
    }
}

enum Item {
    File {
        path: PathBuf,
        digest: Digest,
        size: u64,
    },
    /// A symlink or hard link, to the normalised name it points at.
    Link(String),
}

/// The members of a spooled archive, by normalised name (`a/b`, no `./`).
pub(crate) struct Archive {
    items: HashMap<String, Item>,
}

impl Archive {
    fn read(input: impl Read, dir: &Path, limits: &Limits) -> Result<Self, StoreError> {
        let stream = HashReader::new(
            decompress(input).map_err(StoreError::Input)?,
            limits.max_bytes,
        );
        let mut tar = tar::Archive::new(stream);
        let mut items = HashMap::new();
        let entries = tar.entries().map_err(StoreError::Input)?;
        for (n, entry) in entries.enumerate() {
            if n as u64 >= limits.max_entries {
                return Err(StoreError::Archive("too many entries".into()));
            }
            let mut entry = entry.map_err(StoreError::Input)?;
            let raw = entry.path_bytes().into_owned();
            let Some(name) = normalise(&[], &raw) else {
                tracing::debug!(name = %String::from_utf8_lossy(&raw), "skipping unaddressable archive member");
                continue;
            };
            let kind = entry.header().entry_type();
            let link = entry.link_name_bytes().map(|l| l.into_owned());
            let item = if kind.is_file() || kind.is_contiguous() {
                let path = dir.join(n.to_string());
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(StoreError::io("create", &path))?;
                let mut hashing = HashReader::new(&mut entry, u64::MAX);
                copy(&mut hashing, &mut file, &path)?;
                let (digest, size) = hashing.finish().map_err(StoreError::Input)?;
                Item::File { path, digest, size }
            } else if kind.is_symlink() {
                let parent: Vec<&str> = name.split('/').collect();
                let parent = &parent[..parent.len() - 1];
                match link.as_deref().and_then(|l| normalise(parent, l)) {
                    Some(target) => Item::Link(target),
                    None => continue,
                }
            } else if kind.is_hard_link() {
                match link.as_deref().and_then(|l| normalise(&[], l)) {
                    Some(target) => Item::Link(target),
                    None => continue,
                }
            } else {
                continue;
            };
            items.insert(name, item);
        }
        if tar.into_inner().exceeded() {
            return Err(StoreError::Archive(format!(
                "larger than {} bytes uncompressed",
                limits.max_bytes
            )));
        }
        Ok(Self { items })
    }

    fn has(&self, name: &str) -> bool {
        self.items.contains_key(name)
    }

    /// The spooled file for member `name`, following links.
    fn file(&self, name: &str) -> Result<(&Path, &Digest, u64), StoreError> {
        let missing = || StoreError::Archive(format!("{name} not found in archive"));
        let mut current = normalise(&[], name.as_bytes()).ok_or_else(missing)?;
        for _ in 0..MAX_HOPS {
            match self.items.get(&current) {
                Some(Item::File { path, digest, size }) => {
                    // Members named after their digest must have it.
                    if let Some(hex) = current.strip_prefix("blobs/sha256/")
                        && digest.hex() != hex
                    {
                        return Err(StoreError::Archive(format!(
                            "{current} has digest {digest}"
                        )));
                    }
                    return Ok((path, digest, *size));
                }
                Some(Item::Link(target)) => current = target.clone(),
                None => return Err(missing()),
            }
        }
        Err(StoreError::Archive(format!(
            "{name}: too many levels of links"
        )))
    }

    /// The content of member `name`, for JSON documents.
    fn read_bytes(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let (path, _, size) = self.file(name)?;
        if size > MAX_JSON {
            return Err(StoreError::Archive(format!("{name} is too large")));
        }
        fs::read(path).map_err(StoreError::io("read", path))
    }

    fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        serde_json::from_slice(&self.read_bytes(name)?)
            .map_err(|e| StoreError::Archive(format!("{name}: {e}")))
    }

    /// Publishes member `name` as a blob (fsync, then rename into the content store) and
    /// returns its digest.
    fn publish(&self, store: &Store, name: &str) -> Result<Digest, StoreError> {
        let (path, digest, _) = self.file(name)?;
        if !store.has_blob(digest) {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(StoreError::io("sync", path))?;
            store.publish_blob(path, digest)?;
        }
        Ok(digest.clone())
    }
}

/// Normalises an archive name (or a link target relative to the directory `base`) to
/// `a/b` form. `None` if it climbs out of the archive.
fn normalise(base: &[&str], name: &[u8]) -> Option<String> {
    let mut parts: Vec<String> = if name.first() == Some(&b'/') {
        Vec::new()
    } else {
        base.iter().map(|s| (*s).to_owned()).collect()
    };
    let name = String::from_utf8_lossy(name);
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c.to_owned()),
        }
    }
    // Same rules as layer entries, as a second opinion.
    split_path(parts.join("/").as_bytes()).ok()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Parses the tags an archive asks for; `None` for names that are not tagged references.
pub(crate) fn parse_tag(name: &str) -> Result<Option<Reference>, StoreError> {
    let r: Reference = name
        .parse()
        .map_err(|e| StoreError::Archive(format!("invalid tag {name:?}: {e}")))?;
    Ok((r.digest().is_none()).then(|| r.with_default_tag()))
}

#[cfg(test)]
mod tests;
