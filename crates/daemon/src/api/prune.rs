//! `POST /containers/prune` (stopped containers, with Docker's `until`, `label` and
//! `label!` filters) and `POST /build/prune`, plus the disk-usage walk that `/system/df`
//! and the prune reports share.
//!
//! Space figures follow Docker: a pruned container reclaims the size of its writable layer
//! (its upper directory), not its record or logs; sizes are apparent sizes (file lengths),
//! each inode counted once.
//!
//! Limits: arca has no build cache yet, so `/build/prune` validates its parameters and
//! reports that nothing was deleted (the docker CLI's `system prune` calls it and fails
//! without it).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::Event;
use crate::query::{Filters, Q};

/// Bytes under `dir` as Docker's `directory.Size` counts them: every entry but directories
/// (symlinks by their own length), hard links once, entries that vanish meanwhile skipped.
/// `None` when `dir` itself cannot be read.
pub(super) fn disk_usage(dir: &FsPath) -> Option<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    let mut first = true;
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(_) if first => return None,
            Err(_) => continue,
        };
        first = false;
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.len() > 0 && (m.nlink() < 2 || seen.insert((m.dev(), m.ino()))) {
                total += m.len();
            }
        }
    }
    Some(total)
}

/// Docker's `label!` rule for prune: an object is kept when it has *every* `label!` value
/// (`key` or `key=value`), not just one of them.
pub(super) fn excluded_by_not_labels(f: &Filters, labels: &HashMap<String, String>) -> bool {
    f.0.get("label!").is_some_and(|vals| {
        !vals.is_empty()
            && vals.iter().all(|want| match want.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
                None => labels.contains_key(want.as_str()),
            })
    })
}

/// Docker's single `until` prune filter, in seconds since the epoch.
pub(super) fn until_filter(f: &Filters) -> ApiResult<Option<i64>> {
    match f.0.get("until").map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([v]) => super::image_ops::until_timestamp(v)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("invalid filter 'until={v}'"))),
        Some(_) => Err(ApiError::invalid("more than one until filter specified")),
    }
}

/// The `prune` event Docker logs after a prune: no actor ID, the space as `reclaimed`.
pub(super) fn prune_event(kind: &'static str, reclaimed: u64) -> Event {
    let mut ev = Event::volume("", "prune");
    ev.kind = kind;
    ev.actor.attributes.clear();
    ev.add_attribute("reclaimed", &reclaimed.to_string());
    // Docker fills the deprecated `status` of container and image events; the empty actor
    // ID leaves `id` out.
    ev.status = matches!(kind, "container" | "image").then(|| "prune".to_owned());
    ev.id = None;
    ev
}

/// One container prune at a time, as Docker: two at once would both count the same
/// containers.
static CONTAINER_PRUNE_RUNNING: AtomicBool = AtomicBool::new(false);

struct PruneGuard;

impl PruneGuard {
    fn take() -> ApiResult<Self> {
        CONTAINER_PRUNE_RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| PruneGuard)
            .map_err(|_| ApiError::conflict("a prune operation is already running"))
    }
}

impl Drop for PruneGuard {
    fn drop(&mut self) {
        CONTAINER_PRUNE_RUNNING.store(false, Ordering::Release);
    }
}

/// `POST /containers/prune?filters=`: removes the containers that are not running, paused
/// or restarting and pass the filters.
pub async fn containers(State(st): State<AppState>, q: Q) -> ApiResult<Json<Value>> {
    let f = q.filters(&["until", "label", "label!"])?;
    let until = until_filter(&f)?;
    let _guard = PruneGuard::take()?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for c in st.containers.all() {
        let rec = c.snapshot();
        if rec.state.status.is_running() || c.subscribe().borrow().removed {
            continue;
        }
        let created = chrono::DateTime::parse_from_rfc3339(&rec.created)
            .map(|t| t.timestamp())
            .unwrap_or(0);
        let labels = rec.config.labels.clone().unwrap_or_default();
        if until.is_some_and(|u| created > u)
            || !f.labels_match(&labels)
            || excluded_by_not_labels(&f, &labels)
        {
            continue;
        }
        let upper = st.containers.paths.upper_dir(&c.id);
        let size = tokio::task::spawn_blocking(move || disk_usage(&upper).unwrap_or(0))
            .await
            .map_err(|e| ApiError::internal(format!("prune task failed: {e}")))?;
        match st.containers.remove(&c, false).await {
            Ok(()) => {
                reclaimed += size;
                deleted.push(c.id.to_string());
            }
            // Started again meanwhile, or its files would not go: Docker skips it too.
            Err(e) => tracing::warn!(id = %c.id, error = %e.message, "cannot prune container"),
        }
    }
    st.containers
        .events
        .publish(prune_event("container", reclaimed));
    tracing::info!(count = deleted.len(), reclaimed, "containers pruned");
    Ok(Json(json!({
        "ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
        "SpaceReclaimed": reclaimed,
    })))
}

