//! Reading the catalog: listing images, resolving names, tagging.

use std::collections::BTreeMap;
use std::fs;

use arca_model::{Digest, Reference};

use crate::image::Image;
use crate::record::{ImageRecord, read_versioned, ref_key};
use crate::{Store, StoreError};

/// What a user-given name resolved to.
pub(crate) struct Resolved {
    pub id: Digest,
    /// The reference key, when the name was a reference rather than an ID.
    pub via_ref: Option<String>,
}

impl Store {
    /// All images, newest first (by config `created`, then ID).
    pub fn list(&self) -> Result<Vec<Image>, StoreError> {
        let refs = self.lock_refs().clone();
        let mut images = Vec::new();
        for id in self.record_ids()? {
            let image = self
                .record(&id)
                .and_then(|r| r.map(|r| self.image_from(r, &refs)).transpose());
            match image {
                Ok(Some(image)) => images.push(image),
                Ok(None) => {}
                Err(e) => tracing::warn!(%id, error = %e, "skipping unreadable image"),
            }
        }
        images.sort_by_cached_key(|i| (std::cmp::Reverse(created_key(&i.created)), i.id.clone()));
        Ok(images)
    }

    /// Resolves a user-given name: an image ID (`sha256:…`, or a unique hex prefix) or a
    /// reference (`busybox` meaning `busybox:latest`).
    pub fn get(&self, name: &str) -> Result<Image, StoreError> {
        let refs = self.lock_refs().clone();
        let resolved = self.resolve(name, &refs)?;
        match self.record(&resolved.id)? {
            Some(record) => self.image_from(record, &refs),
            None => Err(not_found(name)),
        }
    }

    /// Points `reference` (`:latest` if it has no tag) at image `id`, replacing whatever it
    /// pointed at.
    pub fn tag(&self, id: &Digest, reference: &Reference) -> Result<(), StoreError> {
        if reference.digest().is_some() {
            return Err(StoreError::DigestTag);
        }
        self.add_ref(id, reference)
    }

    /// Records a digest reference (`busybox@sha256:<manifest>`) for image `id`, as a pull
    /// does.
    pub fn add_repo_digest(&self, id: &Digest, reference: &Reference) -> Result<(), StoreError> {
        if reference.digest().is_none() {
            return Err(StoreError::NoDigest(reference.to_string()));
        }
        self.add_ref(id, reference)
    }

    fn add_ref(&self, id: &Digest, reference: &Reference) -> Result<(), StoreError> {
        let mut refs = self.lock_refs();
        // Checked under the lock: `remove` deletes records while holding it.
        if !self.layout.record(id).exists() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let mut new = refs.clone();
        new.insert(ref_key(reference), id.clone());
        self.store_refs(&mut refs, new)?;
        tracing::info!(%id, reference = %reference, "tagged image");
        Ok(())
    }

    /// The image with ID `id`.
    pub(crate) fn image_by_id(&self, id: &Digest) -> Result<Image, StoreError> {
        let refs = self.lock_refs().clone();
        match self.record(id)? {
            Some(record) => self.image_from(record, &refs),
            None => Err(StoreError::NotFound(id.to_string())),
        }
    }

    pub(crate) fn record(&self, id: &Digest) -> Result<Option<ImageRecord>, StoreError> {
        read_versioned(&self.layout.record(id))
    }

