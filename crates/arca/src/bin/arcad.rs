//! `arcad`: the daemon. Serves the Docker Engine API on a unix socket.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "arcad", version, about = "The arca daemon")]
struct Args {
    /// Socket to serve the API on.
    #[arg(short = 'H', long, default_value = "unix:///run/arca/arca.sock")]
    host: String,
    /// Root of persistent state (images, containers).
    #[arg(long, default_value = "/var/lib/arca")]
    root: PathBuf,
    /// Root of runtime state (sockets, bundles).
    #[arg(long = "exec-root", default_value = "/run/arca")]
    exec_root: PathBuf,
    /// The arca-shim executable (default: next to arcad).
    #[arg(long = "shim", env = "ARCA_SHIM")]
    shim: Option<PathBuf>,
    /// Parent cgroup for containers.
    #[arg(long = "cgroup-parent", default_value = "/arca")]
    cgroup_parent: String,
    /// The init binary `run --init` uses (default: arca-init next to arcad).
    #[arg(long = "init-path")]
    init_path: Option<PathBuf>,
    /// Default key sequence that detaches from attach and exec sessions.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Remap container users: container root is host <uid>:<gid>, <size> ids mapped.
    #[arg(long = "userns-remap", value_name = "UID:GID:SIZE")]
    userns_remap: Option<String>,
    /// Logging driver of containers that name none: json-file (default) or none.
    #[arg(long = "log-driver")]
    log_driver: Option<String>,
    /// Option of that logging driver, key=value (repeatable), e.g. max-size=50m, max-file=5.
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    log_opts: Vec<String>,
    /// Registry (host:port) to pull from over plain HTTP (repeatable); loopback registries
    /// always are.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,
    /// Registry mirror for Docker Hub images, http[s]://host[:port] (repeatable; tried in
    /// order before Docker Hub).
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirrors: Vec<String>,
    /// Bridge interface of the default network, or "none" for no default network
    /// (containers then get only loopback unless they name a network).
    #[arg(
        long = "bridge",
        short = 'b',
        value_name = "NAME",
        default_value = "arca0"
    )]
    bridge: String,
    /// Gateway address and prefix of the default network.
    #[arg(long = "bip", value_name = "CIDR", default_value = "172.30.0.1/16")]
    bip: String,
    /// The nftables table arca keeps its rules in (nothing else on the host is touched).
    #[arg(long = "firewall-table", value_name = "NAME", default_value = "arca")]
    firewall_table: String,
    /// Log level filter (error, warn, info, debug, trace).
    #[arg(
        long = "log-level",
        short = 'l',
        default_value = "info",
        env = "ARCA_LOG"
    )]
    log_level: String,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let shim_bin = args.shim.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("arca-shim")))
            .unwrap_or_else(|| PathBuf::from("arca-shim"))
    });
    let config = arca_daemon::DaemonConfig {
        host: args.host,
        root: args.root,
        exec_root: args.exec_root,
        shim_bin,
        cgroup_parent: args.cgroup_parent,
        init_path: args.init_path,
        detach_keys: args.detach_keys,
        userns_remap: args.userns_remap,
        log_driver: args.log_driver,
        log_opts: args.log_opts,
        insecure_registries: args.insecure_registries,
        registry_mirrors: args.registry_mirrors,
        bridge: Some(args.bridge),
        bip: Some(args.bip),
        firewall_table: Some(args.firewall_table),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arcad: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(arca_daemon::run(config)) {
        let mut msg = format!("arcad: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        eprintln!("{msg}");
        std::process::exit(1);
    }
}
