//! The mount requests of a create body, parsed and checked with moby's rules and wording
//! (`volume/mounts/linux_parser.go`): `HostConfig.Binds` (`-v /host:/path[:opts]`, `-v
//! name:/path`, `-v /path` for an anonymous volume), `HostConfig.Mounts` (`--mount`) and
//! `HostConfig.Tmpfs` (`--tmpfs`). Nothing is created here; see `mount_points`.

use std::path::PathBuf;

use arca_api::docker::{HostConfig, Mount, MountType};
use arca_api::shim::MountConfig;

use super::mount_points::{MountKind, MountPoint, Planned};
use crate::error::{ApiError, ApiResult};

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];
/// Binds' propagation unless asked otherwise (moby's Linux default).
pub const DEFAULT_PROPAGATION: &str = "rprivate";

/// Go's `path.Clean` for the absolute paths of mount specs.
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if p.starts_with('/') {
        format!("/{}", out.join("/"))
    } else if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

/// One option group of a `-v` mode string.
#[derive(PartialEq, Eq)]
enum ModeGroup {
    ReadWrite,
    Label,
    Propagation,
    Copy,
    Consistency,
}

fn mode_group(o: &str) -> Option<ModeGroup> {
    Some(match o {
        "ro" | "rw" => ModeGroup::ReadWrite,
        "z" | "Z" => ModeGroup::Label,
        "nocopy" => ModeGroup::Copy,
        "consistent" | "cached" | "delegated" => ModeGroup::Consistency,
        p if PROPAGATIONS.contains(&p) => ModeGroup::Propagation,
        _ => return None,
    })
}

/// moby's `linuxValidMountMode`: known options, at most one of each group.
pub fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut seen = Vec::new();
    for o in mode.split(',') {
        match mode_group(o) {
            Some(g) if !seen.contains(&g) => seen.push(g),
            _ => return false,
        }
    }
    true
}

/// Whether `mode` leaves the mount writable.
pub fn read_write(mode: &str) -> bool {
    valid_mode(mode) && !mode.split(',').any(|o| o == "ro")
}

fn propagation_of(mode: &str) -> Option<&str> {
    mode.split(',').find(|o| PROPAGATIONS.contains(o))
}

fn mount_config_error(kind: &str, why: impl std::fmt::Display) -> String {
    format!("invalid mount config for type \"{kind}\": {why}")
}

/// Target checks common to `-v` and `--mount` (moby's order and wording).
fn check_target(kind: &str, target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err(mount_config_error(kind, "field Target must not be empty"));
    }
    if clean(target) == "/" {
        return Err(mount_config_error(
            kind,
            "invalid specification: destination can't be '/'",
        ));
    }
    if !target.starts_with('/') {
        return Err(mount_config_error(
            kind,
            format!("invalid mount path: '{target}' mount path must be absolute"),
        ));
    }
    Ok(())
}

/// Parses one `HostConfig.Binds` entry, `[source:]destination[:mode]`. A bind's missing
/// host directory is created at start, as Docker's `-v` does; an entry without a source is
/// an anonymous volume (its name is chosen by the caller).
pub fn parse(spec: &str) -> ApiResult<Planned> {
    let invalid_spec = || ApiError::invalid(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.splitn(4, ':').collect();
    if parts[0].is_empty() {
        return Err(invalid_spec());
    }
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [_, m] if valid_mode(m) => return Err(invalid_spec()),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(invalid_spec()),
    };
    if !valid_mode(mode) {
        return Err(ApiError::invalid(format!("invalid mode: {mode}")));
    }
    let bind = source.starts_with('/');
    let kind = if bind { "bind" } else { "volume" };
    let wrap =
        |why: String| ApiError::invalid(format!("invalid volume specification: '{spec}': {why}"));
    let options = mode.split(',');
    if !bind && propagation_of(mode).is_some() {
        return Err(wrap(mount_config_error(
            kind,
            "field BindOptions must not be specified",
        )));
    }
    if bind && options.clone().any(|o| o == "nocopy") {
        return Err(wrap(mount_config_error(
            kind,
            "field VolumeOptions must not be specified",
        )));
    }
    check_target(kind, target).map_err(wrap)?;
    if !source.is_empty() && !bind {
        crate::volumes::check_name(source)?;
    }
    let rw = read_write(mode);
    let point = if bind {
        MountPoint {
            source: clean(source),
            propagation: propagation_of(mode)
                .unwrap_or(DEFAULT_PROPAGATION)
                .to_owned(),
            create_source: true,
            ..MountPoint::new(MountKind::Bind, clean(target), rw, mode)
        }
    } else {
        MountPoint {
            name: source.to_owned(),
            anonymous: source.is_empty(),
            // Docker gives a volume without options the SELinux-shared label mode.
            mode: if mode.is_empty() {
                "z".into()
            } else {
                mode.into()
            },
            ..MountPoint::new(MountKind::Volume, clean(target), rw, mode)
        }
    };
    Ok(Planned {
        copy_data: !bind && !options.clone().any(|o| o == "nocopy"),
        ..Planned::new(point)
    })
}