    /// IDs of all image records.
    pub(crate) fn record_ids(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.layout.images();
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(StoreError::io("read", &dir))? {
            let entry = entry.map_err(StoreError::io("read", &dir))?;
            let name = entry.file_name();
            if let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json"))
                && let Ok(id) = Digest::from_hex(hex)
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn image_from(
        &self,
        record: ImageRecord,
        refs: &BTreeMap<String, Digest>,
    ) -> Result<Image, StoreError> {
        let path = self.layout.blob(&record.id);
        let config: serde_json::Value = serde_json::from_slice(&self.read_blob(&record.id)?)
            .map_err(|source| StoreError::Corrupt { path, source })?;
        let created = config
            .get("created")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_owned();
        let (mut repo_tags, mut repo_digests) = (Vec::new(), Vec::new());
        for (key, id) in refs {
            if *id != record.id {
                continue;
            }
            let Ok(r) = key.parse::<Reference>() else {
                continue;
            };
            if r.digest().is_some() {
                repo_digests.push(r.to_string());
            } else {
                repo_tags.push(r.to_string());
            }
        }
        repo_tags.sort();
        repo_digests.sort();
        Ok(Image {
            id: record.id,
            config,
            repo_tags,
            repo_digests,
            created,
            size: record.size,
            layers: record.layers,
        })
    }

    /// Resolves `name` against `refs` and the image records, Docker's way: `sha256:…` and
    /// 64-hex names are IDs; anything else is first a reference, then an ID prefix.
    pub(crate) fn resolve(
        &self,
        name: &str,
        refs: &BTreeMap<String, Digest>,
    ) -> Result<Resolved, StoreError> {
        let by_id = |hex: &str| -> Result<Option<Resolved>, StoreError> {
            Ok(self
                .find_by_prefix(hex, name)?
                .map(|id| Resolved { id, via_ref: None }))
        };
        if let Some(hex) = name.strip_prefix("sha256:") {
            return by_id(hex)?.ok_or_else(|| not_found(name));
        }
        if name.len() == 64 && Reference::looks_like_id(name) {
            return by_id(name)?.ok_or_else(|| not_found(name));
        }
        let reference: Reference = name.parse()?;
        let key = ref_key(&reference);
        if let Some(id) = refs.get(&key) {
            return Ok(Resolved {
                id: id.clone(),
                via_ref: Some(key),
            });
        }
        if Reference::looks_like_id(name)
            && let Some(found) = by_id(name)?
        {
            return Ok(found);
        }
        Err(not_found(name))
    }

    /// The one image whose ID starts with `hex`; `None` if there is none.
    fn find_by_prefix(&self, hex: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        if !Reference::looks_like_id(hex) {
            return Ok(None);
        }
        if let Ok(id) = Digest::from_hex(hex) {
            return Ok(self.layout.record(&id).exists().then_some(id));
        }
        let mut matches = self
            .record_ids()?
            .into_iter()
            .filter(|id| id.hex().starts_with(hex));
        let first = matches.next();
        if matches.next().is_some() {
            return Err(StoreError::AmbiguousId(name.to_owned()));
        }
        Ok(first)
    }
}

/// Docker's "No such image" for `name`: references in familiar form with their default tag,
/// IDs verbatim.
pub(crate) fn not_found(name: &str) -> StoreError {
    let shown = match name.parse::<Reference>() {
        Ok(r) if !name.starts_with("sha256:") && name.len() != 64 => {
            r.with_default_tag().to_string()
        }
        _ => name.to_owned(),
    };
    StoreError::NotFound(shown)
}

/// Sort key for `created`: seconds since the epoch, 0 when unparsable.
fn created_key(created: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(created)
        .map(|t| t.timestamp_nanos_opt().unwrap_or(t.timestamp()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use arca_model::ErrorKind;

    use crate::testutil::{empty_store, import_files};

    use super::*;

    #[test]
    fn get_resolves_short_ids_full_ids_and_names() {
        let (_tmp, store) = empty_store();
        let img = import_files(&store, &[("a", b"1")], Some("busybox:1.36"));
        let id = img.id.clone();
        assert_eq!(store.get(&id.to_string()).expect("full id").id, id);
        assert_eq!(store.get(id.hex()).expect("bare hex").id, id);
        assert_eq!(store.get(id.short()).expect("short id").id, id);
        assert_eq!(
            store
                .get(&format!("sha256:{}", &id.hex()[..5]))
                .expect("prefix")
                .id,
            id
        );
        assert_eq!(store.get("busybox:1.36").expect("name").id, id);
        assert_eq!(
            store
                .get("docker.io/library/busybox:1.36")
                .expect("full name")
                .id,
            id
        );
        assert_eq!(img.repo_tags, vec!["busybox:1.36"]);
    }

    #[test]
    fn get_reports_missing_images_in_docker_wording() {
        let (_tmp, store) = empty_store();
        let err = store.get("busybox").expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), "No such image: busybox:latest");
        let err = store.get("sha256:0123").expect_err("missing");
        assert_eq!(err.to_string(), "No such image: sha256:0123");
        let err = store.get("Bad Name").expect_err("invalid");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn get_refuses_ambiguous_prefixes() {
        let (_tmp, store) = empty_store();
        let mut ids = Vec::new();
        // Enough distinct images that two share a first hex digit.
        for i in 0..20u8 {
            ids.push(import_files(&store, &[("f", &[i])], None).id);
        }
        let hello = store.get("hello-world").expect("hello").id;
        ids.push(hello);
        let shared = ids
            .iter()
            .map(|i| &i.hex()[..1])
            .find(|p| ids.iter().filter(|i| i.hex().starts_with(*p)).count() > 1)
            .expect("pigeonhole");
        let err = store
            .get(&format!("sha256:{shared}"))
            .expect_err("ambiguous");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(
            err.to_string()
                .starts_with("multiple IDs found with provided prefix")
        );
    }

    #[test]
    fn tag_overwrites_and_list_is_newest_first() {
        let (_tmp, store) = empty_store();
        let a = import_files(&store, &[("a", b"1")], Some("app:v1"));
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = import_files(&store, &[("b", b"2")], None);
        let r: Reference = "app:v1".parse().expect("ref");
        store.tag(&b.id, &r).expect("tag");
        assert_eq!(store.get("app:v1").expect("get").id, b.id);
        assert!(
            store
                .get(&a.id.to_string())
                .expect("a")
                .repo_tags
                .is_empty()
        );
        let list = store.list().expect("list");
        let pos = |id: &Digest| list.iter().position(|i| i.id == *id).expect("listed");
        assert!(pos(&b.id) < pos(&a.id), "newest first");
        assert_eq!(list.len(), 3, "two imports and hello-world");
        let missing = Digest::of(b"nope");
        assert_eq!(
            store.tag(&missing, &r).expect_err("missing").kind(),
            ErrorKind::NotFound
        );
        let digest_ref: Reference = format!("app@{missing}").parse().expect("ref");
        assert!(matches!(
            store.tag(&b.id, &digest_ref),
            Err(StoreError::DigestTag)
        ));
        store
            .add_repo_digest(&b.id, &digest_ref)
            .expect("repo digest");
        assert_eq!(
            store.get("app:v1").expect("get").repo_digests,
            vec![format!("app@{missing}")]
        );
    }
}
