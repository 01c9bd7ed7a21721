//! `docker export`: a container's whole filesystem as one tar stream, merged in userspace
//! from its overlay layers. Nothing is mounted, so created and exited containers export as
//! well as running ones.
//!
//! The layers are directories in overlayfs format (the container's upper directory and the
//! image's snapshots), topmost first, merged with the kernel's rules:
//! - the topmost layer that has a name decides what it is;
//! - a whiteout (a `0:0` character device, or an AUFS-style `.wh.<name>` file) hides the
//!   name in the layers below; whiteouts themselves are not exported;
//! - an opaque directory (`trusted.overlay.opaque=y`, `user.overlay.opaque=y`, or holding a
//!   `.wh..wh..opq` entry) hides what the layers below have under it;
//! - a non-directory hides a directory below it, with everything under it.
//!
//! Entries come in lexical byte order, parents first, without an entry for the root;
//! directory names end in `/`, as Docker writes them. Owners, modes, modification times
//! (whole seconds), symlink targets and device numbers are kept; regular files that share
//! an inode become hard links to the first of them written. Sockets are left out (tar cannot
//! hold them), and so are extended attributes.
//!
//! The topmost layer can carry paths to leave out: the runtime's mount points, which arca
//! creates in the container's upper directory where Docker keeps an "init" layer (the same
//! rule as `commit`). An excluded path counts as absent from that layer, so the image's own
//! file shows through; a directory that is in that layer only because it holds such paths
//! keeps the metadata of the layer below (creating the mount point touched its mtime).
//!
//! The stream is written as the tree is walked: memory holds one directory listing per
//! level. A running container's files may change meanwhile: a path that vanishes is skipped,
//! a file that changes size is cut or zero-padded to the size its header announced, so the
//! output stays a valid tar. Overlay features that keep metadata in xattrs (`redirect_dir`,
//! `metacopy`) are not followed: arca's overlay mounts do not enable them.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::tarout::{FixedLen, set_device};

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum FlattenError {
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the archive failed (the reader went away, or a file could not be read
    /// while its data was being copied).
    #[error("failed to archive {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to finish the archive")]
    Finish(#[source] io::Error),
}

impl FlattenError {
    /// Whether the archive's reader went away (nothing to report to anyone).
    pub fn is_disconnect(&self) -> bool {
        match self {
            Self::Write { source, .. } | Self::Finish(source) => {
                source.kind() == io::ErrorKind::BrokenPipe
            }
            Self::Read { .. } => false,
        }
    }
}

const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_XATTRS: &[&[u8]] = &[b"trusted.overlay.opaque", b"user.overlay.opaque"];

/// Writes the merged tree of `upper` (a container's writable layer, which may not exist
/// yet; its `exclude`d absolute paths such as `/etc/hosts` are left out) over `lower` (the
/// image's layer directories, topmost first) to `out` as a tar stream, and returns `out`.
pub fn write_merged_tar<W: Write>(
    upper: &Path,
    exclude: &[String],
    lower: &[PathBuf],
    out: W,
) -> Result<W, FlattenError> {
    let mut layers = Vec::with_capacity(lower.len() + 1);
    layers.push(Layer {
        root: upper.to_path_buf(),
        exclude: exclude
            .iter()
            .map(|e| PathBuf::from(e.trim_start_matches('/')))
            .filter(|e| !e.as_os_str().is_empty())
            .collect(),
    });
    layers.extend(lower.iter().map(|l| Layer {
        root: l.clone(),
        exclude: Vec::new(),
    }));
    let mut w = Flattener {
        layers,
        builder: tar::Builder::new(out),
        links: HashMap::new(),
    };
    let root = Path::new("");
    let mut dirs = Vec::new();
    for i in 0..w.layers.len() {
        match fs::symlink_metadata(&w.layers[i].root) {
            Ok(m) if m.is_dir() => {
                dirs.push(i);
                if w.is_opaque(i, root) {
                    break;
                }
            }
            _ => {}
        }
    }
    w.walk(root, &dirs)?;
    let mut out = w.builder.into_inner().map_err(FlattenError::Finish)?;
    out.flush().map_err(FlattenError::Finish)?;
    Ok(out)
}

/// One layer directory.
struct Layer {
    root: PathBuf,
    /// Paths relative to `root` to treat as absent.
    exclude: Vec<PathBuf>,
}

impl Layer {
    fn excludes(&self, rel: &Path) -> bool {
        self.exclude.iter().any(|e| e == rel)
    }
}

/// What the topmost layer that mentions a name says about it.
enum Slot {
    Hidden,
    Found { layer: usize, meta: Metadata },
}

struct Flattener<W: Write> {
    layers: Vec<Layer>,
    builder: tar::Builder<W>,
    /// First path written for each multiply-linked inode.
    links: HashMap<(u64, u64), PathBuf>,
}

fn read_err(path: PathBuf) -> impl FnOnce(io::Error) -> FlattenError {
    move |source| FlattenError::Read { path, source }
}

fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// `.wh.<name>` for `name`.
fn whiteout_name(name: &OsStr) -> OsString {
    let mut s = OsString::from(OsStr::from_bytes(WHITEOUT_PREFIX));
    s.push(name);
    s
}

impl<W: Write> Flattener<W> {
    /// Writes the entries under directory `rel`, which is a directory in layers `dirs`
    /// (topmost first, already cut below an opaque one).
    fn walk(&mut self, rel: &Path, dirs: &[usize]) -> Result<(), FlattenError> {
        let mut names: BTreeMap<OsString, Slot> = BTreeMap::new();
        for &i in dirs {
            let dir = self.layers[i].root.join(rel);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                // Removed while we walk (a running container).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(read_err(dir)(e)),
            };
            for entry in entries {
                let name = entry.map_err(read_err(dir.clone()))?.file_name();
                let bytes = name.as_bytes();
                if bytes == OPAQUE_MARKER {
                    continue;
                }
                if let Some(hidden) = bytes.strip_prefix(WHITEOUT_PREFIX) {
                    names
                        .entry(OsStr::from_bytes(hidden).to_owned())
                        .or_insert(Slot::Hidden);
                    continue;
                }
                if names.contains_key(&name) || self.layers[i].excludes(&rel.join(&name)) {
                    continue;
                }
                let abs = dir.join(&name);
                let meta = match fs::symlink_metadata(&abs) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(read_err(abs)(e)),
                };
                let slot = if is_whiteout(&meta) {
                    Slot::Hidden
                } else {
                    Slot::Found { layer: i, meta }
                };
                names.insert(name, slot);
            }
        }
        for (name, slot) in names {
            let Slot::Found { layer, meta } = slot else {
                continue;
            };
            let path = rel.join(&name);
            if meta.is_dir() {
                let below = self.dir_layers(rel, &name, layer, dirs);
                let meta = self.dir_metadata(&path, &below, meta);
                self.append_dir(&path, &meta)?;
                self.walk(&path, &below)?;
            } else {
                self.append_other(&path, layer, &meta)?;
            }
        }
        Ok(())
    }

    /// The layers whose directory `parent/name` is merged into the one found in layer
    /// `top`: `top`, then lower layers of `parent_dirs` until one hides what is below it.
    fn dir_layers(
        &self,
        parent: &Path,
        name: &OsStr,
        top: usize,
        parent_dirs: &[usize],
    ) -> Vec<usize> {
        let path = parent.join(name);
        let mut out = vec![top];
        if self.is_opaque(top, &path) {
            return out;
        }
        let wh = parent.join(whiteout_name(name));
        for &j in parent_dirs.iter().filter(|&&j| j > top) {
            let layer = &self.layers[j];
            if layer.excludes(&path) {
                continue;
            }
            if fs::symlink_metadata(layer.root.join(&wh)).is_ok() {
                break;
            }
            match fs::symlink_metadata(layer.root.join(&path)) {
                Ok(m) if m.is_dir() => {
                    out.push(j);
                    if self.is_opaque(j, &path) {
                        break;
                    }
                }
                // A whiteout or a non-directory hides everything below.
                Ok(_) => break,
                Err(_) => {}
            }
        }
        out
    }

    /// The metadata to write for directory `path` (found in `dirs[0]`): the layer below's
    /// when the top layer has the directory only for excluded paths (see the module docs).
    fn dir_metadata(&self, path: &Path, dirs: &[usize], top_meta: Metadata) -> Metadata {
        let top = &self.layers[dirs[0]];
        let Some(&next) = dirs.get(1) else {
            return top_meta;
        };
        if !top.exclude.iter().any(|e| e.parent() == Some(path)) {
            return top_meta;
        }
        let only_excluded = fs::read_dir(top.root.join(path)).is_ok_and(|entries| {
            entries
                .map(|e| e.map(|e| top.excludes(&path.join(e.file_name()))))
                .all(|excluded| excluded.unwrap_or(false))
        });
        if !only_excluded {
            return top_meta;
        }
        match fs::symlink_metadata(self.layers[next].root.join(path)) {
            Ok(m) if m.is_dir() && m.mode() == top_meta.mode() => m,
            _ => top_meta,
        }
    }

    fn is_opaque(&self, layer: usize, rel: &Path) -> bool {
        let abs = self.layers[layer].root.join(rel);
        if fs::symlink_metadata(abs.join(OsStr::from_bytes(OPAQUE_MARKER))).is_ok() {
            return true;
        }
        let Ok(p) = CString::new(abs.as_os_str().as_bytes()) else {
            return false;
        };
        OPAQUE_XATTRS.iter().any(|name| {
            let Ok(n) = CString::new(*name) else {
                return false;
            };
            matches!(crate::sys::lgetxattr(&p, &n), Ok(Some(v)) if v == b"y")
        })
    }

    fn write_err(path: &Path) -> impl FnOnce(io::Error) -> FlattenError + '_ {
        move |source| FlattenError::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    fn append_dir(&mut self, path: &Path, meta: &Metadata) -> Result<(), FlattenError> {
        let mut h = header(meta);
        h.set_size(0);
        let mut name = path.as_os_str().to_owned();
        name.push("/");
        self.builder
            .append_data(&mut h, PathBuf::from(name), io::empty())
            .map_err(Self::write_err(path))
    }

    /// A file, symlink, device or fifo from `layer`.
    fn append_other(
        &mut self,
        path: &Path,
        layer: usize,
        meta: &Metadata,
    ) -> Result<(), FlattenError> {
        let abs = self.layers[layer].root.join(path);
        let ft = meta.file_type();
        let mut h = header(meta);
        h.set_size(0);
        if ft.is_symlink() {
            let target = match fs::read_link(&abs) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(read_err(abs)(e)),
            };
            return self
                .builder
                .append_link(&mut h, path, target)
                .map_err(Self::write_err(path));
        }
        if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1
                && let Some(first) = self.links.get(&key)
            {
                h.set_entry_type(tar::EntryType::Link);
                return self
                    .builder
                    .append_link(&mut h, path, first)
                    .map_err(Self::write_err(path));
            }
            let file = match File::open(&abs) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(read_err(abs)(e)),
            };
            if meta.nlink() > 1 {
                self.links.insert(key, path.to_path_buf());
            }
            h.set_size(meta.len());
            return self
                .builder
                .append_data(&mut h, path, FixedLen::new(file, meta.len()))
                .map_err(Self::write_err(path));
        }
        if ft.is_socket() {
            return Ok(());
        }
        set_device(&mut h, meta).map_err(Self::write_err(path))?;
        self.builder
            .append_data(&mut h, path, io::empty())
            .map_err(Self::write_err(path))
    }
}

