//! `arca system df [-v] [--format]`: `GET /system/df` printed as the docker CLI 28 prints
//! it. Without `-v`: one line per type (Images, Containers, Local Volumes, Build Cache) with
//! `TYPE TOTAL ACTIVE SIZE RECLAIMABLE` (`table`, `raw`, `json`, or a template over
//! `.Type .TotalCount .Active .Size .Reclaimable`). With `-v`: each image, container, volume
//! and build-cache record in its own table, or a template over `.Images .Containers
//! .Volumes .BuildCache` (`raw` and `json` as docker).
//!
//! Sizes follow docker's formatter: summary sizes and shared/unique image sizes with four
//! significant digits, image and container sizes with three.
//!
//! Limits: times print in the local zone as `+hhmm` (Go names the zone, e.g. `CET`).

use clap::Args;
use serde_json::{Value, json};

use crate::client::{Cli, Plain};
use crate::format::{ago, human_size, human_size_4, render_table};
use crate::template::Template;

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Format output using a custom template:
    /// 'table':            Print output in table format with column headers (default)
    /// 'table TEMPLATE':   Print output in table format using the given Go template
    /// 'json':             Print in JSON format
    /// 'TEMPLATE':         Print output using the given Go template.
    #[arg(long)]
    format: Option<String>,
}

const SUMMARY_TABLE: &str =
    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
const SUMMARY_RAW: &str = "type: {{.Type}}\ntotal: {{.TotalCount}}\nactive: {{.Active}}\nsize: {{.Size}}\nreclaimable: {{.Reclaimable}}\n";
const IMAGE_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
const CONTAINER_TABLE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}";
const VOLUME_TABLE: &str = "table {{.Name}}\t{{.Links}}\t{{.Size}}";
const CACHE_TABLE: &str = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}";
/// docker's `-v --format raw`: each object's raw form under a `type:` line.
const VERBOSE_RAW: &str = "{{range .Images}}type: Image\nrepository: {{ .Repository }}\ntag: {{.Tag}}\ndigest: {{.Digest}}\nimage_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n\n{{end -}}\n{{range .Containers}}type: Container\ncontainer_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\nstate:{{if .State}} {{.State}}{{end}}\nstatus:{{if .Status}} {{.Status}}{{end}}\nnames: {{.Names}}\nlabels:{{if .Labels}} {{.Labels}}{{end}}\nports:{{if .Ports}} {{.Ports}}{{end}}\nsize: {{.Size}}\n\n{{end -}}\n{{range .Volumes}}type: Volume\nname: {{.Name}}\ndriver: {{.Driver}}\n\n{{end -}}\n{{range .BuildCache}}type: Build Cache\nbuild_cache_id: {{.ID}}\nparent_id: {{.Parent}}\nbuild_cache_type: {{.CacheType}}\ndescription: {{.Description}}\ncreated_at: {{.CreatedAt}}\ncreated_since: {{.CreatedSince}}\nlast_used_at: {{.LastUsedAt}}\nlast_used_since: {{.LastUsedSince}}\nusage_count: {{.UsageCount}}\nin_use: {{.InUse}}\nshared: {{.Shared}}\n\n{{end -}}";

