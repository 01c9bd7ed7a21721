//! Dockerfile-style `--change` lines for `import`, applied to an empty container config
//! (Docker's field names: `Cmd`, `Entrypoint`, `Env`, `WorkingDir`, `User`, `Labels`,
//! `ExposedPorts`, `StopSignal`, `Volumes`).

use serde_json::{Map, Value, json};

use crate::StoreError;

/// Applies `changes` in order and returns the resulting container config.
pub(crate) fn parse(changes: &[String]) -> Result<Map<String, Value>, StoreError> {
    let mut config = Map::new();
    apply_onto(&mut config, changes)?;
    Ok(config)
}

/// Applies `changes` in order on top of `config` (`commit` starts from the request's config).
pub(crate) fn apply_onto(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), StoreError> {
    for change in changes {
        for line in change.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            apply(config, line).map_err(|reason| StoreError::Change {
                line: line.to_owned(),
                reason,
            })?;
        }
    }
    Ok(())
}

fn apply(config: &mut Map<String, Value>, line: &str) -> Result<(), String> {
    let (instruction, rest) = line
        .split_once(char::is_whitespace)
        .map_or((line, ""), |(i, r)| (i, r.trim()));
    let instruction = instruction.to_ascii_uppercase();
    let need_arg = || {
        if rest.is_empty() {
            Err(format!("{instruction} requires at least one argument"))
        } else {
            Ok(())
        }
    };
    match instruction.as_str() {
        "CMD" => {
            need_arg()?;
            config.insert("Cmd".into(), command(rest));
        }
        "ENTRYPOINT" => {
            need_arg()?;
            config.insert("Entrypoint".into(), command(rest));
        }
        "ENV" => {
            need_arg()?;
            let env = config
                .entry("Env")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or("Env is not a list")?;
            for (k, v) in key_values(rest)? {
                env.retain(|e| e.as_str().and_then(|e| e.split_once('=')).map(|p| p.0) != Some(&k));
                env.push(Value::String(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            need_arg()?;
            let labels = config
                .entry("Labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or("Labels is not a map")?;
            for (k, v) in key_values(rest)? {
                labels.insert(k, Value::String(v));
            }
        }
        "EXPOSE" => {
            need_arg()?;
            let ports = config
                .entry("ExposedPorts")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or("ExposedPorts is not a map")?;
            for word in rest.split_whitespace() {
                for port in expose(word)? {
                    ports.insert(port, json!({}));
                }
            }
        }
        "VOLUME" => {
            need_arg()?;
            let paths: Vec<String> = match serde_json::from_str(rest) {
                Ok(list) if rest.starts_with('[') => list,
                _ => rest.split_whitespace().map(str::to_owned).collect(),
            };
            let volumes = config
                .entry("Volumes")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or("Volumes is not a map")?;
            for p in paths {
                volumes.insert(p, json!({}));
            }
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" => {
            need_arg()?;
            let field = match instruction.as_str() {
                "WORKDIR" => "WorkingDir",
                "USER" => "User",
                _ => "StopSignal",
            };
            config.insert(field.into(), Value::String(rest.to_owned()));
        }
        _ => return Err(format!("{instruction} is not a valid change command")),
    }
    Ok(())
}

/// Exec form (`["a","b"]`) or shell form (`a b` → `/bin/sh -c "a b"`).
fn command(rest: &str) -> Value {
    if rest.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(rest)
    {
        return json!(list);
    }
    json!(["/bin/sh", "-c", rest])
}

/// `k=v k2="v 2"` pairs, or the legacy `key value with spaces` form.
fn key_values(rest: &str) -> Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let value = rest[first.len()..].trim();
        if value.is_empty() {
            return Err(format!("{first} must have two arguments"));
        }
        return Ok(vec![(first.to_owned(), value.to_owned())]);
    }
    let mut out = Vec::new();
    for word in words(rest)? {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("can't find = in {word:?}, must be of the form name=value"))?;
        if k.is_empty() {
            return Err(format!("empty name in {word:?}"));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Splits on unquoted whitespace, removing quotes; `\` escapes outside single quotes.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                cur.push(chars.next().ok_or("trailing backslash")?);
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `80` → `80/tcp`; `53/udp`; `8000-8002/tcp` → three ports.
fn expose(word: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid protocol in {word:?}"));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid port {word:?}"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if lo > hi {
        return Err(format!("invalid port range {word:?}"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Map<String, Value>, StoreError> {
        parse(&[line.to_owned()])
    }

    #[test]
    fn env_and_label_accept_both_forms_and_quotes() {
        let c = one(r#"ENV PATH=/bin GREETING="hello world" ESC=a\ b"#).expect("env");
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "GREETING=hello world", "ESC=a b"])
        );
        let c = one("ENV LEGACY some value").expect("legacy");
        assert_eq!(c["Env"], json!(["LEGACY=some value"]));
        let c = parse(&["ENV A=1".into(), "ENV A=2".into()]).expect("override");
        assert_eq!(c["Env"], json!(["A=2"]));
        let c = one("label a='x y' b=z").expect("label");
        assert_eq!(c["Labels"], json!({"a": "x y", "b": "z"}));
        assert!(one("ENV A=1 B").is_err());
        assert!(one("ENV A=\"open").is_err());
    }

    #[test]
    fn cmd_takes_exec_or_shell_form() {
        assert_eq!(
            one(r#"CMD ["a","b"]"#).expect("exec")["Cmd"],
            json!(["a", "b"])
        );
        assert_eq!(
            one("CMD echo hi").expect("shell")["Cmd"],
            json!(["/bin/sh", "-c", "echo hi"])
        );
        assert!(one("CMD").is_err());
    }

    #[test]
    fn expose_and_volume_parse() {
        let c = one("EXPOSE 80 8000-8001/udp").expect("expose");
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "8000/udp": {}, "8001/udp": {}})
        );
        assert!(one("EXPOSE 99999").is_err());
        assert!(one("EXPOSE 80/icmp").is_err());
        let c = one(r#"VOLUME ["/data", "/logs"]"#).expect("volume");
        assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}}));
    }

    #[test]
    fn unknown_instructions_are_invalid() {
        let err = one("RUN true").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "invalid change \"RUN true\": RUN is not a valid change command"
        );
    }
}
