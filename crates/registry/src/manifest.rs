//! Manifests as the Distribution API serves them: Docker v2 schema 2 and OCI image manifests,
//! Docker manifest lists and OCI image indexes, and platform selection among an index's
//! entries. Parsed here (not by `oci-client`) so that unknown media types and platform
//! mismatches get Docker's wording.

use arca_model::Digest;
use serde::Deserialize;

pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// What the `Accept` header of a manifest request lists.
pub(crate) const ACCEPTED: &[&str] = &[DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX];

/// Layer media types whose blobs the store can unpack (it detects the compression itself).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
];

/// Config media types of runnable images.
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.oci.image.config.v1+json",
];

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// An index entry's platform (`os`, `architecture`, `variant` as in the OCI spec).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Manifest {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index {
        manifests: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// Why a manifest cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ManifestError {
    #[error("unsupported media type {0}")]
    MediaType(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl Manifest {
    /// Parses a manifest body. Its `mediaType` field (optional in OCI documents, whose shape
    /// then tells) must be one of [`ACCEPTED`]; so must every layer and the config.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ManifestError> {
        let raw: Raw =
            serde_json::from_slice(body).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        if let Some(v) = raw.schema_version
            && v != 2
        {
            // Schema 1 (signed JWS manifests) was removed from Docker too.
            return Err(ManifestError::MediaType(format!(
                "application/vnd.docker.distribution.manifest.v{v}+json"
            )));
        }
        let kind = match raw.media_type.as_deref() {
            Some(t) if ACCEPTED.contains(&t) => t.to_owned(),
            Some(t) => return Err(ManifestError::MediaType(t.to_owned())),
            None if raw.manifests.is_some() => OCI_INDEX.to_owned(),
            None => OCI_MANIFEST.to_owned(),
        };
        if kind == OCI_INDEX || kind == DOCKER_LIST {
            let manifests = raw
                .manifests
                .ok_or_else(|| ManifestError::Invalid("an index without manifests".into()))?;
            return Ok(Self::Index { manifests });
        }
        let config = raw
            .config
            .ok_or_else(|| ManifestError::Invalid("no config descriptor".into()))?;
        if !config.media_type.is_empty() && !CONFIG_TYPES.contains(&config.media_type.as_str()) {
            return Err(ManifestError::MediaType(config.media_type));
        }
        let layers = raw.layers.unwrap_or_default();
        if let Some(l) = layers
            .iter()
            .find(|l| !LAYER_TYPES.contains(&l.media_type.as_str()))
        {
            return Err(ManifestError::MediaType(l.media_type.clone()));
        }
        Ok(Self::Image { config, layers })
    }
}

/// A platform to select from an index: Docker's `--platform os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Wanted {
    /// Parses `os/arch[/variant]`, accepting the kernel's names (`x86_64`, `aarch64`) too.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?.to_ascii_lowercase();
        let arch = parts.next().filter(|p| !p.is_empty())?.to_ascii_lowercase();
        let variant = parts.next().map(str::to_ascii_lowercase);
        if parts.next().is_some() || variant.as_deref() == Some("") {
            return None;
        }
        let (arch, variant) = normalize_arch(&arch, variant);
        Some(Self { os, arch, variant })
    }

    /// This machine's platform, with Go's architecture names as registries use them.
    pub(crate) fn host() -> Self {
        let (arch, variant) = normalize_arch(std::env::consts::ARCH, None);
        Self {
            os: "linux".into(),
            arch,
            variant,
        }
    }

    fn matches(&self, p: &Platform) -> bool {
        let (arch, variant) = normalize_arch(&p.architecture, p.variant.clone());
        p.os == self.os && arch == self.arch && (self.variant.is_none() || variant == self.variant)
    }
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Go's names for an architecture (`GOARCH`) and the variant Docker implies for it.
fn normalize_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant),
        "aarch64" | "arm64" => {
            // arm64 means v8 unless told otherwise.
            let v = variant.filter(|v| v != "v8");
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => ("arm".into(), variant.or_else(|| Some("v7".into()))),
        "x86" | "i386" | "i686" => ("386".into(), variant),
        "powerpc64" | "ppc64le" => ("ppc64le".into(), variant),
        "loongarch64" | "loong64" => ("loong64".into(), variant),
        other => (other.to_owned(), variant),
    }
}

