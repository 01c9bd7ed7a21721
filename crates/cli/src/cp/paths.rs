//! Go's `path/filepath` and moby's copy rules (`CopyInfo`, `PrepareArchiveCopy`,
//! `ValidateOutputPath`) on `/`-separated strings: what `docker cp` decides before any byte
//! is copied.

use std::io;

use crate::cp::plain;

/// Go's `filepath.Clean`.
pub(super) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Base`.
pub(super) fn base(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let p = path.trim_end_matches('/');
    if p.is_empty() {
        return "/".into();
    }
    p.rsplit('/').next().unwrap_or(p).to_owned()
}

/// Go's `filepath.Dir`.
pub(super) fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".into(),
    }
}

pub(super) fn has_trailing_sep(path: &str) -> bool {
    path.ends_with('/')
}

pub(super) fn specifies_current_dir(path: &str) -> bool {
    base(path) == "."
}

pub(super) fn asserts_directory(path: &str) -> bool {
    has_trailing_sep(path) || specifies_current_dir(path)
}

/// moby's `PreserveTrailingDotOrSeparator`.
pub(super) fn preserve_trailing(cleaned: &str, original: &str) -> String {
    let mut cleaned = cleaned.to_owned();
    if !specifies_current_dir(&cleaned) && specifies_current_dir(original) {
        if !has_trailing_sep(&cleaned) {
            cleaned.push('/');
        }
        cleaned.push('.');
    }
    if !has_trailing_sep(&cleaned) && has_trailing_sep(original) {
        cleaned.push('/');
    }
    cleaned
}

/// moby's `SplitPathDirEntry`: the parent and the entry, keeping a trailing `.`.
pub(super) fn split_path_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean(path);
    if specifies_current_dir(path) {
        cleaned.push_str("/.");
    }
    (dir(&cleaned), base(&cleaned))
}

/// moby's `GetRebaseName`.
pub(super) fn rebase_name(path: &str, resolved: &str) -> (String, String) {
    let mut resolved = resolved.to_owned();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if has_trailing_sep(path) && !has_trailing_sep(&resolved) {
        resolved.push('/');
    }
    let name = if base(path) != base(&resolved) {
        base(path)
    } else {
        String::new()
    };
    (resolved, name)
}

/// docker's `resolveLocalPath`: absolute, cleaned, keeping a trailing `/` or `/.`.
pub(super) fn resolve_local_path(path: &str) -> anyhow::Result<String> {
    let abs = if path.starts_with('/') {
        clean(path)
    } else {
        let cwd = std::env::current_dir().map_err(|e| plain(format!("getwd: {}", go_err(&e))))?;
        clean(&format!("{}/{path}", cwd.display()))
    };
    Ok(preserve_trailing(&abs, path))
}

/// An errno's text as Go prints it ("no such file or directory").
pub(super) fn go_err(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let s = nix::errno::Errno::from_raw(n).desc().to_owned();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => s,
            }
        }
        None => e.to_string(),
    }
}

pub(super) fn path_err(op: &str, path: &str, e: &io::Error) -> anyhow::Error {
    plain(format!("{op} {path}: {}", go_err(e)))
}

/// What a copy knows about one side (moby's `CopyInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct CopyInfo {
    pub(super) path: String,
    pub(super) exists: bool,
    pub(super) is_dir: bool,
    pub(super) rebase_name: String,
}

/// Go's `filepath.EvalSymlinks` of an absolute path.
pub(super) fn eval_symlinks(path: &str) -> anyhow::Result<String> {
    std::fs::canonicalize(path)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| path_err("lstat", &clean(path), &e))
}

/// moby's `CopyInfoSourcePath` for a local source.
pub(super) fn copy_info_source_path(path: &str, follow_link: bool) -> anyhow::Result<CopyInfo> {
    let (resolved, rebase) = if follow_link {
        let target = eval_symlinks(path)?;
        rebase_name(path, &target)
    } else {
        let (dir_part, base_part) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let dir_resolved = eval_symlinks(if dir_part.is_empty() { "." } else { dir_part })?;
        let resolved = format!("{dir_resolved}/{base_part}");
        let rebase = if has_trailing_sep(path) && base(path) != base(&resolved) {
            base(path)
        } else {
            String::new()
        };
        (resolved, rebase)
    };
    let meta =
        std::fs::symlink_metadata(&resolved).map_err(|e| path_err("lstat", &resolved, &e))?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: meta.is_dir(),
        rebase_name: rebase,
    })
}

/// moby's `CopyInfoDestinationPath` for a local destination: a final symlink is followed
/// (a dangling one names the file to create); the parent must be a directory.
pub(super) fn copy_info_destination_path(path: &str) -> anyhow::Result<CopyInfo> {
    let original = path.to_owned();
    let mut path = path.to_owned();
    let mut st = std::fs::symlink_metadata(&path);
    let mut n = 0;
    while let Ok(m) = &st {
        if !m.file_type().is_symlink() {
            break;
        }
        if n > 10 {
            return Err(plain(format!("too many symlinks in {original}")));
        }
        n += 1;
        let target = std::fs::read_link(&path).map_err(|e| path_err("readlink", &path, &e))?;
        let target = target.to_string_lossy().into_owned();
        path = if target.starts_with('/') {
            target
        } else {
            clean(&format!("{}/{target}", split_path_dir_entry(&path).0))
        };
        st = std::fs::symlink_metadata(&path);
    }
    match st {
        Ok(m) => Ok(CopyInfo {
            path,
            exists: true,
            is_dir: m.is_dir(),
            rebase_name: String::new(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = split_path_dir_entry(&path).0;
            let pm = std::fs::metadata(&parent).map_err(|e| path_err("stat", &parent, &e))?;
            if !pm.is_dir() {
                return Err(plain("not a directory"));
            }
            Ok(CopyInfo {
                path,
                ..CopyInfo::default()
            })
        }
        Err(e) => Err(path_err("lstat", &path, &e)),
    }
}

/// moby's `PrepareArchiveCopy`: the directory to extract into and, when the archive's top
/// entry must be renamed, `(old, new)`.
pub(super) fn prepare_archive_copy(
    src: &CopyInfo,
    dst: &CopyInfo,
) -> anyhow::Result<(String, Option<(String, String)>)> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    let (_, mut src_base) = split_path_dir_entry(&src.path);
    if !src.rebase_name.is_empty() {
        src_base = src.rebase_name.clone();
    }
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        return Err(plain("cannot copy directory"));
    }
    if !dst.exists && !src.is_dir && asserts_directory(&dst.path) {
        return Err(plain("no such directory"));
    }
    Ok((dst_dir, Some((src_base, dst_base))))
}

