//! Networks: Docker's `bridge`, `host` and `none`, and user-defined bridge networks, each a
//! record on disk (`record.rs`), a bridge interface and rules in arca's nftables table.
//!
//! Contract:
//! - Every daemon has `host` and `none`; `bridge` (the default network, interface
//!   `--bridge`, default `arca0`, gateway `--bip`) unless arcad runs with `--bridge none`,
//!   in which case containers asking for the default network get `none`.
//! - A container on a bridge network gets, when it starts, a network namespace of its own
//!   (bind-mounted under the exec root, so it outlives arcad), a veth per network (`eth0`,
//!   `eth1`, …), an address from the network's pool, its published ports (DNAT rules, no
//!   proxy process; each host port held by a socket in arcad so it cannot be taken twice)
//!   — see `attach.rs`. All of it is released when the container stops.
//! - State changes are written before they are acted on where a crash could otherwise
//!   leak them (an address is recorded before its veth exists), and `recover` reconciles
//!   after a restart: endpoints of containers that are not running are torn down, ports of
//!   running ones are reserved again.
//! - The table of records is behind a std mutex, never held across an `.await`.

mod attach;
mod dns;
pub mod record;

pub use attach::{Attachment, check_ports};

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use arca_net::firewall::{Firewall, NetworkRules};
use arca_net::ipam::{IpamError, Pool, Role, Subnet};
use arca_net::link::Netlink;
use arca_net::ports::Reservation;

use crate::error::{ApiError, ApiResult};
use record::{Driver, NetworkRecord, VERSION};

/// The default network's settings (arcad's `--bridge`, `--bip`).
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// Interface name; `None` = no default bridge network (`--bridge none`).
    pub name: Option<String>,
    /// Gateway address and prefix of the default network (`172.30.0.1/16`).
    pub bip: (Ipv4Addr, u8),
    /// The nftables table arca owns.
    pub table: String,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        Self {
            name: Some("arca0".into()),
            bip: (Ipv4Addr::new(172, 30, 0, 1), 16),
            table: "arca".into(),
        }
    }
}

/// What `POST /networks/create` asks for.
#[derive(Debug, Default)]
pub struct CreateRequest {
    pub name: String,
    pub driver: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
}

