//! The OCI image layout: `index.json` lists manifests (or nested indexes, of which the
//! host's platform — else the first real one — is taken); each manifest names a config and
//! layers, all stored as `blobs/sha256/<hex>`. Tags come from the top-level descriptors'
//! `io.containerd.image.name` or, when it is a full reference rather than a bare tag,
//! `org.opencontainers.image.ref.name`.

use std::collections::HashMap;

use arca_model::{Digest, Reference};
use serde::Deserialize;

use super::{Archive, Spec, SpecLayer, parse_tag};
use crate::StoreError;

const MAX_DEPTH: usize = 4;

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: Digest,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

pub(super) fn specs(archive: &Archive) -> Result<Vec<Spec>, StoreError> {
    let index: Index = archive.read_json("index.json")?;
    let mut specs = Vec::new();
    for desc in &index.manifests {
        let manifest = resolve(archive, desc, 0)?;
        let config = archive.read_bytes(&blob_name(&manifest.config.digest))?;
        let layers = manifest
            .layers
            .iter()
            .map(|l| SpecLayer {
                name: blob_name(&l.digest),
                media_type: l.media_type.clone(),
            })
            .collect();
        specs.push(Spec {
            config,
            layers,
            tags: tags(desc)?,
        });
    }
    Ok(specs)
}

/// Follows `desc` down to an image manifest.
fn resolve(archive: &Archive, desc: &Descriptor, depth: usize) -> Result<Manifest, StoreError> {
    if depth > MAX_DEPTH {
        return Err(StoreError::Archive("indexes nested too deeply".into()));
    }
    let name = blob_name(&desc.digest);
    let doc: serde_json::Value = archive.read_json(&name)?;
    let bad = |e: serde_json::Error| StoreError::Archive(format!("{name}: {e}"));
    if doc.get("manifests").is_some() {
        let index: Index = serde_json::from_value(doc).map_err(bad)?;
        let chosen = pick_platform(&index.manifests)
            .ok_or_else(|| StoreError::Archive(format!("{name}: empty index")))?;
        return resolve(archive, chosen, depth + 1);
    }
    serde_json::from_value(doc).map_err(bad)
}

/// The host's platform (linux and this architecture), else the first that is not an
/// attestation (`unknown/unknown`), else the first.
fn pick_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    let arch = crate::import::host_arch();
    let is = |d: &&Descriptor, os: &str, a: &str| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == os && (a.is_empty() || p.architecture == a))
    };
    manifests
        .iter()
        .find(|d| is(d, "linux", arch))
        .or_else(|| manifests.iter().find(|d| !is(d, "unknown", "")))
        .or_else(|| manifests.first())
}

fn tags(desc: &Descriptor) -> Result<Vec<Reference>, StoreError> {
    if let Some(name) = desc.annotations.get("io.containerd.image.name") {
        return Ok(parse_tag(name)?.into_iter().collect());
    }
    match desc.annotations.get("org.opencontainers.image.ref.name") {
        // A bare tag ("latest") names no repository: nothing to tag.
        Some(name) if name.contains('/') || name.contains(':') => {
            Ok(parse_tag(name)?.into_iter().collect())
        }
        _ => Ok(Vec::new()),
    }
}