/// Checks every bind of a create request.
pub fn validate(binds: Option<&Vec<String>>) -> ApiResult<()> {
    for b in binds.into_iter().flatten() {
        parse(b)?;
    }
    Ok(())
}

/// moby's `ConvertTmpfsOptions`: mode, size (with the largest exact suffix), `exec` or
/// `noexec` (read-only is the mount's flag, not an option here).
fn tmpfs_options(t: Option<&arca_api::docker::MountTmpfsOptions>) -> Result<String, String> {
    let mut opts = Vec::new();
    let Some(t) = t else {
        return Ok(String::new());
    };
    if let Some(mode) = t.mode.filter(|m| *m != 0) {
        opts.push(format!("mode={mode:o}"));
    }
    if let Some(size) = t.size_bytes.filter(|s| *s != 0) {
        let (n, suffix) = [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)]
            .iter()
            .find(|(_, d)| size % d == 0)
            .map_or((size, ""), |(s, d)| (size / d, *s));
        opts.push(format!("size={n}{suffix}"));
    }
    for o in t.options.iter().flatten() {
        match o.as_slice() {
            [k] if k == "exec" || k == "noexec" => opts.push(k.clone()),
            [k, v] if k == "exec" || k == "noexec" => opts.push(format!("{k}={v}")),
            [] => return Err("invalid option array length".into()),
            [k, ..] => return Err(format!("invalid option: {k}")),
        }
    }
    Ok(opts.join(","))
}

