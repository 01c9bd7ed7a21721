//! `arca stats`: a live table of containers' resource use, computed as the docker CLI
//! does: CPU % = container CPU delta / system CPU delta × online CPUs × 100 (deltas against
//! the `precpu_stats` the daemon sends with each sample); memory = usage minus inactive
//! file pages (`total_inactive_file` on cgroup v1, `inactive_file` on v2); block I/O from
//! `io_service_bytes_recursive`. On a terminal the table is redrawn in place every 500 ms;
//! otherwise a plain table is printed each time. `--no-stream` prints once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::models::{ContainerMemoryStats, ContainerStatsResponse};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use clap::Args;
use futures_util::StreamExt;

use crate::client::{Cli, Plain};
use crate::format::{bytes_size, human_size, render_table};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    containers: Vec<String>,
}

/// One container's latest figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub id: String,
    pub name: String,
    pub cpu_percent: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percent: f64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: u64,
}

#[derive(Default)]
struct Entry {
    key: String,
    row: Row,
    invalid: bool,
    error: Option<String>,
    got_first: bool,
}

type Shared = Arc<Mutex<Vec<Entry>>>;

/// Docker's `calculateCPUPercentUnix`.
pub fn cpu_percent(v: &ContainerStatsResponse) -> f64 {
    let cpu = v.cpu_stats.clone().unwrap_or_default();
    let pre = v.precpu_stats.clone().unwrap_or_default();
    let total = |s: &bollard::models::ContainerCpuStats| {
        s.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0) as f64
    };
    let cpu_delta = total(&cpu) - total(&pre);
    let system_delta =
        cpu.system_cpu_usage.unwrap_or(0) as f64 - pre.system_cpu_usage.unwrap_or(0) as f64;
    let mut online = f64::from(cpu.online_cpus.unwrap_or(0));
    if online == 0.0 {
        online = cpu
            .cpu_usage
            .as_ref()
            .and_then(|u| u.percpu_usage.as_ref())
            .map_or(0, Vec::len) as f64;
    }
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    }
}

/// Docker's `calculateMemUsageUnixNoCache`.
pub fn memory_no_cache(mem: &ContainerMemoryStats) -> f64 {
    let usage = mem.usage.unwrap_or(0);
    let stats = mem.stats.clone().unwrap_or_default();
    if let Some(v) = stats.get("total_inactive_file")
        && *v < usage
    {
        return (usage - v) as f64;
    }
    let v = stats.get("inactive_file").copied().unwrap_or(0);
    if v < usage {
        (usage - v) as f64
    } else {
        usage as f64
    }
}

/// A stats sample as the row docker shows.
pub fn row(v: &ContainerStatsResponse) -> Row {
    let mem = v.memory_stats.clone().unwrap_or_default();
    let memory = memory_no_cache(&mem);
    let memory_limit = mem.limit.unwrap_or(0) as f64;
    let (mut block_read, mut block_write) = (0.0, 0.0);
    for e in v
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .into_iter()
        .flatten()
    {
        let value = e.value.unwrap_or(0) as f64;
        match e.op.as_deref().and_then(|o| o.chars().next()) {
            Some('r' | 'R') => block_read += value,
            Some('w' | 'W') => block_write += value,
            _ => {}
        }
    }
    let (mut net_rx, mut net_tx) = (0.0, 0.0);
    for n in v.networks.iter().flat_map(HashMap::values) {
        net_rx += n.rx_bytes.unwrap_or(0) as f64;
        net_tx += n.tx_bytes.unwrap_or(0) as f64;
    }
    Row {
        id: v.id.clone().unwrap_or_default(),
        name: v.name.clone().unwrap_or_default(),
        cpu_percent: cpu_percent(v),
        memory,
        memory_limit,
        memory_percent: if memory_limit != 0.0 {
            memory / memory_limit * 100.0
        } else {
            0.0
        },
        net_rx,
        net_tx,
        block_read,
        block_write,
        pids: v.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
    }
}

