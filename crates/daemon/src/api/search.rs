//! `GET /images/search?term=&limit=&filters=` (`docker search`): the term's registry is
//! asked (`arca_registry::search`, credentials from `X-Registry-Auth`), then moby's filters
//! are applied here:
//! - `is-automated`: `true` yields nothing (Docker Hub's flag is deprecated and untrusted),
//!   and every result's `is_automated` is reported `false`;
//! - `is-official=true|false` keeps results whose flag matches;
//! - `stars=N` keeps results with at least N stars (the largest N when given several).
//!
//! Filters and `limit` are checked before the registry is contacted: an unknown filter, a
//! filter value that is not a boolean or number, or a limit outside 1..=100 is a 400. A
//! registry that cannot be reached or answers badly is a 500 naming its URL, as moby's.

use arca_registry::{SearchOptions, SearchResult};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::pull::credentials_of;
use crate::error::{ApiError, ApiResult};
use crate::query::{Filters, Q};

/// The filters moby accepts for a search.
const FILTERS: &[&str] = &["is-automated", "is-official", "stars"];

/// moby's `GetBoolOrDefault`: absent is `None`; the values must agree on true (`1`, `true`)
/// or false (`0`, `false`).
fn bool_filter(f: &Filters, key: &str) -> ApiResult<Option<bool>> {
    let Some(vals) = f.0.get(key) else {
        return Ok(None);
    };
    let is_false = vals.iter().any(|v| v == "0" || v == "false");
    let is_true = vals.iter().any(|v| v == "1" || v == "true");
    if is_false == is_true {
        return Err(ApiError::invalid(format!(
            "invalid filter '{key}={}'",
            vals.join(",")
        )));
    }
    Ok(Some(is_true))
}

/// The smallest star count a result needs (`None`: no `stars` filter).
fn stars_filter(f: &Filters) -> ApiResult<Option<i64>> {
    let Some(vals) = f.0.get("stars") else {
        return Ok(None);
    };
    let mut least = 0;
    for v in vals {
        let n: i64 = v.parse().map_err(|_| {
            ApiError::invalid(format!(
                "invalid filter 'stars={v}': strconv.Atoi: parsing {v:?}: invalid syntax"
            ))
        })?;
        least = least.max(n);
    }
    Ok(Some(least))
}

/// What the filters keep of `results`, with `is_automated` cleared.
fn apply(
    results: Vec<SearchResult>,
    official: Option<bool>,
    stars: Option<i64>,
) -> Vec<SearchResult> {
    results
        .into_iter()
        .filter(|r| official.is_none_or(|o| r.is_official == o))
        .filter(|r| stars.is_none_or(|s| r.star_count >= s))
        .map(|r| SearchResult {
            is_automated: false,
            ..r
        })
        .collect()
}

/// `GET /images/search`
pub async fn search(State(st): State<AppState>, q: Q, headers: HeaderMap) -> ApiResult<Response> {
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => 0,
        Some(l) => l
            .parse::<u32>()
            .map_err(|_| ApiError::invalid(format!("invalid limit specified: {l:?}")))?,
    };
    let f = q.filters(FILTERS)?;
    let automated = bool_filter(&f, "is-automated")?;
    let official = bool_filter(&f, "is-official")?;
    let stars = stars_filter(&f)?;
    let term = q.get("term").unwrap_or("");
    let opts = SearchOptions {
        limit,
        auth: credentials_of(&headers),
        insecure_registries: st.registry.insecure_registries.clone(),
    };
    let results = arca_registry::search(term, &opts).await.map_err(|e| {
        tracing::info!(term, error = %e, "registry search failed");
        ApiError::new(e.kind(), e.to_string())
    })?;
    let out = if automated == Some(true) {
        Vec::new()
    } else {
        apply(results, official, stars)
    };
    let body = serde_json::to_vec(&out)
        .map_err(|e| ApiError::from_internal("cannot encode search results", &e))?;
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pairs: &[(&str, &[&str])]) -> Filters {
        Filters(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
        )
    }

    fn result(name: &str, stars: i64, official: bool) -> SearchResult {
        SearchResult {
            name: name.into(),
            star_count: stars,
            is_official: official,
            is_automated: true,
            ..Default::default()
        }
    }

    #[test]
    fn filters_keep_official_and_starred_results_like_moby() {
        let all = vec![
            result("a", 10, true),
            result("b", 3, false),
            result("c", 0, false),
        ];
        let names = |r: Vec<SearchResult>| r.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(apply(all.clone(), Some(true), None)), ["a"]);
        assert_eq!(names(apply(all.clone(), Some(false), Some(1))), ["b"]);
        assert_eq!(names(apply(all.clone(), None, Some(3))), ["a", "b"]);
        assert!(apply(all, None, None).iter().all(|r| !r.is_automated));
    }

    #[test]
    fn filter_values_must_be_booleans_or_numbers() {
        let f = filters(&[("is-official", &["true"]), ("stars", &["2", "5"])]);
        assert_eq!(bool_filter(&f, "is-official").expect("ok"), Some(true));
        assert_eq!(bool_filter(&f, "is-automated").expect("ok"), None);
        assert_eq!(stars_filter(&f).expect("ok"), Some(5), "the largest wins");
        let bad = filters(&[("is-official", &["yes"])]);
        assert_eq!(
            bool_filter(&bad, "is-official").expect_err("bad").message,
            "invalid filter 'is-official=yes'"
        );
        let conflicting = filters(&[("is-official", &["true", "false"])]);
        assert!(bool_filter(&conflicting, "is-official").is_err());
        let bad = filters(&[("stars", &["many"])]);
        assert_eq!(
            stars_filter(&bad).expect_err("bad").message,
            "invalid filter 'stars=many': strconv.Atoi: parsing \"many\": invalid syntax"
        );
    }
}
