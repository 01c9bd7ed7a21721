//! A container joining its bridge networks when it starts, and leaving them when it stops.
//!
//! Order of a join (each step undone if a later one fails): the network namespace
//! (bind-mounted at `<exec-root>/netns/<container id>`); per network an address allocated
//! and recorded with the endpoint *before* its veth exists (a crash then leaves a record
//! that `recover` tears down, never an unrecorded veth); the veth, moved into the namespace
//! as `eth<i>`; then the published ports of the first network: each host port held by a
//! socket in arcad (a port in use fails the start with Docker's "port is already
//! allocated"), then DNAT rules. Leaving reverses it and never fails halfway silently: every
//! step is attempted and failures are logged.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use arca_api::docker;
use arca_net::firewall::{NetworkRules, Port};
use arca_net::link::{Attach, mac_for};
use arca_net::ports::{self, Protocol as Proto, Reservation};

use super::record::{Driver, Endpoint, NetworkRecord, Published};
use super::{Networks, blocking, new_id};
use crate::containers::record::ContainerRecord;
use crate::error::{ApiError, ApiResult};

/// How long after a container left its namespace a veth still there is deleted.
const VETH_SWEEP_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// What a joined container needs to start: the namespace to join and what goes into its
/// `/etc/hosts` and `/etc/resolv.conf`.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub netns: PathBuf,
    /// The container's address on its first network.
    pub ip: Ipv4Addr,
    /// That network's gateway (the host, for `host-gateway`).
    pub gateway: Option<Ipv4Addr>,
    /// Aliases by which other containers find it (name, network aliases).
    pub names: Vec<String>,
    /// An embedded DNS server to use (user-defined networks); `None` = the host's servers.
    pub dns: Option<Ipv4Addr>,
}

/// The networks a container asked for, first (default route, published ports) first:
/// its `NetworkMode` network, then the others it was connected to.
fn wanted(
    n: &Networks,
    rec: &ContainerRecord,
) -> ApiResult<Vec<(NetworkRecord, Option<docker::EndpointSettings>)>> {
    let mode = rec.host_config.network_mode.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    let Some(mode_net) = n.mode_network(mode)? else {
        return Ok(out);
    };
    let config_of = |net: &NetworkRecord| {
        rec.endpoints_config
            .iter()
            .find(|(k, _)| {
                *k == &net.name
                    || *k == &net.id
                    || (net.name == "bridge" && k.as_str() == "default")
            })
            .map(|(_, v)| v.clone())
    };
    if !rec.primary_disconnected {
        out.push((mode_net.clone(), config_of(&mode_net)));
    }
    for key in rec.endpoints_config.keys() {
        // The docker CLI names the default network `default`.
        let net = match key.as_str() {
            "default" => match n.mode_network("default")? {
                Some(net) => net,
                None => continue,
            },
            k => n.get(k)?,
        };
        if (net.id == mode_net.id && !rec.primary_disconnected) || net.driver != Driver::Bridge {
            continue;
        }
        if out.iter().any(|(o, _)| o.id == net.id) {
            continue;
        }
        let cfg = config_of(&net);
        out.push((net, cfg));
    }
    Ok(out)
}

/// `"80/tcp"` → (80, tcp).
fn parse_port(key: &str) -> ApiResult<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => return Err(ApiError::invalid(format!("invalid proto: {other}"))),
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::invalid(format!("invalid containerPort: {port}")))?;
    Ok((port, proto))
}

fn proto_name(p: Proto) -> &'static str {
    p.as_str()
}

/// One requested binding: container port, host address, host port (0 = any).
#[derive(Debug, Clone)]
struct Wish {
    proto: Proto,
    container_port: u16,
    host_ip: Option<Ipv4Addr>,
    host_port: u16,
}