pub async fn df(cli: &Cli, a: DfArgs) -> anyhow::Result<i32> {
    let body = crate::client::get_stream(&cli.socket, "/system/df").await?;
    let body = http_body_util::BodyExt::collect(body).await?.to_bytes();
    let du: Value = serde_json::from_slice(&body)?;
    print!(
        "{}",
        render(&du, a.format.as_deref().unwrap_or(""), a.verbose)?
    );
    Ok(0)
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// `SIZE (N%)` as docker's RECLAIMABLE column prints it (Go's integer division).
fn with_share(part: i64, total: i64) -> String {
    if total > 0 {
        format!("{} ({}%)", human_size_4(part as f64), part * 100 / total)
    } else {
        human_size_4(part as f64)
    }
}

fn container_active(c: &Value) -> bool {
    matches!(
        c["State"].as_str(),
        Some("running" | "paused" | "restarting")
    )
}

fn builder_size(cache: &[Value]) -> i64 {
    cache
        .iter()
        .filter(|b| !b["Shared"].as_bool().unwrap_or(false))
        .map(|b| int(&b["Size"]))
        .sum()
}

/// The four summary lines: docker's `diskUsage*Context` methods.
fn summary_rows(du: &Value) -> Vec<Value> {
    let images = list(&du["Images"]);
    let layers = int(&du["LayersSize"]);
    let used: i64 = images
        .iter()
        .filter(|i| int(&i["Containers"]) != 0)
        .filter(|i| int(&i["Size"]) != -1 && int(&i["SharedSize"]) != -1)
        .map(|i| int(&i["Size"]) - int(&i["SharedSize"]))
        .sum();
    let containers = list(&du["Containers"]);
    let rw: i64 = containers.iter().map(|c| int(&c["SizeRw"])).sum();
    let idle_rw: i64 = containers
        .iter()
        .filter(|c| !container_active(c))
        .map(|c| int(&c["SizeRw"]))
        .sum();
    let volumes = list(&du["Volumes"]);
    let sized = || {
        volumes
            .iter()
            .filter(|v| v["UsageData"]["Size"].as_i64().unwrap_or(-1) != -1)
    };
    let vol_size: i64 = sized().map(|v| int(&v["UsageData"]["Size"])).sum();
    let vol_idle: i64 = sized()
        .filter(|v| int(&v["UsageData"]["RefCount"]) == 0)
        .map(|v| int(&v["UsageData"]["Size"]))
        .sum();
    let cache = list(&du["BuildCache"]);
    let in_use = |b: &&Value| b["InUse"].as_bool().unwrap_or(false);
    let cache_busy: i64 = cache
        .iter()
        .filter(in_use)
        .filter(|b| !b["Shared"].as_bool().unwrap_or(false))
        .map(|b| int(&b["Size"]))
        .sum();
    let row = |typ: &str, total: usize, active: usize, size: String, reclaimable: String| {
        json!({
            "Type": typ,
            "TotalCount": total.to_string(),
            "Active": active.to_string(),
            "Size": size,
            "Reclaimable": reclaimable,
        })
    };
    vec![
        row(
            "Images",
            images.len(),
            images.iter().filter(|i| int(&i["Containers"]) > 0).count(),
            human_size_4(layers as f64),
            with_share(layers - used, layers),
        ),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(|c| container_active(c)).count(),
            human_size_4(rw as f64),
            with_share(idle_rw, rw),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            volumes
                .iter()
                .filter(|v| int(&v["UsageData"]["RefCount"]) > 0)
                .count(),
            human_size_4(vol_size as f64),
            with_share(vol_idle, vol_size),
        ),
        row(
            "Build Cache",
            cache.len(),
            cache.iter().filter(in_use).count(),
            human_size_4(builder_size(cache) as f64),
            human_size_4((builder_size(cache) - cache_busy) as f64),
        ),
    ]
}

/// A reference as docker shows it (`reference.FamiliarName`): the repository without
/// `docker.io/` and `library/`, and the tag if there is one. The digest is dropped.
fn familiar(reference: &str) -> (String, Option<String>) {
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_owned())),
        None => (name, None),
    };
    let repo = repo
        .strip_prefix("docker.io/library/")
        .or_else(|| repo.strip_prefix("docker.io/"))
        .unwrap_or(repo);
    (repo.to_owned(), tag)
}

