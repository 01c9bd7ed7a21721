//! The prune verbs as the docker CLI 28 runs them: `container prune`, `image prune` and
//! `system prune [-a] [--volumes] [--filter]`. Each asks for confirmation unless `-f`
//! (only `y` confirms; anything else cancels quietly with status 0), sends docker's
//! requests (`system prune`: containers, networks, volumes with `--volumes`, images, then
//! the build cache) and prints what went and `Total reclaimed space: …`.

use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use crate::client::{Cli, Plain, query_escape, raw_request};
use crate::format::human_size_4;

/// docker's `--filter` values (`opts.FilterOpt`): `name=value`, the name lowercased and both
/// sides trimmed; the map form of the API's `filters` parameter.
#[derive(Debug, Default, Clone)]
pub struct PruneFilters(Map<String, Value>);

impl PruneFilters {
    /// Parses the values of `--filter`; `verb` names the command in the usage hint.
    pub fn parse(values: &[String], verb: &str) -> anyhow::Result<Self> {
        let mut out = Self::default();
        for f in values.iter().filter(|f| !f.is_empty()) {
            let Some((k, v)) = f.split_once('=') else {
                return Err(Plain::new(
                    format!(
                        "invalid argument \"{f}\" for \"--filter\" flag: bad format of filter (expected name=value)\n\nUsage:  arca {verb} [OPTIONS]\n\nRun 'arca {verb} --help' for more information"
                    ),
                    125,
                )
                .into());
            };
            out.add(&k.trim().to_ascii_lowercase(), v.trim());
        }
        Ok(out)
    }

    pub fn add(&mut self, key: &str, value: &str) {
        if let Some(m) = self
            .0
            .entry(key.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            m.insert(value.to_owned(), Value::Bool(true));
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The values of `key`.
    fn values(&self, key: &str) -> Vec<String> {
        self.0
            .get(key)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `filters=…&` for a query string, or nothing when there are none.
    fn query(&self) -> String {
        if self.0.is_empty() {
            String::new()
        } else {
            format!(
                "filters={}",
                query_escape(&Value::Object(self.0.clone()).to_string())
            )
        }
    }
}

async fn post(cli: &Cli, path: &str, query: &str) -> anyhow::Result<Value> {
    let path_and_query = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let body = raw_request(
        &cli.socket,
        hyper::Method::POST,
        &path_and_query,
        &[],
        Bytes::new(),
    )
    .await?
    .collect()
    .await?
    .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

/// `Deleted <what>:` and one line per item (with a trailing empty line once printed), or
/// nothing; with the space the report claims, counted only when something went (docker).
fn report(
    v: &Value,
    list_key: &str,
    title: &str,
    line: impl Fn(&Value) -> String,
) -> (u64, String) {
    let items = v[list_key].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return (0, String::new());
    }
    let mut out = format!("{title}:\n");
    for i in &items {
        out.push_str(&line(i));
        out.push('\n');
    }
    (v["SpaceReclaimed"].as_u64().unwrap_or(0), out)
}

fn as_str(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Each prune step returns the space reclaimed and the lines to print.
pub async fn containers(cli: &Cli, f: &PruneFilters) -> anyhow::Result<(u64, String)> {
    let v = post(cli, "/containers/prune", &f.query()).await?;
    Ok(report(
        &v,
        "ContainersDeleted",
        "Deleted Containers",
        as_str,
    ))
}

async fn networks(cli: &Cli, f: &PruneFilters) -> anyhow::Result<(u64, String)> {
    let v = post(cli, "/networks/prune", &f.query()).await?;
    // Networks free no space that docker counts.
    Ok((
        0,
        report(&v, "NetworksDeleted", "Deleted Networks", as_str).1,
    ))
}

async fn volumes(cli: &Cli, f: &PruneFilters) -> anyhow::Result<(u64, String)> {
    let v = post(cli, "/volumes/prune", &f.query()).await?;
    Ok(report(&v, "VolumesDeleted", "Deleted Volumes", as_str))
}

pub async fn images(cli: &Cli, f: &PruneFilters, all: bool) -> anyhow::Result<(u64, String)> {
    let mut f = f.clone();
    f.add("dangling", if all { "false" } else { "true" });
    let v = post(cli, "/images/prune", &f.query()).await?;
    Ok(report(&v, "ImagesDeleted", "Deleted Images", |i| {
        match i["Untagged"].as_str().filter(|s| !s.is_empty()) {
            Some(t) => format!("untagged: {t}"),
            None => format!("deleted: {}", i["Deleted"].as_str().unwrap_or_default()),
        }
    }))
}

async fn build_cache(cli: &Cli, f: &PruneFilters, all: bool) -> anyhow::Result<(u64, String)> {
    // docker sends `filters` even when empty here.
    let mut query = match f.query() {
        q if q.is_empty() => "filters=".to_owned(),
        q => q,
    };
    if all {
        query = format!("all=1&{query}");
    }
    let v = post(cli, "/build/prune", &query).await?;
    let (_, out) = report(&v, "CachesDeleted", "Deleted build cache objects", as_str);
    // docker counts the build cache's space even when the list is empty.
    Ok((v["SpaceReclaimed"].as_u64().unwrap_or(0), out))
}

/// Prints a step's output as docker does (`Fprintln`: the list, then an empty line).
fn print_output(out: &str) {
    if !out.is_empty() {
        println!("{out}");
    }
}

fn print_total(space: u64) {
    println!("Total reclaimed space: {}", human_size_4(space as f64));
}

#[derive(Args, Debug)]
pub struct ContainerArgs {
    #[command(subcommand)]
    command: ContainerCommand,
}

#[derive(Subcommand, Debug)]
enum ContainerCommand {
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::cp::CpArgs),
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
}

#[derive(Args, Debug)]
struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filters: Vec<String>,
}

pub async fn container(cli: &Cli, a: ContainerArgs) -> anyhow::Result<i32> {
    match a.command {
        ContainerCommand::Cp(c) => crate::cp::cp(cli, c).await,
        ContainerCommand::Prune(p) => {
            let f = PruneFilters::parse(&p.filters, "container prune")?;
            if !p.force
                && !crate::format::confirm(
                    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
                )?
            {
                return Ok(0);
            }
            let (space, out) = containers(cli, &f).await?;
            print_output(&out);
            print_total(space);
            Ok(0)
        }
    }
}

/// `image prune` (called from the `image` verb).
pub async fn image_prune(
    cli: &Cli,
    filters: &[String],
    all: bool,
    force: bool,
) -> anyhow::Result<i32> {
    let f = PruneFilters::parse(filters, "image prune")?;
    let warning = if all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    };
    if !force && !crate::format::confirm(warning)? {
        return Ok(0);
    }
    let (space, out) = images(cli, &f, all).await?;
    print_output(&out);
    print_total(space);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
}

/// docker's natural order (`sortorder.NaturalLess`) for the filter lines of the warning.
fn natural_less(a: &str, b: &str) -> std::cmp::Ordering {
    crate::manage::natural_cmp(a, b)
}

/// The confirmation message of `system prune` (docker's template, rendered).
fn system_warning(a: &SystemPruneArgs, f: &PruneFilters) -> String {
    let mut warnings = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        warnings.push("all anonymous volumes not used by at least one container");
    }
    warnings.push(if a.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    });
    warnings.push(if a.all {
        "all build cache"
    } else {
        "unused build cache"
    });
    let mut out = String::from("WARNING! This will remove:");
    for w in warnings {
        out.push_str(&format!("\n  - {w}"));
    }
    out.push('\n');
    let mut lines: Vec<String> = ["label", "label!", "until"]
        .iter()
        .flat_map(|k| f.values(k).into_iter().map(move |v| format!("{k}={v}")))
        .collect();
    lines.sort_by(|x, y| natural_less(x, y));
    if !lines.is_empty() {
        out.push_str("\n  Items to be pruned will be filtered with:");
        for l in lines {
            out.push_str(&format!("\n  - {l}"));
        }
        out.push('\n');
    }
    out.push_str("\nAre you sure you want to continue?");
    out
}

