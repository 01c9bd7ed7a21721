//! `GET /events`: past events from `since`, then live ones until `until` (or until the
//! client hangs up), as newline-delimited JSON. Headers go out at once.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::error::ApiResult;
use crate::events::{Event, FILTER_KEYS, parse_time};
use crate::query::Q;

fn line(ev: &Event) -> Bytes {
    let mut v = serde_json::to_vec(ev).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn events(State(st): State<AppState>, q: Q) -> ApiResult<Response> {
    let filters = q.filters(FILTER_KEYS)?;
    let time = |key| {
        q.get(key)
            .filter(|s| !s.is_empty())
            .map(parse_time)
            .transpose()
    };
    let since = time("since")?;
    let until = time("until")?;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let (past, rx) = st.containers.events.subscribe(
        since.is_some() || until.is_some(),
        since.unwrap_or(0),
        until,
    );
    let past: Vec<Event> = past.into_iter().filter(|e| e.matches(&filters)).collect();
    // An `until` in the past: history only.
    let live = until.is_none_or(|u| u > now).then_some(rx);
    let deadline = until.map(|u| {
        let wait = u128::try_from(u.saturating_sub(now)).unwrap_or(0);
        tokio::time::Instant::now()
            + std::time::Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))
    });
    let state = (past.into_iter(), live, filters);
    let body =
        futures_util::stream::unfold(state, move |(mut past, mut live, filters)| async move {
            if let Some(ev) = past.next() {
                return Some((Ok::<_, std::io::Error>(line(&ev)), (past, live, filters)));
            }
            let rx = live.as_mut()?;
            loop {
                let next = async {
                    match deadline {
                        Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                        None => Some(rx.recv().await),
                    }
                };
                match next.await? {
                    Ok(ev) if ev.matches(&filters) => {
                        return Some((Ok(line(&ev)), (past, live, filters)));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "slow events subscriber skipped events");
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_filter_keys_are_refused() {
        let q = |raw: &str| Q(vec![("filters".into(), raw.into())]);
        let ok = q(r#"{"label":{"team=a":true},"type":["container"]}"#).filters(FILTER_KEYS);
        assert_eq!(ok.expect("known keys").0.len(), 2);
        assert!(q(r#"{"bogus":["1"]}"#).filters(FILTER_KEYS).is_err());
    }
}
