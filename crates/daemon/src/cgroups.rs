//! Which cgroup layout the host has (for `/info`): v1, v2 (unified), or hybrid (v1
//! controllers plus a cgroup2 mount at `unified/`), and where a container's cgroup is for
//! each controller (for stats and top). The runtime itself creates and deletes cgroups in
//! the shim through libcgroups; arcad only reads them.

pub mod stats;

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    V1,
    Hybrid,
    V2,
}

#[derive(Debug, Clone, Copy)]
pub struct CgroupVersion {
    pub layout: Layout,
    pub swap_limit: bool,
}

impl CgroupVersion {
    /// Inspects a cgroup mount root (normally `/sys/fs/cgroup`).
    pub fn detect(root: &Path) -> Self {
        let layout = if root.join("cgroup.controllers").exists() {
            Layout::V2
        } else if root.join("unified").join("cgroup.controllers").exists()
            || root.join("unified").join("cgroup.procs").exists()
        {
            Layout::Hybrid
        } else {
            Layout::V1
        };
        let swap_limit = match layout {
            Layout::V2 => std::fs::read_to_string(root.join("cgroup.subtree_control"))
                .map(|s| s.contains("memory"))
                .unwrap_or(false),
            _ => root
                .join("memory")
                .join("memory.memsw.limit_in_bytes")
                .exists(),
        };
        Self { layout, swap_limit }
    }

    /// Docker's `CgroupVersion` field: "1" or "2".
    pub fn version_string(&self) -> &'static str {
        match self.layout {
            Layout::V2 => "2",
            Layout::V1 | Layout::Hybrid => "1",
        }
    }
}

/// Where one controller's files of a cgroup are, and which file format they use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerDir {
    V1(PathBuf),
    V2(PathBuf),
}

impl ControllerDir {
    pub fn path(&self) -> &Path {
        match self {
            Self::V1(p) | Self::V2(p) => p,
        }
    }
}

/// The directory of `cgroup_path` (relative to each hierarchy, e.g. `/arca/<id>`) for a v1
/// controller name (`memory`, `cpu`, `cpuacct`, `pids`, `blkio`, `freezer`) under the mount
/// root `root`. On a hybrid host a controller missing from v1 is looked for on the unified
/// mount (under its v2 name); `None` if it is mounted nowhere.
pub fn controller_dir(root: &Path, cgroup_path: &str, controller: &str) -> Option<ControllerDir> {
    let rel = cgroup_path.trim_start_matches('/');
    if root.join("cgroup.controllers").exists() {
        return Some(ControllerDir::V2(root.join(rel)));
    }
    let v1 = root.join(controller);
    if v1.is_dir() && !v1.join("cgroup.controllers").exists() {
        return Some(ControllerDir::V1(v1.join(rel)));
    }
    let v2_name = match controller {
        "cpuacct" => "cpu",
        "blkio" => "io",
        c => c,
    };
    let unified = root.join("unified");
    let offered = std::fs::read_to_string(unified.join("cgroup.controllers")).ok()?;
    offered
        .split_whitespace()
        .any(|c| c == v2_name)
        .then(|| ControllerDir::V2(unified.join(rel)))
}

/// Every process in the cgroup and its descendants (host PIDs), sorted; empty if the cgroup
/// is gone. Read from the first hierarchy that has the cgroup.
pub fn procs(root: &Path, cgroup_path: &str) -> Vec<i32> {
    fn walk(dir: &Path, out: &mut Vec<i32>) {
        if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(dir) = ["pids", "memory", "cpu", "freezer", "devices"]
        .iter()
        .filter_map(|c| controller_dir(root, cgroup_path, c))
        .map(|d| d.path().to_path_buf())
        .find(|p| p.is_dir())
    {
        walk(&dir, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_controller_dirs_in_each_layout() {
        let v2 = tempfile::tempdir().expect("tmp");
        std::fs::write(v2.path().join("cgroup.controllers"), "cpu memory").expect("w");
        assert_eq!(
            controller_dir(v2.path(), "/arca/x", "blkio"),
            Some(ControllerDir::V2(v2.path().join("arca/x")))
        );

        let hy = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(hy.path().join("memory")).expect("mk");
        std::fs::create_dir_all(hy.path().join("unified")).expect("mk");
        std::fs::write(hy.path().join("unified/cgroup.controllers"), "hugetlb pids").expect("w");
        assert_eq!(
            controller_dir(hy.path(), "/arca/x", "memory"),
            Some(ControllerDir::V1(hy.path().join("memory/arca/x")))
        );
        assert_eq!(
            controller_dir(hy.path(), "/arca/x", "pids"),
            Some(ControllerDir::V2(hy.path().join("unified/arca/x")))
        );
        assert_eq!(controller_dir(hy.path(), "/arca/x", "cpu"), None);
    }

    #[test]
    fn procs_include_nested_cgroups() {
        let t = tempfile::tempdir().expect("tmp");
        let dir = t.path().join("pids/arca/x");
        std::fs::create_dir_all(dir.join("sub")).expect("mk");
        std::fs::write(dir.join("cgroup.procs"), "12\n5\n").expect("w");
        std::fs::write(dir.join("sub/cgroup.procs"), "7\n").expect("w");
        assert_eq!(procs(t.path(), "/arca/x"), vec![5, 7, 12]);
        assert!(procs(t.path(), "/arca/gone").is_empty());
    }

    #[test]
    fn detects_unified_hybrid_and_legacy_layouts() {
        let v2 = tempfile::tempdir().expect("tmp");
        std::fs::write(v2.path().join("cgroup.controllers"), "cpu memory pids").expect("w");
        std::fs::write(v2.path().join("cgroup.subtree_control"), "memory pids").expect("w");
        let c = CgroupVersion::detect(v2.path());
        assert_eq!(c.layout, Layout::V2);
        assert_eq!(c.version_string(), "2");
        assert!(c.swap_limit);

        let hy = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(hy.path().join("unified")).expect("mk");
        std::fs::write(hy.path().join("unified/cgroup.controllers"), "hugetlb").expect("w");
        std::fs::create_dir_all(hy.path().join("memory")).expect("mk");
        assert_eq!(CgroupVersion::detect(hy.path()).layout, Layout::Hybrid);

        let v1 = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(v1.path().join("memory")).expect("mk");
        std::fs::write(v1.path().join("memory/memory.memsw.limit_in_bytes"), "1").expect("w");
        let c = CgroupVersion::detect(v1.path());
        assert_eq!(c.layout, Layout::V1);
        assert!(c.swap_limit);
    }
}
