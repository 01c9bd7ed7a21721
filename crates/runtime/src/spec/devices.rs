//! `--device`: host device nodes described for the OCI spec (`linux.devices`).
//!
//! The host node is `stat`ed (following symlinks, as Docker does) for its type, numbers,
//! mode and owner; libcontainer then creates it in the container's `/dev` with `mknod`, or
//! bind-mounts the *container* path from the host when the container has its own user
//! namespace (its rule, as runc's), so with `--userns` a device cannot be renamed. Access is
//! granted by a cgroup rule with the configured permissions
//! ([`crate::resources::allow_device`]).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use arca_api::shim::DeviceConfig;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("error gathering device information while adding custom device {path:?}")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path:?} is not a device node")]
    NotADevice { path: PathBuf },
    #[error("device path {0:?} in the container must be an absolute path under /dev")]
    ContainerPath(String),
    #[error("with --userns a device keeps its host path: {host:?} cannot appear as {container:?}")]
    RenamedInUserns { host: PathBuf, container: String },
    #[error(
        "invalid device permissions {permissions:?} for {path:?}: use a combination of r, w, m"
    )]
    Permissions { path: PathBuf, permissions: String },
}

/// A device to create in the container, with its cgroup access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    pub device: LinuxDevice,
    /// `r`, `w`, `m` as configured.
    pub access: String,
}

fn valid_permissions(p: &str) -> bool {
    !p.is_empty() && p.len() <= 3 && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// Reads the host nodes of `devices`. In a user namespace (`userns`) libcontainer
/// bind-mounts each node from the host path equal to its container path, so a device
/// cannot be renamed there.
pub fn resolve(devices: &[DeviceConfig], userns: bool) -> Result<Vec<HostDevice>, DeviceError> {
    if userns
        && let Some(d) = devices
            .iter()
            .find(|d| d.host_path != Path::new(&d.container_path))
    {
        return Err(DeviceError::RenamedInUserns {
            host: d.host_path.clone(),
            container: d.container_path.clone(),
        });
    }
    devices.iter().map(resolve_one).collect()
}

fn resolve_one(d: &DeviceConfig) -> Result<HostDevice, DeviceError> {
    let dest = Path::new(&d.container_path);
    if !dest.is_absolute() || !dest.starts_with("/dev") || dest == Path::new("/dev") {
        return Err(DeviceError::ContainerPath(d.container_path.clone()));
    }
    if !valid_permissions(&d.permissions) {
        return Err(DeviceError::Permissions {
            path: d.host_path.clone(),
            permissions: d.permissions.clone(),
        });
    }
    let meta = std::fs::metadata(&d.host_path).map_err(|source| DeviceError::Stat {
        path: d.host_path.clone(),
        source,
    })?;
    let typ = if meta.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if meta.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(DeviceError::NotADevice {
            path: d.host_path.clone(),
        });
    };
    let rdev = meta.rdev();
    let mut device = LinuxDevice::default();
    device.set_path(dest.to_path_buf());
    device.set_typ(typ);
    device.set_major(i64::from(libc::major(rdev)));
    device.set_minor(i64::from(libc::minor(rdev)));
    device.set_file_mode(Some(meta.mode() & 0o7777));
    device.set_uid(Some(meta.uid()));
    device.set_gid(Some(meta.gid()));
    Ok(HostDevice {
        device,
        access: d.permissions.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(host: &str, dest: &str, perms: &str) -> DeviceConfig {
        DeviceConfig {
            host_path: host.into(),
            container_path: dest.into(),
            permissions: perms.into(),
        }
    }

    #[test]
    fn a_host_char_device_keeps_its_numbers_under_the_new_name() {
        let d = resolve(&[cfg("/dev/zero", "/dev/myzero", "rw")], false).expect("zero");
        let dev = &d[0].device;
        assert_eq!(dev.path(), Path::new("/dev/myzero"));
        assert_eq!(dev.typ(), LinuxDeviceType::C);
        assert_eq!((dev.major(), dev.minor()), (1, 5));
        assert_eq!(dev.file_mode().map(|m| m & 0o666), Some(0o666));
        assert_eq!(d[0].access, "rw");
    }

    #[test]
    fn files_missing_nodes_and_bad_paths_are_errors() {
        let e = resolve(&[cfg("/etc/passwd", "/dev/x", "rwm")], false).expect_err("file");
        assert!(matches!(e, DeviceError::NotADevice { .. }), "{e}");
        let e = resolve(&[cfg("/dev/nope-arca", "/dev/x", "rwm")], false).expect_err("missing");
        assert!(matches!(e, DeviceError::Stat { .. }), "{e}");
        let e = resolve(&[cfg("/dev/zero", "/tmp/zero", "rwm")], false).expect_err("outside /dev");
        assert!(matches!(e, DeviceError::ContainerPath(_)), "{e}");
        let e = resolve(&[cfg("/dev/zero", "/dev/z", "rx")], false).expect_err("perms");
        assert!(matches!(e, DeviceError::Permissions { .. }), "{e}");
        let e = resolve(&[cfg("/dev/zero", "/dev/z", "")], false).expect_err("empty perms");
        assert!(matches!(e, DeviceError::Permissions { .. }), "{e}");
    }

    #[test]
    fn devices_keep_their_host_path_in_a_user_namespace() {
        let e = resolve(&[cfg("/dev/zero", "/dev/myzero", "rw")], true).expect_err("renamed");
        assert!(matches!(e, DeviceError::RenamedInUserns { .. }), "{e}");
        assert!(resolve(&[cfg("/dev/zero", "/dev/zero", "rw")], true).is_ok());
    }
}