/// The bindings a container asks for: `PortBindings`, and with `PublishAllPorts` every
/// exposed port not bound explicitly, on a random host port.
/// Checks a create request's published and exposed ports (Docker refuses bad ones at
/// create with a 400).
pub fn check_ports(
    host_config: &docker::HostConfig,
    exposed: Option<&Vec<String>>,
) -> ApiResult<()> {
    for key in exposed.into_iter().flatten() {
        parse_port(key)?;
    }
    wishes_of(host_config, exposed).map(drop)
}

fn wishes(rec: &ContainerRecord) -> ApiResult<Vec<Wish>> {
    wishes_of(&rec.host_config, rec.config.exposed_ports.as_ref())
}

fn wishes_of(
    host_config: &docker::HostConfig,
    exposed_ports: Option<&Vec<String>>,
) -> ApiResult<Vec<Wish>> {
    let mut out = Vec::new();
    let bindings = host_config.port_bindings.clone().unwrap_or_default();
    let mut keys: Vec<&String> = bindings.keys().collect();
    keys.sort();
    for key in keys {
        let (container_port, proto) = parse_port(key)?;
        for b in bindings[key].iter().flatten() {
            let host_ip = match b.host_ip.as_deref().unwrap_or("") {
                "" | "0.0.0.0" => None,
                ip => Some(ip.parse::<Ipv4Addr>().map_err(|_| {
                    ApiError::invalid(format!(
                        "invalid host IP address: {ip} (only IPv4 is supported)"
                    ))
                })?),
            };
            let host_port = match b.host_port.as_deref().unwrap_or("") {
                "" => 0,
                p => p
                    .parse::<u16>()
                    .map_err(|_| ApiError::invalid(format!("invalid hostPort: {p}")))?,
            };
            out.push(Wish {
                proto,
                container_port,
                host_ip,
                host_port,
            });
        }
    }
    if host_config.publish_all_ports.unwrap_or(false) {
        let mut exposed: Vec<String> = exposed_ports.cloned().unwrap_or_default();
        exposed.sort();
        for key in exposed {
            if bindings.contains_key(&key) {
                continue;
            }
            let (container_port, proto) = parse_port(&key)?;
            out.push(Wish {
                proto,
                container_port,
                host_ip: None,
                host_port: 0,
            });
        }
    }
    Ok(out)
}

impl Networks {
    /// Where a container's network namespace is bind-mounted (Docker's `SandboxKey`).
    pub fn netns_path(&self, container: &str) -> PathBuf {
        self.netns_dir.join(container)
    }

    /// Joins `rec` to its bridge networks; `None` when it has none (host, none,
    /// container:…, or the default network is disabled).
    pub async fn attach(&self, rec: &ContainerRecord) -> ApiResult<Option<Attachment>> {
        let nets = wanted(self, rec)?;
        if nets.is_empty() {
            let mode = rec.host_config.network_mode.as_deref().unwrap_or("default");
            let publishes = rec
                .host_config
                .port_bindings
                .as_ref()
                .is_some_and(|b| !b.is_empty())
                || rec.host_config.publish_all_ports.unwrap_or(false);
            if matches!(mode, "" | "default") && self.default_unavailable() && publishes {
                // Loopback only would drop the ports silently.
                return Err(ApiError::new(
                    arca_model::ErrorKind::Unavailable,
                    "cannot publish ports: the default bridge network is not available (see arcad's log)",
                ));
            }
            return Ok(None);
        }
        let cid = rec.id.to_string();
        let began = std::time::Instant::now();
        // Anything left from a run arcad did not see end.
        self.detach(&cid).await;
        let netns = self.netns_path(&cid);
        let path = netns.clone();
        blocking(move || {
            arca_net::netns::create(&path)
                .map_err(|e| ApiError::from_internal("cannot create the network namespace", &e))
        })
        .await?;
        let made = began.elapsed();
        match self.join(rec, &cid, &netns, nets).await {
            Ok(a) => {
                tracing::debug!(
                    container = %cid,
                    netns_us = made.as_micros() as u64,
                    total_us = began.elapsed().as_micros() as u64,
                    "network attach timings"
                );
                Ok(Some(a))
            }
            Err(e) => {
                self.detach(&cid).await;
                Err(e)
            }
        }
    }