/// docker's `ValidateOutputPath` for a local destination.
pub(super) fn validate_output_path(path: &str) -> anyhow::Result<()> {
    let d = dir(&clean(path));
    if !d.is_empty()
        && d != "."
        && let Err(e) = std::fs::metadata(&d)
        && e.kind() == io::ErrorKind::NotFound
    {
        return Err(plain(format!(
            "invalid output path: directory {d:?} does not exist"
        )));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() || m.is_file() => Ok(()),
        Ok(m) => {
            let why = if m.file_type_is_device() {
                "got a device"
            } else {
                "got an irregular file"
            };
            Err(plain(format!(
                "invalid output path: {path:?} must be a directory or a regular file: {why}"
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(path_err("stat", path, &e)),
    }
}

pub(super) trait DeviceExt {
    fn file_type_is_device(&self) -> bool;
}

impl DeviceExt for std::fs::Metadata {
    fn file_type_is_device(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        let ft = self.file_type();
        ft.is_block_device() || ft.is_char_device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_helpers_match_go() {
        assert_eq!(clean("a//b/./../c/"), "a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean(""), ".");
        assert_eq!(base("/a/b/"), "b");
        assert_eq!(base("/"), "/");
        assert_eq!(base(""), ".");
        assert_eq!(dir("/a/b"), "/a");
        assert_eq!(dir("b"), ".");
        assert_eq!(dir("/b"), "/");
        assert_eq!(preserve_trailing("/a/b", "a/b/."), "/a/b/.");
        assert_eq!(preserve_trailing("/a/b", "a/b/"), "/a/b/");
        assert_eq!(preserve_trailing("/", "/"), "/");
        assert_eq!(
            split_path_dir_entry("/a/b/."),
            ("/a/b".to_owned(), ".".to_owned())
        );
        assert_eq!(
            split_path_dir_entry("/a/b/"),
            ("/a".to_owned(), "b".to_owned())
        );
        assert_eq!(split_path_dir_entry("/"), ("/".to_owned(), "/".to_owned()));
        assert_eq!(rebase_name("/l/", "/t"), ("/t/".to_owned(), "l".to_owned()));
        assert_eq!(
            rebase_name("/l/.", "/t"),
            ("/t/.".to_owned(), String::new())
        );
    }

    #[test]
    fn prepare_archive_copy_follows_moby() {
        let file = |p: &str| CopyInfo {
            path: p.into(),
            exists: true,
            ..CopyInfo::default()
        };
        let dir = |p: &str| CopyInfo {
            path: p.into(),
            exists: true,
            is_dir: true,
            ..CopyInfo::default()
        };
        let missing = |p: &str| CopyInfo {
            path: p.into(),
            ..CopyInfo::default()
        };
        let ok = |s, d| prepare_archive_copy(&s, &d).expect("prepare");
        let err = |s, d| {
            prepare_archive_copy(&s, &d)
                .expect_err("prepare")
                .to_string()
        };
        assert_eq!(ok(file("/s/f"), dir("/d")), ("/d".into(), None));
        assert_eq!(
            ok(file("/s/f"), file("/d/g")),
            ("/d".into(), Some(("f".into(), "g".into())))
        );
        assert_eq!(err(dir("/s/d"), file("/d/g")), "cannot copy directory");
        assert_eq!(
            ok(dir("/s/d/."), missing("/d/new")),
            ("/d".into(), Some((".".into(), "new".into())))
        );
        assert_eq!(err(file("/s/f"), missing("/d/new/")), "no such directory");
        let mut renamed = file("/s/target");
        renamed.rebase_name = "link".into();
        assert_eq!(
            ok(renamed, missing("/d/x")),
            ("/d".into(), Some(("link".into(), "x".into())))
        );
    }

    #[test]
    fn local_destinations_follow_final_symlinks() {
        let tmp = std::env::temp_dir().join(format!("arca-cp-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("d")).expect("mkdir");
        let root = tmp.to_string_lossy().into_owned();
        std::os::unix::fs::symlink("d", tmp.join("l")).expect("symlink");
        std::os::unix::fs::symlink("nowhere", tmp.join("dangling")).expect("symlink");
        let info = copy_info_destination_path(&format!("{root}/l")).expect("info");
        assert_eq!(
            info,
            CopyInfo {
                path: format!("{root}/d"),
                exists: true,
                is_dir: true,
                rebase_name: String::new(),
            }
        );
        let info = copy_info_destination_path(&format!("{root}/dangling")).expect("info");
        assert_eq!(info.path, format!("{root}/nowhere"));
        assert!(!info.exists);
        let err = copy_info_destination_path(&format!("{root}/no/such")).expect_err("parent");
        assert_eq!(
            err.to_string(),
            format!("stat {root}/no: no such file or directory")
        );
        std::fs::remove_dir_all(&tmp).expect("cleanup");
    }
}