/// Go's `time.Time.String()` of a Unix time, in the local zone.
fn go_time(unix: i64) -> String {
    use chrono::TimeZone;
    let Some(t) = chrono::Local.timestamp_opt(unix, 0).single() else {
        return String::new();
    };
    let offset = t.offset().local_minus_utc();
    let zone = if offset == 0 {
        "+0000 UTC".to_owned()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let o = offset.abs();
        let z = format!("{sign}{:02}{:02}", o / 3600, o % 3600 / 60);
        format!("{z} {z}")
    };
    format!("{} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
}

fn strings(v: &Value) -> Vec<String> {
    list(v)
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// `k=v,k=v` (sorted: Go's map order is random, a stable one reads better).
fn labels(v: &Value) -> String {
    let mut l: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    l.sort();
    l.join(",")
}

/// One image as docker's `imageContext` shows it in `df -v`; `None` for a reference docker
/// cannot parse (it skips those).
fn image_context(i: &Value, trunc: bool) -> Option<Value> {
    let tags = strings(&i["RepoTags"]);
    let digests = strings(&i["RepoDigests"]);
    let dangling = (tags.is_empty() && digests.is_empty())
        || (tags == ["<none>:<none>"] && digests == ["<none>@<none>"]);
    let (repo, tag) = match tags.first() {
        Some(t) if !dangling => match familiar(t) {
            (repo, _) if repo.is_empty() => return None,
            (repo, Some(tag)) => (repo, tag),
            (_, None) => ("<none>".to_owned(), "<none>".to_owned()),
        },
        _ => ("<none>".to_owned(), "<none>".to_owned()),
    };
    let id = i["Id"].as_str().unwrap_or_default();
    let size = int(&i["Size"]);
    let shared = i["SharedSize"].as_i64().unwrap_or(-1);
    let created = int(&i["Created"]);
    let containers = i["Containers"].as_i64().unwrap_or(-1);
    Some(json!({
        "ID": if trunc { crate::format::truncate_id(id) } else { id.to_owned() },
        "Repository": repo,
        "Tag": tag,
        "Digest": "",
        "CreatedSince": ago(created),
        "CreatedAt": go_time(created),
        "Size": human_size(size as f64),
        "Containers": if containers == -1 { "N/A".to_owned() } else { containers.to_string() },
        "VirtualSize": human_size_4(size as f64),
        "SharedSize": if shared == -1 { "N/A".to_owned() } else { human_size_4(shared as f64) },
        "UniqueSize": if size == -1 || shared == -1 {
            "N/A".to_owned()
        } else {
            human_size_4((size - shared) as f64)
        },
    }))
}

/// docker's `ContainerContext.Image`: the familiar reference, the digest cut when `trunc`.
fn container_image(c: &Value, trunc: bool) -> String {
    let image = c["Image"].as_str().unwrap_or_default();
    if image.is_empty() {
        return "<no image>".into();
    }
    if !trunc {
        return image.to_owned();
    }
    let short = crate::format::truncate_id(c["ImageID"].as_str().unwrap_or_default());
    if short == crate::format::truncate_id(image) {
        return short;
    }
    match familiar(image) {
        (repo, Some(tag)) => format!("{repo}:{tag}"),
        (repo, None) => repo,
    }
}

/// One container as docker's `ContainerContext` shows it in `df -v` (no virtual size).
fn container_context(c: &Value, trunc: bool) -> Value {
    let id = c["Id"].as_str().unwrap_or_default();
    let command = c["Command"].as_str().unwrap_or_default();
    let command = if trunc {
        crate::image_cmds::ellipsis(command, 20)
    } else {
        command.to_owned()
    };
    let mut names: Vec<String> = strings(&c["Names"])
        .iter()
        .map(|n| n.strip_prefix('/').unwrap_or(n).to_owned())
        .collect();
    if trunc && let Some(n) = names.iter().find(|n| !n.contains('/')) {
        names = vec![n.clone()];
    }
    let mounts = list(&c["Mounts"]);
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| {
            let name = m["Name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or_else(|| m["Source"].as_str())
                .unwrap_or_default();
            if trunc {
                crate::image_cmds::ellipsis(name, 15)
            } else {
                name.to_owned()
            }
        })
        .collect();
    let ports: Vec<bollard::models::PortSummary> =
        serde_json::from_value(c["Ports"].clone()).unwrap_or_default();
    let mut networks: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let created = int(&c["Created"]);
    json!({
        "ID": if trunc { crate::format::truncate_id(id) } else { id.to_owned() },
        "Image": container_image(c, trunc),
        "Command": format!("{command:?}"),
        "CreatedAt": go_time(created),
        "RunningFor": ago(created),
        "Ports": crate::commands::displayable_ports(&ports),
        "State": c["State"].as_str().unwrap_or_default(),
        "Status": c["Status"].as_str().unwrap_or_default(),
        "Size": human_size(int(&c["SizeRw"]) as f64),
        "Names": names.join(","),
        "Labels": labels(&c["Labels"]),
        "Mounts": mount_names.join(","),
        "LocalVolumes": mounts.iter().filter(|m| m["Driver"] == "local").count().to_string(),
        "Networks": networks.join(","),
        "Platform": null,
    })
}

/// One volume as docker's `volumeContext` shows it.
fn volume_context(v: &Value) -> Value {
    let usage = &v["UsageData"];
    let present = usage.is_object();
    json!({
        "Name": v["Name"].as_str().unwrap_or_default(),
        "Driver": v["Driver"].as_str().unwrap_or_default(),
        "Scope": v["Scope"].as_str().unwrap_or_default(),
        "Mountpoint": v["Mountpoint"].as_str().unwrap_or_default(),
        "Labels": labels(&v["Labels"]),
        "Links": if present { int(&usage["RefCount"]).to_string() } else { "N/A".into() },
        "Size": if present { human_size_4(int(&usage["Size"]) as f64) } else { "N/A".into() },
        // Cluster-volume fields: never set on a local engine.
        "Group": "N/A",
        "Availability": "N/A",
        "Status": "N/A",
    })
}

/// One build-cache record as docker's `buildCacheContext` shows it.
fn cache_context(b: &Value, trunc: bool) -> Value {
    let id = b["ID"].as_str().unwrap_or_default();
    let since = |k: &str| {
        b[k].as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| ago(t.timestamp()))
            .unwrap_or_default()
    };
    json!({
        "ID": if trunc { id.chars().take(12).collect::<String>() } else { id.to_owned() },
        "Parent": b["Parent"].as_str().unwrap_or_default(),
        "CacheType": b["Type"].as_str().unwrap_or_default(),
        "Description": b["Description"].as_str().unwrap_or_default(),
        "CreatedAt": b["CreatedAt"].as_str().unwrap_or_default(),
        "CreatedSince": since("CreatedAt"),
        "LastUsedAt": b["LastUsedAt"].as_str().unwrap_or_default(),
        "LastUsedSince": since("LastUsedAt"),
        "UsageCount": int(&b["UsageCount"]).to_string(),
        "InUse": b["InUse"].as_bool().unwrap_or(false).to_string(),
        "Shared": b["Shared"].as_bool().unwrap_or(false).to_string(),
        "Size": human_size_4(int(&b["Size"]) as f64),
    })
}

fn parse_err(e: String) -> Plain {
    Plain::new(format!("template parsing error: {e}"), 1)
}

/// docker's `preFormat`: `table` cut off, `json` → `{{json .}}`, spaces trimmed, `\t` and
/// `\n` escapes made real. Returns whether the format is a table, and the template.
fn pre_format(format: &str) -> (bool, String) {
    let table = format.starts_with("table");
    let body = if table {
        &format["table".len()..]
    } else if format == "json" {
        "{{json .}}"
    } else {
        format
    };
    (
        table,
        body.trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n"),
    )
}

/// Renders `rows` through `format` as docker's formatter does: a table (header from
/// `headers`, tab-separated cells aligned) or one rendered row per line.
fn render_rows(format: &str, rows: &[Value], headers: &Value) -> Result<String, Plain> {
    let (table, body) = pre_format(format);
    let tmpl = Template::parse(&body).map_err(parse_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let line = tmpl.render_with(r, &Value::Null).map_err(parse_err)?;
        out.push(line);
    }
    if !table {
        return Ok(out.iter().map(|r| format!("{r}\n")).collect());
    }
    let header = tmpl.render_header(headers);
    let header: Vec<&str> = header.split('\t').collect();
    let cells: Vec<Vec<String>> = out
        .iter()
        .map(|r| r.split('\t').map(str::to_owned).collect())
        .collect();
    Ok(render_table(&header, &cells, 10))
}

fn summary_headers() -> Value {
    json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
           "Reclaimable": "RECLAIMABLE"})
}

