//! Where arcad keeps things on disk (see docs/design/daemon.md).

use std::path::{Path, PathBuf};

use arca_model::ContainerId;

#[derive(Debug, Clone)]
pub struct Paths {
    /// `--root`: persistent state.
    pub root: PathBuf,
    /// `--exec-root`: runtime state (sockets, bundles); lost on reboot.
    pub exec_root: PathBuf,
    /// The `arca-shim` executable.
    pub shim_bin: PathBuf,
    /// cgroup under which containers get their own (`/arca` → `/arca/<id>`).
    pub cgroup_parent: String,
}

impl Paths {
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    /// Persistent per-container directory: record, logs, rw layer, hosts files.
    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.containers_dir().join(id.as_str())
    }
    pub fn record_file(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("config.v1.json")
    }
    pub fn log_file(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }
    pub fn upper_dir(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("rw").join("upper")
    }
    pub fn work_dir(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join("rw").join("work")
    }
    /// Where a removed container's files wait for deletion (same filesystem, hidden from
    /// the record scan because it is not a container ID).
    pub fn trash_dir(&self, id: &ContainerId) -> PathBuf {
        self.containers_dir().join(format!(".trash-{id}"))
    }
    /// Runtime directory: bundle, exit file, shim log.
    pub fn run_dir(&self, id: &ContainerId) -> PathBuf {
        self.exec_root.join("containers").join(id.as_str())
    }
    /// Kept short: unix socket paths are limited to 108 bytes.
    pub fn shim_socket(&self, id: &ContainerId) -> PathBuf {
        self.exec_root
            .join("s")
            .join(format!("{}.sock", &id.as_str()[..24]))
    }
    pub fn exit_file(&self, id: &ContainerId) -> PathBuf {
        self.run_dir(id).join("exit.json")
    }
    pub fn runtime_state(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.exec_root.join("arcad.pid")
    }
}

/// Writes `data` to `path` atomically (temp file in the same directory, then rename).
/// `durable` adds an fsync before the rename, for data that must survive power loss.
pub fn write_atomic(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        arca_model::random_hex(4)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
