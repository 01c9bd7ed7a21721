//! `docker commit`: a container's overlay upper directory becomes a new layer on top of its
//! image, and the container's configuration (plus `--change` instructions) the new image's.
//!
//! The upper directory is written as a tar with Docker's overlay rules: a whiteout (a `0:0`
//! character device) becomes `.wh.<name>`, a directory marked `trusted.overlay.opaque=y`
//! (or `user.overlay.opaque`) gets a `.wh..wh..opq` entry, entries are in lexical order with
//! parents first, and hard links inside the layer stay hard links. Paths the caller excludes
//! (the runtime's mount points, Docker's "init layer") are left out, and so is a directory
//! that is in the upper directory only because it holds such a path.
//!
//! The tar is stored uncompressed (its digest is its diff_id), then unpacked into a snapshot
//! like any other layer, and the image is created with the store's prepare/commit ordering:
//! a failure leaves no record and no tag. A commit without changes adds no layer, only a
//! history entry marked `empty_layer`, as Docker does.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use arca_model::{Digest, Reference, random_hex};
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::image::{Image, LayerBlob};
use crate::tarout::{FixedLen, set_device};
use crate::{Store, StoreError, changes};

/// What `docker commit` asks for, besides the container's filesystem.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The container's ID (the image config's `container`).
    pub container_id: String,
    /// The container's effective configuration, Docker's field names (`Cmd`, `Env`, …).
    pub container_config: Map<String, Value>,
    /// The request body's configuration: fields that override the container's.
    pub overrides: Map<String, Value>,
    /// Dockerfile instructions (`CMD …`, `ENV …`), applied on top of `overrides`.
    pub changes: Vec<String>,
    pub author: String,
    pub comment: String,
    /// Tag for the new image.
    pub reference: Option<Reference>,
    /// Absolute paths in the upper directory to leave out (`/etc/hosts`, `/dev`, …).
    pub exclude: Vec<String>,
}

/// The digest of a tar with no entries (1024 zero bytes): Docker's "empty layer".
const EMPTY_TAR_LEN: usize = 1024;

const OPAQUE_XATTRS: &[&[u8]] = &[b"trusted.overlay.opaque", b"user.overlay.opaque"];

impl Store {
    /// Creates an image from image `base` plus the overlay upper directory `upper` of a
    /// container (see the module docs), tagged with `opts.reference`.
    pub fn commit_container(
        &self,
        base: &Digest,
        upper: &Path,
        opts: &CommitOptions,
    ) -> Result<Image, StoreError> {
        if opts
            .reference
            .as_ref()
            .is_some_and(|r| r.digest().is_some())
        {
            return Err(StoreError::DigestTag);
        }
        let config = new_config(opts)?;
        let _lease = self.lease();
        let base_img = self.image_by_id(base)?;
        let lower = self.layer_dirs(&base_img);
        let (diff_id, empty) = self.write_upper_layer(upper, &lower, &opts.exclude)?;

        let now = chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let mut image = base_img.config.clone();
        let Some(obj) = image.as_object_mut() else {
            return Err(StoreError::Config {
                id: base.clone(),
                reason: "not a JSON object".into(),
            });
        };
        obj.insert("created".into(), json!(now));
        obj.insert("config".into(), Value::Object(config));
        obj.insert("container".into(), json!(opts.container_id));
        obj.insert(
            "container_config".into(),
            Value::Object(opts.container_config.clone()),
        );
        set_or_remove(obj, "author", &opts.author);
        set_or_remove(obj, "comment", &opts.comment);
        let created_by = opts
            .container_config
            .get("Cmd")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let mut entry = Map::new();
        entry.insert("created".into(), json!(now));
        if !opts.author.is_empty() {
            entry.insert("author".into(), json!(opts.author));
        }
        entry.insert("created_by".into(), json!(created_by));
        if !opts.comment.is_empty() {
            entry.insert("comment".into(), json!(opts.comment));
        }
        if empty {
            entry.insert("empty_layer".into(), json!(true));
        }
        push_array(obj, "history", Value::Object(entry));
        let mut layers: Vec<LayerBlob> = base_img
            .layers
            .iter()
            .map(|l| LayerBlob {
                digest: l.blob.clone(),
                media_type: l.media_type.clone(),
            })
            .collect();
        let mut verified: HashSet<(Digest, Digest)> = base_img
            .layers
            .iter()
            .map(|l| (l.blob.clone(), l.diff_id.clone()))
            .collect();
        if !empty {
            let rootfs = obj
                .entry("rootfs")
                .or_insert_with(|| json!({"type": "layers"}));
            if let Some(r) = rootfs.as_object_mut() {
                push_array(r, "diff_ids", json!(diff_id));
            }
            layers.push(LayerBlob {
                digest: diff_id.clone(),
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            });
            verified.insert((diff_id.clone(), diff_id.clone()));
        }
        let config = serde_json::to_vec(&image).expect("a JSON value always serializes");
        let prepared = self.prepare(&config, &layers, &verified)?;
        let id = prepared.record.id.clone();
        let tags: Vec<_> = opts
            .reference
            .iter()
            .map(|r| (r.clone().with_default_tag(), id.clone()))
            .collect();
        self.commit(&[prepared], &tags)?;
        tracing::info!(%id, container = %opts.container_id, "committed container");
        self.image_by_id(&id)
    }

