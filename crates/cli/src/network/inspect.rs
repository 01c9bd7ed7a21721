//! `arca network inspect`: the daemon's raw JSON, indented by four spaces in its own key
//! order (Go's `json.Indent`), compact with `--format json`, or through a template; names
//! the daemon does not know are reported after the others, and the status is then 1.

use bytes::Bytes;
use clap::Args;
use serde_json::Value;

use super::{call, daemon_message, daemon_status, path_escape, trim_id};
use crate::client::{Cli, Plain};
use crate::template::Template;

#[derive(Args, Debug)]
pub(super) struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long)]
    verbose: bool,
    #[arg(required = true)]
    networks: Vec<String>,
}

/// Go's `json.Indent(dst, src, "", indent)`: whitespace between tokens replaced by
/// newlines and indentation, strings and numbers copied as they are, `{}` and `[]` kept
/// on one line.
pub fn indent_json(src: &[u8], indent: &str) -> String {
    reformat_json(src, Some(indent))
}

/// Go's `json.Compact`.
fn compact_json(src: &[u8]) -> String {
    reformat_json(src, None)
}

/// Copies JSON tokens, dropping the whitespace between them, indenting when asked.
fn reformat_json(src: &[u8], indent: Option<&str>) -> String {
    let mut out = Vec::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut need_indent = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        if let Some(indent) = indent {
            out.push(b'\n');
            for _ in 0..depth {
                out.extend_from_slice(indent.as_bytes());
            }
        }
    };
    for &c in src {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        if need_indent && c != b']' && c != b'}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                need_indent = true;
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => {
                out.push(c);
                if indent.is_some() {
                    out.push(b' ');
                }
            }
            b'}' | b']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The field order of the Go types docker's `{{json}}` prints a network with (`Inspect`,
/// `IPAM`, `IPAMConfig`, `ConfigReference`, `EndpointResource`): these orders agree, so one
/// list serves all.
const INSPECT_FIELD_ORDER: &[&str] = &[
    "Name",
    "Id",
    "Created",
    "Scope",
    "Driver",
    "EnableIPv4",
    "EnableIPv6",
    "IPAM",
    "Internal",
    "Attachable",
    "Ingress",
    "ConfigFrom",
    "ConfigOnly",
    "Containers",
    "Options",
    "Config",
    "Labels",
    "Peers",
    "Services",
    "Network",
    "Subnet",
    "IPRange",
    "Gateway",
    "AuxiliaryAddresses",
    "EndpointID",
    "MacAddress",
    "IPv4Address",
    "IPv6Address",
];

pub(super) async fn inspect(cli: &Cli, a: InspectArgs) -> anyhow::Result<i32> {
    let format = a.format.clone().unwrap_or_default();
    let tmpl = match format.as_str() {
        "" | "json" => None,
        f => Some(
            Template::parse(f)
                .map_err(|e| Plain::new(format!("template parsing error: {e}"), 64))?,
        ),
    };
    let mut raws: Vec<Bytes> = Vec::new();
    let mut out = String::new();
    let mut errors = Vec::new();
    for n in &a.networks {
        let id = trim_id("network", n)?;
        let mut path = format!("/networks/{}", path_escape(&id));
        if a.verbose {
            path.push_str("?verbose=true");
        }
        let raw = match call(cli, hyper::Method::GET, &path, None).await {
            Ok(raw) => raw,
            Err(e) if daemon_status(&e).is_some() => {
                errors.push(daemon_message(&e));
                continue;
            }
            Err(e) => return Err(e),
        };
        match &tmpl {
            None => raws.push(raw),
            Some(t) => {
                let v: Value = serde_json::from_slice(&raw)?;
                match t.render_ordered(&v, INSPECT_FIELD_ORDER) {
                    Ok(s) => {
                        out.push_str(&s);
                        out.push('\n');
                    }
                    Err(e) => errors.push(format!("template parsing error: {e}")),
                }
            }
        }
    }
    match &tmpl {
        None => {
            let mut all = b"[".to_vec();
            for (i, r) in raws.iter().enumerate() {
                if i > 0 {
                    all.push(b',');
                }
                all.extend_from_slice(r);
            }
            all.push(b']');
            if format == "json" {
                println!("{}", compact_json(&all));
            } else {
                println!("{}", indent_json(&all, "    "));
            }
        }
        Some(_) if out.is_empty() => println!(),
        Some(_) => print!("{out}"),
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(Plain::new(errors.join("\n"), 1).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_json_is_indented_like_go() {
        let raw = br#"[{"Name":"n","IPAM":{"Options":{},"Config":[{"Subnet":"10.0.0.0/8"}]},"Containers":{},"Labels":{"a":"b, c: \"d\""},"N":[]}
]"#;
        assert_eq!(
            indent_json(raw, "    "),
            "[\n    {\n        \"Name\": \"n\",\n        \"IPAM\": {\n            \"Options\": {},\n            \"Config\": [\n                {\n                    \"Subnet\": \"10.0.0.0/8\"\n                }\n            ]\n        },\n        \"Containers\": {},\n        \"Labels\": {\n            \"a\": \"b, c: \\\"d\\\"\"\n        },\n        \"N\": []\n    }\n]"
        );
        assert_eq!(
            compact_json(b"[{\"a\": [1, 2], \"b\": \"x: y\"}\n]"),
            "[{\"a\":[1,2],\"b\":\"x: y\"}]"
        );
        assert_eq!(indent_json(b"[]", "    "), "[]");
    }
}
