//! The docker-archive format of `docker save`: `manifest.json` lists, per image, the config
//! member, its tags, and its layer members (bottom first).

use serde::Deserialize;

use super::{Archive, Spec, SpecLayer, parse_tag};
use crate::StoreError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

pub(super) fn specs(archive: &Archive) -> Result<Vec<Spec>, StoreError> {
    let entries: Vec<Entry> = archive.read_json("manifest.json")?;
    let mut specs = Vec::with_capacity(entries.len());
    for e in entries {
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            tags.extend(parse_tag(&t)?);
        }
        specs.push(Spec {
            config: archive.read_bytes(&e.config)?,
            layers: e
                .layers
                .into_iter()
                .map(|name| SpecLayer {
                    name,
                    media_type: String::new(),
                })
                .collect(),
            tags,
        });
    }
    Ok(specs)
}
