//! Query-string helpers with Docker's rules (booleans: `""`, `0`, `no`, `false`, `none` are
//! false; repeated keys are kept).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// All query pairs, in order, repeated keys kept.
#[derive(Debug, Default, Clone)]
pub struct Q(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = url_decode_pairs(q);
        Ok(Q(pairs))
    }
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Q {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Docker's boolean rule; absent is `default`.
    pub fn bool(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) => !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }

    /// Docker's `filters` parameter, in either form clients send: the map form
    /// `{"label":{"a=b":true}}` (docker CLI) or the list form `{"label":["a=b"]}`
    /// (docker-py, bollard). Keys not in `allowed` are refused, as Docker does.
    pub fn filters(&self, allowed: &[&str]) -> Result<Filters, ApiError> {
        let mut out = Filters::default();
        let Some(raw) = self.get("filters").filter(|f| !f.is_empty()) else {
            return Ok(out);
        };
        let bad = || ApiError::invalid(format!("invalid filters: {raw}"));
        let v: serde_json::Value = serde_json::from_str(raw).map_err(|_| bad())?;
        let obj = v.as_object().ok_or_else(bad)?;
        for (k, vals) in obj {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
            let list: Vec<String> = match vals {
                serde_json::Value::Object(m) => m.keys().cloned().collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
                _ => return Err(bad()),
            };
            out.0.insert(k.clone(), list);
        }
        Ok(out)
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("invalid value for {key}: {v:?}"))),
        }
    }
}

/// Parsed `filters`: key → accepted values (a value matching any of them passes).
#[derive(Debug, Default, Clone)]
pub struct Filters(pub std::collections::HashMap<String, Vec<String>>);

impl Filters {
    /// True when `key` is not filtered, or `pred` holds for one of its values.
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        self.0
            .get(key)
            .is_none_or(|vals| vals.iter().any(|v| pred(v)))
    }

    /// Labels: every `label` value must match (`key` or `key=value`), as Docker requires.
    pub fn labels_match(&self, labels: &std::collections::HashMap<String, String>) -> bool {
        self.0.get("label").is_none_or(|vals| {
            vals.iter().all(|want| match want.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
                None => labels.contains_key(want.as_str()),
            })
        })
    }
}

/// Shell-style match with `*` and `?` (for `reference` filters).
pub fn glob(pattern: &str, text: &str) -> bool {
    fn rec(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], t) || (!t.is_empty() && rec(p, &t[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &t[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_docker_rules() {
        let q = Q(url_decode_pairs("a=1&b=false&c=&d=true&e=none"));
        assert!(q.bool("a", false));
        assert!(!q.bool("b", true));
        assert!(!q.bool("c", true));
        assert!(q.bool("d", false));
        assert!(!q.bool("e", true));
        assert!(q.bool("missing", true));
    }

    #[test]
    fn filters_accept_map_and_list_forms() {
        let q = Q(url_decode_pairs(
            "filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%2C%22status%22%3A%5B%22exited%22%5D%7D",
        ));
        let f = q.filters(&["label", "status"]).expect("filters");
        assert_eq!(f.0["label"], vec!["a=b"]);
        assert_eq!(f.0["status"], vec!["exited"]);
        let labels = std::collections::HashMap::from([("a".to_string(), "b".to_string())]);
        assert!(f.labels_match(&labels));
        assert!(f.any("status", |s| s == "exited"));
        assert!(q.filters(&["status"]).is_err(), "label not allowed");
        assert!(
            Q(url_decode_pairs("filters=nonsense"))
                .filters(&[])
                .is_err()
        );
    }

    #[test]
    fn glob_matches_like_path_match() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("b?sybox", "busybox"));
        assert!(!glob("busy", "busybox"));
    }

    #[test]
    fn percent_encoding_and_repeats_are_decoded() {
        let q = Q(url_decode_pairs(
            "changes=CMD%20%5B%22x%22%5D&changes=ENV+A%3Db&fromSrc=-",
        ));
        assert_eq!(q.all("changes"), vec![r#"CMD ["x"]"#, "ENV A=b"]);
        assert_eq!(q.get("fromSrc"), Some("-"));
    }
}
