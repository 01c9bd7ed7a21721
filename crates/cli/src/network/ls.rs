//! `arca network ls`: `GET /networks` with docker's filters, sorted by name in natural
//! order, printed with docker's formatter (`table`, `raw`, `json`, `-q`, templates with the
//! fields `.ID .Name .Driver .Scope .IPv4 .IPv6 .Internal .Labels .CreatedAt` and
//! `.Label "key"`).

use clap::Args;
use serde_json::{Value, json};

use super::{call, filters_query};
use crate::client::{Cli, Plain};
use crate::format::render_table;
use crate::manage::natural_cmp;
use crate::template::Template;

#[derive(Args, Debug)]
pub(super) struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
}

const DEFAULT_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

/// Go's `time.Time.String()` of an RFC 3339 time (`2025-01-02 03:04:05.5 +0000 UTC`).
fn go_time_string(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    };
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos != 0 {
        s.push_str(format!(".{nanos:09}").trim_end_matches('0'));
    }
    let offset = t.offset().local_minus_utc();
    if offset == 0 {
        s.push_str(" +0000 UTC");
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let o = offset.abs();
        let zone = format!("{sign}{:02}{:02}", o / 3600, o % 3600 / 60);
        s.push_str(&format!(" {zone} {zone}"));
    }
    s
}

/// The fields of docker's network formatting context for one network.
fn row_context(n: &Value, trunc: bool) -> (Value, Value) {
    let text = |k: &str| {
        n.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let flag = |k: &str| {
        n.get(k)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string()
    };
    let id = text("Id");
    let labels = n.get("Labels").cloned().unwrap_or(Value::Null);
    let joined = labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let data = json!({
        "ID": if trunc { crate::format::truncate_id(&id) } else { id },
        "Name": text("Name"),
        "Driver": text("Driver"),
        "Scope": text("Scope"),
        "IPv4": flag("EnableIPv4"),
        "IPv6": flag("EnableIPv6"),
        "Internal": flag("Internal"),
        "Labels": joined,
        "CreatedAt": go_time_string(&text("Created")),
    });
    let labels = if labels.is_object() {
        labels
    } else {
        json!({})
    };
    (data, json!({ "Label": labels }))
}

/// Renders networks with docker's formatter rules for `format` (already resolved from
/// `table`/`raw`/`json`/custom).
fn render_networks(networks: &[Value], format: &str, trunc: bool) -> Result<String, Plain> {
    let parse_err = |e: String| Plain::new(format!("template parsing error: {e}"), 1);
    let table = format.starts_with("table");
    let body = if table {
        &format["table".len()..]
    } else if format == "json" {
        "{{json .}}"
    } else {
        format
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let tmpl = Template::parse(&body).map_err(parse_err)?;
    let mut rows = Vec::new();
    for n in networks {
        let (data, methods) = row_context(n, trunc);
        rows.push(tmpl.render_with(&data, &methods).map_err(parse_err)?);
    }
    if !table {
        return Ok(rows.iter().map(|r| format!("{r}\n")).collect());
    }
    let header = tmpl.render_header(&json!({
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
        "CreatedAt": "CREATED AT",
    }));
    let header: Vec<&str> = header.split('\t').collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.split('\t').map(str::to_owned).collect())
        .collect();
    Ok(render_table(&header, &cells, 10))
}

pub(super) async fn ls(cli: &Cli, a: LsArgs) -> anyhow::Result<i32> {
    let mut path = "/networks".to_owned();
    if let Some(q) = filters_query(&a.filter)? {
        path.push_str(&format!("?filters={q}"));
    }
    let resp = call(cli, hyper::Method::GET, &path, None).await?;
    let mut networks: Vec<Value> = serde_json::from_slice(&resp)?;
    let name = |n: &Value| {
        n.get("Name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    networks.sort_by(|x, y| natural_cmp(&name(x), &name(y)));
    let format = match a.format.as_deref().unwrap_or("") {
        "" | "table" if a.quiet => "{{.ID}}",
        "" | "table" => DEFAULT_TABLE,
        "raw" if a.quiet => "network_id: {{.ID}}",
        "raw" => {
            "network_id: {{.ID}}\\nname: {{.Name}}\\ndriver: {{.Driver}}\\nscope: {{.Scope}}\\n"
        }
        f => f,
    };
    print!("{}", render_networks(&networks, format, !a.no_trunc)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_renders_docker_table_and_formats() {
        let nets = vec![
            json!({"Name": "bridge", "Id": "a".repeat(64), "Driver": "bridge", "Scope": "local",
                   "Created": "2025-01-02T03:04:05.5Z", "Labels": {"k": "v"}, "EnableIPv4": true}),
            json!({"Name": "host", "Id": "sha256:".to_owned() + &"b".repeat(64), "Driver": "host", "Scope": "local"}),
        ];
        assert_eq!(
            render_networks(&nets, DEFAULT_TABLE, true).expect("table"),
            "NETWORK ID     NAME      DRIVER    SCOPE\n\
             aaaaaaaaaaaa   bridge    bridge    local\n\
             bbbbbbbbbbbb   host      host      local\n"
        );
        assert_eq!(
            render_networks(&nets, "{{.ID}}", true).expect("quiet"),
            "aaaaaaaaaaaa\nbbbbbbbbbbbb\n"
        );
        let json_line = render_networks(&nets[..1], "json", true).expect("json");
        assert_eq!(
            json_line,
            "{\"CreatedAt\":\"2025-01-02 03:04:05.5 +0000 UTC\",\"Driver\":\"bridge\",\"ID\":\"aaaaaaaaaaaa\",\"IPv4\":\"true\",\"IPv6\":\"false\",\"Internal\":\"false\",\"Labels\":\"k=v\",\"Name\":\"bridge\",\"Scope\":\"local\"}\n"
        );
        assert_eq!(
            render_networks(&nets[..1], "table {{.Name}}\\t{{.Label \"k\"}}", true).expect("label"),
            "NAME      k\nbridge    v\n"
        );
        assert!(render_networks(&nets, "{{.Nope", true).is_err());
    }

    #[test]
    fn ids_and_times_print_like_go() {
        assert_eq!(
            go_time_string("2025-01-02T03:04:05Z"),
            "2025-01-02 03:04:05 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2025-01-02T03:04:05.120+02:00"),
            "2025-01-02 03:04:05.12 +0200 +0200"
        );
        assert_eq!(
            crate::format::truncate_id("sha256:0123456789abcdef"),
            "0123456789ab"
        );
    }
}
