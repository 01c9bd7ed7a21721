//! Idmapped lower layers for `--userns` containers.
//!
//! With `--userns`, the layers (shared by every container and image, owned by host IDs as
//! they are in the image) are not changed: each lower layer is mounted *idmapped* through a
//! user namespace with the container's maps, in a scratch directory next to the rootfs,
//! and the overlay is built on those (overlayfs accepts idmapped lower layers since Linux
//! 5.19). Only the container's own upper directory is chowned, its root to the host ID of
//! the container's root, so the overlay's root is the container root's. Files the container
//! writes land in the upper directory owned by their *host* IDs (container root's → e.g.
//! 100000), like Docker's `userns-remap` and containerd's idmapped snapshots: whoever
//! reads the upper directory (diff, commit, cp) must map them back. The scratch mounts are
//! detached once the overlay holds its own references to them. The upper directory itself
//! is not idmapped: overlayfs then works with the mounter's (host root's) credentials,
//! which such a mount cannot represent.

use std::path::{Path, PathBuf};

use arca_api::shim::{IdMap, IdMaps, RootfsConfig};
use nix::mount::MntFlags;

use super::{RootfsError, mount_layers};

/// The host ID of container ID `id` under `maps`.
pub fn host_id(maps: &[IdMap], id: u32) -> Option<u32> {
    maps.iter().find_map(|m| {
        let offset = id.checked_sub(m.container_id)?;
        (offset < m.size)
            .then(|| m.host_id.checked_add(offset))
            .flatten()
    })
}

/// The host uid and gid of the container's root under `maps`.
pub fn mapped_root(maps: &IdMaps) -> Option<(u32, u32)> {
    Some((host_id(&maps.uid, 0)?, host_id(&maps.gid, 0)?))
}

/// `/proc/<pid>/uid_map` content for `maps`.
fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// Idmapped copies of the lower layers in `<target>.layers/<n>`, the overlay on them, and
/// the copies detached again (also on failure).
pub(super) fn mount_overlay(
    cfg: &RootfsConfig,
    target: &Path,
    maps: &IdMaps,
) -> Result<(), RootfsError> {
    let (uid, gid) = mapped_root(maps).ok_or(RootfsError::RootNotMapped)?;
    let ns = crate::sys::userns_with_maps(&map_text(&maps.uid), &map_text(&maps.gid))
        .map_err(RootfsError::UserNamespace)?;
    let mut scratch = target.as_os_str().to_owned();
    scratch.push(".layers");
    let scratch = PathBuf::from(scratch);
    let mut attached: Vec<PathBuf> = Vec::with_capacity(cfg.lower.len());
    let mut attach = || -> Result<(), RootfsError> {
        for (i, layer) in cfg.lower.iter().enumerate() {
            let point = scratch.join(i.to_string());
            std::fs::create_dir_all(&point).map_err(|source| RootfsError::MountPoint {
                path: point.clone(),
                source,
            })?;
            crate::sys::mount_idmapped(layer, &point, &ns).map_err(|source| {
                RootfsError::Idmap {
                    path: layer.clone(),
                    source,
                }
            })?;
            attached.push(point);
        }
        std::os::unix::fs::chown(&cfg.upper, Some(uid), Some(gid)).map_err(|source| {
            RootfsError::Chown {
                path: cfg.upper.clone(),
                source,
            }
        })?;
        mount_layers(&attached, cfg, target)
    };
    let result = attach();
    for point in &attached {
        // The overlay holds private clones of these mounts: the copies can go at once.
        let _ = nix::mount::umount2(point, MntFlags::MNT_DETACH);
    }
    // Never a recursive delete here: a point that is still mounted (a failed detach, or one
    // left by a killed shim) is a writable view of a layer every image shares. remove_dir
    // refuses a mount point (EBUSY) and a non-empty directory.
    for i in 0..cfg.lower.len() {
        let _ = std::fs::remove_dir(scratch.join(i.to_string()));
    }
    let _ = std::fs::remove_dir(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_containers_root_must_be_mapped() {
        let map = |container_id, host_id, size| IdMap {
            container_id,
            host_id,
            size,
        };
        let maps = IdMaps {
            uid: vec![map(1, 200_000, 10), map(0, 100_000, 1)],
            gid: vec![map(0, 300_000, 65_536)],
        };
        assert_eq!(mapped_root(&maps), Some((100_000, 300_000)));
        assert_eq!(host_id(&maps.uid, 10), Some(200_009));
        assert_eq!(host_id(&maps.uid, 11), None);
        assert_eq!(map_text(&maps.uid), "1 200000 10\n0 100000 1\n");
        let unmapped = IdMaps {
            uid: vec![map(1, 100_000, 10)],
            gid: vec![map(0, 100_000, 10)],
        };
        assert_eq!(mapped_root(&unmapped), None);
    }
}
