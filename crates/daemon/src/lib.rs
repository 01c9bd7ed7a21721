#![recursion_limit = "256"]
//! `arcad`: the daemon. Owns images and containers and serves the Docker Engine API on a
//! unix socket. It never forks containers itself: each container gets an `arca-shim`
//! process (see `arca_api::shim`), which outlives arcad, so containers keep running across
//! daemon restarts and crashes; on start arcad finds them again.

pub mod api;
pub mod cgroups;
pub mod containers;
pub mod error;
pub mod events;
pub mod networks;
pub mod paths;
pub mod query;
pub mod shim;
pub mod volumes;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;

pub use paths::Paths;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("unsupported --host {0:?}: only unix:///path is supported")]
    Host(String),
    #[error("another arcad is already serving {0}")]
    AlreadyRunning(PathBuf),
    #[error("cannot prepare {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the image store")]
    Store(#[from] arca_store::StoreError),
    #[error("cannot listen on {path}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("server failed")]
    Serve(#[source] std::io::Error),
    #[error("invalid daemon option: {0}")]
    Option(String),
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// `unix:///run/arca/arca.sock`.
    pub host: String,
    pub root: PathBuf,
    pub exec_root: PathBuf,
    pub shim_bin: PathBuf,
    /// Parent cgroup of every container (default `/arca`).
    pub cgroup_parent: String,
    /// The binary `--init` runs (default: `arca-init` next to arcad).
    pub init_path: Option<PathBuf>,
    /// Default detach keys for attach and exec (default `ctrl-p,ctrl-q`).
    pub detach_keys: Option<String>,
    /// Daemon-wide user-namespace remapping, `<uid>:<gid>:<size>`.
    pub userns_remap: Option<String>,
    /// Logging driver of containers that name none (`json-file` or `none`).
    pub log_driver: Option<String>,
    /// `key=value` options of that driver (e.g. `max-size=50m`).
    pub log_opts: Vec<String>,
    /// Registries (`host:port`) pulled from over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Registry mirrors for Docker Hub images (`http[s]://host[:port]`), tried in order.
    pub registry_mirrors: Vec<String>,
    /// The default network's bridge interface (`arca0`); `none` = no default network.
    pub bridge: Option<String>,
    /// The default network's gateway address and prefix (`172.30.0.1/16`).
    pub bip: Option<String>,
    /// The nftables table arca owns (`arca`).
    pub firewall_table: Option<String>,
}

/// The default network's settings a config asks for, validated.
fn bridge_settings(config: &DaemonConfig) -> Result<networks::BridgeSettings, DaemonError> {
    let mut s = networks::BridgeSettings::default();
    match config.bridge.as_deref() {
        Some("none") => s.name = None,
        Some(name) if !name.is_empty() => {
            if name.len() > 15 || name.contains(['/', ' ']) {
                return Err(DaemonError::Option(format!("invalid bridge name {name:?}")));
            }
            s.name = Some(name.to_owned());
        }
        _ => {}
    }
    if let Some(bip) = config.bip.as_deref().filter(|b| !b.is_empty()) {
        let (ip, prefix) = bip
            .split_once('/')
            .and_then(|(ip, p)| Some((ip.parse().ok()?, p.parse::<u8>().ok()?)))
            .filter(|(_, p)| (8..=30).contains(p))
            .ok_or_else(|| {
                DaemonError::Option(format!("invalid --bip {bip:?}: expected a.b.c.d/nn"))
            })?;
        s.bip = (ip, prefix);
    }
    if let Some(t) = config.firewall_table.as_deref().filter(|t| !t.is_empty()) {
        if !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(DaemonError::Option(format!(
                "invalid firewall table name {t:?}"
            )));
        }
        s.table = t.to_owned();
    }
    Ok(s)
}

