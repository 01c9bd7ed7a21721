//! Seeding a volume with the image's content at the volume's mount point (Docker's
//! `copyImagePathContent`): done when a container is created, only into an empty volume,
//! keeping owners, modes, times, extended attributes and hard links.
//!
//! The image is read straight from its layer directories (overlayfs lower layers, topmost
//! first), merged the way overlayfs shows them: a whiteout (a `0:0` character device)
//! hides what lies below it, an opaque directory (`trusted.overlay.opaque=y`) hides the
//! directories below it, a non-directory hides everything below it. Symbolic links on the
//! way to the mount point are followed inside the image, never out of it.
//!
//! Limits: sockets are not copied; for a container in a user namespace, owners are shifted
//! through its ID map, IDs outside the map are kept as they are.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use arca_api::shim::{IdMap, IdMaps};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot mount volume over existing file, file exists {0}")]
    NotADirectory(String),
    #[error("too many levels of symbolic links resolving {0}")]
    Loop(String),
    #[error("failed to copy image content at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SeedError + '_ {
    move |source| SeedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A directory as overlayfs shows it: the same directory in each layer that contributes to
/// it, topmost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedDir {
    layers: Vec<PathBuf>,
}

/// What the image has at a path.
#[derive(Debug, PartialEq, Eq)]
pub enum ImagePath {
    Missing,
    Dir(MergedDir),
    /// Something else (a file, a device): nothing to copy.
    Other,
}

enum Entry {
    Dir(MergedDir),
    Other(PathBuf, Metadata),
}

const OPAQUE_XATTRS: &[&str] = &["trusted.overlay.opaque", "user.overlay.opaque"];

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|x| matches!(xattr::get(p, x), Ok(Some(v)) if v == b"y"))
}

/// The entry `name` of a merged directory.
fn child(dir: &MergedDir, name: &OsStr) -> Option<Entry> {
    let mut dirs = Vec::new();
    for layer in &dir.layers {
        let p = layer.join(name);
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if is_whiteout(&m) {
            break;
        }
        if m.is_dir() {
            let opaque = is_opaque(&p);
            dirs.push(p);
            if opaque {
                break;
            }
        } else {
            if dirs.is_empty() {
                return Some(Entry::Other(p, m));
            }
            break;
        }
    }
    (!dirs.is_empty()).then_some(Entry::Dir(MergedDir { layers: dirs }))
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_os_string()),
            std::path::Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Finds `path` in the image made of `layers` (topmost first), following symbolic links
/// inside the image (`..` stops at its root).
pub fn lookup(layers: &[PathBuf], path: &str) -> Result<ImagePath, SeedError> {
    let root = MergedDir {
        layers: layers.to_vec(),
    };
    let mut todo = components(Path::new(path));
    // The directories walked so far, to go back up on `..`.
    let mut stack: Vec<MergedDir> = vec![root.clone()];
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("the root is never popped");
        match child(cur, &name) {
            None => return Ok(ImagePath::Missing),
            Some(Entry::Dir(d)) => stack.push(d),
            Some(Entry::Other(p, m)) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(SeedError::Loop(path.to_owned()));
                }
                let target = fs::read_link(&p).map_err(io_err(&p))?;
                if target.is_absolute() {
                    stack.truncate(1);
                }
                for c in components(&target).into_iter().rev() {
                    todo.push_front(c);
                }
            }
            Some(Entry::Other(..)) => {
                return Ok(if todo.is_empty() {
                    ImagePath::Other
                } else {
                    ImagePath::Missing
                });
            }
        }
    }
    Ok(ImagePath::Dir(
        stack.pop().expect("the root is never popped"),
    ))
}

/// Whether a directory has no entries.
pub fn is_empty(dir: &Path) -> io::Result<bool> {
    Ok(fs::read_dir(dir)?.next().is_none())
}

/// Container IDs to host IDs for a container in a user namespace.
fn shift(maps: &[IdMap], id: u32) -> u32 {
    maps.iter()
        .find(|m| id >= m.container_id && id - m.container_id < m.size)
        .map_or(id, |m| m.host_id + (id - m.container_id))
}

