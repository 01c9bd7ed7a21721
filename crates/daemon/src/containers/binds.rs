//! `HostConfig.Binds`: `-v /host/path:/container/path[:ro]` (host directories and files
//! bind-mounted into the container; a missing host directory is created at start, as
//! Docker's `-v` does) and `-v name:/path` (a named volume, created when missing).

use std::path::PathBuf;

use arca_api::shim::MountConfig;

use crate::error::{ApiError, ApiResult};

/// Where a bind's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Host(PathBuf),
    Volume(String),
}

/// One parsed bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: Source,
    pub destination: String,
    pub readonly: bool,
}

/// Parses `source:destination[:options]` with Docker's options: `ro`/`rw`, SELinux labels
/// (`z`, `Z`: accepted, nothing to do without SELinux), propagation (`rprivate` and the
/// others: accepted, arca's binds are `rprivate`), `nocopy`.
pub fn parse(spec: &str) -> ApiResult<Bind> {
    let invalid =
        |why: &str| ApiError::invalid(format!("invalid volume specification: '{spec}': {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, options) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        [_] => {
            return Err(ApiError::new(
                arca_model::ErrorKind::NotImplemented,
                format!("anonymous volumes are not supported yet: '{spec}'"),
            ));
        }
        _ => return Err(invalid("too many colons")),
    };
    if !destination.starts_with('/') {
        return Err(invalid(&format!(
            "invalid mount config: invalid mount path: '{destination}' mount path must be absolute"
        )));
    }
    if destination == "/" {
        return Err(invalid("invalid mount config: destination can't be '/'"));
    }
    let source = if source.starts_with('/') {
        Source::Host(PathBuf::from(source))
    } else {
        crate::volumes::check_name(source)?;
        Source::Volume(source.to_owned())
    };
    let mut readonly = false;
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" | "nocopy" | "private" | "rprivate" | "shared" | "rshared" | "slave"
            | "rslave" | "consistent" | "cached" | "delegated" => {}
            other => return Err(invalid(&format!("invalid mode: {other}"))),
        }
    }
    Ok(Bind {
        source,
        destination: destination.to_owned(),
        readonly,
    })
}

/// Checks every bind of a create request.
pub fn validate(binds: Option<&Vec<String>>) -> ApiResult<()> {
    for b in binds.into_iter().flatten() {
        parse(b)?;
    }
    Ok(())
}

/// The named volumes `binds` use.
pub fn volumes_of(binds: Option<&Vec<String>>) -> Vec<String> {
    binds
        .into_iter()
        .flatten()
        .filter_map(|s| match parse(s).ok()?.source {
            Source::Volume(v) => Some(v),
            Source::Host(_) => None,
        })
        .collect()
}

/// The binds as shim mounts; missing host directories and volumes are created (Docker's
/// `-v`).
pub fn mounts(
    binds: Option<&Vec<String>>,
    volumes: &crate::volumes::Volumes,
) -> ApiResult<Vec<MountConfig>> {
    let mut out = Vec::new();
    for spec in binds.into_iter().flatten() {
        let b = parse(spec)?;
        let source = match b.source {
            Source::Host(path) => {
                if !path.exists() {
                    std::fs::create_dir_all(&path).map_err(|e| {
                        ApiError::invalid(format!(
                            "error while creating mount source path '{}': {e}",
                            path.display()
                        ))
                    })?;
                }
                path
            }
            Source::Volume(name) => {
                volumes.create(Some(&name), None, Default::default(), Default::default())?;
                volumes.data_dir(&name)
            }
        };
        out.push(MountConfig {
            source,
            destination: b.destination,
            readonly: b.readonly,
            tmpfs: None,
        });
    }
    Ok(out)
}

/// `HostConfig.Mounts` (`--mount`) and `HostConfig.Tmpfs` (`--tmpfs`): a bind whose source
/// must exist (Docker's `--mount` does not create it), a named volume (created when
/// missing), a tmpfs (size and mode from `TmpfsOptions`, or `--tmpfs`'s option string).
/// `create` checks them without creating anything.
pub fn typed_mounts(
    h: &arca_api::docker::HostConfig,
    volumes: Option<&crate::volumes::Volumes>,
) -> ApiResult<Vec<MountConfig>> {
    use arca_api::docker::MountType;
    let mut out = Vec::new();
    for m in h.mounts.iter().flatten() {
        let target = m.target.clone().unwrap_or_default();
        if !target.starts_with('/') || target == "/" {
            return Err(ApiError::invalid(format!(
                "invalid mount config for type \"{}\": invalid mount path: '{target}' mount path must be absolute",
                m.typ.map(|t| t.to_string()).unwrap_or_default()
            )));
        }
        let readonly = m.read_only.unwrap_or(false);
        let source = m.source.clone().unwrap_or_default();
        match m.typ {
            Some(MountType::BIND) => {
                if !source.starts_with('/') {
                    return Err(ApiError::invalid(format!(
                        "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                    )));
                }
                if !std::path::Path::new(&source).exists() {
                    return Err(ApiError::invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                    )));
                }
                out.push(MountConfig {
                    source: PathBuf::from(source),
                    destination: target,
                    readonly,
                    tmpfs: None,
                });
            }
            Some(MountType::VOLUME) => {
                let name = if source.is_empty() {
                    arca_model::random_hex(32)
                } else {
                    crate::volumes::check_name(&source)?;
                    source
                };
                let path = match volumes {
                    Some(v) => {
                        v.create(Some(&name), None, Default::default(), Default::default())?;
                        v.data_dir(&name)
                    }
                    None => PathBuf::new(),
                };
                out.push(MountConfig {
                    source: path,
                    destination: target,
                    readonly,
                    tmpfs: None,
                });
            }
            Some(MountType::TMPFS) => {
                if !source.is_empty() {
                    return Err(ApiError::invalid(
                        "invalid mount config for type \"tmpfs\": field Source must not be specified",
                    ));
                }
                let mut opts = Vec::new();
                if let Some(t) = &m.tmpfs_options {
                    if let Some(size) = t.size_bytes.filter(|s| *s > 0) {
                        opts.push(format!("size={size}"));
                    }
                    if let Some(mode) = t.mode.filter(|m| *m > 0) {
                        opts.push(format!("mode={mode:o}"));
                    }
                }
                out.push(MountConfig {
                    source: PathBuf::from("tmpfs"),
                    destination: target,
                    readonly,
                    tmpfs: Some(opts.join(",")),
                });
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "mount type {} is not supported",
                    other
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "(none)".into())
                )));
            }
        }
    }
    let mut tmpfs: Vec<(&String, &String)> = h.tmpfs.iter().flatten().collect();
    tmpfs.sort();
    for (dest, opts) in tmpfs {
        if !dest.starts_with('/') || dest == "/" {
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
            destination: dest.clone(),
            readonly,
            tmpfs: Some(opts.join(",")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_like_docker() {
        assert_eq!(
            parse("/srv/www:/www:ro").expect("bind"),
            Bind {
                source: Source::Host("/srv/www".into()),
                destination: "/www".into(),
                readonly: true
            }
        );
        assert!(!parse("/a:/b").expect("bind").readonly);
        assert!(!parse("/a:/b:z,rw").expect("bind").readonly);
        assert!(parse("/a:b").is_err());
        assert!(parse("/a:/").is_err());
        assert!(parse("/a:/b:bogus").is_err());
        assert_eq!(
            parse("data:/b").expect("named").source,
            Source::Volume("data".into())
        );
        assert!(parse("../x:/b").is_err());
    }
}
