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
    fn percent_encoding_and_repeats_are_decoded() {
        let q = Q(url_decode_pairs(
            "changes=CMD%20%5B%22x%22%5D&changes=ENV+A%3Db&fromSrc=-",
        ));
        assert_eq!(q.all("changes"), vec![r#"CMD ["x"]"#, "ENV A=b"]);
        assert_eq!(q.get("fromSrc"), Some("-"));
    }
}
