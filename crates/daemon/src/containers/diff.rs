//! `GET /containers/{id}/changes`: what the container changed in its root filesystem,
//! from its overlay upper directory compared with the image's layers.
//!
//! moby's overlay rules: the upper directory is walked in lexical order; a whiteout
//! (character device 0/0) is a deletion; an opaque directory that exists below was
//! deleted and recreated (a deletion, its entries additions); anything else is an addition,
//! or a modification if a layer has the path, except a directory whose size, mode and
//! modification time equal the layer's (it is in the upper directory only because
//! something below it changed). The parent of an added or deleted path is reported as
//! modified, once.
//!
//! Docker keeps the runtime's mount points (`/etc/hosts`, `/dev`, …) in an "init" layer
//! below the container's; arca's runtime creates them in the upper directory, so they are
//! left out here, and a directory that holds them is compared by mode only (creating the
//! mount point changed its modification time).

use std::collections::HashSet;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use arca_api::docker::{ChangeType, FilesystemChange};

/// Mount points the runtime creates (Docker's init layer).
pub const INIT_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
];

const OPAQUE_XATTRS: &[&str] = &["trusted.overlay.opaque", "user.overlay.opaque"];

#[derive(Debug, thiserror::Error)]
#[error("failed to read {path}")]
pub struct DiffError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> DiffError + '_ {
    move |source| DiffError {
        path: path.to_path_buf(),
        source,
    }
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    OPAQUE_XATTRS.iter().any(|name| {
        xattr::get(path, name)
            .ok()
            .flatten()
            .is_some_and(|v| v == b"y")
    })
}

/// The path's metadata in the topmost layer that has it; `None` if no layer has it or the
/// topmost mention is a whiteout.
fn in_layers(layers: &[PathBuf], rel: &str) -> Option<Metadata> {
    let rel = rel.trim_start_matches('/');
    for l in layers {
        if let Ok(m) = std::fs::symlink_metadata(l.join(rel)) {
            return (!is_whiteout(&m)).then_some(m);
        }
    }
    None
}

/// Go's `sameFsTime`: equal, or equal seconds when one side lost its nanoseconds.
fn same_time(a: &Metadata, b: &Metadata) -> bool {
    a.mtime() == b.mtime()
        && (a.mtime_nsec() == b.mtime_nsec() || a.mtime_nsec() == 0 || b.mtime_nsec() == 0)
}

struct Walker<'a> {
    upper: &'a Path,
    layers: &'a [PathBuf],
    changes: Vec<FilesystemChange>,
    changed_dirs: HashSet<String>,
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl Walker<'_> {
    fn walk_dir(&mut self, rel: &str) -> Result<(), DiffError> {
        let dir = self.upper.join(rel.trim_start_matches('/'));
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(err(&dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(err(&dir))?;
        // Go's filepath.Walk: lexical order of the names' bytes.
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            let path = join(rel, &name.to_string_lossy());
            if INIT_PATHS.contains(&path.as_str()) {
                continue;
            }
            let abs = self.upper.join(path.trim_start_matches('/'));
            let meta = std::fs::symlink_metadata(&abs).map_err(err(&abs))?;
            self.visit(&path, &abs, &meta)?;
            if meta.is_dir() {
                self.walk_dir(&path)?;
            }
        }
        Ok(())
    }

    /// A directory that holds a mount point the runtime created (see the module docs).
    fn holds_init_path(&self, path: &str) -> bool {
        INIT_PATHS.iter().any(|p| {
            parent_of(p) == path
                && std::fs::symlink_metadata(self.upper.join(p.trim_start_matches('/'))).is_ok()
        })
    }

    fn visit(&mut self, path: &str, abs: &Path, meta: &Metadata) -> Result<(), DiffError> {
        let below = in_layers(self.layers, path);
        let deleted = is_whiteout(meta) || (meta.is_dir() && below.is_some() && is_opaque(abs));
        let kind = if deleted {
            ChangeType::_2
        } else if let Some(lower) = below {
            if lower.is_dir() && meta.is_dir() {
                let same_mode = lower.mode() == meta.mode();
                let unchanged = if self.holds_init_path(path) {
                    same_mode
                } else {
                    same_mode && lower.size() == meta.size() && same_time(&lower, meta)
                };
                if unchanged {
                    return Ok(());
                }
            }
            ChangeType::_0
        } else {
            ChangeType::_1
        };
        if meta.is_dir() {
            self.changed_dirs.insert(path.to_owned());
        }
        if kind != ChangeType::_0 {
            let parent = parent_of(path);
            if parent != "/" && self.changed_dirs.insert(parent.to_owned()) {
                self.changes.push(FilesystemChange {
                    path: parent.to_owned(),
                    kind: ChangeType::_0,
                });
            }
        }
        self.changes.push(FilesystemChange {
            path: path.to_owned(),
            kind,
        });
        Ok(())
    }
}

