//! The container's mounts: Docker's defaults (with `--shm-size`), the config's bind mounts,
//! and `--init`'s binary; and the argv that runs the init.

use std::path::{Path, PathBuf};

use arca_api::shim::{INIT_PATH_IN_CONTAINER, NetworkConfig, ShimConfig};
use oci_spec::runtime::Mount;

use super::SpecError;

/// Docker's default `/dev/shm` size (64 MiB).
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_owned()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|o| (*o).to_owned()).collect()));
    m
}

/// Docker's default mounts, then the config's bind mounts (which replace a default mount
/// with the same destination), then `--init`'s binary.
pub fn mounts(config: &ShimConfig) -> Result<Vec<Mount>, SpecError> {
    let privileged = config.security.privileged;
    let sys_mode = if privileged { "rw" } else { "ro" };
    let shm_size = match config.shm_size {
        Some(0) => return Err(SpecError::ShmSize),
        Some(n) => n,
        None => DEFAULT_SHM_SIZE,
    };
    let shm_size = format!("size={shm_size}");
    let sysfs = if sysfs_needs_bind(config) {
        // A sysfs mount needs a network namespace owned by the container's user namespace;
        // a joined or host one is not (runc falls back to this bind, too).
        mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", sys_mode],
        )
    } else {
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &[sys_mode, "nosuid", "noexec", "nodev"],
        )
    };
    let defaults = [
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        sysfs,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[sys_mode, "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
    ];
    let overridden = |m: &Mount| {
        config
            .mounts
            .iter()
            .any(|u| Path::new(&u.destination) == m.destination())
    };
    let mut out: Vec<Mount> = defaults.into_iter().filter(|m| !overridden(m)).collect();
    for u in &config.mounts {
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(&u.destination));
        let mode = if u.readonly { "ro" } else { "rw" };
        if let Some(opts) = &u.tmpfs {
            // Docker's defaults for --tmpfs, then the user's options.
            m.set_typ(Some("tmpfs".to_owned()));
            m.set_source(Some(PathBuf::from("tmpfs")));
            let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
            o.push(mode.into());
            o.extend(opts.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
            m.set_options(Some(o));
        } else {
            m.set_typ(Some("bind".to_owned()));
            m.set_source(Some(u.source.clone()));
            let propagation = u.propagation.as_deref().unwrap_or("rprivate");
            m.set_options(Some(vec!["rbind".into(), propagation.into(), mode.into()]));
        }
        out.push(m);
    }
    if let Some(init) = &config.init {
        // Docker's mount. libcontainer creates the mount point before it remounts a
        // read-only rootfs, so `readonly` needs nothing special.
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(INIT_PATH_IN_CONTAINER));
        m.set_typ(Some("bind".to_owned()));
        m.set_source(Some(init.clone()));
        m.set_options(Some(vec!["bind".into(), "ro".into()]));
        out.push(m);
    }
    Ok(out)
}

fn sysfs_needs_bind(config: &ShimConfig) -> bool {
    config.namespaces.userns.is_some() && !matches!(config.network, NetworkConfig::None)
}

/// The container's argv: with `--init`, the init binary runs the command as its child.
pub fn process_args(config: &ShimConfig) -> Vec<String> {
    match config.init {
        Some(_) => [INIT_PATH_IN_CONTAINER.to_owned(), "--".to_owned()]
            .into_iter()
            .chain(config.process.args.iter().cloned())
            .collect(),
        None => config.process.args.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::config;

    fn shm_options(cfg: &ShimConfig) -> Vec<String> {
        mounts(cfg)
            .expect("mounts")
            .into_iter()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .and_then(|m| m.options().clone())
            .expect("shm options")
    }

    #[test]
    fn shm_size_defaults_to_dockers_64_mib() {
        let mut cfg = config();
        assert!(shm_options(&cfg).contains(&"size=67108864".to_owned()));
        cfg.shm_size = Some(1 << 20);
        assert!(shm_options(&cfg).contains(&"size=1048576".to_owned()));
        cfg.shm_size = Some(0);
        assert!(matches!(mounts(&cfg), Err(SpecError::ShmSize)));
    }
}