/// The table, with docker's cells ("--" for a container without figures).
pub fn render(rows: &[(Row, bool)], trunc: bool) -> String {
    let header = [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(r, invalid)| {
            let id = if trunc {
                r.id.chars().take(12).collect()
            } else {
                r.id.clone()
            };
            let name = if r.name.len() > 1 {
                r.name[1..].to_owned()
            } else {
                "--".to_owned()
            };
            if *invalid {
                return vec![
                    id,
                    name,
                    "--".into(),
                    "-- / --".into(),
                    "--".into(),
                    "--".into(),
                    "--".into(),
                    "--".into(),
                ];
            }
            vec![
                id,
                name,
                format!("{:.2}%", r.cpu_percent),
                format!("{} / {}", bytes_size(r.memory), bytes_size(r.memory_limit)),
                format!("{:.2}%", r.memory_percent),
                format!("{} / {}", human_size(r.net_rx), human_size(r.net_tx)),
                format!(
                    "{} / {}",
                    human_size(r.block_read),
                    human_size(r.block_write)
                ),
                r.pids.to_string(),
            ]
        })
        .collect();
    render_table(&header, &cells, 10)
}

/// Adds a container (unless known) and starts collecting its samples.
fn track(cli: &Cli, shared: &Shared, key: String, stream: bool) {
    {
        let mut entries = shared.lock().expect("stats table lock poisoned");
        if entries.iter().any(|e| e.key == key) {
            return;
        }
        entries.push(Entry {
            key: key.clone(),
            ..Default::default()
        });
    }
    let docker = cli.docker.clone();
    let shared = shared.clone();
    tokio::spawn(async move {
        let opts = bollard::query_parameters::StatsOptionsBuilder::new()
            .stream(stream)
            .build();
        let mut samples = docker.stats(&key, Some(opts));
        let update = |f: &mut dyn FnMut(&mut Entry)| {
            let mut entries = shared.lock().expect("stats table lock poisoned");
            if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
                f(e);
            }
        };
        while let Some(item) = samples.next().await {
            match item {
                Ok(v) => update(&mut |e| {
                    e.row = row(&v);
                    e.invalid = false;
                    e.got_first = true;
                }),
                Err(err) => {
                    let msg = match err {
                        bollard::errors::Error::DockerResponseServerError { message, .. } => {
                            format!("Error response from daemon: {message}")
                        }
                        other => other.to_string(),
                    };
                    update(&mut |e| {
                        e.error = Some(msg.clone());
                        e.invalid = true;
                        e.got_first = true;
                    });
                    return;
                }
            }
            if !stream {
                return;
            }
        }
        // The stream ended (the container stopped): no figures any more.
        update(&mut |e| {
            e.invalid = true;
            e.got_first = true;
        });
    });
}

fn untrack(shared: &Shared, id: &str) {
    let mut entries = shared.lock().expect("stats table lock poisoned");
    entries.retain(|e| !id.starts_with(&e.key));
}

/// Follows container events so that the table gains started (or, with `-a`, created)
/// containers and, without `-a`, loses those that die.
fn follow_events(cli: &Cli, shared: &Shared, all: bool) {
    let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
    let mut events = cli
        .docker
        .events(Some(EventsOptionsBuilder::new().filters(&filters).build()));
    let cli = Cli {
        docker: cli.docker.clone(),
        socket: cli.socket.clone(),
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        while let Some(Ok(ev)) = events.next().await {
            let id: String = ev
                .actor
                .and_then(|a| a.id)
                .unwrap_or_default()
                .chars()
                .take(12)
                .collect();
            match ev.action.as_deref() {
                Some("start") => track(&cli, &shared, id, true),
                Some("create") if all => track(&cli, &shared, id, true),
                Some("die") if !all => untrack(&shared, &id),
                _ => {}
            }
        }
    });
}