/// A GNU header with `meta`'s type, mode, owner and mtime.
fn header(meta: &Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use std::io::Read;

    use super::*;

    fn file(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, data).expect("write");
    }

    fn dir(root: &Path, rel: &str) {
        fs::create_dir_all(root.join(rel)).expect("mkdir");
    }

    fn whiteout(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        nix::sys::stat::mknod(
            &p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
            0,
        )
        .expect("mknod (tests run as root)");
    }

    fn opaque_xattr(path: &Path) {
        let d = File::open(path).expect("open");
        crate::sys::fsetxattr(
            std::os::fd::AsFd::as_fd(&d),
            b"trusted.overlay.opaque",
            b"y",
        )
        .expect("xattr (root)");
    }

    /// (name, what) for every entry: `d` dirs, `f:<content>` files, `l:<target>` symlinks,
    /// `h:<target>` hard links, `c:<major>,<minor>` devices.
    fn entries(tar: &[u8]) -> Vec<(String, String)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .expect("entries")
            .map(|e| {
                let mut e = e.expect("entry");
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let h = e.header().clone();
                let what = match h.entry_type() {
                    tar::EntryType::Directory => "d".to_owned(),
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        let kind = if h.entry_type() == tar::EntryType::Link {
                            'h'
                        } else {
                            'l'
                        };
                        let target = e.link_name().expect("link").expect("target");
                        format!("{kind}:{}", target.display())
                    }
                    tar::EntryType::Char => format!(
                        "c:{},{}",
                        h.device_major().expect("major").unwrap_or(0),
                        h.device_minor().expect("minor").unwrap_or(0)
                    ),
                    _ => {
                        let mut s = String::new();
                        e.read_to_string(&mut s).expect("read");
                        format!("f:{s}")
                    }
                };
                (name, what)
            })
            .collect()
    }

    fn export(upper: &Path, exclude: &[&str], lower: &[PathBuf]) -> Vec<(String, String)> {
        let exclude: Vec<String> = exclude.iter().map(|e| (*e).to_owned()).collect();
        let tar = write_merged_tar(upper, &exclude, lower, Vec::new()).expect("export");
        entries(&tar)
    }

    fn names(e: &[(String, String)]) -> Vec<&str> {
        e.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn get<'a>(e: &'a [(String, String)], name: &str) -> &'a str {
        e.iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| w.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {:?}", names(e)))
    }

    #[test]
    fn upper_wins_and_whiteouts_hide_lower_entries() {
        let t = tempfile::tempdir().expect("tmp");
        let (l1, l2, up) = (
            t.path().join("l1"),
            t.path().join("l2"),
            t.path().join("up"),
        );
        file(&l1, "etc/passwd", b"old");
        file(&l1, "etc/group", b"g");
        file(&l1, "gone", b"1");
        file(&l1, "keep", b"k");
        // The middle layer deleted /gone the AUFS way, the upper one /etc/group the overlay
        // way; both markers stay out of the archive.
        file(&l2, ".wh.gone", b"");
        file(&l2, "mid", b"m");
        file(&up, "etc/passwd", b"new");
        whiteout(&up, "etc/group");
        file(&up, "new", b"fresh");

        let e = export(&up, &[], &[l2, l1]);
        assert_eq!(
            names(&e),
            ["etc/", "etc/passwd", "keep", "mid", "new"],
            "lexical order, parents first, no whiteouts"
        );
        assert_eq!(get(&e, "etc/passwd"), "f:new");
        assert_eq!(get(&e, "keep"), "f:k");
    }

    #[test]
    fn opaque_directories_hide_what_is_below_them() {
        let t = tempfile::tempdir().expect("tmp");
        let (l1, l2, up) = (
            t.path().join("l1"),
            t.path().join("l2"),
            t.path().join("up"),
        );
        file(&l1, "opt/old", b"o");
        file(&l1, "srv/old", b"o");
        file(&l1, "var/lib/x", b"x");
        // Recreated in the middle layer, marked the AUFS way.
        file(&l2, "srv/.wh..wh..opq", b"");
        file(&l2, "srv/mid", b"m");
        // Recreated in the container, marked with the overlay xattr.
        file(&up, "opt/fresh", b"f");
        opaque_xattr(&up.join("opt"));
        // Not opaque: merged with the lower directory.
        file(&up, "var/lib/y", b"y");

        let e = export(&up, &[], &[l2, l1]);
        assert_eq!(
            names(&e),
            [
                "opt/",
                "opt/fresh",
                "srv/",
                "srv/mid",
                "var/",
                "var/lib/",
                "var/lib/x",
                "var/lib/y"
            ]
        );
    }

    #[test]
    fn a_file_replaces_a_lower_directory_and_a_directory_a_lower_file() {
        let t = tempfile::tempdir().expect("tmp");
        let (l1, up) = (t.path().join("l1"), t.path().join("up"));
        file(&l1, "home/user/notes", b"n");
        file(&l1, "data", b"was a file");
        file(&up, "home", b"now a file");
        file(&up, "data/inner", b"i");

        let e = export(&up, &[], std::slice::from_ref(&l1));
        assert_eq!(names(&e), ["data/", "data/inner", "home"]);
        assert_eq!(get(&e, "home"), "f:now a file");
        // A lower layer's file hides the directories further below, too.
        let l0 = t.path().join("l0");
        file(&l0, "data/deep", b"d");
        let e = export(&up, &[], &[l1, l0]);
        assert_eq!(names(&e), ["data/", "data/inner", "home"]);
    }

    #[test]
    fn excluded_mount_points_leave_the_image_content_visible() {
        let t = tempfile::tempdir().expect("tmp");
        let (l1, up) = (t.path().join("l1"), t.path().join("up"));
        file(&l1, "etc/passwd", b"p");
        dir(&l1, "dev");
        fs::set_permissions(l1.join("etc"), fs::Permissions::from_mode(0o755)).expect("chmod");
        // What the runtime leaves in the upper directory: mount points, /etc only for them.
        file(&up, "etc/hosts", b"");
        file(&up, "etc/resolv.conf", b"");
        file(&up, ".dockerenv", b"");
        dir(&up, "dev/pts");
        fs::set_permissions(up.join("etc"), fs::Permissions::from_mode(0o755)).expect("chmod");
        let lower_mtime = fs::metadata(l1.join("etc")).expect("stat").mtime();
        File::open(up.join("etc"))
            .and_then(|f| f.set_modified(std::time::UNIX_EPOCH))
            .expect("mtime");

        let excl = ["/.dockerenv", "/dev", "/etc/hosts", "/etc/resolv.conf"];
        let tar = write_merged_tar(
            &up,
            &excl.map(str::to_owned),
            std::slice::from_ref(&l1),
            Vec::new(),
        )
        .expect("export");
        assert_eq!(names(&entries(&tar)), ["dev/", "etc/", "etc/passwd"]);
        let mut a = tar::Archive::new(&tar[..]);
        let etc = a
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry"))
            .find(|e| e.path_bytes().as_ref() == b"etc/")
            .expect("etc");
        assert_eq!(
            etc.header().mtime().expect("mtime"),
            lower_mtime as u64,
            "metadata of the image's /etc"
        );
    }

    #[test]
    fn links_devices_and_a_missing_upper_dir_are_exported() {
        let t = tempfile::tempdir().expect("tmp");
        let l1 = t.path().join("l1");
        file(&l1, "bin/busybox", b"bb");
        fs::hard_link(l1.join("bin/busybox"), l1.join("bin/sh")).expect("link");
        symlink("busybox", l1.join("bin/ls")).expect("symlink");
        dir(&l1, "dev");
        nix::sys::stat::mknod(
            &l1.join("dev/null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .expect("mknod (root)");

        let e = export(&t.path().join("never-started"), &[], &[l1]);
        assert_eq!(
            e,
            [
                ("bin/".to_owned(), "d".to_owned()),
                ("bin/busybox".into(), "f:bb".into()),
                ("bin/ls".into(), "l:busybox".into()),
                ("bin/sh".into(), "h:bin/busybox".into()),
                ("dev/".into(), "d".into()),
                ("dev/null".into(), "c:1,3".into()),
            ]
        );
    }
}