fn image_headers() -> Value {
    json!({"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
           "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
           "UniqueSize": "UNIQUE SIZE"})
}

fn container_headers() -> Value {
    json!({"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
           "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
           "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
           "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
           "Networks": "NETWORKS"})
}

fn volume_headers() -> Value {
    json!({"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
           "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"})
}

fn cache_headers() -> Value {
    json!({"ID": "CACHE ID", "Parent": "PARENT", "CacheType": "CACHE TYPE",
           "Description": "DESCRIPTION", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
           "LastUsedSince": "LAST USED", "LastUsedAt": "LAST USED AT", "UsageCount": "USAGE",
           "InUse": "IN USE", "Shared": "SHARED", "Size": "SIZE"})
}

/// The `-v` data: each object's formatting context (`trunc` in table mode).
fn verbose_data(du: &Value, trunc: bool) -> Value {
    let images: Vec<Value> = list(&du["Images"])
        .iter()
        .filter_map(|i| image_context(i, trunc))
        .collect();
    let containers: Vec<Value> = list(&du["Containers"])
        .iter()
        .map(|c| container_context(c, trunc))
        .collect();
    let volumes: Vec<Value> = list(&du["Volumes"]).iter().map(volume_context).collect();
    let mut cache = list(&du["BuildCache"]).to_vec();
    // docker: most recently used first, never-used last, then by ID.
    cache.sort_by(|a, b| {
        let (la, lb) = (a["LastUsedAt"].as_str(), b["LastUsedAt"].as_str());
        match (la, lb) {
            (None, None) => a["ID"].as_str().cmp(&b["ID"].as_str()),
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) => y.cmp(x),
        }
    });
    let cache: Vec<Value> = cache.iter().map(|b| cache_context(b, trunc)).collect();
    json!({"Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": cache})
}