struct Copier<'a> {
    ids: Option<&'a IdMaps>,
    /// Hard-linked files already copied: (device, inode) → the copy.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copier<'_> {
    fn owner(&self, m: &Metadata) -> (u32, u32) {
        match self.ids {
            Some(ids) => (shift(&ids.uid, m.uid()), shift(&ids.gid, m.gid())),
            None => (m.uid(), m.gid()),
        }
    }

    /// Owner, mode, extended attributes and times of `src` onto `dst`.
    fn metadata(&self, src: &Path, m: &Metadata, dst: &Path) -> Result<(), SeedError> {
        let (uid, gid) = self.owner(m);
        std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(io_err(dst))?;
        if !m.file_type().is_symlink() {
            // After the chown, which clears set-id bits.
            fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))
                .map_err(io_err(dst))?;
        }
        if let Ok(names) = xattr::list(src) {
            for name in names {
                let n = name.to_string_lossy();
                if n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.") {
                    continue;
                }
                if let Ok(Some(v)) = xattr::get(src, &name) {
                    // Unsupported attributes on the volume's filesystem are skipped, as
                    // Docker does.
                    let _ = xattr::set(dst, &name, &v);
                }
            }
        }
        let ts = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
        nix::sys::stat::utimensat(
            None,
            dst,
            &ts(m.atime(), m.atime_nsec()),
            &ts(m.mtime(), m.mtime_nsec()),
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| io_err(dst)(io::Error::from(e)))?;
        Ok(())
    }

    fn copy_dir(&mut self, src: &MergedDir, dst: &Path) -> Result<(), SeedError> {
        let mut names = BTreeSet::new();
        for layer in &src.layers {
            for e in fs::read_dir(layer).map_err(io_err(layer))? {
                names.insert(e.map_err(io_err(layer))?.file_name());
            }
        }
        for name in names {
            let to = dst.join(&name);
            match child(src, &name) {
                None => {}
                Some(Entry::Dir(d)) => {
                    let top = &d.layers[0];
                    let m = fs::symlink_metadata(top).map_err(io_err(top))?;
                    match fs::create_dir(&to) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                            return Err(io_err(&to)(e));
                        }
                        _ => {}
                    }
                    self.copy_dir(&d, &to)?;
                    self.metadata(top, &m, &to)?;
                }
                Some(Entry::Other(p, m)) => self.copy_other(&p, &m, &to)?,
            }
        }
        Ok(())
    }

    fn copy_other(&mut self, src: &Path, m: &Metadata, dst: &Path) -> Result<(), SeedError> {
        let ft = m.file_type();
        if ft.is_file() && m.nlink() > 1 {
            if let Some(first) = self.links.get(&(m.dev(), m.ino())) {
                return fs::hard_link(first, dst).map_err(io_err(dst));
            }
            self.links.insert((m.dev(), m.ino()), dst.to_path_buf());
        }
        if ft.is_file() {
            fs::copy(src, dst).map_err(io_err(dst))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(src).map_err(io_err(src))?;
            std::os::unix::fs::symlink(target, dst).map_err(io_err(dst))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = nix::sys::stat::SFlag::from_bits_truncate(m.mode() & libc::S_IFMT);
            let perm = nix::sys::stat::Mode::from_bits_truncate(m.mode() & 0o7777);
            nix::sys::stat::mknod(dst, kind, perm, m.rdev())
                .map_err(|e| io_err(dst)(io::Error::from(e)))?;
        } else {
            // A socket: nothing a new process could use.
            return Ok(());
        }
        self.metadata(src, m, dst)
    }
}