    /// Writes `upper` as a layer blob and unpacks its snapshot; returns the diff_id and
    /// whether the layer is empty (then nothing was stored).
    fn write_upper_layer(
        &self,
        upper: &Path,
        lower: &[PathBuf],
        exclude: &[String],
    ) -> Result<(Digest, bool), StoreError> {
        let mut entries = Vec::new();
        if upper.exists() {
            let walker = Walker {
                upper,
                lower,
                exclude,
            };
            walker.collect(Path::new(""), &mut entries)?;
        }
        let tmp = self.layout.content_tmp().join(random_hex(16));
        let result = (|| -> Result<(Digest, bool), StoreError> {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(StoreError::io("create", &tmp))?;
            let mut out = HashWriter {
                inner: io::BufWriter::with_capacity(256 * 1024, file),
                hasher: Sha256::new(),
                count: 0,
            };
            write_tar(upper, &entries, &mut out).map_err(StoreError::io("write", &tmp))?;
            let file = out
                .inner
                .into_inner()
                .map_err(|e| StoreError::io("write", &tmp)(e.into_error()))?;
            let digest = Digest::from_sha256(out.hasher.finalize().into());
            if out.count as usize <= EMPTY_TAR_LEN && entries.is_empty() {
                return Ok((digest, true));
            }
            file.sync_all().map_err(StoreError::io("sync", &tmp))?;
            drop(file);
            self.publish_blob(&tmp, &digest)?;
            Ok((digest, false))
        })();
        let _ = fs::remove_file(&tmp);
        let (diff_id, empty) = result?;
        if !empty {
            // Our own tar: its digest is its diff_id, no second hashing needed.
            self.ensure_snapshot(&diff_id, &diff_id, true)?;
        }
        Ok((diff_id, empty))
    }
}