pub async fn system_prune(cli: &Cli, a: SystemPruneArgs) -> anyhow::Result<i32> {
    let f = PruneFilters::parse(&a.filters, "system prune")?;
    if a.volumes && f.contains("until") {
        return Err(Plain::new(
            "ERROR: The \"until\" filter is not supported with \"--volumes\"",
            1,
        )
        .into());
    }
    if !a.force && !crate::format::confirm(&system_warning(&a, &f))? {
        return Ok(0);
    }
    let mut total = 0;
    let mut step = |(space, out): (u64, String)| {
        total += space;
        print_output(&out);
    };
    step(containers(cli, &f).await?);
    step(networks(cli, &f).await?);
    if a.volumes {
        step(volumes(cli, &f).await?);
    }
    step(images(cli, &f, a.all).await?);
    step(build_cache(cli, &f, a.all).await?);
    print_total(total);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(all: bool, volumes: bool) -> SystemPruneArgs {
        SystemPruneArgs {
            all,
            filters: Vec::new(),
            force: false,
            volumes,
        }
    }

    #[test]
    fn filters_parse_like_docker_filter_opt() {
        let f = PruneFilters::parse(
            &[
                "Label=a=b".into(),
                " until = 24h ".into(),
                "label!=c".into(),
            ],
            "system prune",
        )
        .expect("filters");
        assert_eq!(f.values("label"), vec!["a=b"]);
        assert_eq!(f.values("until"), vec!["24h"]);
        assert_eq!(f.values("label!"), vec!["c"]);
        let q = f.query();
        assert!(q.starts_with("filters=%7B"), "{q}");
        assert!(PruneFilters::parse(&["nope".into()], "container prune").is_err());
        assert_eq!(PruneFilters::default().query(), "");
    }

    #[test]
    fn system_warning_lists_what_goes_and_the_filters() {
        let f = PruneFilters::default();
        assert_eq!(
            system_warning(&args(false, false), &f),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue?"
        );
        let f = PruneFilters::parse(&["label=b".into(), "label=a".into()], "x").expect("f");
        assert_eq!(
            system_warning(&args(true, true), &f),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all anonymous volumes not used by at least one container\n  - all images without at least one container associated to them\n  - all build cache\n\n  Items to be pruned will be filtered with:\n  - label=a\n  - label=b\n\nAre you sure you want to continue?"
        );
    }

    #[test]
    fn reports_count_space_only_when_something_went() {
        let v = serde_json::json!({"ContainersDeleted": null, "SpaceReclaimed": 5});
        assert_eq!(
            report(&v, "ContainersDeleted", "Deleted Containers", as_str),
            (0, String::new())
        );
        let v = serde_json::json!({"ContainersDeleted": ["a", "b"], "SpaceReclaimed": 5});
        assert_eq!(
            report(&v, "ContainersDeleted", "Deleted Containers", as_str),
            (5, "Deleted Containers:\na\nb\n".to_owned())
        );
    }
}
