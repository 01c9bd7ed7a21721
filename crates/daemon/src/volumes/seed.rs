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
//! The copy is written as a tar stream and unpacked with the store's extraction, which walks
//! the volume by descriptors and never follows a symlink out of it: another container may
//! use a shared named volume while it is seeded.
//!
//! Limits: sockets are not copied; for a container in a user namespace, owners are mapped
//! through its ID map, and an ID outside the map fails the copy.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::io::Write;

use arca_api::shim::IdMaps;
use arca_store::archive::{ExtractOptions, IdMapping, extract};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot mount volume over existing file, file exists {0}")]
    NotADirectory(String),
    #[error("too many levels of symbolic links resolving {0}")]
    Loop(String),
    #[error("failed to copy image content into {path}: {source}")]
    Extract {
        path: PathBuf,
        #[source]
        source: arca_store::archive::ExtractError,
    },
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

/// Writes a merged directory as a tar stream (names relative to it, the image's IDs), for
/// [`arca_store::archive::extract`] to unpack into the volume: the one extraction that never
/// writes through a symlink out of its directory, which matters here because another
/// container may use the (shared, named) volume while it is seeded.
struct Packer<W: Write> {
    tar: tar::Builder<W>,
    /// Hard-linked files already written: (device, inode) → the first entry's name.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Packer<W> {
    /// Extended attributes (not overlayfs' own) and the nanosecond mtime, as PAX records
    /// before the entry.
    fn pax(&mut self, src: &Path, m: &Metadata) -> io::Result<()> {
        let mut ext: Vec<(String, Vec<u8>)> = vec![(
            "mtime".into(),
            format!("{}.{:09}", m.mtime(), m.mtime_nsec()).into_bytes(),
        )];
        if let Ok(names) = xattr::list(src) {
            for name in names {
                let n = name.to_string_lossy().into_owned();
                if n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.") {
                    continue;
                }
                if let Ok(Some(v)) = xattr::get(src, &name) {
                    ext.push((format!("SCHILY.xattr.{n}"), v));
                }
            }
        }
        self.tar
            .append_pax_extensions(ext.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    fn header(m: &Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(m.mode() & 0o7777);
        h.set_uid(u64::from(m.uid()));
        h.set_gid(u64::from(m.gid()));
        h.set_mtime(u64::try_from(m.mtime()).unwrap_or(0));
        h.set_size(0);
        h
    }

    fn add(&mut self, src: &Path, m: &Metadata, name: &Path) -> io::Result<()> {
        use tar::EntryType;
        let ft = m.file_type();
        if ft.is_socket() {
            // Nothing a new process could use.
            return Ok(());
        }
        if ft.is_file() && m.nlink() > 1 {
            if let Some(first) = self.links.get(&(m.dev(), m.ino())).cloned() {
                let mut h = Self::header(m, EntryType::Link);
                return self.tar.append_link(&mut h, name, first);
            }
            self.links.insert((m.dev(), m.ino()), name.to_path_buf());
        }
        self.pax(src, m)?;
        if ft.is_dir() {
            let mut h = Self::header(m, EntryType::Directory);
            self.tar.append_data(&mut h, name, io::empty())
        } else if ft.is_file() {
            let mut h = Self::header(m, EntryType::Regular);
            h.set_size(m.len());
            let f = fs::File::open(src)?;
            self.tar.append_data(&mut h, name, f)
        } else if ft.is_symlink() {
            let mut h = Self::header(m, EntryType::Symlink);
            let target = fs::read_link(src)?;
            self.tar.append_link(&mut h, name, target)
        } else {
            let kind = if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            };
            let mut h = Self::header(m, kind);
            if kind != EntryType::Fifo {
                let dev = m.rdev();
                h.set_device_major(u32::try_from(nix::sys::stat::major(dev)).unwrap_or(0))?;
                h.set_device_minor(u32::try_from(nix::sys::stat::minor(dev)).unwrap_or(0))?;
            }
            self.tar.append_data(&mut h, name, io::empty())
        }
    }

