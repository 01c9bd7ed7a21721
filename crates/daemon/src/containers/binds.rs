//! `HostConfig.Binds` (`-v /host/path:/container/path[:ro]`): host directories and files
//! bind-mounted into the container, as Docker's `-v` does (a missing host directory is
//! created at start). Named volumes (`-v name:/path`) are issue 6: refused clearly here.

use std::path::PathBuf;

use arca_api::shim::MountConfig;

use crate::error::{ApiError, ApiResult};

/// One parsed bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
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
    if !source.starts_with('/') {
        return Err(ApiError::new(
            arca_model::ErrorKind::NotImplemented,
            format!("named volumes are not supported yet: '{spec}'"),
        ));
    }
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
        source: PathBuf::from(source),
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

/// The binds as shim mounts; missing host directories are created (Docker's `-v`).
pub fn mounts(binds: Option<&Vec<String>>) -> ApiResult<Vec<MountConfig>> {
    let mut out = Vec::new();
    for spec in binds.into_iter().flatten() {
        let b = parse(spec)?;
        if !b.source.exists() {
            std::fs::create_dir_all(&b.source).map_err(|e| {
                ApiError::invalid(format!(
                    "error while creating mount source path '{}': {e}",
                    b.source.display()
                ))
            })?;
        }
        out.push(MountConfig {
            source: b.source,
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
                source: "/srv/www".into(),
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
            parse("data:/b").expect_err("named").kind,
            arca_model::ErrorKind::NotImplemented
        );
    }
}
