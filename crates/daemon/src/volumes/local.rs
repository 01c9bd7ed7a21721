//! The `local` driver's mount options, as Docker's `volume/local`: a volume created with
//! `type`/`device`/`o` has `device` mounted on its `_data` (`mount -t <type> -o <o>`, with
//! `o`'s flag words such as `bind`, `ro`, `nosuid` turned into mount flags as moby's
//! `mount.Mount` does) while containers use it.
//!
//! Who uses a mounted volume is a set of holders per volume (moby's refcount, keyed by
//! container ID so that releasing twice is harmless): [`Volumes::acquire`] mounts on the
//! first holder, [`Volumes::release`] unmounts after the last. Whether `_data` is mounted
//! is read from `/proc/self/mountinfo` each time, never remembered, so the state survives
//! an arcad restart; the holders do not, and are rebuilt from the running containers.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nix::mount::{MntFlags, MsFlags};

use super::{VolumeRecord, Volumes};
use crate::error::{ApiError, ApiResult};

/// The options the local driver knows (moby's `validOpts`).
const VALID_OPTIONS: &[&str] = &["type", "o", "device", "size"];

/// Checks driver options with moby's rules and wording.
pub fn validate_options(opts: &HashMap<String, String>) -> Result<(), String> {
    let mut keys: Vec<&String> = opts.keys().collect();
    keys.sort();
    if let Some(k) = keys.iter().find(|k| !VALID_OPTIONS.contains(&k.as_str())) {
        return Err(format!("invalid option: {k:?}"));
    }
    if opts.contains_key("size") {
        return Err("quota size requested but no quota support".into());
    }
    let required: [(&str, &[&str]); 3] = [
        ("device", &["type"]),
        ("type", &["device"]),
        ("o", &["device", "type"]),
    ];
    for (opt, needs) in required {
        if opts.contains_key(opt) {
            for need in needs {
                if !opts.contains_key(*need) {
                    return Err(format!("missing required option: {need:?}"));
                }
            }
        }
    }
    Ok(())
}

/// Whether the volume's `_data` is a mount of its own while in use.
pub fn needs_mount(rec: &VolumeRecord) -> bool {
    ["type", "device"]
        .iter()
        .any(|k| rec.options.get(*k).is_some_and(|v| !v.is_empty()))
}