    fn copy_dir(&mut self, src: &MergedDir, rel: &Path) -> io::Result<()> {
        let mut names = BTreeSet::new();
        for layer in &src.layers {
            for e in fs::read_dir(layer)? {
                names.insert(e?.file_name());
            }
        }
        for name in names {
            let to = rel.join(&name);
            match child(src, &name) {
                None => {}
                Some(Entry::Dir(d)) => {
                    let top = &d.layers[0];
                    let m = fs::symlink_metadata(top)?;
                    self.add(top, &m, &to)?;
                    self.copy_dir(&d, &to)?;
                }
                Some(Entry::Other(p, m)) => self.add(&p, &m, &to)?,
            }
        }
        Ok(())
    }
}

/// Copies the merged directory `src` into `dst` (an existing, empty directory), which takes
/// `src`'s owner, mode, times and extended attributes, as Docker's copy does. `ids`: the
/// container's user namespace map, to shift owners into.
pub fn copy_into(src: &MergedDir, dst: &Path, ids: Option<&IdMaps>) -> Result<(), SeedError> {
    let (reader, writer) = io::pipe().map_err(io_err(dst))?;
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: false,
        owner: None,
        id_map: ids.map(IdMapping::from),
        allow_devices: true,
        preserve_owner: true,
    };
    let (packed, extracted) = std::thread::scope(|s| {
        let producer = s.spawn(move || -> io::Result<()> {
            let mut p = Packer {
                tar: tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, writer)),
                links: HashMap::new(),
            };
            p.copy_dir(src, Path::new(""))?;
            p.tar.into_inner()?.flush()
        });
        // Dropping the reader (an early refusal) ends the producer with a broken pipe.
        let extracted = extract(io::BufReader::with_capacity(256 * 1024, reader), dst, &opts);
        let packed = producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the image reader panicked")));
        (packed, extracted)
    });
    packed.map_err(io_err(&src.layers[0]))?;
    extracted.map_err(|e| SeedError::Extract {
        path: dst.to_path_buf(),
        source: e,
    })?;
    // The volume's root takes the image directory's metadata (`dst` is arcad's own).
    let top = &src.layers[0];
    let m = fs::symlink_metadata(top).map_err(io_err(top))?;
    let (uid, gid) = match ids {
        Some(ids) => IdMapping::from(ids)
            .to_host(m.uid(), m.gid())
            .unwrap_or((m.uid(), m.gid())),
        None => (m.uid(), m.gid()),
    };
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(io_err(dst))?;
    // After the chown, which clears set-id bits.
    fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777)).map_err(io_err(dst))?;
    if let Ok(names) = xattr::list(top) {
        for name in names {
            let n = name.to_string_lossy();
            if n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.") {
                continue;
            }
            if let Ok(Some(v)) = xattr::get(top, &name) {
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
            uid: vec![arca_api::shim::IdMap {
                container_id: 0,
                host_id: 100_000,
                size: 65536,
            }],
            gid: vec![arca_api::shim::IdMap {
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

    #[test]
    fn a_symlink_planted_in_the_volume_does_not_lead_the_copy_out_of_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (img, vol, outside) = (
            tmp.path().join("img"),
            tmp.path().join("vol"),
            tmp.path().join("outside"),
        );
        write(&img.join("data/etc/passwd"), "from the image");
        write(&img.join("data/file"), "from the image");
        fs::create_dir_all(&vol).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        // Another container using the volume made these before the copy reached them.
        std::os::unix::fs::symlink(&outside, vol.join("etc")).expect("symlink");
        std::os::unix::fs::symlink(outside.join("file"), vol.join("file")).expect("symlink");
        let ImagePath::Dir(d) = lookup(&[img], "/data").expect("lookup") else {
            panic!("a directory");
        };
        let _ = copy_into(&d, &vol, None);
        assert_eq!(
            fs::read_dir(&outside).expect("outside").count(),
            0,
            "nothing was written outside the volume"
        );
    }
}
