//! `docker history`: one line per entry of the image config's `history`, newest first, with
//! the unpacked size of the layer each non-empty entry made.
//!
//! Docker names a line by an image ID only when it knows that image locally (the image
//! itself, then its parents); other lines are `<missing>`. arca keeps no parent links, so a
//! line is named by a local image whose history and layers are exactly the prefix up to
//! that line (the image a `commit` or build started from), else `<missing>`.

use arca_model::Digest;
use serde_json::Value;

use crate::{Store, StoreError};

/// One line of `GET /images/{name}/history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// The image this line is the top of, if one is known locally.
    pub id: Option<Digest>,
    /// Seconds since the epoch (0 if unknown).
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    /// Unpacked size of the layer the entry made (0 for empty layers).
    pub size: u64,
    pub comment: String,
}

impl Store {
    /// The history of image `name`, newest first.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryItem>, StoreError> {
        let image = self.get(name)?;
        let entries = image
            .config
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let others = self.list()?;
        let mut items = Vec::with_capacity(entries.len());
        let mut layer = 0;
        for (n, h) in entries.iter().enumerate() {
            let empty = h.get("empty_layer").and_then(Value::as_bool) == Some(true);
            let mut size = 0;
            if !empty {
                if let Some(l) = image.layers.get(layer) {
                    size = self.snapshot_size(&l.diff_id)?.unwrap_or(0);
                }
                layer += 1;
            }
            let text = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let created = chrono::DateTime::parse_from_rfc3339(&text("created"))
                .map(|t| t.timestamp())
                .unwrap_or(0);
            // The image whose whole history is entries[..=n] on layers[..layer].
            let owner = if n + 1 == entries.len() {
                Some(&image)
            } else {
                others.iter().find(|o| {
                    o.layers.len() == layer
                        && o.layers
                            .iter()
                            .zip(&image.layers)
                            .all(|(a, b)| a.diff_id == b.diff_id)
                        && o.config
                            .get("history")
                            .and_then(Value::as_array)
                            .map(Vec::as_slice)
                            == Some(&entries[..=n])
                })
            };
            items.push(HistoryItem {
                id: owner.map(|o| o.id.clone()),
                created,
                created_by: text("created_by"),
                tags: owner.map(|o| o.repo_tags.clone()).unwrap_or_default(),
                size,
                comment: text("comment"),
            });
        }
        if items.is_empty() {
            // An image without history still has one line: itself.
            items.push(HistoryItem {
                id: Some(image.id.clone()),
                created: chrono::DateTime::parse_from_rfc3339(&image.created)
                    .map(|t| t.timestamp())
                    .unwrap_or(0),
                created_by: String::new(),
                tags: image.repo_tags.clone(),
                size: image.size,
                comment: String::new(),
            });
        }
        items.reverse();
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use serde_json::{Map, json};

    use crate::CommitOptions;
    use crate::testutil::{empty_store, import_files};

    #[test]
    fn history_is_newest_first_and_names_local_parents() {
        let (tmp, store) = empty_store();
        let base = import_files(&store, &[("a", b"1234")], Some("base"));
        let upper = tmp.path().join("upper");
        fs::create_dir_all(&upper).expect("mkdir");
        fs::write(upper.join("b"), b"12").expect("write");
        let mut container_config = Map::new();
        container_config.insert("Cmd".into(), json!(["touch", "/b"]));
        let opts = CommitOptions {
            container_config,
            comment: "second".into(),
            reference: Some("child".parse().expect("ref")),
            ..CommitOptions::default()
        };
        let child = store
            .commit_container(&base.id, &upper, &opts)
            .expect("commit");
        let h = store.history("child").expect("history");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].id.as_ref(), Some(&child.id));
        assert_eq!(h[0].tags, vec!["child:latest"]);
        assert_eq!(h[0].created_by, "touch /b");
        assert_eq!(h[0].comment, "second");
        assert_eq!(h[0].size, 2);
        assert_eq!(
            h[1].id.as_ref(),
            Some(&base.id),
            "the base is known locally"
        );
        assert_eq!(h[1].size, 4);
        store.remove("base", false, &|_| false).expect("rmi");
        let h = store.history("child").expect("history");
        assert_eq!(h[1].id, None, "<missing> once the base is gone");
    }
}
