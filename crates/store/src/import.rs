//! `docker import`: a root filesystem tarball becomes a one-layer image.

use std::collections::HashSet;
use std::io::Read;

use arca_model::Reference;
use chrono::SecondsFormat;
use serde_json::json;

use crate::changes;
use crate::image::{Image, LayerBlob};
use crate::{Store, StoreError};

/// The host's architecture in OCI terms (`amd64`, `arm64`, …).
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

impl Store {
    /// Imports the rootfs tarball `input` (plain, gzip or zstd) as a new image with an empty
    /// config for this host, modified by the Dockerfile-style `changes` (`CMD`, `ENTRYPOINT`,
    /// `ENV`, `WORKDIR`, `USER`, `LABEL`, `EXPOSE`, `STOPSIGNAL`, `VOLUME`). `message` becomes
    /// the history comment; `reference`, if given, tags the image.
    pub fn import(
        &self,
        input: impl Read,
        reference: Option<&Reference>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<Image, StoreError> {
        let container_config = changes::parse(changes)?;
        if reference.is_some_and(|r| r.digest().is_some()) {
            return Err(StoreError::DigestTag);
        }
        let _lease = self.lease();
        let (blob, _) = self.write_blob(input, None)?;
        let (diff_id, _) = self.unpack_snapshot(self.open_blob(&blob)?, None, &blob.to_string())?;
        let now = chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let comment = message
            .filter(|m| !m.is_empty())
            .unwrap_or("Imported from -");
        let config = json!({
            "architecture": host_arch(),
            "os": "linux",
            "created": now,
            "comment": comment,
            "config": container_config,
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": now, "comment": comment }],
        });
        let config = serde_json::to_vec(&config).expect("a JSON value always serializes");
        let verified = HashSet::from([(blob.clone(), diff_id)]);
        let layers = [LayerBlob {
            digest: blob,
            media_type: String::new(),
        }];
        let prepared = self.prepare(&config, &layers, &verified)?;
        let id = prepared.record.id.clone();
        let tags: Vec<_> = reference
            .map(|r| (r.clone(), id.clone()))
            .into_iter()
            .collect();
        self.commit(&[prepared], &tags)?;
        self.image_by_id(&id)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use crate::testutil::{RawTar, empty_store};

    use super::*;

    #[test]
    fn import_builds_a_one_layer_image_with_changes() {
        let (_tmp, store) = empty_store();
        let tar = RawTar::new().file("bin/tool", b"#!/bin/sh\n").finish();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let changes = [
            r#"CMD ["/bin/tool", "--flag"]"#.to_owned(),
            "ENTRYPOINT /bin/sh".to_owned(),
            "ENV A=1 B=\"two words\"".to_owned(),
            "WORKDIR /srv".to_owned(),
            "USER nobody".to_owned(),
            "LABEL org.example=yes".to_owned(),
            "EXPOSE 80 53/udp".to_owned(),
            "STOPSIGNAL SIGINT".to_owned(),
        ];
        let r: Reference = "imported:v1".parse().expect("ref");
        let img = store
            .import(&gz[..], Some(&r), &changes, Some("from a test"))
            .expect("import");
        let c = &img.config;
        assert_eq!(c["os"], "linux");
        assert_eq!(c["architecture"], host_arch());
        assert_eq!(c["config"]["Cmd"], json!(["/bin/tool", "--flag"]));
        assert_eq!(
            c["config"]["Entrypoint"],
            json!(["/bin/sh", "-c", "/bin/sh"])
        );
        assert_eq!(c["config"]["Env"], json!(["A=1", "B=two words"]));
        assert_eq!(c["config"]["WorkingDir"], "/srv");
        assert_eq!(c["config"]["User"], "nobody");
        assert_eq!(c["config"]["Labels"], json!({"org.example": "yes"}));
        assert_eq!(
            c["config"]["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}})
        );
        assert_eq!(c["config"]["StopSignal"], "SIGINT");
        assert_eq!(c["history"][0]["comment"], "from a test");
        assert_eq!(
            c["rootfs"]["diff_ids"][0],
            json!(arca_model::Digest::of(&tar))
        );
        assert_eq!(
            img.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(img.layers[0].size, gz.len() as u64);
        assert_eq!(img.repo_tags, vec!["imported:v1"]);
        assert!(!img.created.is_empty());
        let tool = store.layer_dirs(&img)[0].join("bin/tool");
        assert_eq!(fs::read(tool).expect("read"), b"#!/bin/sh\n");
    }

    #[test]
    fn import_rejects_unknown_changes_before_writing_anything() {
        let (_tmp, store) = empty_store();
        let before = store.list().expect("list").len();
        let tar = RawTar::new().file("a", b"a").finish();
        let err = store
            .import(&tar[..], None, &["RUN rm -rf /".to_owned()], None)
            .expect_err("unknown");
        assert_eq!(err.kind(), arca_model::ErrorKind::InvalidArgument);
        assert_eq!(store.list().expect("list").len(), before);
    }

    #[test]
    fn import_of_zstd_and_default_comment() {
        let (_tmp, store) = empty_store();
        let tar = RawTar::new().file("z", b"z").finish();
        let zs = zstd::encode_all(&tar[..], 3).expect("zstd");
        let img = store.import(&zs[..], None, &[], None).expect("import");
        assert_eq!(img.config["history"][0]["comment"], "Imported from -");
        assert!(img.layers[0].media_type.ends_with("+zstd"));
        assert!(img.repo_tags.is_empty());
    }
}