/// The container settings a config asks for, validated.
fn settings(config: &DaemonConfig) -> Result<containers::Settings, DaemonError> {
    let mut s = containers::Settings::default();
    if let Some(p) = &config.init_path {
        s.init_path = p.clone();
    }
    if let Some(k) = config.detach_keys.as_deref().filter(|k| !k.is_empty()) {
        containers::detach::parse_keys(k).map_err(|e| DaemonError::Option(e.message))?;
        s.detach_keys = k.to_owned();
    }
    if let Some(r) = config.userns_remap.as_deref().filter(|r| !r.is_empty()) {
        s.userns_remap =
            Some(containers::spec::parse_userns_remap(r).map_err(DaemonError::Option)?);
    }
    if let Some(d) = config.log_driver.as_deref().filter(|d| !d.is_empty()) {
        s.log_config.typ = Some(d.to_owned());
    }
    if !config.log_opts.is_empty() {
        let mut opts = std::collections::HashMap::new();
        for o in &config.log_opts {
            let (k, v) = o.split_once('=').ok_or_else(|| {
                DaemonError::Option(format!("invalid --log-opt {o:?}: want key=value"))
            })?;
            opts.insert(k.to_owned(), v.to_owned());
        }
        s.log_config.config = Some(opts);
    }
    // The same checks a container's own log config gets.
    containers::log_config::parse(Some(&s.log_config))
        .map_err(|e| DaemonError::Option(e.message))?;
    Ok(s)
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    let socket = PathBuf::from(
        config
            .host
            .strip_prefix("unix://")
            .ok_or_else(|| DaemonError::Host(config.host.clone()))?,
    );
    let prep = |path: &std::path::Path| {
        std::fs::create_dir_all(path).map_err(|source| DaemonError::Prepare {
            path: path.to_owned(),
            source,
        })
    };
    let settings = settings(&config)?;
    let bridge = bridge_settings(&config)?;
    let registry = api::pull::RegistrySettings {
        insecure_registries: config.insecure_registries.clone(),
        mirrors: config
            .registry_mirrors
            .iter()
            .map(|m| m.parse().map_err(DaemonError::Option))
            .collect::<Result<_, _>>()?,
    };
    prep(&config.root)?;
    prep(&config.exec_root)?;
    if let Some(dir) = socket.parent() {
        prep(dir)?;
    }
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return Err(DaemonError::AlreadyRunning(socket));
    }
    let _ = std::fs::remove_file(&socket);

    let paths = Paths {
        root: config.root.clone(),
        exec_root: config.exec_root.clone(),
        shim_bin: config.shim_bin.clone(),
        cgroup_parent: config.cgroup_parent.clone(),
    };
    let root = config.root.clone();
    let store = tokio::task::spawn_blocking(move || arca_store::Store::open(&root))
        .await
        .map_err(|e| DaemonError::Serve(std::io::Error::other(e)))??;
    let networks =
        networks::Networks::open(&config.root, &config.exec_root, bridge).map_err(|source| {
            DaemonError::Prepare {
                path: config.root.join("networks"),
                source,
            }
        })?;
    if let Err(e) = networks.init().await {
        // Containers on `none` and `host` still work; starting one on a bridge network
        // reports the problem again.
        tracing::error!(error = %e.message, "bridge networking is not available");
    }
    let containers =
        containers::Containers::new(Arc::new(store), paths.clone(), settings, networks.clone());
    let n = containers
        .recover()
        .await
        .map_err(|source| DaemonError::Prepare {
            path: paths.containers_dir(),
            source,
        })?;
    tracing::info!(containers = n, "state recovered");
    containers.watch_volume_mounts();

    let listener = UnixListener::bind(&socket).map_err(|source| DaemonError::Listen {
        path: socket.clone(),
        source,
    })?;
    let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660));
    let _ = paths::write_atomic(
        &paths.pid_file(),
        std::process::id().to_string().as_bytes(),
        false,
    );

    let state = api::AppState::new(containers, &config.root, registry);
    let service = api::app(state);
    tracing::info!(socket = %socket.display(), "arcad listening");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(service),
        )
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .await
    });
    shutdown_signal().await;
    tracing::info!("shutting down; containers keep running");
    let _ = stop_tx.send(());
    // Long-lived requests (wait, logs -f) would hold a graceful shutdown forever.
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(2), server).await {
        return Err(DaemonError::Serve(e));
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(paths.pid_file());
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
