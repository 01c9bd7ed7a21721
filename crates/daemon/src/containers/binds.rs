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
