//! The event bus behind `GET /events`: every published [`Event`] goes to live subscribers
//! (a `broadcast` channel) and into a bounded history that `since` replays.
//!
//! Limits: the history keeps the last [`HISTORY`] events and lives only in memory (a
//! restarted arcad starts with none, as Docker does). A subscriber that falls more than
//! [`CAPACITY`] events behind skips the ones it missed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::containers::record::ContainerRecord;
use crate::error::{ApiError, ApiResult};
use crate::query::Filters;

/// Live subscribers may lag this many events before they skip some.
pub const CAPACITY: usize = 1024;
/// Events kept for `since`.
pub const HISTORY: usize = 1000;

/// The filter keys `GET /events` accepts (Docker's, minus the swarm ones).
pub const FILTER_KEYS: &[&str] = &[
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "scope",
    "type",
    "volume",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// Docker's `events.Message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Deprecated copies of `Action`, `Actor.ID` and the image, filled for container and
    /// image events (Compose v1 still reads them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: &'static str,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

fn now_nanos() -> i64 {
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .expect("the clock is within the years 1677..2262")
}

impl Event {
    fn new(kind: &'static str, action: String, actor: Actor) -> Self {
        let time_nano = now_nanos();
        let legacy = matches!(kind, "container" | "image");
        Self {
            status: legacy.then(|| action.clone()),
            id: legacy.then(|| actor.id.clone()),
            from: (kind == "container")
                .then(|| actor.attributes.get("image").cloned())
                .flatten(),
            kind,
            action,
            actor,
            scope: "local",
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
    }

    /// A container event: attributes are the container's labels, `name`, `image`, then
    /// `extra` (`exitCode`, `signal`, `execID`…).
    pub fn container(
        rec: &ContainerRecord,
        action: impl Into<String>,
        extra: &[(&str, String)],
    ) -> Self {
        let mut attributes: BTreeMap<String, String> = rec
            .config
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attributes.insert("name".into(), rec.name.clone());
        attributes.insert("image".into(), rec.image.clone());
        for (k, v) in extra {
            attributes.insert((*k).to_owned(), v.clone());
        }
        let actor = Actor {
            id: rec.id.to_string(),
            attributes,
        };
        Self::new("container", action.into(), actor)
    }

    /// An image event: attributes are the image's labels and `name`.
    pub fn image(id: &str, name: &str, labels: Option<&serde_json::Value>, action: &str) -> Self {
        let mut attributes: BTreeMap<String, String> = labels
            .and_then(|l| l.as_object())
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        attributes.insert("name".into(), name.to_owned());
        let actor = Actor {
            id: id.to_owned(),
            attributes,
        };
        Self::new("image", action.to_owned(), actor)
    }

    /// A network event: attributes `name`, `type` (the driver), and `container` for
    /// connect/disconnect.
    pub fn network(id: &str, name: &str, driver: &str, action: &str) -> Self {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".into(), name.to_owned());
        attributes.insert("type".into(), driver.to_owned());
        let actor = Actor {
            id: id.to_owned(),
            attributes,
        };
        Self::new("network", action.to_owned(), actor)
    }

    /// A volume event: attribute `driver`.
    pub fn volume(name: &str, action: &str) -> Self {
        let mut attributes = BTreeMap::new();
        attributes.insert("driver".into(), "local".into());
        let actor = Actor {
            id: name.to_owned(),
            attributes,
        };
        Self::new("volume", action.to_owned(), actor)
    }

    /// Adds (or replaces) an attribute.
    pub fn add_attribute(&mut self, key: &str, value: &str) {
        self.actor
            .attributes
            .insert(key.to_owned(), value.to_owned());
    }

    /// Docker's event filter (`daemon/events/filter.go`): every filtered key must match.
    pub fn matches(&self, f: &Filters) -> bool {
        let attr = |k: &str| self.actor.attributes.get(k).map_or("", String::as_str);
        let id = self.actor.id.as_str();
        // Names and IDs match by prefix (Docker's FuzzyMatch), and only events of the
        // filter's own type (`container=web` must not pass an image named `web:1`).
        let fuzzy = |key: &str| {
            f.any(key, |v| {
                self.kind == key && (id.starts_with(v) || attr("name").starts_with(v))
            })
        };
        let image_name = attr(if self.kind == "image" {
            "name"
        } else {
            "image"
        });
        let labels: HashMap<String, String> = self
            .actor
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        f.any("event", |v| {
            v == self.action || self.action.split_once(": ").is_some_and(|(a, _)| a == v)
        }) && f.any("type", |v| v == self.kind)
            && f.any("scope", |v| v == self.scope)
            && ["container", "daemon", "network", "volume"]
                .iter()
                .all(|k| fuzzy(k))
            && f.any("image", |v| {
                [id, image_name]
                    .iter()
                    .any(|s| *s == v || strip_tag(s) == v)
            })
            && f.labels_match(&labels)
    }
}

/// `busybox:latest` → `busybox` (a registry port is not a tag).
fn strip_tag(s: &str) -> &str {
    match s.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !s.starts_with("sha256:") => repo,
        _ => s,
    }
}

/// Parses Docker's `since`/`until`: unix seconds, optionally fractional (`1700000000.5`),
/// or RFC 3339. Returns unix nanoseconds.
pub fn parse_time(s: &str) -> ApiResult<i64> {
    let bad = || ApiError::invalid(format!("invalid timestamp: {s:?}"));
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let unsigned = secs.strip_prefix('-').unwrap_or(secs);
    if !unsigned.is_empty() && digits(unsigned) && digits(frac) {
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let mut nanos = 0i64;
        for (i, b) in frac.bytes().take(9).enumerate() {
            nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
        }
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(if secs < 0 { -nanos } else { nanos }))
            .ok_or_else(bad);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|d| d.timestamp_nanos_opt())
        .ok_or_else(bad)
}

