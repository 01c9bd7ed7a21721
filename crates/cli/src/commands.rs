//! The verbs other than `run`.

use bollard::query_parameters::{
    CreateImageOptionsBuilder, ImportImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder, TagImageOptionsBuilder,
};
use clap::Args;
use futures_util::StreamExt;

use crate::client::Cli;
use crate::format::{ago, command_cell, human_size, table};

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Filter output based on conditions provided (key=value)
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
}

/// `key=value` filters as the API's map of lists.
pub fn filters(args: &[String]) -> anyhow::Result<std::collections::HashMap<String, Vec<String>>> {
    let mut filters: std::collections::HashMap<String, Vec<String>> = Default::default();
    for f in args {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            crate::client::Plain::new("bad format of filter (expected name=value)", 1)
        })?;
        filters
            .entry(k.trim().to_lowercase())
            .or_default()
            .push(v.to_owned());
    }
    Ok(filters)
}

pub async fn ps(cli: &Cli, a: PsArgs) -> anyhow::Result<i32> {
    let list = cli
        .docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(a.all)
                .filters(&filters(&a.filter)?)
                .build(),
        ))
        .await?;
    let short = |id: &str| {
        if a.no_trunc {
            id.to_owned()
        } else {
            id.chars().take(12).collect()
        }
    };
    if a.quiet {
        for c in &list {
            println!("{}", short(c.id.as_deref().unwrap_or("")));
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                short(c.id.as_deref().unwrap_or("")),
                c.image.clone().unwrap_or_default(),
                if a.no_trunc {
                    format!("\"{}\"", c.command.clone().unwrap_or_default())
                } else {
                    command_cell(c.command.as_deref().unwrap_or(""))
                },
                ago(c.created.unwrap_or(0)),
                c.status.clone().unwrap_or_default(),
                displayable_ports(c.ports.as_deref().unwrap_or(&[])),
                c.names
                    .as_ref()
                    .and_then(|n| n.first())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &rows,
    );
    Ok(0)
}

/// Docker's PORTS column (`DisplayablePorts`): `0.0.0.0:8080->80/tcp` for published ports,
/// `80/tcp` for exposed ones, consecutive ports with the same address collapsed into ranges
/// (`0.0.0.0:8000-8002->80-82/tcp`).
pub(crate) fn displayable_ports(ports: &[bollard::models::PortSummary]) -> String {
    use std::collections::BTreeMap;
    let typ = |p: &bollard::models::PortSummary| {
        p.typ
            .map(|t| t.to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "tcp".into())
    };
    // (ip, type) → [(public, private)], sorted.
    let mut groups: BTreeMap<(String, String), Vec<(u16, u16)>> = BTreeMap::new();
    for p in ports {
        let ip = match (&p.ip, p.public_port) {
            (Some(ip), Some(_)) => ip.clone(),
            _ => String::new(),
        };
        groups
            .entry((ip, typ(p)))
            .or_default()
            .push((p.public_port.unwrap_or(0), p.private_port));
    }
    let mut out = Vec::new();
    for ((ip, t), mut list) in groups {
        list.sort();
        list.dedup();
        let mut i = 0;
        while i < list.len() {
            let mut j = i;
            while j + 1 < list.len()
                && list[j + 1].1 == list[j].1 + 1
                && (ip.is_empty() || list[j + 1].0 == list[j].0 + 1)
            {
                j += 1;
            }
            let span = |a: u16, b: u16| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            };
            let private = span(list[i].1, list[j].1);
            if ip.is_empty() {
                out.push(format!("{private}/{t}"));
            } else {
                let host = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.clone()
                };
                out.push(format!(
                    "{host}:{}->{private}/{t}",
                    span(list[i].0, list[j].0)
                ));
            }
            i = j + 1;
        }
    }
    out.join(", ")
}

