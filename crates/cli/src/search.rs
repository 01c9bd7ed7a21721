//! `arca search [--limit N] [-f KEY=VALUE] [--no-trunc] [--format F] TERM`: asks the daemon
//! (`GET /images/search`) to search the term's registry, and prints docker 28's table
//! (`NAME  DESCRIPTION  STARS  OFFICIAL`, descriptions cut to 45 characters unless
//! `--no-trunc`), in the registry's order.
//!
//! `--format` takes `table`, `json`, or a template made of the fields `{{.Name}}`,
//! `{{.Description}}`, `{{.StarCount}}`, `{{.IsOfficial}}` and `{{json .}}` (a `table `
//! prefix adds the header row and aligns columns); other Go template syntax is refused.
//! Credentials stored by `arca login`/`docker login` for the term's registry are sent.

use std::collections::BTreeMap;

use bytes::Bytes;
use clap::Args;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::client::{Cli, Plain, query_escape};
use crate::format::render_table;

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long)]
    format: Option<String>,
    /// Max number of search results
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    limit: i64,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    term: String,
}

const DEFAULT_TABLE: &str = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}";

/// The registry host a term names (docker's `splitReposSearchTerm`), as a reference whose
/// stored credentials apply.
fn auth_reference(term: &str) -> Option<arca_model::Reference> {
    let host = match term.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    };
    format!("{host}/library/x").parse().ok()
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One result's fields as docker's search formatter shows them.
struct Row<'a> {
    v: &'a Value,
    trunc: bool,
}

impl Row<'_> {
    fn name(&self) -> String {
        self.v["name"].as_str().unwrap_or_default().to_owned()
    }

    fn description(&self) -> String {
        let d = self.v["description"]
            .as_str()
            .unwrap_or_default()
            .replace(['\n', '\r'], " ");
        if self.trunc { ellipsis(&d, 45) } else { d }
    }

    fn stars(&self) -> String {
        self.v["star_count"].as_i64().unwrap_or(0).to_string()
    }

    fn official(&self, json: bool) -> String {
        match (self.v["is_official"].as_bool().unwrap_or(false), json) {
            (true, true) => "true".into(),
            (true, false) => "[OK]".into(),
            (false, true) => "false".into(),
            (false, false) => String::new(),
        }
    }

    fn json(&self) -> String {
        let m: BTreeMap<&str, String> = BTreeMap::from([
            ("Description", self.description()),
            ("IsOfficial", self.official(true)),
            ("Name", self.name()),
            ("StarCount", self.stars()),
        ]);
        serde_json::to_string(&m).unwrap_or_default()
    }
}

/// A field of the template, or `None` for syntax this formatter does not know.
fn field(action: &str) -> Option<&'static str> {
    Some(match action {
        ".Name" => "NAME",
        ".Description" => "DESCRIPTION",
        ".StarCount" => "STARS",
        ".IsOfficial" => "OFFICIAL",
        "json ." => "",
        _ => return None,
    })
}

/// Renders `template` for one result (`row`), or its header line when `row` is `None`.
fn render(template: &str, row: Option<&Row<'_>>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            Plain::new(
                format!("template parsing error: unclosed action in {template:?}"),
                1,
            )
        })?;
        let action = after[..end].trim();
        let header = field(action).ok_or_else(|| {
            Plain::new(
                format!("template parsing error: unsupported action {{{{{action}}}}} (fields: .Name, .Description, .StarCount, .IsOfficial, json .)"),
                1,
            )
        })?;
        out.push_str(&match row {
            None => header.to_owned(),
            Some(r) => match action {
                ".Name" => r.name(),
                ".Description" => r.description(),
                ".StarCount" => r.stars(),
                ".IsOfficial" => r.official(false),
                _ => r.json(),
            },
        });
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Prints `results` with docker's formatter rules for `format`.
fn print(results: &[Value], format: Option<&str>, trunc: bool) -> anyhow::Result<()> {
    let format = match format.unwrap_or("") {
        "" | "table" => DEFAULT_TABLE,
        "json" => "{{json .}}",
        f => f,
    };
    let (table, template) = match format.strip_prefix("table") {
        Some(t) if t.is_empty() || t.starts_with(char::is_whitespace) => (true, t),
        _ => (false, format),
    };
    let template = template
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let rows: Vec<String> = results
        .iter()
        .map(|v| render(&template, Some(&Row { v, trunc })))
        .collect::<anyhow::Result<_>>()?;
    if !table {
        for r in rows {
            println!("{r}");
        }
        return Ok(());
    }
    let header = render(&template, None)?;
    let header: Vec<&str> = header.split('\t').collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.split('\t').map(str::to_owned).collect())
        .collect();
    print!("{}", render_table(&header, &cells, 10));
    Ok(())
}

