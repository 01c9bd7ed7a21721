//! Writing tars as moby's `TarWithOptions` does for `docker cp` (entry names under a rebase
//! name, hard links as `Link` entries, sockets left out), and renaming the entries of a
//! stream (moby's `RebaseArchiveEntries`).
//!
//! Names are written byte for byte (GNU long-name records when they exceed 100 bytes): the
//! `tar` crate's own path setters normalise `./x` to `x`, and the `./` prefix is what tells
//! the client a `dir/.` copy apart from a `dir` copy.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use tar::{EntryType, Header};

use super::IdMapping;
use crate::tarout::{FixedLen, set_device};

/// Options of [`pack_with`].
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Host→container ID ranges: header IDs are mapped back into the container's view (an
    /// ID outside every range is an error, as in moby).
    pub id_map: Option<IdMapping>,
}

/// Writes a tar of `source` (not followed if it is a symlink: a file, a symlink, or a
/// directory with everything below it, children in byte order of their names) to `w`, and
/// returns `w`. The top entry is named exactly `rebase` (a directory gets a trailing `/`);
/// entries below it are `rebase/child…` (`rebase` `.` gives `./`, `./child`; `/` gives
/// `/`, `/child`, as moby's rebase of the root does).
///
/// Files that vanish while the tree is walked are left out, as moby does for a running
/// container; a file that changes size while it is read keeps its announced length.
pub fn pack<W: Write>(source: &Path, rebase: &str, w: W) -> io::Result<W> {
    pack_with(source, rebase, w, &PackOptions::default())
}

/// [`pack`] with options.
pub fn pack_with<W: Write>(source: &Path, rebase: &str, w: W, opts: &PackOptions) -> io::Result<W> {
    let meta = fs::symlink_metadata(source)?;
    let mut p = Packer {
        builder: tar::Builder::new(Guarded::new(w)),
        links: HashMap::new(),
        opts,
    };
    let res = if meta.is_dir() {
        let mut top = rebase.as_bytes().to_vec();
        if !top.ends_with(b"/") {
            top.push(b'/');
        }
        p.add(source, &top, &meta).and_then(|()| {
            let base = rebase.trim_end_matches('/').as_bytes().to_vec();
            p.walk(source, &base)
        })
    } else {
        p.add(source, rebase.as_bytes(), &meta)
    };
    finish(p.builder, res)
}

/// Passes writes through until [`Guarded::poison`]: `tar::Builder` writes the end-of-archive
/// blocks when dropped, which would turn a stream cut short by an error into a valid,
/// truncated archive the other side extracts without noticing.
struct Guarded<W> {
    inner: W,
    poisoned: bool,
}

impl<W: Write> Guarded<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            poisoned: false,
        }
    }
}

impl<W: Write> Write for Guarded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(io::Error::other("tar stream abandoned after an error"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.poisoned {
            return Ok(());
        }
        self.inner.flush()
    }
}

/// Ends the archive when `res` is a success; otherwise leaves it without its end marker.
fn finish<W: Write>(mut b: tar::Builder<Guarded<W>>, res: io::Result<()>) -> io::Result<W> {
    match res {
        Ok(()) => Ok(b.into_inner()?.inner),
        Err(e) => {
            b.get_mut().poisoned = true;
            Err(e)
        }
    }
}

struct Packer<'a, W: Write> {
    builder: tar::Builder<Guarded<W>>,
    /// First name written for each multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
    opts: &'a PackOptions,
}