struct Inner {
    history: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

/// The bus. Cloning shares it.
#[derive(Clone)]
pub struct Events(Arc<Inner>);

impl Default for Events {
    fn default() -> Self {
        Self(Arc::new(Inner {
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            live: broadcast::channel(CAPACITY).0,
        }))
    }
}

impl Events {
    fn history(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        self.0.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn publish(&self, ev: Event) {
        tracing::debug!(kind = ev.kind, action = %ev.action, id = %ev.actor.id, "event");
        // Under the history lock, so a subscriber sees each event exactly once: either in
        // its replay or live.
        let mut h = self.history();
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(ev.clone());
        // No subscribers is not an error.
        let _ = self.0.live.send(ev);
    }

    /// Past events with `since <= timeNano <= until` (when `replay`), and the live feed
    /// from this moment on.
    pub fn subscribe(
        &self,
        replay: bool,
        since: i64,
        until: Option<i64>,
    ) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let h = self.history();
        let past = if replay {
            h.iter()
                .filter(|e| e.time_nano >= since && until.is_none_or(|u| e.time_nano <= u))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        (past, self.0.live.subscribe())
    }
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

    fn container_event(action: &str) -> Event {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_owned(), "web".to_owned());
        attributes.insert("image".to_owned(), "busybox:latest".to_owned());
        attributes.insert("team".to_owned(), "a".to_owned());
        Event::new(
            "container",
            action.to_owned(),
            Actor {
                id: "abc123".into(),
                attributes,
            },
        )
    }

    #[test]
    fn container_events_serialize_as_docker_messages() {
        let v = serde_json::to_value(container_event("die")).expect("json");
        assert_eq!(v["status"], "die");
        assert_eq!(v["id"], "abc123");
        assert_eq!(v["from"], "busybox:latest");
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(v["Actor"]["Attributes"]["team"], "a");
        assert_eq!(v["scope"], "local");
        assert_eq!(
            v["time"].as_i64().expect("time"),
            v["timeNano"].as_i64().expect("nanos") / 1_000_000_000
        );
    }

    #[test]
    fn filters_follow_docker_rules() {
        let ev = container_event("exec_create: sh -c true");
        assert!(ev.matches(&filters(&[])));
        assert!(ev.matches(&filters(&[("event", "exec_create")])));
        assert!(ev.matches(&filters(&[("event", "exec_create: sh -c true")])));
        assert!(!ev.matches(&filters(&[("event", "exec_start")])));
        assert!(ev.matches(&filters(&[("container", "web")])));
        assert!(ev.matches(&filters(&[("container", "abc")])));
        assert!(!ev.matches(&filters(&[("container", "db")])));
        assert!(ev.matches(&filters(&[("image", "busybox")])));
        assert!(ev.matches(&filters(&[("label", "team=a"), ("type", "container")])));
        assert!(!ev.matches(&filters(&[("label", "team=b")])));
        assert!(!ev.matches(&filters(&[("type", "image")])));
        assert!(!ev.matches(&filters(&[("network", "web2")])));
        let img = Event::image("sha256:1", "web:1", None, "tag");
        assert!(!img.matches(&filters(&[("container", "web")])));
        assert!(img.matches(&filters(&[("image", "web")])));
    }

    #[test]
    fn timestamps_parse_as_seconds_or_rfc3339() {
        assert_eq!(parse_time("12").expect("int"), 12_000_000_000);
        assert_eq!(parse_time("12.5").expect("frac"), 12_500_000_000);
        assert_eq!(parse_time("12.000000001").expect("ns"), 12_000_000_001);
        assert_eq!(
            parse_time("1970-01-01T00:00:12.25Z").expect("rfc3339"),
            12_250_000_000
        );
        assert!(parse_time("soon").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn history_is_bounded_and_replayed_by_time() {
        let bus = Events::default();
        for _ in 0..HISTORY + 5 {
            bus.publish(container_event("start"));
        }
        let (all, _) = bus.subscribe(true, 0, None);
        assert_eq!(all.len(), HISTORY);
        let last = all.last().expect("one").time_nano;
        let (tail, _) = bus.subscribe(true, last, None);
        assert!(!tail.is_empty() && tail.iter().all(|e| e.time_nano >= last));
        let (none, mut rx) = bus.subscribe(false, 0, None);
        assert!(none.is_empty());
        bus.publish(container_event("die"));
        assert_eq!(rx.try_recv().expect("live").action, "die");
    }
}
