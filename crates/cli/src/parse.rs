//! Parsers for flag values, each matching the docker CLI (and the Go libraries it uses):
//! sizes (go-units `RAMInBytes`), Go durations (`time.ParseDuration`), `--since`/`--until`
//! timestamps (`GetTimestamp`), ulimits, devices, detach keys (`term.ToBytes`), signal
//! names (`signal.ParseSignal`), restart policies and namespace modes. Errors carry
//! docker's wording so that users see the same messages.

use bollard::models::{DeviceMapping, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum};

/// `512`, `64k`, `64m`, `1g`, `1.5g`, `100MB`, `64MiB`, `1 g`: binary units, as go-units'
/// `RAMInBytes`.
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let err = || format!("invalid size: '{s}'");
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(digits_end);
    if num.is_empty() || !num.starts_with(|c: char| c.is_ascii_digit()) || num.ends_with('.') {
        return Err(err());
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars().peekable();
    let mult: i64 = match chars.peek().map(char::to_ascii_lowercase) {
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some('t') => 1 << 40,
        Some('p') => 1 << 50,
        _ => 1,
    };
    if mult != 1 {
        chars.next();
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        chars.next();
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        chars.next();
    }
    if chars.next().is_some() {
        return Err(err());
    }
    let n: f64 = num.parse().map_err(|_| err())?;
    Ok((n * mult as f64) as i64)
}

/// `--memory-swap`: a size, or `-1` for unlimited swap.
pub fn mem_swap_bytes(s: &str) -> Result<i64, String> {
    if s == "-1" { Ok(-1) } else { ram_in_bytes(s) }
}

/// Go's `time.ParseDuration`, in nanoseconds: `1s`, `500ms`, `1h30m`, `-1.5h`, `0`.
pub fn go_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit \"{unit}\" in duration \"{s}\"")),
        };
        let n: f64 = num.parse().map_err(|_| invalid())?;
        total += n * scale;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let ns = total.round() as i64;
    Ok(if neg { -ns } else { ns })
}

/// Docker's `GetTimestamp` for `--since`/`--until`: a Go duration means "that long before
/// `now`" (whole seconds); RFC 3339 (with or without zone, date only, hour or minute
/// precision) becomes `seconds.nanoseconds`; a Unix timestamp passes unchanged.
pub fn timestamp(value: &str, now: chrono::DateTime<chrono::Local>) -> Result<String, String> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    if value != "0"
        && let Ok(d) = go_duration(value)
    {
        let t = now - chrono::Duration::nanoseconds(d);
        return Ok(t.timestamp().to_string());
    }
    let in_local = !value.contains(['z', 'Z', '+']) && value.matches('-').count() != 3;
    let parsed: Option<chrono::DateTime<chrono::FixedOffset>> = if in_local {
        let naive = if value.contains('T') {
            let fmt = match value.matches(':').count() {
                0 => "%Y-%m-%dT%H",
                1 => "%Y-%m-%dT%H:%M",
                _ => "%Y-%m-%dT%H:%M:%S%.f",
            };
            // chrono cannot parse an hour without minutes: complete it first.
            let padded = match fmt {
                "%Y-%m-%dT%H" => format!("{value}:00"),
                _ => value.to_owned(),
            };
            let fmt = if fmt == "%Y-%m-%dT%H" {
                "%Y-%m-%dT%H:%M"
            } else {
                fmt
            };
            NaiveDateTime::parse_from_str(&padded, fmt).ok()
        } else {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        };
        naive.map(|n| {
            let offset = *now.offset();
            offset
                .from_local_datetime(&n)
                .single()
                .unwrap_or_else(|| offset.from_utc_datetime(&n))
                .fixed_offset()
        })
    } else if value.contains('T') {
        chrono::DateTime::parse_from_rfc3339(value)
            .ok()
            .or_else(|| {
                // Hour or minute precision with a zone: `2024-01-02T15Z`, `2024-01-02T15:04+02:00`.
                let (head, zone) = split_zone(value)?;
                let head = if head.contains(':') {
                    format!("{head}:00")
                } else {
                    format!("{head}:00:00")
                };
                chrono::DateTime::parse_from_rfc3339(&format!("{head}{zone}")).ok()
            })
    } else {
        // A date with a zone: `2006-01-02Z07:00` or `2006-01-02Z`.
        split_zone(value).and_then(|(head, zone)| {
            chrono::DateTime::parse_from_rfc3339(&format!("{head}T00:00:00{zone}")).ok()
        })
    };
    match parsed {
        Some(t) => Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        )),
        None if value.contains('-') => Err(format!("invalid time: \"{value}\"")),
        None => {
            let (secs, nanos) = value.split_once('.').unwrap_or((value, "0"));
            if secs.parse::<i64>().is_ok() && nanos.parse::<i64>().is_ok() {
                Ok(value.to_owned())
            } else {
                Err(format!(
                    "failed to parse value as time or duration: \"{value}\""
                ))
            }
        }
    }
}