impl<W: Write> Packer<'_, W> {
    /// Adds the children of directory `dir` as `prefix/<name>`, depth first.
    fn walk(&mut self, dir: &Path, prefix: &[u8]) -> io::Result<()> {
        // Names are collected first so only one directory is open at a time, however deep.
        let mut names: Vec<_> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut entry = prefix.to_vec();
            entry.push(b'/');
            entry.extend_from_slice(name.as_bytes());
            if meta.is_dir() {
                let mut top = entry.clone();
                top.push(b'/');
                self.add(&path, &top, &meta)?;
                self.walk(&path, &entry)?;
            } else {
                self.add(&path, &entry, &meta)?;
            }
        }
        Ok(())
    }

    /// The entry's owner as the container sees it: a host ID outside the container's maps
    /// (a file arcad made, such as `/etc/hosts`) is the overflow ID 65534, as the kernel
    /// shows it inside the user namespace.
    fn ids(&self, meta: &Metadata) -> io::Result<(u32, u32)> {
        Ok(match &self.opts.id_map {
            None => (meta.uid(), meta.gid()),
            Some(map) => map.to_container_or_overflow(meta.uid(), meta.gid()),
        })
    }

    /// Adds one entry named `name` for `path`.
    fn add(&mut self, path: &Path, name: &[u8], meta: &Metadata) -> io::Result<()> {
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        let mut h = Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        let (uid, gid) = self.ids(meta)?;
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        h.set_size(0);
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(EntryType::Link);
                let first = first.clone();
                return append(&mut self.builder, &mut h, name, Some(&first), io::empty());
            }
            self.links.insert(key, name.to_vec());
        }
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            append(&mut self.builder, &mut h, name, None, io::empty())
        } else if ft.is_symlink() {
            h.set_entry_type(EntryType::Symlink);
            let target = match fs::read_link(path) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            let target = target.as_os_str().as_bytes();
            append(&mut self.builder, &mut h, name, Some(target), io::empty())
        } else if ft.is_file() {
            h.set_entry_type(EntryType::Regular);
            // O_NONBLOCK: if the file was swapped for a fifo since the lstat, opening it must
            // not wait for a writer.
            let file = match File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
            if let Some(cap) = capability(path) {
                append_pax(
                    &mut self.builder,
                    &[(b"SCHILY.xattr.security.capability", &cap)],
                )?;
            }
            h.set_size(meta.len());
            let data: Box<dyn Read> = if regular {
                Box::new(file)
            } else {
                Box::new(io::empty())
            };
            // A file that changes size while it is read (a running container) must not
            // corrupt the stream, whose header already announced the length.
            append(
                &mut self.builder,
                &mut h,
                name,
                None,
                FixedLen::new(data, meta.len()),
            )
        } else {
            h.set_entry_type(if ft.is_fifo() {
                EntryType::Fifo
            } else if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            });
            set_device(&mut h, meta)?;
            append(&mut self.builder, &mut h, name, None, io::empty())
        }
    }
}

/// The file's `security.capability` attribute, as moby packs it: a version-3 value (with a
/// namespace root ID) is turned into version 2, since that root means nothing outside the
/// namespace the archive was made in.
fn capability(path: &Path) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = c"security.capability";
    let mut v = crate::sys::lgetxattr(&p, name).ok()??;
    if v.len() > 3 && v[3] == 3 {
        v[3] = 2;
        v.truncate(20);
    }
    Some(v)
}

/// Appends an entry with `name` (and link target `link`) written byte for byte into `h`,
/// preceded by GNU long-name/long-link records when they do not fit the header.
pub(super) fn append<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    if name.contains(&0) || link.is_some_and(|l| l.contains(&0)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "tar entry name contains a NUL byte",
        ));
    }
    let old = h.as_old_mut();
    old.name.fill(0);
    if name.len() > old.name.len() {
        long_record(b, b'L', name)?;
    }
    let old = h.as_old_mut();
    let n = name.len().min(old.name.len());
    old.name[..n].copy_from_slice(&name[..n]);
    old.linkname.fill(0);
    if let Some(link) = link {
        if link.len() > old.linkname.len() {
            long_record(b, b'K', link)?;
        }
        let old = h.as_old_mut();
        let n = link.len().min(old.linkname.len());
        old.linkname[..n].copy_from_slice(&link[..n]);
    }
    if let Some(ustar) = h.as_ustar_mut() {
        // A clean prefix: the name field alone holds the (possibly truncated) name.
        ustar.prefix.fill(0);
    }
    h.set_cksum();
    b.append(h, data)
}

/// A GNU `././@LongLink` record of type `kind` (`L` name, `K` link) holding `value`.
fn long_record<W: Write>(b: &mut tar::Builder<W>, kind: u8, value: &[u8]) -> io::Result<()> {
    let mut h = Header::new_gnu();
    let label = b"././@LongLink";
    h.as_old_mut().name[..label.len()].copy_from_slice(label);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(EntryType::new(kind));
    h.set_size(value.len() as u64 + 1);
    h.set_cksum();
    b.append(&h, value.chain(&[0u8][..]))
}