pub async fn search(cli: &Cli, a: SearchArgs) -> anyhow::Result<i32> {
    let filters = crate::commands::filters(&a.filter)?;
    if filters.contains_key("is-automated") {
        eprintln!(
            "WARNING: the \"is-automated\" filter is deprecated, and searching for \"is-automated=true\" will not yield any results in future."
        );
    }
    let mut q = format!("/images/search?term={}", query_escape(&a.term));
    if a.limit > 0 {
        q.push_str(&format!("&limit={}", a.limit));
    }
    if !filters.is_empty() {
        // The docker CLI's map form: {"key":{"value":true}}.
        let map: serde_json::Map<String, Value> = filters
            .iter()
            .map(|(k, vals)| {
                let set: serde_json::Map<String, Value> = vals
                    .iter()
                    .map(|v| (v.clone(), Value::Bool(true)))
                    .collect();
                (k.clone(), Value::Object(set))
            })
            .collect();
        q.push_str(&format!(
            "&filters={}",
            query_escape(&Value::Object(map).to_string())
        ));
    }
    let auth = auth_reference(&a.term)
        .map(|r| crate::login::registry_auth_header(&r))
        .unwrap_or_else(|| "e30=".to_owned());
    let body = crate::client::raw_request(
        &cli.socket,
        hyper::Method::GET,
        &q,
        &[("X-Registry-Auth", auth)],
        Bytes::new(),
    )
    .await?
    .collect()
    .await?
    .to_bytes();
    let v: Value = serde_json::from_slice(&body)?;
    let results = v.as_array().cloned().unwrap_or_default();
    print(&results, a.format.as_deref(), !a.no_trunc)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn terms_name_their_registry_for_credentials() {
        let host = |t: &str| auth_reference(t).map(|r| r.domain().to_owned());
        assert_eq!(host("busybox").as_deref(), Some("docker.io"));
        assert_eq!(host("user/app").as_deref(), Some("docker.io"));
        assert_eq!(
            host("127.0.0.1:5000/busy").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(host("localhost/x").as_deref(), Some("localhost"));
    }

    #[test]
    fn rows_render_docker_fields() {
        let v =
            json!({"name": "busybox", "description": "a\nb", "star_count": 7, "is_official": true});
        let r = Row { v: &v, trunc: true };
        assert_eq!(
            render(
                "{{.Name}}:{{ .StarCount }}:{{.IsOfficial}}:{{.Description}}",
                Some(&r)
            )
            .expect("render"),
            "busybox:7:[OK]:a b"
        );
        assert_eq!(
            render("{{json .}}", Some(&r)).expect("json"),
            r#"{"Description":"a b","IsOfficial":"true","Name":"busybox","StarCount":"7"}"#
        );
        assert_eq!(
            render(DEFAULT_TABLE.trim_start_matches("table "), None).expect("header"),
            "NAME\tDESCRIPTION\tSTARS\tOFFICIAL"
        );
        assert!(render("{{.Nope}}", Some(&r)).is_err());
        let long = json!({"name": "x", "description": "d".repeat(60)});
        let cut = Row {
            v: &long,
            trunc: true,
        }
        .description();
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with('…'));
    }
}