/// Copies the merged directory `src` into `dst` (an existing, empty directory), which takes
/// `src`'s owner, mode and times, as Docker's copy does. `ids`: the container's user
/// namespace map, to shift owners into.
pub fn copy_into(src: &MergedDir, dst: &Path, ids: Option<&IdMaps>) -> Result<(), SeedError> {
    let mut c = Copier {
        ids,
        links: HashMap::new(),
    };
    c.copy_dir(src, dst)?;
    let top = &src.layers[0];
    let m = fs::symlink_metadata(top).map_err(io_err(top))?;
    c.metadata(top, &m, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, data: &str) {
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, data).expect("write");
    }

    fn whiteout(p: &Path) {
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        nix::sys::stat::mknod(
            p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .expect("whiteout (root)");
    }

    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            let mut entries: Vec<_> = fs::read_dir(dir).expect("read").flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let rel = e
                    .path()
                    .strip_prefix(base)
                    .expect("rel")
                    .display()
                    .to_string();
                if e.path().is_dir() && !e.path().is_symlink() {
                    out.push(format!("{rel}/"));
                    walk(base, &e.path(), out);
                } else if e.path().is_symlink() {
                    out.push(format!(
                        "{rel} -> {}",
                        fs::read_link(e.path()).expect("link").display()
                    ));
                } else {
                    out.push(format!(
                        "{rel} = {}",
                        fs::read_to_string(e.path()).expect("read")
                    ));
                }
            }
        }
        walk(dir, dir, &mut out);
        out
    }

    #[test]
    fn the_merged_view_honours_whiteouts_opaque_dirs_and_links() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (low, up) = (tmp.path().join("low"), tmp.path().join("up"));
        write(&low.join("data/keep"), "low");
        write(&low.join("data/gone"), "low");
        write(&low.join("data/sub/old"), "low");
        write(&low.join("other/x"), "low");
        std::os::unix::fs::symlink("../data", low.join("other/link")).expect("symlink");
        write(&up.join("data/keep"), "up");
        write(&up.join("data/new"), "up");
        whiteout(&up.join("data/gone"));
        fs::create_dir_all(up.join("data/sub")).expect("mkdir");
        xattr::set(up.join("data/sub"), "trusted.overlay.opaque", b"y").expect("xattr");
        write(&up.join("data/sub/fresh"), "up");
        fs::set_permissions(up.join("data"), fs::Permissions::from_mode(0o750)).expect("chmod");
        let layers = vec![up.clone(), low.clone()];

        assert_eq!(
            lookup(&layers, "/nope").expect("lookup"),
            ImagePath::Missing
        );
        assert_eq!(
            lookup(&layers, "/data/keep").expect("lookup"),
            ImagePath::Other
        );
        assert_eq!(
            lookup(&layers, "/data/keep/x").expect("lookup"),
            ImagePath::Missing
        );
        let ImagePath::Dir(d) = lookup(&layers, "/other/link/../data/").expect("lookup") else {
            panic!("a directory through the link");
        };
        let dst = tmp.path().join("vol");
        fs::create_dir(&dst).expect("mkdir");
        copy_into(&d, &dst, None).expect("copy");
        assert_eq!(
            tree(&dst),
            vec!["keep = up", "new = up", "sub/", "sub/fresh = up"]
        );
        let mode = fs::metadata(&dst).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750, "the volume takes the image directory's mode");
        assert!(
            !is_opaque(&dst.join("sub")),
            "overlay attributes are not copied"
        );
    }

    #[test]
    fn owners_and_hard_links_are_kept_and_shifted_in_a_user_namespace() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layer = tmp.path().join("l");
        write(&layer.join("d/a"), "x");
        fs::hard_link(layer.join("d/a"), layer.join("d/b")).expect("link");
        std::os::unix::fs::lchown(layer.join("d/a"), Some(1000), Some(1000)).expect("chown");
        let ImagePath::Dir(d) = lookup(std::slice::from_ref(&layer), "/d").expect("lookup") else {
            panic!("dir");
        };
        let maps = IdMaps {
            uid: vec![IdMap {
                container_id: 0,
                host_id: 100_000,
                size: 65536,
            }],
            gid: vec![IdMap {
                container_id: 0,
                host_id: 200_000,
                size: 65536,
            }],
        };
        let dst = tmp.path().join("vol");
        fs::create_dir(&dst).expect("mkdir");
        copy_into(&d, &dst, Some(&maps)).expect("copy");
        let a = fs::metadata(dst.join("a")).expect("a");
        let b = fs::metadata(dst.join("b")).expect("b");
        assert_eq!(a.ino(), b.ino(), "hard link kept");
        assert_eq!((a.uid(), a.gid()), (101_000, 201_000));
        let root = fs::metadata(&dst).expect("root");
        assert_eq!((root.uid(), root.gid()), (100_000, 200_000));
        assert!(is_empty(&tmp.path().join("l/d")).is_ok_and(|e| !e));
    }
}