/// A PAX extended header (`x`) with `records`, applying to the next entry.
pub(super) fn append_pax<W: Write>(
    b: &mut tar::Builder<W>,
    records: &[(&[u8], &[u8])],
) -> io::Result<()> {
    let mut data = Vec::new();
    for (key, value) in records {
        // "<len> <key>=<value>\n", where <len> counts itself.
        let rest = key.len() + value.len() + 3;
        let mut len = rest + rest.to_string().len();
        if len.to_string().len() + rest != len {
            len += 1;
        }
        data.extend_from_slice(len.to_string().as_bytes());
        data.push(b' ');
        data.extend_from_slice(key);
        data.push(b'=');
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut h = Header::new_ustar();
    let label = b"././@PaxHeader";
    h.as_old_mut().name[..label.len()].copy_from_slice(label);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(EntryType::XHeader);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, &data[..])
}

/// Rewrites the tar stream `r` into `w`, renaming entries whose name is `old` or starts
/// with `old/` to `new`/`new/…` (moby's `RebaseArchiveEntries`, including its rewrite of
/// hard-link targets). With `old` empty or `/`, leading slashes are dropped and every name
/// is put under `new`. Names are otherwise kept verbatim; metadata and PAX records other
/// than `path`/`linkpath` are carried over.
pub fn rebase<R: Read, W: Write>(r: R, w: W, old: &str, new: &str) -> io::Result<W> {
    let old = old.trim_end_matches('/').as_bytes();
    let new = new.trim_end_matches('/').as_bytes();
    let rename = |name: &[u8]| -> Vec<u8> {
        if old.is_empty() {
            let mut i = 0;
            while name.get(i) == Some(&b'/') {
                i += 1;
            }
            let name = &name[i..];
            if new.is_empty() {
                return name.to_vec();
            }
            return [new, b"/", name].concat();
        }
        match name.strip_prefix(old) {
            Some(rest) if rest.is_empty() || rest.starts_with(b"/") => [new, rest].concat(),
            _ => name.to_vec(),
        }
    };
    let mut b = tar::Builder::new(Guarded::new(w));
    let res = rebase_entries(r, &mut b, &rename);
    finish(b, res)
}

fn rebase_entries<R: Read, W: Write>(
    r: R,
    b: &mut tar::Builder<W>,
    rename: &dyn Fn(&[u8]) -> Vec<u8>,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let src = entry.header().clone();
        let mut kind = src.entry_type();
        if kind.is_pax_global_extensions() {
            b.append(&src, &mut entry)?;
            continue;
        }
        let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts {
                let ext = ext?;
                if ext.key_bytes() != b"path" && ext.key_bytes() != b"linkpath" {
                    records.push((ext.key_bytes().to_vec(), ext.value_bytes().to_vec()));
                }
            }
        }
        let name = rename(&entry.path_bytes());
        let link = entry.link_name_bytes().map(|l| {
            if kind == EntryType::Link {
                rename(&l)
            } else {
                l.into_owned()
            }
        });
        if kind.is_gnu_sparse() {
            // The reader expanded the holes: what follows is the whole file.
            kind = EntryType::Regular;
        }
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let (mode, uid, gid, mtime) = super::header_numbers(&src)?;
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_size(entry.size());
        if let (Ok(Some(major)), Ok(Some(minor))) = (src.device_major(), src.device_minor()) {
            h.set_device_major(major)?;
            h.set_device_minor(minor)?;
        }
        if let Some(u) = src.username_bytes() {
            h.set_username(&String::from_utf8_lossy(u))?;
        }
        if let Some(g) = src.groupname_bytes() {
            h.set_groupname(&String::from_utf8_lossy(g))?;
        }
        if !records.is_empty() {
            let refs: Vec<(&[u8], &[u8])> = records
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            append_pax(b, &refs)?;
        }
        append(b, &mut h, &name, link.as_deref(), &mut entry)?;
    }
    Ok(())
}