/// The whole output of `system df` for `format` (empty: `table`) and `verbose`.
pub fn render(du: &Value, format: &str, verbose: bool) -> Result<String, Plain> {
    let format = if format.is_empty() { "table" } else { format };
    if !verbose {
        let format = match format {
            "table" => SUMMARY_TABLE,
            "raw" => SUMMARY_RAW,
            f => f,
        };
        return render_rows(format, &summary_rows(du), &summary_headers());
    }
    if format != "table" {
        let src = if format == "raw" { VERBOSE_RAW } else { format };
        let (_, body) = pre_format(src);
        let tmpl = Template::parse(&body).map_err(parse_err)?;
        let out = tmpl
            .render_ordered(
                &verbose_data(du, false),
                &["Images", "Containers", "Volumes", "BuildCache"],
            )
            .map_err(parse_err)?;
        return Ok(out);
    }
    let data = verbose_data(du, true);
    let mut out = String::from("Images space usage:\n\n");
    out.push_str(&render_rows(
        IMAGE_TABLE,
        list(&data["Images"]),
        &image_headers(),
    )?);
    out.push_str("\nContainers space usage:\n\n");
    out.push_str(&render_rows(
        CONTAINER_TABLE,
        list(&data["Containers"]),
        &container_headers(),
    )?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&render_rows(
        VOLUME_TABLE,
        list(&data["Volumes"]),
        &volume_headers(),
    )?);
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size_4(builder_size(list(&du["BuildCache"])) as f64)
    ));
    out.push_str(&render_rows(
        CACHE_TABLE,
        list(&data["BuildCache"]),
        &cache_headers(),
    )?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "LayersSize": 2_000_000,
            "Images": [
                {"Id": format!("sha256:{}", "a".repeat(64)), "RepoTags": ["busybox:latest"],
                 "RepoDigests": [], "Created": 0, "Size": 1_500_000, "SharedSize": 500_000,
                 "Containers": 1},
                {"Id": format!("sha256:{}", "b".repeat(64)), "RepoTags": [],
                 "RepoDigests": [], "Created": 0, "Size": 1_000_000, "SharedSize": 500_000,
                 "Containers": 0},
            ],
            "Containers": [
                {"Id": "c".repeat(64), "Names": ["/web"], "Image": "busybox",
                 "ImageID": format!("sha256:{}", "a".repeat(64)), "Command": "sleep 600",
                 "Created": 0, "State": "running", "Status": "Up 2 minutes", "SizeRw": 100,
                 "Mounts": [{"Type": "volume", "Name": "data", "Driver": "local"}]},
                {"Id": "d".repeat(64), "Names": ["/old"], "Image": "busybox:latest",
                 "ImageID": format!("sha256:{}", "a".repeat(64)),
                 "Command": "sh -c 'echo a long command line'", "Created": 0,
                 "State": "exited", "Status": "Exited (0) 1 minute ago", "SizeRw": 300,
                 "Mounts": []},
            ],
            "Volumes": [
                {"Name": "data", "Driver": "local", "UsageData": {"Size": 4000, "RefCount": 1}},
                {"Name": "e".repeat(64), "Driver": "local", "UsageData": {"Size": 1000, "RefCount": 0}},
            ],
            "BuildCache": [],
        })
    }

    #[test]
    fn summary_prints_docker_columns_and_reclaimable_shares() {
        let out = render(&sample(), "", false).expect("render");
        assert_eq!(
            out,
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          2         1         2MB       1MB (50%)\n\
             Containers      2         1         400B      300B (75%)\n\
             Local Volumes   2         1         5kB       1kB (20%)\n\
             Build Cache     0         0         0B        0B\n"
        );
    }

    #[test]
    fn summary_formats_follow_docker() {
        let json_lines = render(&sample(), "json", false).expect("json");
        assert_eq!(
            json_lines.lines().next(),
            Some(
                r#"{"Active":"1","Reclaimable":"1MB (50%)","Size":"2MB","TotalCount":"2","Type":"Images"}"#
            )
        );
        assert_eq!(
            render(&sample(), "table {{.Type}}\\t{{.TotalCount}}", false).expect("table"),
            "TYPE            TOTAL\nImages          2\nContainers      2\nLocal Volumes   2\nBuild Cache     0\n"
        );
        assert!(render(&sample(), "raw", false).expect("raw").starts_with(
            "type: Images\ntotal: 2\nactive: 1\nsize: 2MB\nreclaimable: 1MB (50%)\n\n"
        ));
        assert!(render(&sample(), "{{.Nope", false).is_err());
    }

    #[test]
    fn verbose_lists_each_object() {
        let out = render(&sample(), "", true).expect("render");
        let sections: Vec<&str> = out.split("\n\n").collect();
        assert_eq!(sections[0], "Images space usage:");
        let images: Vec<&str> = sections[1].lines().collect();
        assert!(images[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"));
        assert!(images[0].ends_with("SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS"));
        assert!(images[1].starts_with("busybox      latest    aaaaaaaaaaaa   "));
        assert!(images[1].ends_with("1.5MB     500kB         1MB           1"));
        assert!(images[2].starts_with("<none>       <none>    bbbbbbbbbbbb   "));
        assert_eq!(sections[2], "Containers space usage:");
        let containers: Vec<&str> = sections[3].lines().collect();
        assert!(containers[0].starts_with("CONTAINER ID   IMAGE            COMMAND"));
        assert!(
            containers[1]
                .starts_with("cccccccccccc   busybox          \"sleep 600\"              1")
        );
        assert!(containers[2].contains("\"sh -c 'echo a long …\""));
        assert!(containers[2].ends_with("Exited (0) 1 minute ago   old"));
        assert_eq!(sections[4], "Local Volumes space usage:");
        let volumes: Vec<&str> = sections[5].lines().collect();
        assert_eq!(
            volumes[0].split_whitespace().collect::<Vec<_>>(),
            ["VOLUME", "NAME", "LINKS", "SIZE"]
        );
        assert_eq!(
            volumes[1].split_whitespace().collect::<Vec<_>>(),
            ["data", "1", "4kB"]
        );
        assert_eq!(sections[6], "Build cache usage: 0B");
        assert_eq!(
            sections[7],
            "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n"
        );
    }

    #[test]
    fn verbose_templates_see_every_list() {
        let out = render(
            &sample(),
            "{{range .Volumes}}{{.Name}}={{.Size}} {{end}}",
            true,
        )
        .expect("template");
        assert_eq!(out, format!("data=4kB {}=1kB ", "e".repeat(64)));
        let json_out = render(&sample(), "json", true).expect("json");
        assert!(
            json_out.starts_with(r#"{"Images":[{"Containers":"1","#),
            "{json_out}"
        );
        let raw = render(&sample(), "raw", true).expect("raw");
        assert!(
            raw.contains("type: Volume\nname: data\ndriver: local\n\n"),
            "{raw}"
        );
        assert!(raw.contains("type: Container\ncontainer_id: cccc"), "{raw}");
    }

    #[test]
    fn references_print_familiar() {
        assert_eq!(
            familiar("docker.io/library/busybox:1.36"),
            ("busybox".into(), Some("1.36".into()))
        );
        assert_eq!(
            familiar("localhost:5000/app@sha256:abc"),
            ("localhost:5000/app".into(), None)
        );
        assert_eq!(
            crate::format::truncate_id("sha256:0123456789abcdef"),
            "0123456789ab"
        );
    }
}