/// Runs `f` for each name, printing the name on success and the error otherwise, as docker.
pub async fn each<F, Fut>(names: &[String], f: F) -> anyhow::Result<i32>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), bollard::errors::Error>>,
{
    let mut code = 0;
    for n in names {
        match f(n.clone()).await {
            Ok(()) => println!("{n}"),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                eprintln!("Error response from daemon: {message}");
                code = 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<i32>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn stop(cli: &Cli, a: StopArgs) -> anyhow::Result<i32> {
    let mut b = StopContainerOptionsBuilder::new();
    if let Some(t) = a.time {
        b = b.t(t);
    }
    if let Some(s) = &a.signal {
        b = b.signal(s);
    }
    let opts = b.build();
    each(&a.containers, |n| {
        let o = opts.clone();
        async move { cli.docker.stop_container(&n, Some(o)).await }
    })
    .await
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn kill(cli: &Cli, a: KillArgs) -> anyhow::Result<i32> {
    let opts = KillContainerOptionsBuilder::new().signal(&a.signal).build();
    each(&a.containers, |n| {
        let o = opts.clone();
        async move { cli.docker.kill_container(&n, Some(o)).await }
    })
    .await
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn rm(cli: &Cli, a: RmArgs) -> anyhow::Result<i32> {
    let opts = RemoveContainerOptionsBuilder::new()
        .force(a.force)
        .v(a.volumes)
        .build();
    each(&a.containers, |n| {
        let o = opts.clone();
        async move { cli.docker.remove_container(&n, Some(o)).await }
    })
    .await
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

/// Raw JSON of containers, else images, like `docker inspect`.
pub async fn inspect(cli: &Cli, a: InspectArgs) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    let mut code = 0;
    for n in &a.names {
        match cli.docker.inspect_container(n, None).await {
            Ok(c) => out.push(serde_json::to_value(c)?),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => match cli.docker.inspect_image(n).await {
                Ok(i) => out.push(serde_json::to_value(i)?),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    eprintln!("Error: No such object: {n}");
                    code = 1;
                }
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(code)
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Show all images
    #[arg(short = 'a', long)]
    all: bool,
}

pub async fn images(cli: &Cli, a: ImagesArgs) -> anyhow::Result<i32> {
    let list = cli
        .docker
        .list_images(Some(ListImagesOptionsBuilder::new().all(a.all).build()))
        .await?;
    let short = |id: &str| {
        id.trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>()
    };
    if a.quiet {
        for i in &list {
            println!("{}", short(&i.id));
        }
        return Ok(0);
    }
    let mut rows = Vec::new();
    for i in &list {
        let tags: Vec<(String, String)> = if i.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.repo_tags
                .iter()
                .map(|t| match t.rsplit_once(':') {
                    Some((r, tag)) if !tag.contains('/') => (r.to_owned(), tag.to_owned()),
                    _ => (t.clone(), "<none>".into()),
                })
                .collect()
        };
        for (repo, tag) in tags {
            rows.push(vec![
                repo,
                tag,
                short(&i.id),
                ago(i.created),
                human_size(i.size as f64),
            ]);
        }
    }
    table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

pub async fn rmi(cli: &Cli, a: RmiArgs) -> anyhow::Result<i32> {
    let mut code = 0;
    for n in &a.images {
        let opts = RemoveImageOptionsBuilder::new().force(a.force).build();
        match cli.docker.remove_image(n, Some(opts), None).await {
            Ok(items) => {
                for i in items {
                    if let Some(u) = i.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = i.deleted {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                eprintln!("Error response from daemon: {message}");
                code = 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}

#[derive(Args, Debug)]
pub struct TagArgs {
    source: String,
    target: String,
}

pub async fn tag(cli: &Cli, a: TagArgs) -> anyhow::Result<i32> {
    let last_slash = a.target.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match a.target[last_slash..].rfind(':') {
        Some(i) => (&a.target[..last_slash + i], &a.target[last_slash + i + 1..]),
        None => (a.target.as_str(), "latest"),
    };
    cli.docker
        .tag_image(
            &a.source,
            Some(TagImageOptionsBuilder::new().repo(repo).tag(tag).build()),
        )
        .await?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    input: Option<std::path::PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    quiet: bool,
}

async fn read_input(path: Option<&std::path::Path>) -> anyhow::Result<bytes::Bytes> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    match path {
        Some(p) if p.as_os_str() != "-" => {
            buf = tokio::fs::read(p)
                .await
                .map_err(|e| anyhow::anyhow!("open {}: {e}", p.display()))?;
        }
        _ => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                anyhow::bail!("requested load from stdin, but stdin is empty");
            }
            tokio::io::stdin().read_to_end(&mut buf).await?;
        }
    }
    Ok(bytes::Bytes::from(buf))
}

pub async fn load(cli: &Cli, a: LoadArgs) -> anyhow::Result<i32> {
    let data = read_input(a.input.as_deref()).await?;
    let mut s = cli.docker.import_image(
        ImportImageOptionsBuilder::new().quiet(a.quiet).build(),
        bollard::body_full(data),
        None,
    );
    while let Some(item) = s.next().await {
        let info = item?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            anyhow::bail!("{e}");
        }
        if let Some(line) = info.stream {
            print!("{line}");
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    changes: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// File to import ("-" for STDIN)
    file: std::path::PathBuf,
    /// Repository and optional tag for the image
    reference: Option<String>,
}

pub async fn import(cli: &Cli, a: ImportArgs) -> anyhow::Result<i32> {
    let data = read_input(Some(&a.file)).await?;
    let mut b = CreateImageOptionsBuilder::new()
        .from_src("-")
        .changes(a.changes.clone());
    if let Some(r) = &a.reference {
        let last_slash = r.rfind('/').map_or(0, |i| i + 1);
        match r[last_slash..].rfind(':') {
            Some(i) => {
                b = b.repo(&r[..last_slash + i]).tag(&r[last_slash + i + 1..]);
            }
            None => b = b.repo(r),
        }
    }
    if let Some(m) = &a.message {
        b = b.message(m);
    }
    let mut s = cli
        .docker
        .create_image(Some(b.build()), Some(bollard::body_full(data)), None);
    while let Some(item) = s.next().await {
        let info = item?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            anyhow::bail!("{e}");
        }
        if let Some(st) = info.status {
            println!("{st}");
        }
    }
    Ok(0)
}

pub async fn version(cli: &Cli) -> anyhow::Result<i32> {
    println!("Client:");
    println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    println!(" API version:       1.51");
    println!(" OS/Arch:           linux/{}", std::env::consts::ARCH);
    println!();
    let v = cli.docker.version().await?;
    println!("Server: arca");
    println!(" Engine:");
    println!("  Version:          {}", v.version.unwrap_or_default());
    println!(
        "  API version:      {} (minimum version {})",
        v.api_version.unwrap_or_default(),
        v.min_api_version.unwrap_or_default()
    );
    println!(
        "  OS/Arch:          {}/{}",
        v.os.unwrap_or_default(),
        v.arch.unwrap_or_default()
    );
    println!(
        "  Kernel:           {}",
        v.kernel_version.unwrap_or_default()
    );
    Ok(0)
}

pub async fn info(cli: &Cli) -> anyhow::Result<i32> {
    let i = cli.docker.info().await?;
    println!("Server:");
    println!(" Containers: {}", i.containers.unwrap_or(0));
    println!("  Running: {}", i.containers_running.unwrap_or(0));
    println!("  Paused: {}", i.containers_paused.unwrap_or(0));
    println!("  Stopped: {}", i.containers_stopped.unwrap_or(0));
    println!(" Images: {}", i.images.unwrap_or(0));
    println!(" Server Version: {}", i.server_version.unwrap_or_default());
    println!(" Storage Driver: {}", i.driver.unwrap_or_default());
    println!(" Logging Driver: {}", i.logging_driver.unwrap_or_default());
    println!(
        " Cgroup Driver: {}",
        i.cgroup_driver.map(|d| d.to_string()).unwrap_or_default()
    );
    println!(
        " Cgroup Version: {}",
        i.cgroup_version.map(|d| d.to_string()).unwrap_or_default()
    );
    println!(" Kernel Version: {}", i.kernel_version.unwrap_or_default());
    println!(
        " Operating System: {}",
        i.operating_system.unwrap_or_default()
    );
    println!(" Architecture: {}", i.architecture.unwrap_or_default());
    println!(" CPUs: {}", i.ncpu.unwrap_or(0));
    println!(
        " Total Memory: {}",
        human_size(i.mem_total.unwrap_or(0) as f64)
    );
    println!(" Name: {}", i.name.unwrap_or_default());
    println!(" ID: {}", i.id.unwrap_or_default());
    println!(
        " Docker Root Dir: {}",
        i.docker_root_dir.unwrap_or_default()
    );
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

pub async fn rename(cli: &Cli, a: RenameArgs) -> anyhow::Result<i32> {
    cli.docker
        .rename_container(
            &a.container,
            bollard::query_parameters::RenameContainerOptionsBuilder::new()
                .name(&a.new_name)
                .build(),
        )
        .await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use bollard::models::{PortSummary, PortSummaryTypeEnum};

    use super::*;

    fn port(ip: Option<&str>, public: Option<u16>, private: u16) -> PortSummary {
        PortSummary {
            ip: ip.map(str::to_owned),
            private_port: private,
            public_port: public,
            typ: Some(PortSummaryTypeEnum::TCP),
        }
    }

    #[test]
    fn ports_column_reads_like_docker() {
        assert_eq!(
            displayable_ports(&[port(Some("0.0.0.0"), Some(8080), 80)]),
            "0.0.0.0:8080->80/tcp"
        );
        assert_eq!(
            displayable_ports(&[
                port(Some("0.0.0.0"), Some(8000), 80),
                port(Some("0.0.0.0"), Some(8001), 81),
                port(None, None, 443),
            ]),
            "443/tcp, 0.0.0.0:8000-8001->80-81/tcp"
        );
    }
}
