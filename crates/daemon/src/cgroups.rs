//! Which cgroup layout the host has (for `/info`): v1, v2 (unified), or hybrid (v1
//! controllers plus a cgroup2 mount at `unified/`). The runtime itself manages cgroups in
//! the shim through libcgroups.

use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