/// The entry of an index for `wanted`; among several, an exact variant match wins, then the
/// first listed (registries list the preferred one first).
pub(crate) fn select<'a>(entries: &'a [Descriptor], wanted: &Wanted) -> Option<&'a Descriptor> {
    let candidates: Vec<_> = entries
        .iter()
        .filter(|e| e.platform.as_ref().is_some_and(|p| wanted.matches(p)))
        .collect();
    candidates
        .iter()
        .find(|e| {
            e.platform.as_ref().is_some_and(|p| {
                normalize_arch(&p.architecture, p.variant.clone()).1 == wanted.variant
            })
        })
        .or(candidates.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(&[n]),
            size: 1,
            platform: Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            }),
        }
    }

    #[test]
    fn select_picks_the_requested_platform() {
        let entries = [
            entry("linux", "arm", Some("v6"), 1),
            entry("linux", "arm", Some("v7"), 2),
            entry("linux", "amd64", None, 3),
            entry("linux", "arm64", Some("v8"), 4),
            entry("windows", "amd64", None, 5),
        ];
        let pick =
            |s: &str| select(&entries, &Wanted::parse(s).expect(s)).map(|e| e.digest.clone());
        assert_eq!(pick("linux/amd64"), Some(Digest::of(&[3])));
        assert_eq!(pick("linux/x86_64"), Some(Digest::of(&[3])));
        assert_eq!(pick("linux/arm64"), Some(Digest::of(&[4])));
        assert_eq!(pick("linux/arm64/v8"), Some(Digest::of(&[4])));
        assert_eq!(pick("linux/arm"), Some(Digest::of(&[2])), "arm means v7");
        assert_eq!(pick("linux/arm/v6"), Some(Digest::of(&[1])));
        assert_eq!(pick("windows/amd64"), Some(Digest::of(&[5])));
        assert_eq!(pick("linux/s390x"), None);
    }

    #[test]
    fn host_platform_uses_go_names() {
        let host = Wanted::host();
        assert_eq!(host.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.to_string(), "linux/amd64");
        }
    }

    #[test]
    fn platform_strings_are_validated() {
        assert!(Wanted::parse("linux").is_none());
        assert!(Wanted::parse("linux/").is_none());
        assert!(Wanted::parse("linux/arm/").is_none());
        assert!(Wanted::parse("linux/arm/v7/x").is_none());
        assert_eq!(
            Wanted::parse("Linux/ARM64").expect("valid").to_string(),
            "linux/arm64"
        );
    }

    #[test]
    fn parse_accepts_docker_and_oci_manifests() {
        let d = Digest::of(b"x");
        for (mt, layer) in [
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            ),
            (OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar+zstd"),
        ] {
            let body = json!({
                "schemaVersion": 2, "mediaType": mt,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 1},
                "layers": [{"mediaType": layer, "digest": d, "size": 2}],
            });
            match Manifest::parse(&serde_json::to_vec(&body).expect("json")).expect(mt) {
                Manifest::Image { config, layers } => {
                    assert_eq!(config.digest, d);
                    assert_eq!(layers[0].size, 2);
                }
                other => panic!("{other:?}"),
            }
        }
        // OCI allows omitting mediaType: the shape tells.
        let index = json!({"schemaVersion": 2, "manifests": []});
        assert_eq!(
            Manifest::parse(&serde_json::to_vec(&index).expect("json")),
            Ok(Manifest::Index { manifests: vec![] })
        );
    }

    #[test]
    fn parse_names_unknown_media_types() {
        let d = Digest::of(b"x");
        let body = json!({"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"});
        assert_eq!(
            Manifest::parse(&serde_json::to_vec(&body).expect("json")),
            Err(ManifestError::MediaType(
                "application/vnd.example.thing+json".into()
            ))
        );
        let body = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+xz", "digest": d}],
        });
        let err = Manifest::parse(&serde_json::to_vec(&body).expect("json")).expect_err("xz");
        assert_eq!(
            err.to_string(),
            "unsupported media type application/vnd.oci.image.layer.v1.tar+xz"
        );
        let body = json!({"schemaVersion": 1, "name": "x"});
        assert!(matches!(
            Manifest::parse(&serde_json::to_vec(&body).expect("json")),
            Err(ManifestError::MediaType(_))
        ));
        assert!(matches!(
            Manifest::parse(b"nope"),
            Err(ManifestError::Invalid(_))
        ));
    }
}
