//! `HostConfig.VolumesFrom` (`--volumes-from CONTAINER[:ro|:rw]`): at create, the other
//! container's mount points (binds, named and anonymous volumes, `--mount` tmpfs) are
//! copied at the same destinations, read-only when asked (moby's `registerMountPoints`).
//! The copies are the new container's own: removing the other container later changes
//! nothing. `--tmpfs` mounts are not mount points and are not copied, as in Docker.

use arca_api::docker::HostConfig;

use super::Containers;
use super::binds::{read_write, valid_mode};
use super::mount_points::{self, MountPoint};
use crate::error::{ApiError, ApiResult};

/// moby's `ParseVolumesFrom`: `(container, mode)`; no propagation or copy mode.
pub fn parse(spec: &str) -> ApiResult<(&str, &str)> {
    if spec.is_empty() {
        return Err(ApiError::invalid(
            "volumes-from specification cannot be an empty string",
        ));
    }
    let (id, mode) = spec.split_once(':').unwrap_or((spec, ""));
    if mode.is_empty() {
        return Ok((id, "rw"));
    }
    let forbidden = mode.split(',').any(|o| {
        o == "nocopy"
            || matches!(
                o,
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            )
    });
    if !valid_mode(mode) || forbidden {
        return Err(ApiError::invalid(format!("invalid mode: {mode}")));
    }
    Ok((id, mode))
}

impl Containers {
    /// The mount points `h.VolumesFrom` brings, in order (a later one wins a destination).
    /// An unknown container is a 400 (a 404 would make the docker CLI pull the image).
    pub(super) fn volumes_from(&self, h: &HostConfig) -> ApiResult<Vec<MountPoint>> {
        let mut out = Vec::new();
        for spec in h.volumes_from.iter().flatten() {
            let (id, mode) = parse(spec)?;
            let other = self.get(id).map_err(|e| match e.kind {
                arca_model::ErrorKind::NotFound => ApiError::invalid(e.message),
                _ => e,
            })?;
            let rw = read_write(mode);
            for p in mount_points::of(&other.snapshot()) {
                out.push(MountPoint {
                    rw: p.rw && rw,
                    // moby's copies carry no mode string.
                    mode: String::new(),
                    ..p
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_from_specs_parse_like_docker() {
        assert_eq!(parse("data").expect("plain"), ("data", "rw"));
        assert_eq!(parse("data:ro").expect("ro"), ("data", "ro"));
        assert_eq!(parse("data:ro,z").expect("label"), ("data", "ro,z"));
        assert!(parse("").is_err());
        assert_eq!(
            parse("data:rshared").expect_err("propagation").message,
            "invalid mode: rshared"
        );
        assert!(parse("data:nocopy").is_err());
        assert!(parse("data:bogus").is_err());
    }
}
