//! Image references (`busybox`, `localhost:5000/app:1.2`, `name@sha256:…`), normalised the way
//! Docker does: a name without a registry lives on `docker.io`, a single path component there
//! is under `library/`, and a reference without tag or digest means `:latest`.

use std::fmt;
use std::str::FromStr;

use crate::Digest;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?}")]
    Invalid(String),
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid tag format: {0:?}")]
    Tag(String),
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or runs of '-'.
    if c.is_empty() {
        return false;
    }
    let b = c.as_bytes();
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut prev_sep = false;
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            prev_sep = false;
        } else if ch == b'.' || ch == b'_' || ch == b'-' {
            if prev_sep
                && !(ch == b'_' && b[i - 1] == b'_' && (i < 2 || b[i - 2] != b'_'))
                && !(ch == b'-' && b[i - 1] == b'-')
            {
                return false;
            }
            prev_sep = true;
        } else {
            return false;
        }
        i += 1;
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || h.ends_with(']') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || b == b'.'
                || b == b'-'
                || b == b'['
                || b == b']'
                || b == b':'
        })
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.' || *c == b'-')
}

impl Reference {
    /// Builds a reference from a repository (`busybox`, `localhost:5000/x`) and a tag.
    pub fn with_tag(repo: &str, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag(tag.to_owned()));
        }
        let mut r: Reference = repo.parse()?;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(ReferenceError::Invalid(repo.to_owned()));
        }
        r.tag = Some(tag.to_owned());
        Ok(r)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path on its registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository in Docker's familiar form (`busybox`, `localhost:5000/app`).
    pub fn familiar_repo(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The full repository name (`docker.io/library/busybox`).
    pub fn full_repo(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// This reference, with `:latest` added when it has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// Whether the string names an image by ID (full `sha256:` digest or a hex prefix).
    pub fn looks_like_id(s: &str) -> bool {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        !hex.is_empty()
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ReferenceError::Invalid(s.to_owned());
        if s.is_empty() || s.len() > 255 + 128 + 72 {
            return Err(invalid());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|_| invalid())?)),
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = rest.split_at(last_slash + i);
                let t = &t[1..];
                if !valid_tag(t) {
                    return Err(ReferenceError::Tag(t.to_owned()));
                }
                (n, Some(t.to_owned()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid());
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                if !valid_domain(first) {
                    return Err(invalid());
                }
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_owned()
        } else {
            domain
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(path));
        }
        if !path.split('/').all(valid_component) {
            return Err(invalid());
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    /// The familiar form: `busybox:latest`, `localhost:5000/app@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar_repo())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().expect(s)
    }

    #[test]
    fn short_names_normalise_to_docker_library() {
        let x = r("busybox");
        assert_eq!(x.domain(), "docker.io");
        assert_eq!(x.path(), "library/busybox");
        assert_eq!(x.tag(), None);
        assert_eq!(x.clone().with_default_tag().to_string(), "busybox:latest");
        assert_eq!(x.full_repo(), "docker.io/library/busybox");
    }

    #[test]
    fn registry_with_port_is_a_domain_not_a_tag() {
        let x = r("localhost:5000/app");
        assert_eq!(x.domain(), "localhost:5000");
        assert_eq!(x.tag(), None);
        let y = r("localhost:5000/team/app:1.2");
        assert_eq!(y.path(), "team/app");
        assert_eq!(y.tag(), Some("1.2"));
        assert_eq!(y.to_string(), "localhost:5000/team/app:1.2");
    }

    #[test]
    fn docker_io_prefixes_display_familiar() {
        assert_eq!(r("docker.io/library/busybox:1").to_string(), "busybox:1");
        assert_eq!(r("index.docker.io/foo/bar").to_string(), "foo/bar");
    }

    #[test]
    fn digests_parse() {
        let d = format!("busybox@sha256:{}", "a".repeat(64));
        assert!(r(&d).digest().is_some());
    }

    #[test]
    fn bad_references_are_rejected() {
        for s in [
            "",
            "Busybox",
            "a//b",
            "a:",
            "-a",
            "a@sha256:12",
            "a:b c",
            "a/:x",
        ] {
            assert!(s.parse::<Reference>().is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn ids_are_recognised() {
        assert!(Reference::looks_like_id("abc123"));
        assert!(Reference::looks_like_id(&format!(
            "sha256:{}",
            "0".repeat(64)
        )));
        assert!(!Reference::looks_like_id("busybox"));
    }
}