/// The flag words of a mount option string (moby/sys `mount.parseOptions`); the rest is
/// the filesystem's data. `(flags to set, data)`.
fn parse_options(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (clear, f) = match opt {
            "defaults" => (false, MsFlags::empty()),
            "ro" => (false, MsFlags::MS_RDONLY),
            "rw" => (true, MsFlags::MS_RDONLY),
            "suid" => (true, MsFlags::MS_NOSUID),
            "nosuid" => (false, MsFlags::MS_NOSUID),
            "dev" => (true, MsFlags::MS_NODEV),
            "nodev" => (false, MsFlags::MS_NODEV),
            "exec" => (true, MsFlags::MS_NOEXEC),
            "noexec" => (false, MsFlags::MS_NOEXEC),
            "sync" => (false, MsFlags::MS_SYNCHRONOUS),
            "async" => (true, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (false, MsFlags::MS_DIRSYNC),
            "remount" => (false, MsFlags::MS_REMOUNT),
            "mand" => (false, MsFlags::MS_MANDLOCK),
            "nomand" => (true, MsFlags::MS_MANDLOCK),
            "atime" => (true, MsFlags::MS_NOATIME),
            "noatime" => (false, MsFlags::MS_NOATIME),
            "diratime" => (true, MsFlags::MS_NODIRATIME),
            "nodiratime" => (false, MsFlags::MS_NODIRATIME),
            "bind" => (false, MsFlags::MS_BIND),
            "rbind" => (false, MsFlags::MS_BIND | MsFlags::MS_REC),
            "unbindable" => (false, MsFlags::MS_UNBINDABLE),
            "runbindable" => (false, MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            "private" => (false, MsFlags::MS_PRIVATE),
            "rprivate" => (false, MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => (false, MsFlags::MS_SHARED),
            "rshared" => (false, MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => (false, MsFlags::MS_SLAVE),
            "rslave" => (false, MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "relatime" => (false, MsFlags::MS_RELATIME),
            "norelatime" => (true, MsFlags::MS_RELATIME),
            "strictatime" => (false, MsFlags::MS_STRICTATIME),
            "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
            other => {
                data.push(other);
                continue;
            }
        };
        if clear {
            flags.remove(f);
        } else {
            flags.insert(f);
        }
    }
    (flags, data.join(","))
}

/// Go's errno text (lowercase), which moby's messages carry.
fn errno_text(e: nix::Error) -> String {
    let d = e.desc();
    let mut c = d.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// moby/sys `mountError`'s text: `mount <src>:<target>, flags: 0x…, data: …: <errno>`.
fn mount_error(
    op: &str,
    source: &str,
    target: &Path,
    flags: MsFlags,
    data: &str,
    e: nix::Error,
) -> String {
    let mut s = format!("{op} ");
    if !source.is_empty() {
        s.push_str(&format!("{source}:"));
    }
    s.push_str(&target.display().to_string());
    if !flags.is_empty() {
        s.push_str(&format!(", flags: 0x{:x}", flags.bits()));
    }
    if !data.is_empty() {
        s.push_str(&format!(", data: {data}"));
    }
    s.push_str(&format!(": {}", errno_text(e)));
    s
}

/// Mounts the volume's device on `target` as moby's `mount.Mount` does: the mount with the
/// non-propagation flags, then the propagation change, then a read-only remount of a bind.
/// The error is moby's text.
fn mount_device(rec: &VolumeRecord, target: &Path) -> Result<(), String> {
    let get = |k: &str| rec.options.get(k).map(String::as_str).unwrap_or("");
    let (device, typ) = (get("device"), get("type"));
    if device.is_empty() {
        return Err("missing device in volume options".into());
    }
    let (flags, data) = parse_options(get("o"));
    let propagation =
        MsFlags::MS_SHARED | MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE | MsFlags::MS_UNBINDABLE;
    let main = flags - propagation;
    let remount_only = main.contains(MsFlags::MS_REMOUNT) && data.is_empty();
    if !remount_only {
        nix::mount::mount(
            Some(device),
            target,
            Some(typ).filter(|t| !t.is_empty()),
            main,
            Some(data.as_str()).filter(|d| !d.is_empty()),
        )
        .map_err(|e| mount_error("mount", device, target, main, &data, e))?;
    }
    if flags.intersects(propagation) {
        let p = flags & (propagation | MsFlags::MS_REC);
        nix::mount::mount(None::<&str>, target, None::<&str>, p, None::<&str>)
            .map_err(|e| mount_error("remount", "", target, p, "", e))?;
    }
    if main.contains(MsFlags::MS_BIND | MsFlags::MS_RDONLY) {
        let r = main | MsFlags::MS_REMOUNT;
        nix::mount::mount(None::<&str>, target, None::<&str>, r, None::<&str>)
            .map_err(|e| mount_error("remount-ro", "", target, r, "", e))?;
    }
    Ok(())
}

/// Decodes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points in `mountinfo` text.
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The mount points at or below `dir` in this process's mount namespace.
pub fn mounts_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = canonical(dir);
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mount_points(&info)
        .into_iter()
        .filter(|p| p.starts_with(&dir))
        .collect())
}

/// Whether `path` is a mount point.
pub fn is_mounted(path: &Path) -> io::Result<bool> {
    let path = canonical(path);
    Ok(mounts_under(&path)?.iter().any(|p| p == &path))
}

/// Who holds each mounted volume (volume name → holders), and a signal for whoever
/// watches the holders.
#[derive(Debug, Default)]
pub struct Holders {
    map: Mutex<HashMap<String, BTreeSet<String>>>,
    changed: tokio::sync::Notify,
}

impl Holders {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Volumes {
    /// The volume's data directory for a container about to use it, mounting the volume
    /// first if it has mount options and nobody holds it yet; `holder` (a container ID, or
    /// any tag) holds it until [`Volumes::release`]. A failed mount is moby's error.
    pub fn acquire(&self, name: &str, holder: &str) -> ApiResult<PathBuf> {
        let rec = self.get(name)?;
        let data = self.data_dir(name);
        if !needs_mount(&rec) {
            return Ok(data);
        }
        let mut map = self.holders.lock();
        // Under the lock, again: a removal deletes the record while holding it, so a volume
        // being removed is never mounted again underneath its deletion.
        let rec = self.get(name)?;
        let mounted = is_mounted(&data)
            .map_err(|e| ApiError::from_internal("cannot read the mount table", &e))?;
        if !mounted {
            mount_device(&rec, &data).map_err(|e| {
                ApiError::internal(format!(
                    "error while mounting volume '{}': failed to mount local volume: {e}",
                    data.display()
                ))
            })?;
            tracing::info!(volume = %name, "volume mounted");
        }
        map.entry(name.to_owned())
            .or_default()
            .insert(holder.to_owned());
        drop(map);
        self.holders.changed.notify_one();
        Ok(data)
    }

    /// Records that `holder` uses the (already mounted) volume: a restarted arcad's running
    /// containers.
    pub fn hold(&self, name: &str, holder: &str) {
        self.holders
            .lock()
            .entry(name.to_owned())
            .or_default()
            .insert(holder.to_owned());
    }

    /// `holder` no longer uses the volume; the last holder's release unmounts it.
    pub fn release(&self, name: &str, holder: &str) {
        let mut map = self.holders.lock();
        let empty = match map.get_mut(name) {
            Some(set) => {
                set.remove(holder);
                set.is_empty()
            }
            None => true,
        };
        if empty {
            map.remove(name);
            self.unmount_unheld(name);
        }
    }

    /// Releases every volume `holder` holds.
    /// Whether `holder` holds any volume (no trip to the blocking pool when not).
    pub fn holds_any(&self, holder: &str) -> bool {
        self.holders.lock().values().any(|set| set.contains(holder))
    }

    pub fn release_all(&self, holder: &str) {
        let names: Vec<String> = self
            .holders
            .lock()
            .iter()
            .filter(|(_, set)| set.contains(holder))
            .map(|(n, _)| n.clone())
            .collect();
        for n in names {
            self.release(&n, holder);
        }
    }

    /// Drops the holders `keep` rejects and unmounts what nobody holds any more; with
    /// `everything`, also volumes with mount options that are mounted but held by nobody
    /// (left by an arcad that stopped).
    pub fn sweep(&self, mut keep: impl FnMut(&str) -> bool, everything: bool) {
        let mut map = self.holders.lock();
        let mut unheld = BTreeSet::new();
        map.retain(|name, set| {
            set.retain(|h| keep(h));
            if set.is_empty() {
                unheld.insert(name.clone());
            }
            !set.is_empty()
        });
        if everything {
            unheld.extend(
                self.list()
                    .into_iter()
                    .filter(|r| needs_mount(r) && !map.contains_key(&r.name))
                    .map(|r| r.name),
            );
        }
        for name in unheld {
            self.unmount_unheld(&name);
        }
    }

    /// Waits until a holder is added.
    pub async fn held(&self) {
        self.holders.changed.notified().await;
    }

    /// Unmounts a volume with mount options if mounted (the holders' lock is held).
    fn unmount_unheld(&self, name: &str) {
        let Ok(rec) = self.get(name) else {
            return;
        };
        let data = self.data_dir(name);
        if needs_mount(&rec) && is_mounted(&data).unwrap_or(false) {
            match nix::mount::umount2(&data, MntFlags::empty()) {
                Ok(()) => tracing::info!(volume = %name, "volume unmounted"),
                Err(e) => tracing::warn!(volume = %name, error = %e, "cannot unmount volume"),
            }
        }
    }

    /// Before a removal: nobody may hold the volume, its `_data` is unmounted, and nothing
    /// may stay mounted below its directory (removal would delete through the mount).
    /// Unmounts a volume about to be removed; the returned guard keeps anyone from
    /// mounting it again until the caller has deleted its record.
    pub(super) fn unmount_for_removal(
        &self,
        name: &str,
        dir: &Path,
    ) -> ApiResult<MutexGuard<'_, HashMap<String, BTreeSet<String>>>> {
        let map = self.holders.lock();
        if map.get(name).is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::conflict(format!(
                "remove {name}: volume has active mounts"
            )));
        }
        let data = self.data_dir(name);
        let internal = |e: &io::Error| ApiError::from_internal("cannot read the mount table", e);
        let mut mounts = mounts_under(dir).map_err(|e| internal(&e))?;
        // Innermost first; only `_data` is ours to unmount.
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        let data = canonical(&data);
        if mounts.first() == Some(&data) {
            nix::mount::umount2(&data, MntFlags::empty()).map_err(|e| {
                ApiError::internal(format!("remove {name}: cannot unmount the volume: {e}"))
            })?;
            tracing::info!(volume = %name, "volume unmounted");
            mounts = mounts_under(dir).map_err(|e| internal(&e))?;
        }
        if let Some(m) = mounts.first() {
            return Err(ApiError::conflict(format!(
                "remove {name}: {} is still mounted",
                m.display()
            )));
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn options_follow_moby_rules() {
        assert!(validate_options(&opts(&[])).is_ok());
        assert!(
            validate_options(&opts(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=1m")
            ]))
            .is_ok()
        );
        assert_eq!(
            validate_options(&opts(&[("bogus", "1"), ("type", "x")])).expect_err("bad key"),
            "invalid option: \"bogus\""
        );
        assert_eq!(
            validate_options(&opts(&[("o", "bind")])).expect_err("o alone"),
            "missing required option: \"device\""
        );
        assert!(validate_options(&opts(&[("size", "1g")])).is_err());
    }

    #[test]
    fn option_words_become_flags_and_the_rest_data() {
        let (f, d) = parse_options("bind,ro,size=10m,uid=1000,rw");
        assert_eq!(f, MsFlags::MS_BIND);
        assert_eq!(d, "size=10m,uid=1000");
        let (f, d) = parse_options("rbind,rslave,nosuid");
        assert_eq!(
            f,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_SLAVE | MsFlags::MS_NOSUID
        );
        assert_eq!(d, "");
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let info = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /tmp rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points(info),
            vec![PathBuf::from("/mnt/a b"), PathBuf::from("/tmp")]
        );
    }

    #[test]
    fn mount_errors_read_like_moby() {
        let m = mount_error(
            "mount",
            "/nope",
            Path::new("/v/_data"),
            MsFlags::MS_BIND,
            "",
            nix::Error::ENOENT,
        );
        assert_eq!(
            m,
            "mount /nope:/v/_data, flags: 0x1000: no such file or directory"
        );
    }
}