/// `POST /build/prune?all=&filters=&keep-storage=&reserved-space=&max-used-space=&min-free-space=`:
/// arca keeps no build cache, so there is never anything to delete.
pub async fn build_cache(q: Q) -> ApiResult<Json<Value>> {
    if let Some(raw) = q.get("filters").filter(|f| !f.is_empty())
        && !serde_json::from_str::<Value>(raw).is_ok_and(|v| v.is_object())
    {
        return Err(ApiError::invalid(format!("invalid filters: {raw}")));
    }
    for key in [
        "keep-storage",
        "reserved-space",
        "max-used-space",
        "min-free-space",
    ] {
        if let Some(v) = q.get(key).filter(|v| !v.is_empty())
            && v.parse::<i64>().is_err()
        {
            return Err(ApiError::invalid(format!(
                "{key} is in bytes and expects an integer, got {v}"
            )));
        }
    }
    Ok(Json(json!({"CachesDeleted": [], "SpaceReclaimed": 0})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        let mut f = Filters::default();
        for (k, v) in pairs {
            f.0.entry((*k).to_owned())
                .or_default()
                .push((*v).to_owned());
        }
        f
    }

    #[test]
    fn not_label_filters_exclude_only_when_all_match() {
        let labels = HashMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        assert!(!excluded_by_not_labels(&filters(&[]), &labels));
        assert!(excluded_by_not_labels(
            &filters(&[("label!", "a")]),
            &labels
        ));
        assert!(excluded_by_not_labels(
            &filters(&[("label!", "a=1"), ("label!", "b")]),
            &labels
        ));
        assert!(!excluded_by_not_labels(
            &filters(&[("label!", "a=1"), ("label!", "c")]),
            &labels
        ));
        assert!(!excluded_by_not_labels(
            &filters(&[("label!", "a=2")]),
            &labels
        ));
    }

    #[test]
    fn until_filter_takes_one_value() {
        assert_eq!(until_filter(&filters(&[])).expect("none"), None);
        assert_eq!(
            until_filter(&filters(&[("until", "1700000000")])).expect("one"),
            Some(1_700_000_000)
        );
        assert!(until_filter(&filters(&[("until", "1h"), ("until", "2h")])).is_err());
        assert!(until_filter(&filters(&[("until", "soon")])).is_err());
    }

    #[test]
    fn disk_usage_counts_files_and_links_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("a"), vec![0u8; 1000]).expect("a");
        std::fs::write(d.join("sub/b"), vec![0u8; 24]).expect("b");
        std::fs::hard_link(d.join("a"), d.join("sub/a2")).expect("link");
        std::os::unix::fs::symlink("a", d.join("s")).expect("symlink");
        std::fs::write(d.join("empty"), b"").expect("empty");
        assert_eq!(disk_usage(d), Some(1000 + 24 + 1));
        assert_eq!(disk_usage(&d.join("missing")), None);
    }

    #[test]
    fn prune_events_carry_the_reclaimed_space() {
        let ev = prune_event("container", 42);
        let v = serde_json::to_value(&ev).expect("json");
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "prune");
        assert_eq!(v["status"], "prune");
        assert_eq!(v["Actor"]["ID"], "");
        assert_eq!(v["Actor"]["Attributes"], json!({"reclaimed": "42"}));
        assert!(v.get("id").is_none() && v.get("from").is_none());
        let v = serde_json::to_value(prune_event("network", 0)).expect("json");
        assert!(v.get("status").is_none());
    }
}