/// Parses one `HostConfig.Mounts` entry (`--mount`): a bind whose source must exist
/// (Docker's `--mount` does not create it unless `CreateMountpoint`), a volume (anonymous
/// without a source; `NoCopy`, driver options and labels honoured), a tmpfs.
pub fn parse_mount(m: &Mount) -> ApiResult<Planned> {
    let kind = m.typ.map(|t| t.to_string()).unwrap_or_default();
    let invalid = |why: String| ApiError::invalid(mount_config_error(&kind, why));
    let exclusive = [
        (
            "BindOptions",
            m.bind_options.is_some(),
            Some(MountType::BIND),
        ),
        (
            "VolumeOptions",
            m.volume_options.is_some(),
            Some(MountType::VOLUME),
        ),
        (
            "TmpfsOptions",
            m.tmpfs_options.is_some(),
            Some(MountType::TMPFS),
        ),
    ];
    for (field, given, only) in exclusive {
        if given && m.typ != only {
            return Err(invalid(format!("field {field} must not be specified")));
        }
    }
    let target = m.target.clone().unwrap_or_default();
    check_target(&kind, &target).map_err(ApiError::invalid)?;
    let rw = !m.read_only.unwrap_or(false);
    let source = m.source.clone().unwrap_or_default();
    let dest = clean(&target);
    match m.typ {
        Some(MountType::BIND) => {
            if source.is_empty() {
                return Err(invalid("field Source must not be empty".into()));
            }
            if !source.starts_with('/') {
                return Err(invalid(format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            let opts = m.bind_options.as_ref();
            let create = opts.and_then(|o| o.create_mountpoint).unwrap_or(false);
            if !create && !std::path::Path::new(&source).exists() {
                return Err(invalid(format!(
                    "bind source path does not exist: {source}"
                )));
            }
            let propagation = opts
                .and_then(|o| o.propagation)
                .map(|p| p.to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_PROPAGATION.into());
            Ok(Planned::new(MountPoint {
                source: clean(&source),
                propagation,
                create_source: create,
                ..MountPoint::new(MountKind::Bind, dest, rw, "")
            }))
        }
        Some(MountType::VOLUME) => {
            let opts = m.volume_options.clone().unwrap_or_default();
            if opts.subpath.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(ApiError::new(
                    arca_model::ErrorKind::NotImplemented,
                    "volume subpaths are not supported yet",
                ));
            }
            if !source.is_empty() {
                crate::volumes::check_name(&source)?;
            }
            let driver = opts.driver_config.clone().unwrap_or_default();
            Ok(Planned {
                copy_data: !opts.no_copy.unwrap_or(false),
                driver: driver.name.filter(|d| !d.is_empty()),
                labels: opts.labels.unwrap_or_default(),
                options: driver.options.unwrap_or_default(),
                ..Planned::new(MountPoint {
                    name: source.clone(),
                    anonymous: source.is_empty(),
                    ..MountPoint::new(MountKind::Volume, dest, rw, "z")
                })
            })
        }
        Some(MountType::TMPFS) => {
            if !source.is_empty() {
                return Err(invalid("field Source must not be specified".into()));
            }
            let opts = tmpfs_options(m.tmpfs_options.as_ref()).map_err(invalid)?;
            Ok(Planned::new(MountPoint {
                tmpfs: Some(opts),
                ..MountPoint::new(MountKind::Tmpfs, dest, rw, "")
            }))
        }
        other => Err(ApiError::invalid(format!(
            "mount type {} is not supported",
            other
                .map(|t| t.to_string())
                .unwrap_or_else(|| "(none)".into())
        ))),
    }
}

/// Checks the `--mount` and `--tmpfs` entries of a create request.
pub fn validate_mounts(h: &HostConfig) -> ApiResult<()> {
    for m in h.mounts.iter().flatten() {
        parse_mount(m)?;
    }
    tmpfs_mounts(h).map(|_| ())
}

/// `HostConfig.Tmpfs` (`--tmpfs /path[:options]`) as shim mounts. Like Docker, these are
/// not mount points: inspect does not list them and `--volumes-from` does not copy them.
pub fn tmpfs_mounts(h: &HostConfig) -> ApiResult<Vec<MountConfig>> {
    let mut tmpfs: Vec<(&String, &String)> = h.tmpfs.iter().flatten().collect();
    tmpfs.sort();
    let mut out = Vec::new();
    for (dest, opts) in tmpfs {
        if !dest.starts_with('/') || clean(dest) == "/" {
            return Err(ApiError::invalid(format!(
                "invalid tmpfs destination {dest:?}: it must be an absolute path other than /"
            )));
        }
        let readonly = opts.split(',').any(|o| o == "ro");
        let opts: Vec<&str> = opts
            .split(',')
            .filter(|o| !o.is_empty() && *o != "ro" && *o != "rw")
            .collect();
        out.push(MountConfig {
            source: PathBuf::from("tmpfs"),
            destination: clean(dest),
            readonly,
            tmpfs: Some(opts.join(",")),
            propagation: None,
        });
    }
    Ok(out)
}

/// The destinations of `--tmpfs`, cleaned.
pub fn tmpfs_destinations(h: &HostConfig) -> Vec<String> {
    h.tmpfs.iter().flatten().map(|(d, _)| clean(d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_like_docker() {
        let p = parse("/srv/www/:/www:ro").expect("bind").point;
        assert_eq!(p.kind, MountKind::Bind);
        assert_eq!(
            (p.source.as_str(), p.destination.as_str()),
            ("/srv/www", "/www")
        );
        assert!(!p.rw);
        assert_eq!(
            (p.mode.as_str(), p.propagation.as_str()),
            ("ro", "rprivate")
        );
        assert!(parse("/a:/b").expect("bind").point.rw);
        assert!(parse("/a:/b:z,rw").expect("bind").point.rw);
        let p = parse("/a:/b:ro,rshared").expect("propagation").point;
        assert_eq!(
            (p.mode.as_str(), p.propagation.as_str()),
            ("ro,rshared", "rshared")
        );
        assert!(parse("/a:b").is_err());
        assert!(parse("/a:/").is_err());
        assert!(parse("/a:/b:bogus").is_err());
        assert!(parse("/a:/b:ro,rw").is_err(), "two read-write modes");
        assert!(parse("/foo:rw").is_err(), "a mode is not a destination");
        assert!(parse("a:b:c:d").is_err());
        let named = parse("data:/b").expect("named");
        assert_eq!(named.point.name, "data");
        assert_eq!(named.point.mode, "z");
        assert!(named.copy_data && !named.point.anonymous);
        assert!(!parse("data:/b:nocopy").expect("nocopy").copy_data);
        let e = parse("data:/b:rshared").expect_err("propagation on a volume");
        assert!(
            e.message
                .contains("field BindOptions must not be specified"),
            "{}",
            e.message
        );
        assert!(parse("/a:/b:nocopy").is_err());
        let anon = parse("/cache/").expect("anonymous");
        assert!(anon.point.anonymous && anon.point.name.is_empty());
        assert_eq!(anon.point.destination, "/cache");
        assert!(parse("../x:/b").is_err());
    }

    #[test]
    fn mounts_parse_like_docker() {
        let m: Mount = serde_json::from_value(serde_json::json!({
            "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 10485760, "Mode": 448}
        }))
        .expect("mount");
        let p = parse_mount(&m).expect("tmpfs").point;
        assert_eq!(p.tmpfs.as_deref(), Some("mode=700,size=10m"));
        let m: Mount = serde_json::from_value(serde_json::json!({
            "Type": "volume", "Target": "/v", "BindOptions": {"Propagation": "rshared"}
        }))
        .expect("mount");
        assert_eq!(
            parse_mount(&m).expect_err("exclusive").message,
            "invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        let m: Mount = serde_json::from_value(serde_json::json!({
            "Type": "bind", "Source": "/", "Target": "/b", "BindOptions": {"Propagation": "rslave"}
        }))
        .expect("mount");
        let p = parse_mount(&m).expect("bind").point;
        assert_eq!((p.propagation.as_str(), p.mode.as_str()), ("rslave", ""));
        let m: Mount = serde_json::from_value(serde_json::json!({
            "Type": "volume", "Target": "/v", "VolumeOptions": {"NoCopy": true}
        }))
        .expect("mount");
        let v = parse_mount(&m).expect("volume");
        assert!(v.point.anonymous && !v.copy_data);
    }

    #[test]
    fn paths_are_cleaned_like_go() {
        assert_eq!(clean("/a//b/./c/.."), "/a/b");
        assert_eq!(clean("/data/"), "/data");
        assert_eq!(clean("/.."), "/");
    }
}
