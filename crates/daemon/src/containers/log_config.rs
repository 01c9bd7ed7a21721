//! `HostConfig.LogConfig` → the shim's log rotation ([`LogConfig`]).
//!
//! Docker's `json-file` driver (`Type` `""` or `"json-file"`) and `none` (no log at all;
//! reading logs is then a 501, as with Docker). json-file's `max-size`
//! takes Docker's size strings (`500k`, `10m`, `1.5g`, plain bytes; binary units, as
//! go-units' `RAMInBytes`), `max-file` an integer >= 1. Missing options take the defaults
//! of [`LogConfig`] (rotation is on unless `max-size=0`). Other json-file options Docker
//! accepts (`compress`, `labels`, `env`, `env-regex`, `tag`) are accepted and ignored;
//! anything else is rejected, as Docker does.

use arca_api::docker::HostConfigLogConfig;
use arca_api::shim::LogConfig;

use crate::error::{ApiError, ApiResult};

const IGNORED_OPTS: &[&str] = &["compress", "labels", "env", "env-regex", "tag"];

/// A container's log config with the daemon's defaults filled in, as Docker does at create:
/// no driver → the daemon's driver; with the daemon's driver, the daemon's options for
/// every option the container does not set. The result is what the container records.
pub fn with_defaults(
    own: Option<HostConfigLogConfig>,
    daemon: &HostConfigLogConfig,
) -> HostConfigLogConfig {
    let mut lc = own.unwrap_or_default();
    if lc.typ.as_deref().unwrap_or("").is_empty() {
        lc.typ = daemon.typ.clone();
    }
    if lc.typ == daemon.typ
        && let Some(defaults) = &daemon.config
    {
        let own = lc.config.get_or_insert_with(Default::default);
        for (k, v) in defaults {
            own.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    lc
}

/// Validates and converts; errors are `InvalidArgument` (400).
pub fn parse(lc: Option<&HostConfigLogConfig>) -> ApiResult<LogConfig> {
    let mut cfg = LogConfig::default();
    let Some(lc) = lc else {
        return Ok(cfg);
    };
    let typ = lc.typ.as_deref().unwrap_or("");
    if typ == "none" {
        if let Some(k) = lc.config.iter().flatten().map(|(k, _)| k).next() {
            return Err(ApiError::invalid(format!(
                "unknown log opt '{k}' for none log driver"
            )));
        }
        cfg.disabled = true;
        return Ok(cfg);
    }
    if !matches!(typ, "" | "json-file") {
        return Err(ApiError::invalid(format!(
            "logging driver {typ:?} is not supported (only json-file and none)"
        )));
    }
    for (k, v) in lc.config.iter().flatten() {
        match k.as_str() {
            "max-size" => {
                cfg.max_size = parse_size(v)
                    .ok_or_else(|| ApiError::invalid(format!("invalid max-size: {v:?}")))?;
            }
            "max-file" => {
                cfg.max_files = v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| {
                        ApiError::invalid(format!("invalid max-file: {v:?} (must be >= 1)"))
                    })?;
            }
            k if IGNORED_OPTS.contains(&k) => {}
            k => {
                return Err(ApiError::invalid(format!(
                    "unknown log opt '{k}' for json-file log driver"
                )));
            }
        }
    }
    Ok(cfg)
}

/// Docker's size strings: `<number>[ ]?[kmgtp]?[i]?[b]?`, case-insensitive, binary units;
/// the number may have a fraction (`1.5g`). `None` if malformed or too large.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_end);
    if num.is_empty() || !num.starts_with(|c: char| c.is_ascii_digit()) || num.ends_with('.') {
        return None;
    }
    let mut unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    if unit.ends_with('b') {
        unit.pop();
    }
    if unit.len() == 2 && unit.ends_with('i') {
        unit.pop();
    }
    let shift = match unit.as_str() {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    if !num.contains('.') {
        return num.parse::<u64>().ok()?.checked_mul(1u64 << shift);
    }
    let v: f64 = num.parse().ok()?;
    let bytes = v * (1u64 << shift) as f64;
    // Beyond u64 (2^64) the cast would saturate silently.
    (bytes < 18_446_744_073_709_551_615.0).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lc(typ: &str, opts: &[(&str, &str)]) -> HostConfigLogConfig {
        HostConfigLogConfig {
            typ: Some(typ.into()),
            config: Some(
                opts.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<HashMap<_, _>>(),
            ),
        }
    }

    #[test]
    fn size_strings_use_binary_units() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("500k"), Some(500 << 10));
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("10mb"), Some(10 << 20));
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("2 kb"), Some(2048));
        assert_eq!(parse_size("7b"), Some(7));
    }

    #[test]
    fn malformed_sizes_are_rejected() {
        for s in [
            "",
            "m",
            "-1",
            "10x",
            "10mm",
            "1..5m",
            ".5m",
            "5.m",
            "10 m b x",
            "99999999p",
            "1e3",
        ] {
            assert_eq!(parse_size(s), None, "{s:?}");
        }
    }

    #[test]
    fn missing_log_config_means_defaults() {
        assert_eq!(parse(None).expect("defaults"), LogConfig::default());
        assert_eq!(
            parse(Some(&lc("", &[]))).expect("defaults"),
            LogConfig::default()
        );
    }

    #[test]
    fn json_file_options_are_honoured() {
        let cfg = parse(Some(&lc(
            "json-file",
            &[("max-size", "1k"), ("max-file", "2"), ("compress", "false")],
        )))
        .expect("valid");
        assert_eq!(
            cfg,
            LogConfig {
                max_size: 1024,
                max_files: 2,
                disabled: false,
            }
        );
    }

    #[test]
    fn daemon_defaults_fill_what_the_container_leaves_out() {
        let daemon = lc("json-file", &[("max-size", "1k"), ("max-file", "5")]);
        let merged = with_defaults(None, &daemon);
        assert_eq!(merged.typ.as_deref(), Some("json-file"));
        assert_eq!(merged.config, daemon.config);
        let own = with_defaults(Some(lc("", &[("max-file", "2")])), &daemon);
        let cfg = parse(Some(&own)).expect("valid");
        assert_eq!(
            (cfg.max_size, cfg.max_files),
            (1024, 2),
            "the container's own wins"
        );
        // Another driver than the daemon's takes none of the daemon's options.
        let none = with_defaults(Some(lc("none", &[])), &daemon);
        assert!(parse(Some(&none)).expect("valid").disabled);
    }

    #[test]
    fn none_driver_disables_the_log() {
        let cfg = parse(Some(&lc("none", &[]))).expect("valid");
        assert!(cfg.disabled);
    }

    #[test]
    fn bad_driver_or_options_are_invalid_arguments() {
        for bad in [
            lc("syslog", &[]),
            lc("json-file", &[("max-size", "ten")]),
            lc("", &[("max-file", "0")]),
            lc("", &[("max-file", "-1")]),
            lc("", &[("max-file", "x")]),
            lc("", &[("nope", "1")]),
            lc("none", &[("max-size", "1m")]),
        ] {
            let e = parse(Some(&bad)).expect_err("invalid");
            assert_eq!(e.kind, arca_model::ErrorKind::InvalidArgument, "{bad:?}");
        }
    }
}