/// `Config` of the new image: the overrides with the changes applied, then completed from
/// the container's configuration with moby's merge rules.
fn new_config(opts: &CommitOptions) -> Result<Map<String, Value>, StoreError> {
    let mut user: Map<String, Value> = opts
        .overrides
        .iter()
        .filter(|(_, v)| !is_unset(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    changes::apply_onto(&mut user, &opts.changes)?;
    merge(&mut user, &opts.container_config);
    Ok(user)
}

fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// moby's `merge(userConf, imageConf)`: lists and maps are unioned (the user's entries win),
/// `Cmd` is inherited only when the user set no `Entrypoint`, other fields fill gaps.
fn merge(user: &mut Map<String, Value>, base: &Map<String, Value>) {
    let user_entrypoint = user.get("Entrypoint").is_some_and(|v| !is_unset(v));
    for (key, value) in base {
        if is_unset(value) {
            continue;
        }
        match key.as_str() {
            "Env" => {
                let Some(base_env) = value.as_array() else {
                    continue;
                };
                let env = user.entry("Env").or_insert_with(|| json!([]));
                if let Some(env) = env.as_array_mut() {
                    let name = |e: &Value| {
                        e.as_str()
                            .map(|s| s.split_once('=').map_or(s, |p| p.0).to_owned())
                    };
                    let have: HashSet<_> = env.iter().filter_map(name).collect();
                    for e in base_env {
                        if name(e).is_some_and(|n| !have.contains(&n)) {
                            env.push(e.clone());
                        }
                    }
                }
            }
            "Labels" | "ExposedPorts" | "Volumes" => {
                let Some(base_map) = value.as_object() else {
                    continue;
                };
                let slot = user.entry(key.clone()).or_insert_with(|| json!({}));
                if slot.is_null() {
                    *slot = json!({});
                }
                if let Some(m) = slot.as_object_mut() {
                    for (k, v) in base_map {
                        m.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
            "Cmd" if user_entrypoint => {}
            _ => {
                if user.get(key).is_none_or(is_unset) {
                    user.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

fn set_or_remove(obj: &mut Map<String, Value>, key: &str, value: &str) {
    if value.is_empty() {
        obj.remove(key);
    } else {
        obj.insert(key.into(), json!(value));
    }
}

fn push_array(obj: &mut Map<String, Value>, key: &str, item: Value) {
    let slot = obj.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    if let Some(a) = slot.as_array_mut() {
        a.push(item);
    }
}

/// One entry of the layer, relative to the upper directory.
enum Entry {
    /// A file, directory, symlink, device or fifo, as found.
    Plain(PathBuf, fs::Metadata),
    /// A deletion: written as `.wh.<name>` in the same directory.
    Whiteout(PathBuf, fs::Metadata),
    /// The opaque marker of a directory: `<dir>/.wh..wh..opq`.
    Opaque(PathBuf, fs::Metadata),
}

struct Walker<'a> {
    upper: &'a Path,
    lower: &'a [PathBuf],
    exclude: &'a [String],
}

impl Walker<'_> {
    fn excluded(&self, rel: &Path) -> bool {
        let abs = Path::new("/").join(rel);
        self.exclude.iter().any(|e| Path::new(e) == abs)
    }

    /// Appends the entries under `rel` (lexical order, parents first). Returns whether it
    /// appended any, and whether `rel` holds an excluded path.
    fn collect(&self, rel: &Path, out: &mut Vec<Entry>) -> Result<(bool, bool), StoreError> {
        let dir = self.upper.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(StoreError::io("read", &dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(StoreError::io("read", &dir))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut any = false;
        let mut held_excluded = false;
        for name in names {
            let path = rel.join(&name);
            if self.excluded(&path) {
                held_excluded = true;
                continue;
            }
            let abs = self.upper.join(&path);
            let meta = fs::symlink_metadata(&abs).map_err(StoreError::io("stat", &abs))?;
            let ft = meta.file_type();
            if ft.is_char_device() && meta.rdev() == 0 {
                out.push(Entry::Whiteout(path, meta));
                any = true;
                continue;
            }
            if !ft.is_dir() {
                if !ft.is_socket() {
                    out.push(Entry::Plain(path, meta));
                    any = true;
                }
                continue;
            }
            let start = out.len();
            let opaque = is_opaque(&abs);
            out.push(Entry::Plain(path.clone(), meta.clone()));
            if opaque {
                out.push(Entry::Opaque(path.clone(), meta.clone()));
            }
            let (children, holds) = self.collect(&path, out)?;
            if !children && !opaque && holds && self.same_dir_below(&path, &meta) {
                // Only in the upper directory for the runtime's mount points.
                out.truncate(start);
                held_excluded = true;
                continue;
            }
            any = true;
        }
        Ok((any, held_excluded))
    }

    /// Whether the topmost lower layer that has `rel` has a directory with the same mode.
    fn same_dir_below(&self, rel: &Path, meta: &fs::Metadata) -> bool {
        for l in self.lower {
            if let Ok(m) = fs::symlink_metadata(l.join(rel)) {
                return m.is_dir() && m.mode() == meta.mode();
            }
        }
        false
    }
}

fn is_opaque(path: &Path) -> bool {
    let Ok(p) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    OPAQUE_XATTRS.iter().any(|name| {
        let Ok(n) = CString::new(*name) else {
            return false;
        };
        matches!(crate::sys::lgetxattr(&p, &n), Ok(Some(v)) if v == b"y")
    })
}

/// Hashes and counts what is written through it.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `entries` (from `upper`) as a tar stream.
fn write_tar(upper: &Path, entries: &[Entry], out: &mut impl Write) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    // First path of each multiply-linked inode, so later ones become hard links.
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for entry in entries {
        match entry {
            Entry::Plain(path, meta) => {
                let mut h = tar::Header::new_gnu();
                h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
                let ft = meta.file_type();
                if ft.is_dir() {
                    h.set_size(0);
                    builder.append_data(&mut h, dir_name(path), io::empty())?;
                } else if ft.is_symlink() {
                    let target = fs::read_link(upper.join(path))?;
                    h.set_size(0);
                    builder.append_link(&mut h, path, target)?;
                } else if ft.is_file() {
                    if meta.nlink() > 1 {
                        let key = (meta.dev(), meta.ino());
                        if let Some(first) = links.get(&key) {
                            h.set_entry_type(tar::EntryType::Link);
                            h.set_size(0);
                            builder.append_link(&mut h, path, first)?;
                            continue;
                        }
                        links.insert(key, path.clone());
                    }
                    let file = File::open(upper.join(path))?;
                    h.set_size(meta.len());
                    // A file that changes size while we read it (a running container
                    // without pause) must not corrupt the stream.
                    builder.append_data(&mut h, path, FixedLen::new(file, meta.len()))?;
                } else {
                    // Devices and fifos: the header says it all.
                    set_device(&mut h, meta)?;
                    h.set_size(0);
                    builder.append_data(&mut h, path, io::empty())?;
                }
            }
            Entry::Whiteout(path, meta) => {
                let name = path
                    .file_name()
                    .map(|n| {
                        let mut s = std::ffi::OsString::from(".wh.");
                        s.push(n);
                        s
                    })
                    .unwrap_or_default();
                let wh = path.with_file_name(name);
                marker(&mut builder, &wh, meta)?;
            }
            Entry::Opaque(path, meta) => {
                marker(&mut builder, &path.join(".wh..wh..opq"), meta)?;
            }
        }
    }
    builder.into_inner()?.flush()
}

/// An empty regular file named `path`, with `meta`'s permissions, owner and times.
fn marker<W: Write>(b: &mut tar::Builder<W>, path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(meta.mode() & 0o777);
    h.set_uid(meta.uid().into());
    h.set_gid(meta.gid().into());
    h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    h.set_size(0);
    b.append_data(&mut h, path, io::empty())
}

/// Directory names end in `/` in tars, as Docker writes them.
fn dir_name(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("/");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use crate::testutil::{empty_store, import_files};

    use super::*;

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
            0,
        )
        .expect("mknod (tests run as root)");
    }

    /// Names in the layer tar of `image`'s top layer.
    fn tar_names(store: &Store, image: &Image) -> Vec<String> {
        let top = image.layers.last().expect("a layer");
        let mut data = Vec::new();
        store
            .open_blob(&top.blob)
            .expect("blob")
            .read_to_end(&mut data)
            .expect("read");
        let mut ar = tar::Archive::new(&data[..]);
        ar.entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                String::from_utf8_lossy(&e.path_bytes()).into_owned()
            })
            .collect()
    }

    fn opts(changes: &[&str]) -> CommitOptions {
        let mut container_config = Map::new();
        container_config.insert("Cmd".into(), json!(["sh", "-c", "touch /new"]));
        container_config.insert("Env".into(), json!(["PATH=/bin", "A=1"]));
        container_config.insert("Hostname".into(), json!("abc"));
        CommitOptions {
            container_id: "c0ffee".into(),
            container_config,
            changes: changes.iter().map(|c| (*c).to_owned()).collect(),
            author: "me".into(),
            comment: "msg".into(),
            reference: Some("committed:v1".parse().expect("ref")),
            exclude: vec!["/etc/hosts".into(), "/dev".into()],
            ..CommitOptions::default()
        }
    }

    #[test]
    fn commit_writes_docker_whiteouts_and_leaves_out_mount_points() {
        let (tmp, store) = empty_store();
        let base = import_files(
            &store,
            &[("etc/passwd", b"root"), ("opt/old", b"o"), ("gone", b"g")],
            Some("base"),
        );
        let upper = tmp.path().join("upper");
        fs::create_dir_all(upper.join("opt")).expect("mkdir");
        fs::create_dir_all(upper.join("dev")).expect("mkdir");
        fs::write(upper.join("new"), b"fresh").expect("write");
        fs::write(upper.join("opt/x"), b"x").expect("write");
        xattr_opaque(&upper.join("opt"));
        whiteout(&upper.join("gone"));
        // /etc is in the upper dir only for the runtime's /etc/hosts mount point.
        let lower_etc = store.layer_dirs(&base)[0].join("etc");
        fs::create_dir_all(upper.join("etc")).expect("mkdir");
        fs::set_permissions(
            upper.join("etc"),
            fs::metadata(&lower_etc).expect("lower").permissions(),
        )
        .expect("chmod");
        fs::write(upper.join("etc/hosts"), b"").expect("write");

        let img = store
            .commit_container(&base.id, &upper, &opts(&[r#"CMD ["cat","/new"]"#]))
            .expect("commit");
        assert_eq!(img.repo_tags, vec!["committed:v1"]);
        assert_eq!(img.layers.len(), 2);
        assert_eq!(
            img.layers[1].blob, img.layers[1].diff_id,
            "stored uncompressed"
        );
        assert_eq!(
            tar_names(&store, &img),
            [".wh.gone", "new", "opt/", "opt/.wh..wh..opq", "opt/x"]
        );
        let c = &img.config;
        assert_eq!(c["config"]["Cmd"], json!(["cat", "/new"]));
        assert_eq!(c["config"]["Env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(c["config"]["Hostname"], "abc");
        assert_eq!(c["container"], "c0ffee");
        assert_eq!(
            c["container_config"]["Cmd"],
            json!(["sh", "-c", "touch /new"])
        );
        assert_eq!(c["author"], "me");
        let last = c["history"]
            .as_array()
            .expect("history")
            .last()
            .expect("entry");
        assert_eq!(last["created_by"], "sh -c touch /new");
        assert_eq!(last["comment"], "msg");
        assert_eq!(c["rootfs"]["diff_ids"].as_array().expect("ids").len(), 2);
        // The new snapshot has overlay whiteouts again.
        let top = &store.layer_dirs(&img)[0];
        assert!(top.join("new").is_file());
        let m = fs::symlink_metadata(top.join("gone")).expect("whiteout");
        assert!(m.file_type().is_char_device());
        assert!(is_opaque(&top.join("opt")));
        assert!(!top.join("etc").exists(), "mount-point-only dir left out");
    }

    fn xattr_opaque(path: &Path) {
        let dir = File::open(path).expect("open");
        crate::sys::fsetxattr(
            std::os::fd::AsFd::as_fd(&dir),
            b"trusted.overlay.opaque",
            b"y",
        )
        .expect("xattr (root)");
    }

    #[test]
    fn commit_without_changes_adds_an_empty_history_entry_only() {
        let (tmp, store) = empty_store();
        let base = import_files(&store, &[("a", b"1")], None);
        let upper = tmp.path().join("upper");
        fs::create_dir_all(upper.join("dev")).expect("mkdir");
        let img = store
            .commit_container(&base.id, &upper, &opts(&["ENTRYPOINT [\"/a\"]"]))
            .expect("commit");
        assert_eq!(img.layers, base.layers);
        let last = img.config["history"].as_array().expect("h").last().cloned();
        assert_eq!(last.expect("entry")["empty_layer"], true);
        // An entrypoint change drops the inherited Cmd, as in moby's merge.
        assert_eq!(img.config["config"]["Entrypoint"], json!(["/a"]));
        assert!(img.config["config"].get("Cmd").is_none());
    }

    #[test]
    fn failed_commit_leaves_no_image_or_tag() {
        let (tmp, store) = empty_store();
        let base = import_files(&store, &[("a", b"1")], None);
        let upper = tmp.path().join("upper");
        fs::create_dir_all(&upper).expect("mkdir");
        fs::write(upper.join("f"), b"1").expect("write");
        let before = store.list().expect("list").len();
        let err = store
            .commit_container(&base.id, &upper, &opts(&["RUN rm -rf /"]))
            .expect_err("bad change");
        assert_eq!(err.kind(), arca_model::ErrorKind::InvalidArgument);
        assert_eq!(store.list().expect("list").len(), before);
        assert!(store.get("committed:v1").is_err());
    }
}