/// The changes in `upper` relative to `layers` (topmost first). An upper directory that
/// does not exist (never started) has no changes.
pub fn changes(upper: &Path, layers: &[PathBuf]) -> Result<Vec<FilesystemChange>, DiffError> {
    if !upper.exists() {
        return Ok(Vec::new());
    }
    let mut w = Walker {
        upper,
        layers,
        changes: Vec::new(),
        changed_dirs: HashSet::new(),
    };
    w.walk_dir("/")?;
    Ok(w.changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfile(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, b"x").expect("write");
    }

    fn whiteout(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        nix::sys::stat::mknod(
            &p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
            0,
        )
        .expect("mknod (tests run as root)");
    }

    /// Gives a directory the lower layer's mode and mtime, as overlayfs copy-up does
    /// (it also restores a parent's times after copying a child up).
    fn copy_up_dir(lower: &Path, upper: &Path, rel: &str) {
        let l = lower.join(rel);
        let u = upper.join(rel);
        std::fs::create_dir_all(&u).expect("mkdir");
        let m = std::fs::metadata(&l).expect("lower");
        std::fs::set_permissions(&u, m.permissions()).expect("chmod");
        let t = m.modified().expect("mtime");
        std::fs::File::open(&u)
            .and_then(|f| f.set_modified(t))
            .expect("set mtime");
    }

    fn list(c: &[FilesystemChange]) -> Vec<String> {
        c.iter()
            .map(|c| {
                let k = match c.kind {
                    ChangeType::_0 => 'C',
                    ChangeType::_1 => 'A',
                    ChangeType::_2 => 'D',
                };
                format!("{k} {}", c.path)
            })
            .collect()
    }

    #[test]
    fn reports_added_deleted_and_modified_with_parents() {
        let t = tempfile::tempdir().expect("tmp");
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for f in ["etc/group", "etc/passwd", "usr/bin/x", "var/log/a"] {
            mkfile(&lower, f);
        }
        // touch /new; rm /etc/group; echo >> /etc/passwd; touch /usr/bin/y
        mkfile(&upper, "new");
        whiteout(&upper, "etc/group");
        mkfile(&upper, "etc/passwd");
        mkfile(&upper, "usr/bin/y");
        // Runtime mount points stay out of the listing.
        mkfile(&upper, "etc/hostname");
        std::fs::create_dir_all(upper.join("proc")).expect("mk");
        copy_up_dir(&lower, &upper, "etc");
        copy_up_dir(&lower, &upper, "usr");

        let got = list(&changes(&upper, &[lower]).expect("changes"));
        assert_eq!(
            got,
            [
                "C /etc",
                "D /etc/group",
                "C /etc/passwd",
                "A /new",
                "C /usr/bin",
                "A /usr/bin/y",
            ]
        );
    }

    #[test]
    fn new_directories_list_their_contents_as_added() {
        let t = tempfile::tempdir().expect("tmp");
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        std::fs::create_dir_all(&lower).expect("mk");
        mkfile(&upper, "data/a/b");
        let got = list(&changes(&upper, &[lower]).expect("changes"));
        assert_eq!(got, ["A /data", "A /data/a", "A /data/a/b"]);
    }

    #[test]
    fn opaque_directory_that_existed_below_is_deleted_and_refilled() {
        let t = tempfile::tempdir().expect("tmp");
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        mkfile(&lower, "opt/old");
        mkfile(&upper, "opt/fresh");
        xattr::set(upper.join("opt"), "trusted.overlay.opaque", b"y").expect("xattr (root)");
        let got = list(&changes(&upper, &[lower]).expect("changes"));
        assert_eq!(got, ["D /opt", "A /opt/fresh"]);
    }

    #[test]
    fn whiteout_in_a_higher_layer_hides_the_lower_file() {
        let t = tempfile::tempdir().expect("tmp");
        let (l1, l2, upper) = (
            t.path().join("l1"),
            t.path().join("l2"),
            t.path().join("upper"),
        );
        mkfile(&l1, "f");
        whiteout(&l2, "f");
        mkfile(&upper, "f");
        // Topmost layer first: l2 deleted it, so the container added it.
        let got = list(&changes(&upper, &[l2, l1]).expect("changes"));
        assert_eq!(got, ["A /f"]);
    }

    #[test]
    fn missing_upper_dir_has_no_changes() {
        let t = tempfile::tempdir().expect("tmp");
        assert!(changes(&t.path().join("nope"), &[]).expect("ok").is_empty());
    }
}