/// Splits `2024-01-02T15:04+02:00` into the part before the zone and the zone (`Z` or ±hh:mm).
fn split_zone(value: &str) -> Option<(&str, &str)> {
    if let Some(i) = value.find(['z', 'Z']) {
        return Some((&value[..i], "Z"));
    }
    // The zone's sign is the last '+' or a '-' after the date's two dashes.
    let i = value.rfind('+').or_else(|| {
        let date_end = value.match_indices('-').nth(1)?.0;
        value[date_end + 1..].find('-').map(|j| date_end + 1 + j)
    })?;
    Some((&value[..i], &value[i..]))
}

/// `nofile=1024:2048` or `nproc=512` (go-units' `ParseUlimit`).
pub fn ulimit(val: &str) -> Result<ResourcesUlimits, String> {
    let (name, limits) = val
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {val}"))?;
    if !arca_model::ulimit::is_ulimit_name(name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing \"{s}\": invalid syntax"))
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let s = num(soft)?;
            (s, s)
        }
        [soft, hard] => {
            let h = num(hard)?;
            (num(soft)?, h)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ));
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            ));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok(ResourcesUlimits {
        name: Some(name.to_owned()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

fn valid_device_mode(mode: &str) -> bool {
    let mut seen = [false; 3];
    !mode.is_empty()
        && mode.chars().all(|c| {
            let i = match c {
                'r' => 0,
                'w' => 1,
                'm' => 2,
                _ => return false,
            };
            !std::mem::replace(&mut seen[i], true)
        })
}

/// `--device /dev/x[:/dev/y][:rwm]`, validated and split as docker's `validateLinuxPath`
/// and `parseLinuxDevice`.
pub fn device(val: &str) -> Result<DeviceMapping, String> {
    let bad = || format!("bad format for path: {val}");
    let parts: Vec<&str> = val.split(':').collect();
    if parts.len() > 3 || parts[0].is_empty() {
        return Err(bad());
    }
    let (src, dst, perms) = match parts.as_slice() {
        [src] => (*src, *src, "rwm"),
        [src, mode] if valid_device_mode(mode) => (*src, *src, *mode),
        [src, dst] => (*src, *dst, "rwm"),
        [src, dst, mode] => {
            if !valid_device_mode(mode) {
                return Err(format!("bad mode specified: {mode}"));
            }
            (*src, *dst, *mode)
        }
        _ => return Err(bad()),
    };
    if !dst.starts_with('/') {
        return Err(format!("{dst} is not an absolute path"));
    }
    Ok(DeviceMapping {
        path_on_host: Some(src.to_owned()),
        path_in_container: Some(dst.to_owned()),
        cgroup_permissions: Some(perms.to_owned()),
    })
}

/// The default detach sequence, ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[16, 17];

/// `ctrl-p,ctrl-q`, `ctrl-a,x`, `DEL` to bytes (moby/term's `ToBytes`).
pub fn detach_keys(keys: &str) -> Result<Vec<u8>, String> {
    let mut codes = Vec::new();
    for key in keys.split(',') {
        if key.len() == 1 {
            codes.push(key.as_bytes()[0]);
            continue;
        }
        let ctrl = key.strip_prefix("ctrl-").and_then(|k| match k.as_bytes() {
            [b'@'] => Some(0),
            [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
            [b'['] => Some(27),
            [b'\\'] => Some(28),
            [b']'] => Some(29),
            [b'^'] => Some(30),
            [b'_'] => Some(31),
            _ => None,
        });
        match (ctrl, key) {
            (Some(c), _) => codes.push(c),
            (None, "DEL") => codes.push(127),
            _ => return Err(format!("Unknown character: '{key}'")),
        }
    }
    Ok(codes)
}

/// `SIGTERM`, `term`, `15`, `RTMIN+3` to a signal number (moby's `signal.ParseSignal`).
pub fn signal(raw: &str) -> Result<i32, String> {
    arca_model::signal::parse_signal(raw).ok_or_else(|| format!("Invalid signal: {raw}"))
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]` (docker's `ParseRestartPolicy`; the
/// names are checked here because the API type is an enum).
pub fn restart_policy(policy: &str) -> Result<RestartPolicy, String> {
    let (name, count) = match policy.split_once(':') {
        Some(("", _)) => {
            return Err("invalid restart policy format: no policy provided before colon".into());
        }
        Some((n, c)) => (n, Some(c)),
        None => (policy, None),
    };
    let maximum_retry_count = match count {
        Some(c) if !c.is_empty() => Some(c.parse::<i64>().map_err(|_| {
            "invalid restart policy format: maximum retry count must be an integer".to_owned()
        })?),
        _ => None,
    };
    let name = match name {
        "" => RestartPolicyNameEnum::EMPTY,
        "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => {
            return Err(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            ));
        }
    };
    if maximum_retry_count.is_some() && name != RestartPolicyNameEnum::ON_FAILURE {
        return Err(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'".into(),
        );
    }
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count,
    })
}

/// Validates `--pid`, `--uts` and `--userns` values as docker's `Valid()` methods do.
pub fn namespace_mode(flag: &str, mode: &str) -> Result<(), String> {
    let ok = match flag {
        "pid" => {
            mode.is_empty()
                || mode == "host"
                || mode
                    .strip_prefix("container:")
                    .is_some_and(|c| !c.is_empty())
        }
        "uts" => mode.is_empty() || mode == "host",
        "userns" => matches!(mode, "" | "host" | "private"),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        let what = match flag {
            "pid" => "PID",
            "uts" => "UTS",
            _ => "USER",
        };
        Err(format!("--{flag}: invalid {what} mode"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_go_units() {
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1g"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("512k"), Ok(512 << 10));
        assert_eq!(ram_in_bytes("512"), Ok(512));
        assert_eq!(ram_in_bytes("100MB"), Ok(100 << 20));
        assert_eq!(ram_in_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("2 g"), Ok(2 << 30));
        assert_eq!(ram_in_bytes("1p"), Ok(1 << 50));
        for bad in ["lots", "-5m", "", "m", "1.", "5x", "5mbb", "1.2.3"] {
            assert!(ram_in_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(ram_in_bytes("lots"), Err("invalid size: 'lots'".into()));
        assert_eq!(mem_swap_bytes("-1"), Ok(-1));
        assert_eq!(mem_swap_bytes("1g"), Ok(1 << 30));
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(go_duration("1s"), Ok(1_000_000_000));
        assert_eq!(go_duration("500ms"), Ok(500_000_000));
        assert_eq!(go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("1.5m"), Ok(90_000_000_000));
        assert_eq!(go_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(go_duration("10us"), Ok(10_000));
        assert_eq!(go_duration("0"), Ok(0));
        assert_eq!(
            go_duration("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert_eq!(
            go_duration("3d"),
            Err("time: unknown unit \"d\" in duration \"3d\"".into())
        );
        assert!(go_duration("").is_err());
        assert!(go_duration("s").is_err());
    }

    #[test]
    fn timestamps_convert_like_docker() {
        use chrono::TimeZone;
        let now = chrono::Local
            .timestamp_opt(1_700_000_000, 0)
            .single()
            .expect("valid time");
        assert_eq!(timestamp("10m", now), Ok("1699999400".into()));
        assert_eq!(timestamp("1h30m", now), Ok("1699994600".into()));
        assert_eq!(timestamp("1700000000", now), Ok("1700000000".into()));
        assert_eq!(timestamp("1700000000.5", now), Ok("1700000000.5".into()));
        assert_eq!(
            timestamp("2023-11-14T22:13:20Z", now),
            Ok("1700000000.000000000".into())
        );
        assert_eq!(
            timestamp("2023-11-14T22:13:20.25Z", now),
            Ok("1700000000.250000000".into())
        );
        assert_eq!(
            timestamp("2023-11-15T00:13:20+02:00", now),
            Ok("1700000000.000000000".into())
        );
        assert_eq!(
            timestamp("2023-11-14T22Z", now),
            Ok("1699999200.000000000".into())
        );
        assert_eq!(
            timestamp("2023-11-14Z", now),
            Ok("1699920000.000000000".into())
        );
        // Without a zone: the local zone (whatever it is here), at midnight for a date.
        let local = timestamp("2023-11-14", now).expect("date");
        let expected = chrono::Local
            .with_ymd_and_hms(2023, 11, 14, 0, 0, 0)
            .single()
            .expect("valid date")
            .timestamp();
        assert_eq!(local, format!("{expected}.000000000"));
        assert!(timestamp("2023-13-45", now).is_err());
        assert!(timestamp("yesterday", now).is_err());
    }

    #[test]
    fn ulimits_parse_like_go_units() {
        let u = ulimit("nofile=1024:2048").expect("valid");
        assert_eq!(
            (u.name.as_deref(), u.soft, u.hard),
            (Some("nofile"), Some(1024), Some(2048))
        );
        let u = ulimit("nproc=512").expect("valid");
        assert_eq!((u.soft, u.hard), (Some(512), Some(512)));
        assert!(ulimit("core=-1").is_ok());
        assert!(ulimit("nofile=-1:-1").is_ok());
        assert_eq!(
            ulimit("nofile=10:5"),
            Err("ulimit soft limit must be less than or equal to hard limit: 10 > 5".into())
        );
        assert_eq!(ulimit("bogus=1"), Err("invalid ulimit type: bogus".into()));
        assert_eq!(
            ulimit("nofile"),
            Err("invalid ulimit argument: nofile".into())
        );
        assert!(ulimit("nofile=1:2:3").is_err());
        assert!(ulimit("nofile=x").is_err());
        assert!(ulimit("nofile=-1:10").is_err());
    }

    #[test]
    fn devices_parse_like_docker() {
        let d = device("/dev/fuse").expect("valid");
        assert_eq!(d.path_on_host.as_deref(), Some("/dev/fuse"));
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/fuse"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rwm"));
        let d = device("/dev/null:/dev/mynull").expect("valid");
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/mynull"));
        let d = device("/dev/null:r").expect("valid");
        assert_eq!(
            (
                d.path_in_container.as_deref(),
                d.cgroup_permissions.as_deref()
            ),
            (Some("/dev/null"), Some("r"))
        );
        let d = device("/dev/null:/dev/x:rw").expect("valid");
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rw"));
        assert_eq!(
            device("/dev/null:/dev/x:rx"),
            Err("bad mode specified: rx".into())
        );
        assert_eq!(
            device("/dev/null:rel"),
            Err("rel is not an absolute path".into())
        );
        assert!(device(":/dev/x").is_err());
        assert!(device("a:b:c:d").is_err());
        assert!(device("/dev/null:/dev/x:rr").is_err());
    }

    #[test]
    fn detach_keys_parse_like_moby_term() {
        assert_eq!(
            detach_keys("ctrl-p,ctrl-q"),
            Ok(DEFAULT_DETACH_KEYS.to_vec())
        );
        assert_eq!(detach_keys("ctrl-a,x"), Ok(vec![1, b'x']));
        assert_eq!(detach_keys("ctrl-@,ctrl-_,DEL"), Ok(vec![0, 31, 127]));
        assert_eq!(detach_keys("ctrl-\\"), Ok(vec![28]));
        assert_eq!(
            detach_keys("ctrl-foo"),
            Err("Unknown character: 'ctrl-foo'".into())
        );
        assert!(detach_keys("ctrl-P").is_err());
        assert!(detach_keys("").is_err());
    }

    #[test]
    fn signals_parse_like_moby() {
        assert_eq!(signal("SIGTERM"), Ok(15));
        assert_eq!(signal("term"), Ok(15));
        assert_eq!(signal("KILL"), Ok(9));
        assert_eq!(signal("9"), Ok(9));
        assert_eq!(signal("SIGUSR1"), Ok(10));
        assert_eq!(signal("RTMIN+3"), Ok(37));
        assert_eq!(signal("SIGRTMAX"), Ok(64));
        assert_eq!(signal("RTMAX-1"), Ok(63));
        assert_eq!(signal("0"), Err("Invalid signal: 0".into()));
        assert_eq!(signal("SIGFOO"), Err("Invalid signal: SIGFOO".into()));
    }

    #[test]
    fn restart_policies_parse_like_docker() {
        let p = restart_policy("on-failure:3").expect("valid");
        assert_eq!(p.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(p.maximum_retry_count, Some(3));
        assert_eq!(
            restart_policy("always").expect("valid").name,
            Some(RestartPolicyNameEnum::ALWAYS)
        );
        assert!(restart_policy(":3").is_err());
        assert!(restart_policy("on-failure:x").is_err());
        assert!(restart_policy("always:3").is_err());
        assert!(restart_policy("sometimes").is_err());
    }

    #[test]
    fn namespace_modes_are_validated() {
        assert!(namespace_mode("pid", "host").is_ok());
        assert!(namespace_mode("pid", "container:web").is_ok());
        assert_eq!(
            namespace_mode("pid", "container:"),
            Err("--pid: invalid PID mode".into())
        );
        assert!(namespace_mode("uts", "host").is_ok());
        assert!(namespace_mode("uts", "private").is_err());
        assert!(namespace_mode("userns", "host").is_ok());
        assert!(namespace_mode("userns", "x").is_err());
    }
}