pub struct Networks {
    dir: PathBuf,
    netns_dir: PathBuf,
    table: Mutex<BTreeMap<String, NetworkRecord>>,
    netlink: tokio::sync::OnceCell<Netlink>,
    firewall: Firewall,
    /// Host ports held for running containers, by container ID.
    reservations: Mutex<HashMap<String, Vec<Reservation>>>,
    /// Published-port rule changes in the order they were asked for: a background
    /// unpublish must not land after a newer publish of the same port.
    fw_order: Arc<tokio::sync::Mutex<()>>,
    /// The embedded DNS servers of user networks, by network ID.
    dns: Mutex<HashMap<String, dns::DnsServer>>,
    settings: BridgeSettings,
    me: std::sync::Weak<Networks>,
    /// `init` brought the default network up. When it could not (no `nft`, no netlink),
    /// containers asking for the default network get loopback only, with a warning,
    /// rather than failing to start: `arca run hello-world` must work anywhere.
    default_ready: std::sync::atomic::AtomicBool,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn new_id() -> String {
    arca_model::random_hex(32)
}

impl Networks {
    /// Loads the network records under `root/networks` and makes sure the predefined
    /// networks exist (on disk; interfaces and rules come with [`Networks::init`]).
    pub fn open(
        root: &std::path::Path,
        exec_root: &std::path::Path,
        settings: BridgeSettings,
    ) -> std::io::Result<Arc<Networks>> {
        let dir = root.join("networks");
        std::fs::create_dir_all(&dir)?;
        let mut table = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match NetworkRecord::load(&path) {
                Ok(rec) => {
                    table.insert(rec.id.clone(), rec);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping unreadable network record")
                }
            }
        }
        let firewall = Firewall::new(&settings.table)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let n = Arc::new_cyclic(|me| Networks {
            dir,
            netns_dir: exec_root.join("netns"),
            table: Mutex::new(table),
            netlink: tokio::sync::OnceCell::new(),
            firewall,
            reservations: Mutex::new(HashMap::new()),
            fw_order: Arc::new(tokio::sync::Mutex::new(())),
            dns: Mutex::new(HashMap::new()),
            settings,
            me: me.clone(),
            default_ready: std::sync::atomic::AtomicBool::new(false),
        });
        n.ensure_predefined()?;
        Ok(n)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, NetworkRecord>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ensure_predefined(&self) -> std::io::Result<()> {
        let mut wanted: Vec<(&str, Driver)> = vec![("host", Driver::Host), ("none", Driver::Null)];
        if self.settings.name.is_some() {
            wanted.push(("bridge", Driver::Bridge));
        }
        let mut table = self.lock();
        // A `bridge` left from a run with a default bridge, now disabled, goes away.
        if self.settings.name.is_none()
            && let Some(id) = table
                .values()
                .find(|r| r.builtin && r.name == "bridge")
                .map(|r| r.id.clone())
            && let Some(old) = table.remove(&id)
        {
            let _ = std::fs::remove_file(self.dir.join(format!("{}.json", old.id)));
        }
        for (name, driver) in wanted {
            let existing = table.values().find(|r| r.builtin && r.name == name);
            let stale_bridge = match (existing, &self.settings.name) {
                (Some(r), Some(ifname)) if driver == Driver::Bridge => {
                    r.bridge.as_deref() != Some(ifname.as_str())
                        || r.pool.as_ref().map(|p| (p.gateway, p.subnet.prefix()))
                            != Some(self.settings.bip)
                }
                _ => false,
            };
            if existing.is_some() && !stale_bridge {
                continue;
            }
            let (bridge, pool) = if driver == Driver::Bridge {
                let (gw, prefix) = self.settings.bip;
                let subnet = Subnet::containing(gw, prefix).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid --bip prefix")
                })?;
                let pool = Pool::new(subnet, Some(gw), None).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
                })?;
                (self.settings.name.clone(), Some(pool))
            } else {
                (None, None)
            };
            let mut rec = NetworkRecord {
                version: VERSION,
                id: existing.map(|r| r.id.clone()).unwrap_or_else(new_id),
                name: name.into(),
                driver,
                created: now(),
                builtin: true,
                internal: false,
                attachable: false,
                labels: HashMap::new(),
                options: HashMap::new(),
                bridge,
                pool,
                endpoints: BTreeMap::new(),
            };
            if let Some(old) = existing {
                rec.endpoints = old.endpoints.clone();
            }
            rec.save(&self.dir)?;
            table.insert(rec.id.clone(), rec);
        }
        Ok(())
    }

    async fn netlink(&self) -> ApiResult<&Netlink> {
        self.netlink
            .get_or_try_init(|| async {
                Netlink::new().map_err(|e| ApiError::from_internal("cannot open netlink", &e))
            })
            .await
    }

    /// Brings up the bridges and firewall rules of every bridge network (idempotent: after
    /// an arcad restart they are usually there already).
    pub async fn init(&self) -> ApiResult<()> {
        let bridges: Vec<NetworkRecord> = self
            .lock()
            .values()
            .filter(|r| r.driver == Driver::Bridge)
            .cloned()
            .collect();
        if bridges.is_empty() {
            return Ok(());
        }
        self.firewall
            .ensure()
            .await
            .map_err(|e| ApiError::from_internal("cannot set up the firewall", &e))?;
        let mut first_error = None;
        for rec in bridges {
            match self.bring_up(&rec).await {
                Ok(()) if rec.builtin => self
                    .default_ready
                    .store(true, std::sync::atomic::Ordering::Relaxed),
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(network = %rec.name, error = %e.message, "cannot bring the network up");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn bring_up(&self, rec: &NetworkRecord) -> ApiResult<()> {
        let (Some(bridge), Some(pool)) = (&rec.bridge, &rec.pool) else {
            return Ok(());
        };
        self.netlink()
            .await?
            .ensure_bridge(bridge, pool.gateway, pool.subnet.prefix())
            .await
            .map_err(|e| ApiError::from_internal("cannot create the bridge", &e))?;
        let rules = NetworkRules {
            bridge: bridge.clone(),
            subnet: (pool.subnet.network(), pool.subnet.prefix()),
            internal: rec.internal,
        };
        self.firewall
            .add_network(&rules)
            .await
            .map_err(|e| ApiError::from_internal("cannot set up the network's rules", &e))?;
        if !rec.builtin {
            self.start_dns(rec, pool.gateway).await;
        }
        Ok(())
    }

    /// Starts the embedded DNS server of a user network on its gateway. Without it (port
    /// 53 taken on that address) containers use the host's resolvers.
    async fn start_dns(&self, rec: &NetworkRecord, gateway: Ipv4Addr) {
        if self
            .dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&rec.id)
        {
            return;
        }
        let me = self.me.clone();
        let id = rec.id.clone();
        let lookup: dns::Lookup =
            std::sync::Arc::new(move |name: &str| me.upgrade()?.lookup(&id, name));
        let addr = std::net::SocketAddr::from((gateway, 53));
        let subnet = rec.pool.as_ref().map(|p| p.subnet);
        let allowed = move |ip: std::net::IpAddr| match (ip, subnet) {
            (std::net::IpAddr::V4(v4), Some(s)) => s.contains(v4),
            _ => false,
        };
        match dns::DnsServer::start(addr, lookup, dns::host_resolvers(), allowed).await {
            Ok(server) => {
                self.dns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(rec.id.clone(), server);
            }
            Err(e) => {
                tracing::warn!(network = %rec.name, %addr, error = %e, "no embedded DNS for this network")
            }
        }
    }

    /// A default bridge is configured but could not be brought up.
    pub(crate) fn default_unavailable(&self) -> bool {
        self.settings.name.is_some()
            && !self
                .default_ready
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether network `id` has its DNS server running.
    pub(crate) fn has_dns(&self, id: &str) -> bool {
        self.dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    /// A name on network `id`: a container's name, one of its aliases, or its short ID.
    fn lookup(&self, id: &str, name: &str) -> Option<Ipv4Addr> {
        let table = self.lock();
        let rec = table.get(id)?;
        rec.endpoints.iter().find_map(|(cid, ep)| {
            let hit = ep.name.eq_ignore_ascii_case(name)
                || ep.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
                || (name.len() >= 12 && cid.starts_with(name));
            hit.then_some(ep.ip)
        })
    }

    /// A network by full ID, name, or unique ID prefix (Docker's lookup order).
    pub fn get(&self, key: &str) -> ApiResult<NetworkRecord> {
        let table = self.lock();
        if let Some(r) = table.get(key) {
            return Ok(r.clone());
        }
        if let Some(r) = table.values().find(|r| r.name == key) {
            return Ok(r.clone());
        }
        let matches: Vec<&NetworkRecord> =
            table.values().filter(|r| r.id.starts_with(key)).collect();
        match matches.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(ApiError::not_found(format!("network {key} not found"))),
            _ => Err(ApiError::invalid(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                matches.len()
            ))),
        }
    }

    pub fn list(&self) -> Vec<NetworkRecord> {
        self.lock().values().cloned().collect()
    }

    /// The network a container's `NetworkMode` names for its first endpoint: `None` when it
    /// gets no bridge network (host, none, container:…).
    pub fn mode_network(&self, mode: &str) -> ApiResult<Option<NetworkRecord>> {
        match mode {
            "host" | "none" => Ok(None),
            m if m.starts_with("container:") => Ok(None),
            "" | "default" => {
                if self.settings.name.is_none() {
                    return Ok(None);
                }
                if !self
                    .default_ready
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        "the default bridge network is not available: the container gets loopback only"
                    );
                    return Ok(None);
                }
                self.get("bridge").map(Some)
            }
            "bridge" => {
                if self.settings.name.is_none() {
                    return Err(ApiError::not_found("network bridge not found"));
                }
                self.get("bridge").map(Some)
            }
            name => {
                let rec = self.get(name)?;
                Ok(match rec.driver {
                    Driver::Bridge => Some(rec),
                    _ => None,
                })
            }
        }
    }

    /// `POST /networks/create`.
    pub async fn create(&self, req: CreateRequest) -> ApiResult<NetworkRecord> {
        let driver = req
            .driver
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or("bridge");
        if driver != "bridge" {
            return Err(ApiError::not_found(format!(
                "plugin \"{driver}\" not found"
            )));
        }
        if req.name.is_empty() {
            return Err(ApiError::invalid("network name is required"));
        }
        if !valid_name(&req.name) {
            return Err(ApiError::invalid(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                req.name
            )));
        }
        let subnet = req
            .subnet
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| Subnet::parse(s, Role::Subnet).map_err(ipam_error))
            .transpose()?;
        let gateway = req
            .gateway
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|g| {
                g.parse::<Ipv4Addr>()
                    .map_err(|_| ApiError::invalid(format!("invalid gateway address {g}")))
            })
            .transpose()?;
        let range = req
            .ip_range
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| Subnet::parse(s, Role::IpRange).map_err(ipam_error))
            .transpose()?;
        if subnet.is_none() && (gateway.is_some() || range.is_some()) {
            return Err(ApiError::invalid(
                "a gateway or an ip range needs a subnet (--subnet)",
            ));
        }
        let id = new_id();
        let rec = {
            let mut table = self.lock();
            if table.values().any(|r| r.name == req.name) {
                return Err(ApiError::conflict(format!(
                    "network with name {} already exists",
                    req.name
                )));
            }
            let taken: Vec<Subnet> = table
                .values()
                .filter_map(|r| r.pool.as_ref().map(|p| p.subnet))
                .collect();
            let subnet = match subnet {
                Some(s) => {
                    if let Some(other) = taken.iter().find(|t| t.overlaps(&s)) {
                        return Err(ApiError::invalid(format!(
                            "invalid pool request: Pool overlaps with other one on this address space ({other})"
                        )));
                    }
                    s
                }
                None => {
                    let mut avoid = taken.clone();
                    avoid.extend(arca_net::ipam::host_routes());
                    arca_net::ipam::pick_subnet(&avoid).ok_or_else(|| {
                        ApiError::invalid(
                            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
                        )
                    })?
                }
            };
            let pool = Pool::new(subnet, gateway, range).map_err(ipam_error)?;
            let rec = NetworkRecord {
                version: VERSION,
                bridge: Some(format!("br-{}", &id[..12])),
                id,
                name: req.name.clone(),
                driver: Driver::Bridge,
                created: now(),
                builtin: false,
                internal: req.internal,
                attachable: req.attachable,
                labels: req.labels,
                options: req.options,
                pool: Some(pool),
                endpoints: BTreeMap::new(),
            };
            rec.save(&self.dir)
                .map_err(|e| ApiError::from_internal("cannot save the network", &e))?;
            table.insert(rec.id.clone(), rec.clone());
            rec
        };
        let up = async {
            self.firewall
                .ensure()
                .await
                .map_err(|e| ApiError::from_internal("cannot set up the firewall", &e))?;
            self.bring_up(&rec).await
        };
        if let Err(e) = up.await {
            // Nothing half made stays: no record, no bridge, no rules.
            let _ = self.destroy(&rec).await;
            return Err(e);
        }
        tracing::info!(network = %rec.name, id = %rec.id, "network created");
        Ok(rec)
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove(&self, key: &str) -> ApiResult<NetworkRecord> {
        let rec = self.get(key)?;
        if rec.builtin {
            return Err(ApiError::new(
                arca_model::ErrorKind::Forbidden,
                format!(
                    "{} is a pre-defined network and cannot be removed",
                    rec.name
                ),
            ));
        }
        self.destroy(&rec).await?;
        tracing::info!(network = %rec.name, id = %rec.id, "network removed");
        Ok(rec)
    }

    /// Removes a network's rules, bridge and record. The record leaves the table first,
    /// under its lock and only while no endpoint is attached: a start joining the network
    /// at that moment then fails ("not found") instead of attaching to a bridge about to go.
    async fn destroy(&self, rec: &NetworkRecord) -> ApiResult<()> {
        {
            let mut table = self.lock();
            if table.get(&rec.id).is_some_and(|r| !r.endpoints.is_empty()) {
                return Err(ApiError::conflict(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    rec.name, rec.id
                )));
            }
            table.remove(&rec.id);
        }
        let torn_down = async {
            if let Some(bridge) = rec.bridge.clone() {
                self.firewall.remove_network(&bridge).await.map_err(|e| {
                    ApiError::from_internal("cannot remove the network's rules", &e)
                })?;
                self.netlink()
                    .await?
                    .delete_link(&bridge)
                    .await
                    .map_err(|e| ApiError::from_internal("cannot remove the bridge", &e))?;
            }
            Ok::<(), ApiError>(())
        };
        if let Err(e) = torn_down.await {
            // Still there (its record on disk too): usable, and removable again.
            self.lock().insert(rec.id.clone(), rec.clone());
            return Err(e);
        }
        self.dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&rec.id);
        let path = self.dir.join(format!("{}.json", rec.id));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ApiError::from_internal(
                "cannot remove the network record",
                &e,
            )),
        }
    }

    /// Updates a record in memory and on disk.
    fn update(&self, id: &str, f: impl FnOnce(&mut NetworkRecord)) -> ApiResult<NetworkRecord> {
        let mut table = self.lock();
        let rec = table
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("network {id} not found")))?;
        let before = rec.clone();
        f(rec);
        if let Err(e) = rec.save(&self.dir) {
            *rec = before;
            return Err(ApiError::from_internal("cannot save the network", &e));
        }
        Ok(rec.clone())
    }

    /// Docker's `NetworkResource` for `GET /networks` and `/networks/{id}`; `containers`:
    /// with the endpoints (inspect) or an empty map (list).
    pub fn resource(&self, rec: &NetworkRecord, containers: bool) -> NetworkResource {
        use serde_json::json;
        let config: Vec<serde_json::Value> = rec
            .pool
            .as_ref()
            .map(|p| {
                let mut c = serde_json::Map::new();
                c.insert("Subnet".into(), json!(p.subnet.to_string()));
                if let Some(r) = p.range {
                    c.insert("IPRange".into(), json!(r.to_string()));
                }
                c.insert("Gateway".into(), json!(p.gateway.to_string()));
                vec![serde_json::Value::Object(c)]
            })
            .unwrap_or_default();
        let prefix = rec.pool.as_ref().map_or(32, |p| p.subnet.prefix());
        let endpoints: serde_json::Map<String, serde_json::Value> = if containers {
            rec.endpoints
                .iter()
                .map(|(cid, ep)| {
                    (
                        cid.clone(),
                        json!({
                            "Name": ep.name,
                            "EndpointID": ep.id,
                            "MacAddress": ep.mac,
                            "IPv4Address": format!("{}/{prefix}", ep.ip),
                            "IPv6Address": "",
                        }),
                    )
                })
                .collect()
        } else {
            serde_json::Map::new()
        };
        let mut options = rec.options.clone();
        if rec.builtin
            && rec.driver == Driver::Bridge
            && let Some(b) = &rec.bridge
        {
            options.insert("com.docker.network.bridge.name".into(), b.clone());
            options.insert(
                "com.docker.network.bridge.default_bridge".into(),
                "true".into(),
            );
            options.insert(
                "com.docker.network.bridge.enable_ip_masquerade".into(),
                "true".into(),
            );
        }
        NetworkResource {
            name: rec.name.clone(),
            id: rec.id.clone(),
            created: rec.created.clone(),
            scope: "local",
            driver: rec.driver.as_str(),
            enable_ipv4: true,
            enable_ipv6: false,
            ipam: ResourceIpam {
                driver: "default",
                options: serde_json::Map::new(),
                config,
            },
            internal: rec.internal,
            attachable: rec.attachable,
            ingress: false,
            config_from: json!({"Network": ""}),
            config_only: false,
            containers: endpoints,
            options: options.into_iter().collect(),
            labels: rec.labels.clone().into_iter().collect(),
        }
    }

    /// `POST /networks/prune`: removes the user networks `in_use` says no container
    /// references and that `keep` does not protect; returns their names.
    pub async fn prune(
        &self,
        in_use: impl Fn(&NetworkRecord) -> bool,
        keep: impl Fn(&NetworkRecord) -> bool,
    ) -> ApiResult<Vec<String>> {
        let candidates: Vec<NetworkRecord> = self
            .list()
            .into_iter()
            .filter(|r| !r.builtin && r.endpoints.is_empty() && !in_use(r) && !keep(r))
            .collect();
        let mut removed = Vec::new();
        for rec in candidates {
            match self.destroy(&rec).await {
                Ok(()) => removed.push(rec.name),
                Err(e) => {
                    tracing::warn!(network = %rec.name, error = %e.message, "cannot prune network")
                }
            }
        }
        Ok(removed)
    }

    pub fn settings(&self) -> &BridgeSettings {
        &self.settings
    }
}

fn ipam_error(e: IpamError) -> ApiError {
    ApiError::new(e.kind(), e.to_string())
}

/// Docker's `NetworkResource`, its keys in Docker's order (a JSON object would sort them,
/// and clients print the raw body).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    name: String,
    id: String,
    created: String,
    scope: &'static str,
    driver: &'static str,
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: ResourceIpam,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_from: serde_json::Value,
    config_only: bool,
    containers: serde_json::Map<String, serde_json::Value>,
    options: std::collections::BTreeMap<String, String>,
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceIpam {
    driver: &'static str,
    options: serde_json::Map<String, serde_json::Value>,
    config: Vec<serde_json::Value>,
}

/// Docker's network name rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Runs firewall and file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("network task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_follow_docker() {
        assert!(valid_name("web_net-1.a"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
    }
}