pub async fn stats(cli: &Cli, a: StatsArgs) -> anyhow::Result<i32> {
    let shared: Shared = Arc::new(Mutex::new(Vec::new()));
    let stream = !a.no_stream;
    let show_all = a.containers.is_empty();
    if show_all {
        if stream {
            follow_events(cli, &shared, a.all);
        }
        let list = cli
            .docker
            .list_containers(Some(ListContainersOptionsBuilder::new().all(a.all).build()))
            .await?;
        for c in list {
            let id: String = c.id.unwrap_or_default().chars().take(12).collect();
            track(cli, &shared, id, stream);
        }
    } else {
        for n in &a.containers {
            track(cli, &shared, n.clone(), stream);
        }
    }
    // Every container gets its first sample (or error) before the first table, as docker.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let ready = shared
            .lock()
            .expect("stats table lock poisoned")
            .iter()
            .all(|e| e.got_first);
        if ready || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !show_all {
        let errors: Vec<String> = shared
            .lock()
            .expect("stats table lock poisoned")
            .iter()
            .filter_map(|e| e.error.clone())
            .collect();
        if !errors.is_empty() {
            return Err(Plain::new(errors.join("\n"), 1).into());
        }
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut out = std::io::stdout();
    let mut first = true;
    loop {
        let rows: Vec<(Row, bool)> = shared
            .lock()
            .expect("stats table lock poisoned")
            .iter()
            .map(|e| (e.row.clone(), e.invalid))
            .collect();
        let table = render(&rows, !a.no_trunc);
        let text = if stream && terminal {
            // Home, each line followed by erase-to-end-of-line, then erase below: the
            // table is redrawn in place without flicker.
            let mut s = String::from(if first { "\x1b[2J\x1b[H" } else { "\x1b[H" });
            for line in table.lines() {
                s.push_str(line);
                s.push_str("\x1b[K\n");
            }
            s.push_str("\x1b[J");
            s
        } else {
            table
        };
        first = false;
        std::io::Write::write_all(&mut out, text.as_bytes())?;
        std::io::Write::flush(&mut out)?;
        if !stream || (rows.is_empty() && !show_all) {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage};

    fn cpu(total: u64, system: u64) -> ContainerCpuStats {
        ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn cpu_percent_scales_by_online_cpus() {
        let v = ContainerStatsResponse {
            cpu_stats: Some(cpu(1_500_000_000, 12_000_000_000)),
            precpu_stats: Some(cpu(1_000_000_000, 10_000_000_000)),
            ..Default::default()
        };
        // 0.5 s of CPU over 2 s of system time on 2 CPUs: 50%.
        assert!((cpu_percent(&v) - 50.0).abs() < 1e-9);
        let idle = ContainerStatsResponse {
            cpu_stats: Some(cpu(1, 10)),
            precpu_stats: Some(cpu(1, 5)),
            ..Default::default()
        };
        assert_eq!(cpu_percent(&idle), 0.0);
    }

    #[test]
    fn memory_excludes_inactive_file_pages() {
        let v1 = ContainerMemoryStats {
            usage: Some(10_000),
            stats: Some(HashMap::from([
                ("total_inactive_file".to_owned(), 4_000),
                ("inactive_file".to_owned(), 1_000),
            ])),
            ..Default::default()
        };
        assert_eq!(memory_no_cache(&v1), 6_000.0);
        let v2 = ContainerMemoryStats {
            usage: Some(10_000),
            stats: Some(HashMap::from([("inactive_file".to_owned(), 1_000)])),
            ..Default::default()
        };
        assert_eq!(memory_no_cache(&v2), 9_000.0);
        let none = ContainerMemoryStats {
            usage: Some(500),
            ..Default::default()
        };
        assert_eq!(memory_no_cache(&none), 500.0);
    }

    #[test]
    fn table_matches_docker_columns() {
        let r = Row {
            id: "0123456789abcdef".into(),
            name: "/web".into(),
            cpu_percent: 1.234,
            memory: 1_572_864.0,
            memory_limit: 67_108_864.0,
            memory_percent: 2.34375,
            net_rx: 1_000.0,
            net_tx: 0.0,
            block_read: 4_261_000.0,
            block_write: 0.0,
            pids: 3,
        };
        let t = render(&[(r.clone(), false), (r, true)], true);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O    BLOCK I/O     PIDS"
        );
        assert_eq!(
            lines[1],
            "0123456789ab   web       1.23%     1.5MiB / 64MiB      2.34%     1kB / 0B   4.26MB / 0B   3"
        );
        assert_eq!(
            lines[2],
            "0123456789ab   web       --        -- / --             --        --         --            --"
        );
    }
}
