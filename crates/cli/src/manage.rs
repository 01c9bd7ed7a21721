//! Container verbs around a running container's life: `pause`, `unpause`, `update`,
//! `wait`, `diff`, `port` and `top`, with docker's output and exit statuses (names of the
//! containers handled on stdout, one daemon error per line on stderr, status 1 if any).

use bollard::models::{ChangeType, ContainerUpdateBody};
use clap::Args;

use crate::client::{Cli, Plain, wait_registered};
use crate::commands::each;
use crate::format::render_table;
use crate::parse;

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn pause(cli: &Cli, a: NamesArgs) -> anyhow::Result<i32> {
    each(&a.containers, |n| async move {
        cli.docker.pause_container(&n).await
    })
    .await
}

pub async fn unpause(cli: &Cli, a: NamesArgs) -> anyhow::Result<i32> {
    each(&a.containers, |n| async move {
        cli.docker.unpause_container(&n).await
    })
    .await
}

/// `arca wait`: each container's exit status, one per line, once it is not running.
pub async fn wait(cli: &Cli, a: NamesArgs) -> anyhow::Result<i32> {
    let mut code = 0;
    for n in &a.containers {
        let result = match wait_registered(&cli.socket, n, "not-running").await {
            Ok(exit) => exit.await,
            Err(e) => Err(e),
        };
        match result {
            Ok(status) => println!("{status}"),
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// Memory limit
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

impl UpdateArgs {
    /// The update body; flags not given stay unset (the daemon keeps those values).
    fn body(&self) -> anyhow::Result<ContainerUpdateBody> {
        let size = |v: &Option<String>, flag: &str, swap: bool| -> anyhow::Result<Option<i64>> {
            v.as_deref()
                .map(|s| {
                    let r = if swap {
                        parse::mem_swap_bytes(s)
                    } else {
                        parse::ram_in_bytes(s)
                    };
                    r.map_err(|e| {
                        anyhow::anyhow!("invalid argument {s:?} for \"{flag}\" flag: {e}")
                    })
                })
                .transpose()
        };
        let restart_policy = self
            .restart
            .as_deref()
            .map(parse::restart_policy)
            .transpose()
            .map_err(|e| Plain::new(e, 1))?;
        Ok(ContainerUpdateBody {
            blkio_weight: self.blkio_weight,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            cpu_shares: self.cpu_shares,
            nano_cpus: self.cpus.map(|c| (c * 1e9).round() as i64),
            memory: size(&self.memory, "-m, --memory", false)?,
            memory_reservation: size(&self.memory_reservation, "--memory-reservation", false)?,
            memory_swap: size(&self.memory_swap, "--memory-swap", true)?,
            // As docker: 0 means "not given" for the pids limit.
            pids_limit: self.pids_limit.filter(|p| *p != 0),
            restart_policy,
            ..Default::default()
        })
    }

    fn any_flag(&self) -> bool {
        self.blkio_weight.is_some()
            || self.cpu_period.is_some()
            || self.cpu_quota.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
            || self.cpu_shares.is_some()
            || self.cpus.is_some()
            || self.memory.is_some()
            || self.memory_reservation.is_some()
            || self.memory_swap.is_some()
            || self.pids_limit.is_some()
            || self.restart.is_some()
    }
}

pub async fn update(cli: &Cli, a: UpdateArgs) -> anyhow::Result<i32> {
    if !a.any_flag() {
        return Err(Plain::new(
            "you must provide one or more flags when using this command",
            1,
        )
        .into());
    }
    let body = a.body()?;
    each(&a.containers, |n| {
        let b = body.clone();
        async move { cli.docker.update_container(&n, b).await }
    })
    .await
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    container: String,
}

/// `arca diff`: `C /path`, `A /path`, `D /path` lines, in the daemon's order.
pub async fn diff(cli: &Cli, a: DiffArgs) -> anyhow::Result<i32> {
    let changes = cli
        .docker
        .container_changes(&a.container)
        .await?
        .unwrap_or_default();
    for c in changes {
        let kind = match c.kind {
            ChangeType::_0 => "C",
            ChangeType::_1 => "A",
            ChangeType::_2 => "D",
        };
        println!("{kind} {}", c.path);
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PortArgs {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

/// Go's `net.JoinHostPort`: brackets around IPv6 addresses.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Natural order (digit runs compare as numbers), as docker's `sortorder.NaturalLess`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let da = std::str::from_utf8(&a[..na])
                    .unwrap_or("")
                    .trim_start_matches('0');
                let db = std::str::from_utf8(&b[..nb])
                    .unwrap_or("")
                    .trim_start_matches('0');
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// The lines `arca port` prints for a container's published ports.
fn port_lines(
    ports: &std::collections::HashMap<String, Option<Vec<bollard::models::PortBinding>>>,
    container: &str,
    wanted: Option<&str>,
) -> Result<Vec<String>, Plain> {
    let mut out = Vec::new();
    if let Some(spec) = wanted {
        let (port, proto) = spec.split_once('/').unwrap_or((spec, ""));
        let proto = if proto.is_empty() { "tcp" } else { proto };
        if let Err(e) = crate::ports::parse_u16(port) {
            return Err(Plain::new(format!("Error: invalid port ({port}): {e}"), 1));
        }
        let bindings = ports
            .get(&format!("{port}/{proto}"))
            .cloned()
            .flatten()
            .unwrap_or_default();
        if bindings.is_empty() {
            return Err(Plain::new(
                format!("Error: No public port '{spec}' published for {container}"),
                1,
            ));
        }
        for b in bindings {
            out.push(join_host_port(
                b.host_ip.as_deref().unwrap_or(""),
                b.host_port.as_deref().unwrap_or(""),
            ));
        }
    } else {
        for (private, bindings) in ports {
            for b in bindings.iter().flatten() {
                out.push(format!(
                    "{private} -> {}",
                    join_host_port(
                        b.host_ip.as_deref().unwrap_or(""),
                        b.host_port.as_deref().unwrap_or("")
                    )
                ));
            }
        }
    }
    out.sort_by(|a, b| natural_cmp(a, b));
    Ok(out)
}

pub async fn port(cli: &Cli, a: PortArgs) -> anyhow::Result<i32> {
    let c = cli.docker.inspect_container(&a.container, None).await?;
    let ports = c.network_settings.and_then(|n| n.ports).unwrap_or_default();
    for line in port_lines(&ports, &a.container, a.port.as_deref())? {
        println!("{line}");
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct TopArgs {
    container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

/// `arca top`: the daemon's process table, in docker's tabwriter layout (cells at least
/// 20 wide).
pub async fn top(cli: &Cli, a: TopArgs) -> anyhow::Result<i32> {
    let mut opts = bollard::query_parameters::TopOptionsBuilder::new();
    if !a.ps_args.is_empty() {
        opts = opts.ps_args(&a.ps_args.join(" "));
    }
    let top = cli
        .docker
        .top_processes(&a.container, Some(opts.build()))
        .await?;
    let titles = top.titles.unwrap_or_default();
    let header: Vec<&str> = titles.iter().map(String::as_str).collect();
    print!(
        "{}",
        render_table(&header, &top.processes.unwrap_or_default(), 20)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::PortBinding;
    use std::collections::HashMap;

    fn binding(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        }
    }

    #[test]
    fn ports_print_like_docker() {
        let ports = HashMap::from([
            (
                "80/tcp".to_owned(),
                Some(vec![binding("0.0.0.0", "8080"), binding("::", "8080")]),
            ),
            ("9/udp".to_owned(), Some(vec![binding("127.0.0.1", "53")])),
            ("443/tcp".to_owned(), None),
        ]);
        assert_eq!(
            port_lines(&ports, "web", None).expect("lines"),
            vec![
                "9/udp -> 127.0.0.1:53",
                "80/tcp -> 0.0.0.0:8080",
                "80/tcp -> [::]:8080"
            ]
        );
        assert_eq!(
            port_lines(&ports, "web", Some("80")).expect("lines"),
            vec!["0.0.0.0:8080", "[::]:8080"]
        );
        let e = port_lines(&ports, "web", Some("443/tcp")).expect_err("unpublished");
        assert_eq!(
            e.message,
            "Error: No public port '443/tcp' published for web"
        );
        assert_eq!(
            port_lines(&ports, "web", Some("9/udp")).expect("lines"),
            vec!["127.0.0.1:53"]
        );
        assert_eq!(
            port_lines(&ports, "web", Some("80/")).expect("empty proto is tcp"),
            vec!["0.0.0.0:8080", "[::]:8080"]
        );
        let e = port_lines(&ports, "web", Some("http")).expect_err("not a number");
        assert_eq!(
            e.message,
            "Error: invalid port (http): strconv.ParseUint: parsing \"http\": invalid syntax"
        );
        let e = port_lines(&ports, "web", Some("70000")).expect_err("too big");
        assert_eq!(
            e.message,
            "Error: invalid port (70000): strconv.ParseUint: parsing \"70000\": value out of range"
        );
        assert!(
            port_lines(&HashMap::new(), "web", None)
                .expect("no ports")
                .is_empty()
        );
    }

    #[test]
    fn natural_order_compares_numbers() {
        assert!(natural_cmp("9/udp", "80/tcp").is_lt());
        assert!(natural_cmp("a10", "a9").is_gt());
        assert!(natural_cmp("a", "a1").is_lt());
    }

    #[test]
    fn update_sends_only_given_values() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            u: UpdateArgs,
        }
        let t = T::try_parse_from([
            "t",
            "--memory",
            "64m",
            "--memory-swap",
            "-1",
            "--cpus",
            "1.5",
            "--pids-limit",
            "30",
            "--restart",
            "always",
            "c1",
        ])
        .expect("parse");
        let b = t.u.body().expect("body");
        assert_eq!(b.memory, Some(64 << 20));
        assert_eq!(b.memory_swap, Some(-1));
        assert_eq!(b.nano_cpus, Some(1_500_000_000));
        assert_eq!(b.pids_limit, Some(30));
        assert!(b.cpu_shares.is_none() && b.memory_reservation.is_none());
        assert!(b.restart_policy.is_some());
    }
}