    async fn join(
        &self,
        rec: &ContainerRecord,
        cid: &str,
        netns: &std::path::Path,
        nets: Vec<(NetworkRecord, Option<docker::EndpointSettings>)>,
    ) -> ApiResult<Attachment> {
        let mut first: Option<(NetworkRecord, Endpoint)> = None;
        for (i, (net, cfg)) in nets.into_iter().enumerate() {
            let joined = self
                .join_network(rec, cid, netns, i, &net, cfg.as_ref())
                .await?;
            if first.is_none() {
                first = Some(joined);
            }
        }
        let (net, ep) = first.ok_or_else(|| ApiError::internal("no network joined"))?;
        self.publish(rec, cid, &net, &ep).await?;
        let mut names = vec![rec.name.clone()];
        names.extend(ep.aliases.iter().cloned());
        Ok(Attachment {
            netns: netns.to_path_buf(),
            ip: ep.ip,
            gateway: net.gateway(),
            names,
            dns: (!net.builtin && self.has_dns(&net.id))
                .then(|| net.gateway())
                .flatten(),
        })
    }

    /// Joins the container (its namespace at `netns`) to one network as `eth<index>`; the
    /// default route goes through the network of index 0.
    async fn join_network(
        &self,
        rec: &ContainerRecord,
        cid: &str,
        netns: &std::path::Path,
        i: usize,
        net: &NetworkRecord,
        cfg: Option<&docker::EndpointSettings>,
    ) -> ApiResult<(NetworkRecord, Endpoint)> {
        let requested = cfg
            .and_then(|c| c.ipam_config.as_ref())
            .and_then(|c| c.ipv4_address.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Ipv4Addr>()
                    .map_err(|_| ApiError::invalid(format!("invalid IPv4 address: {s}")))
            })
            .transpose()?;
        if requested.is_some() && net.builtin {
            return Err(ApiError::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        let mut aliases: Vec<String> = cfg.and_then(|c| c.aliases.clone()).unwrap_or_default();
        if !net.builtin {
            aliases.push(rec.id.short().to_owned());
        }
        let host_ifname = format!("veth{}", &arca_model::random_hex(6)[..11]);
        let ifname = format!("eth{i}");
        let endpoint_id = new_id();
        let name = rec.name.clone();
        let (hif, ifn) = (host_ifname.clone(), ifname.clone());
        let mut allocated = None;
        let updated = self.update(&net.id, |r| {
            let Some(pool) = r.pool.as_mut() else { return };
            if let Ok(ip) = pool.allocate(requested) {
                allocated = Some(ip);
                let mac = mac_for(ip);
                r.endpoints.insert(
                    cid.to_owned(),
                    Endpoint {
                        id: endpoint_id,
                        name,
                        ip,
                        mac: mac_string(&mac),
                        host_ifname: hif,
                        ifname: ifn,
                        aliases,
                        ports: Vec::new(),
                    },
                );
            }
        })?;
        let Some(ip) = allocated else {
            // Word the pool's refusal.
            let mut pool = updated.pool.clone().ok_or_else(|| {
                ApiError::internal(format!("network {} has no address pool", net.name))
            })?;
            return Err(match pool.allocate(requested) {
                Err(e) => ApiError::new(e.kind(), e.to_string()),
                Ok(_) => ApiError::internal("address allocation failed"),
            });
        };
        let pool = updated.pool.as_ref().ok_or_else(|| {
            ApiError::internal(format!("network {} has no address pool", net.name))
        })?;
        let bridge = updated.bridge.clone().unwrap_or_default();
        let req = Attach {
            bridge,
            host_ifname: host_ifname.clone(),
            netns: netns.to_path_buf(),
            ifname: ifname.clone(),
            address: ip,
            prefix: pool.subnet.prefix(),
            gateway: (i == 0 && !updated.internal).then_some(pool.gateway),
            mac: mac_for(ip),
            mtu: None,
            // A container reaching its own published port: the reply leaves by the bridge
            // port it came in on (br_netfilter hosts).
            hairpin: true,
        };
        let attached = match self.netlink().await {
            Ok(nl) => nl.attach(&req).await.map_err(|e| {
                ApiError::from_internal("cannot connect the container to its network", &e)
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = attached {
            // No veth: the recorded endpoint and its address go too.
            let _ = self.update(&net.id, |r| {
                r.endpoints.remove(cid);
                if let Some(pool) = r.pool.as_mut() {
                    pool.release(ip);
                }
            });
            return Err(e);
        }
        let ep = updated
            .endpoints
            .get(cid)
            .cloned()
            .ok_or_else(|| ApiError::internal("endpoint vanished"))?;
        Ok((updated, ep))
    }

    /// Reserves the host ports and installs the DNAT rules of `rec`'s published ports.
    async fn publish(
        &self,
        rec: &ContainerRecord,
        cid: &str,
        net: &NetworkRecord,
        ep: &Endpoint,
    ) -> ApiResult<()> {
        let wishes = wishes(rec)?;
        if wishes.is_empty() {
            return Ok(());
        }
        let ip = ep.ip;
        let name = rec.name.clone();
        let endpoint = ep.id.clone();
        let (held, published): (Vec<Reservation>, Vec<Published>) = blocking(move || {
            let mut held = Vec::new();
            let mut published = Vec::new();
            for w in &wishes {
                let r = if w.host_port == 0 {
                    ports::reserve_any(w.proto, w.host_ip, None)
                } else {
                    ports::reserve(w.proto, w.host_ip, w.host_port)
                };
                let reservation = r.map_err(|e| {
                    ApiError::internal(format!(
                        "driver failed programming external connectivity on endpoint {name} ({endpoint}): {e}"
                    ))
                })?;
                let port = reservation.port();
                held.push(reservation);
                published.push(Published {
                    proto: proto_name(w.proto).into(),
                    container_port: w.container_port,
                    host_ip: w.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    host_port: port,
                });
            }
            Ok((held, published))
        })
        .await?;
        let rules: Vec<Port> = published
            .iter()
            .map(|p| Port {
                proto: if p.proto == "udp" {
                    Proto::Udp
                } else {
                    Proto::Tcp
                },
                host_ip: p.host_ip.parse().ok(),
                host_port: p.host_port,
                container_ip: ip,
                container_port: p.container_port,
            })
            .collect();
        // Recorded before the rules exist, so a crash leaves them findable.
        self.lock_reservations().insert(cid.to_owned(), held);
        self.update(&net.id, |r| {
            if let Some(e) = r.endpoints.get_mut(cid) {
                e.ports = published.clone();
            }
        })?;
        let _order = self.fw_order.lock().await;
        self.firewall
            .publish(&rules)
            .await
            .map_err(|e| ApiError::from_internal("cannot publish the container's ports", &e))
    }

    fn lock_reservations(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Vec<Reservation>>> {
        self.reservations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes container `cid` off every network: rules, port reservations, veths, namespace,
    /// addresses. Idempotent; failures are logged (the container has stopped either way).
    pub async fn detach(&self, cid: &str) {
        let joined: Vec<(NetworkRecord, Endpoint)> = self
            .list()
            .into_iter()
            .filter_map(|r| r.endpoints.get(cid).cloned().map(|e| (r, e)))
            .collect();
        let path = self.netns_path(cid);
        if joined.is_empty() && !path.exists() {
            // Nothing to release (every exit and start of a container not on a bridge):
            // no trip to the blocking pool.
            return;
        }
        // The namespace goes first (cheap): with it the kernel destroys the veths by itself.
        let removed = blocking(move || {
            arca_net::netns::remove(&path)
                .map_err(|e| ApiError::from_internal("cannot remove the network namespace", &e))
        })
        .await;
        if let Err(e) = removed {
            tracing::warn!(container = cid, error = %e.message, "network namespace left behind");
        }
        self.lock_reservations().remove(cid);
        for (net, ep) in &joined {
            let r = self.update(&net.id, |r| {
                r.endpoints.remove(cid);
                if let Some(pool) = r.pool.as_mut() {
                    pool.release(ep.ip);
                }
            });
            if let Err(e) = r {
                tracing::warn!(container = cid, network = %net.name, error = %e.message, "cannot release the address");
            }
        }
        if joined.is_empty() {
            return;
        }
        // Deleting rules waits for the kernel (an RCU grace period, ~20 ms), so it runs in
        // the background: a stop does not wait for it. A port published again meanwhile
        // is safe: unpublishing a port that now maps elsewhere removes nothing. The veths
        // go with the namespace (the kernel destroys both in its own batched cleanup); an
        // explicit delete right away would hold the netlink lock the next container's
        // start needs (measured: back-to-back starts went from 3 to 11-30 ms), so only a
        // late check removes one that is still there. An arcad that stops meanwhile leaves
        // stale rules, which `recover` drops (the table is restored to the live set).
        let (fw, nl) = (self.firewall.clone(), self.netlink().await.ok().cloned());
        let cid = cid.to_owned();
        // Taken now, so a publish asked for after this exit waits for these deletions.
        let order = self.fw_order.clone().lock_owned().await;
        tokio::spawn(async move {
            for (net, ep) in &joined {
                // One transaction per port: a port already moved to another container must
                // not keep the others from being removed.
                for rule in rules_of(ep) {
                    if let Err(e) = fw.unpublish(std::slice::from_ref(&rule)).await {
                        tracing::warn!(container = %cid, network = %net.name, port = rule.host_port, error = %e, "unpublishing failed");
                    }
                }
            }
            drop(order);
            tokio::time::sleep(VETH_SWEEP_DELAY).await;
            for (net, ep) in &joined {
                if let Some(nl) = &nl
                    && let Err(e) = nl.detach(&ep.host_ifname).await
                {
                    tracing::warn!(container = %cid, network = %net.name, error = %e, "cannot delete the veth");
                }
            }
        });
    }

    /// Joins a running container to one more network (`network connect`).
    pub async fn connect_running(
        &self,
        rec: &ContainerRecord,
        net: &NetworkRecord,
        cfg: &docker::EndpointSettings,
    ) -> ApiResult<()> {
        let cid = rec.id.to_string();
        let netns = self.netns_path(&cid);
        let joined = self.endpoints_of(&cid);
        // A container disconnected from all its networks keeps its namespace (arcad's, until
        // it stops); one that never had one (`--network none`) cannot join.
        if joined.is_empty() && !netns.exists() {
            return Err(ApiError::conflict(format!(
                "container {} has no network namespace of its own to connect to {}: restart it on a network first",
                rec.name, net.name
            )));
        }
        let index = joined
            .values()
            .filter_map(|(_, ep)| ep.ifname.strip_prefix("eth")?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m + 1);
        self.join_network(rec, &cid, &netns, index, net, Some(cfg))
            .await
            .map(drop)
    }

    /// Takes a running container off one network (`network disconnect`).
    pub async fn disconnect_running(&self, cid: &str, net: &NetworkRecord) -> ApiResult<()> {
        let Some(ep) = self.get(&net.id)?.endpoints.get(cid).cloned() else {
            return Ok(());
        };
        if !ep.ports.is_empty() {
            let _order = self.fw_order.lock().await;
            self.firewall
                .unpublish(&rules_of(&ep))
                .await
                .map_err(|e| ApiError::from_internal("cannot unpublish ports", &e))?;
            self.lock_reservations().remove(cid);
        }
        self.netlink()
            .await?
            .detach(&ep.host_ifname)
            .await
            .map_err(|e| ApiError::from_internal("cannot delete the veth", &e))?;
        self.update(&net.id, |r| {
            r.endpoints.remove(cid);
            if let Some(pool) = r.pool.as_mut() {
                pool.release(ep.ip);
            }
        })
        .map(drop)
    }

    /// The endpoints of container `cid`, by network name.
    pub fn endpoints_of(&self, cid: &str) -> BTreeMap<String, (NetworkRecord, Endpoint)> {
        self.list()
            .into_iter()
            .filter_map(|r| {
                let ep = r.endpoints.get(cid).cloned()?;
                Some((r.name.clone(), (r, ep)))
            })
            .collect()
    }

    /// After an arcad restart: containers that are no longer running leave their networks;
    /// the host ports of running ones are reserved again.
    pub async fn recover(&self, running: impl Fn(&str) -> bool) {
        let mut gone = Vec::new();
        let mut keep: Vec<(String, Vec<Published>)> = Vec::new();
        for net in self.list() {
            for (cid, ep) in &net.endpoints {
                if running(cid) {
                    if !ep.ports.is_empty() {
                        keep.push((cid.clone(), ep.ports.clone()));
                    }
                } else if !gone.contains(cid) {
                    gone.push(cid.clone());
                }
            }
        }
        for cid in gone {
            tracing::info!(container = %cid, "releasing the network of a container that stopped while arcad was down");
            self.detach(&cid).await;
        }
        // Rules exactly for the live networks and ports: drops what a crash left behind.
        let nets = self.list();
        let rules: Vec<NetworkRules> = nets
            .iter()
            .filter_map(|r| {
                let (bridge, pool) = (r.bridge.clone()?, r.pool.as_ref()?);
                Some(NetworkRules {
                    bridge,
                    subnet: (pool.subnet.network(), pool.subnet.prefix()),
                    internal: r.internal,
                })
            })
            .collect();
        let ports: Vec<Port> = nets
            .iter()
            .flat_map(|r| r.endpoints.values().flat_map(rules_of))
            .collect();
        if !rules.is_empty()
            && let Err(e) = self.firewall.restore(&rules, &ports).await
        {
            tracing::warn!(error = %e, "cannot restore the firewall rules");
        }
        for (cid, published) in keep {
            let mut held = Vec::new();
            for p in &published {
                let proto = if p.proto == "udp" {
                    Proto::Udp
                } else {
                    Proto::Tcp
                };
                match ports::reserve(proto, p.host_ip.parse().ok(), p.host_port) {
                    Ok(r) => held.push(r),
                    Err(e) => {
                        tracing::warn!(container = %cid, port = p.host_port, error = %e, "cannot hold a published port again")
                    }
                }
            }
            self.lock_reservations().insert(cid, held);
        }
    }
}

/// The DNAT rules of an endpoint's published ports.
fn rules_of(ep: &Endpoint) -> Vec<Port> {
    ep.ports
        .iter()
        .map(|p| Port {
            proto: if p.proto == "udp" {
                Proto::Udp
            } else {
                Proto::Tcp
            },
            host_ip: p.host_ip.parse().ok(),
            host_port: p.host_port,
            container_ip: ep.ip,
            container_port: p.container_port,
        })
        .collect()
}

fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_keys_parse_like_docker() {
        assert_eq!(parse_port("80/tcp").expect("port"), (80, Proto::Tcp));
        assert_eq!(parse_port("53/udp").expect("port"), (53, Proto::Udp));
        assert_eq!(parse_port("8080").expect("port"), (8080, Proto::Tcp));
        assert!(parse_port("x/tcp").is_err());
        assert!(parse_port("80/sctp").is_err());
        assert!(parse_port("0/tcp").is_err());
    }

    #[test]
    fn macs_print_as_docker_does() {
        assert_eq!(mac_string(&[2, 0x42, 172, 17, 0, 2]), "02:42:ac:11:00:02");
    }
}
