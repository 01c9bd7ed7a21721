//! Docker's bridge-driver firewalling in one nftables table of arca's own.
//!
//! Everything lives in the table `ip <table>` (`arca` for the daemon); nothing else on the
//! host is touched: no iptables chains, no other table. The only host settings changed are
//! the sysctls `net.ipv4.ip_forward=1` ([`Firewall::ensure`]) and
//! `net.ipv4.conf.<bridge>.route_localnet=1` ([`Firewall::add_network`], needed to DNAT
//! 127.0.0.1 into a bridge). No process serves published ports: they are DNAT.
//!
//! # Ruleset
//! The base chains' rules are fixed; networks and published ports are set and map
//! elements (and one small chain per network), so publishing or unpublishing a port
//! never rewrites a rule:
//!
//! - `bridges`, `internal`: the bridge names of all networks and of the internal ones;
//!   `intra`: `bridge . bridge` pairs (traffic that stays within one bridge).
//! - `nets`: a verdict map from a bridge to its chain `net_<bridge>`, entered for packets
//!   leaving or entering by that bridge. It masquerades hairpin connections (a container
//!   reaching a published port of its own network, its own included, through a host
//!   address: DNAT'd back into the bridge, source in the subnet) and, unless internal,
//!   the subnet leaving by any non-arca interface (Docker's
//!   `-s <subnet> ! -o <bridge> -j MASQUERADE`).
//! - `ports_any` (`proto . port → container ip . port`) for ports published on every host
//!   address, matched when the destination is local (`fib daddr type local`), and
//!   `ports_ip` (`proto . host ip . port → …`) for ports published on one address.
//!
//! Chains: `prerouting` (dstnat) DNATs published ports for traffic from other hosts and
//! from containers; `output` (dstnat) does the same for the host's own connections,
//! including to 127.0.0.1; `postrouting` (srcnat) masquerades 127.0.0.0/8 sources entering
//! a bridge (so the container answers an address it can route to) and dispatches to the
//! per-network chains; `forward` (filter, policy accept: it only ever drops arca's
//! traffic) isolates networks from each other, keeps internal networks inside their
//! bridge, and lets into a bridge only replies and DNAT'd connections to published ports
//! (from anywhere, other arca networks included), like Docker 28.
//!
//! Both kinds of host work: without `br_netfilter`, bridged traffic never meets these
//! hooks and hairpin connections are routed; with it (Docker's hosts, this CI), bridged
//! frames pass them too (`intra` accepts them) and a hairpin connection's DNAT'd frames
//! are bridged back, so a container reaching its own published port needs hairpin mode
//! on its bridge port (set by the link code, as Docker does).
//!
//! # Applying
//! Each operation is one `nft -f -` script, which nftables applies as one transaction:
//! all or nothing, and packets never see a half-applied change. Every operation is
//! idempotent. We drive Debian's `nft` rather than a netlink crate: `rustables` is
//! GPL-3.0 and describes itself as rough, and the `nftables` crate only wraps the same
//! binary with JSON; a text script is what an operator reads in `nft list table ip arca`.
//!
//! Cost: an `nft` run that only adds elements (publish) takes about 3 ms; one that deletes
//! anything (unpublish, a re-laid rule) about 18 ms, because the kernel waits for an RCU
//! grace period when nft closes its netlink socket after a deletion.
//!
//! # Restarts
//! The table lives in the kernel: it survives arcad restarts and is only removed by
//! [`Firewall::delete`]. [`Firewall::ensure`] on an existing table keeps its networks and
//! published ports and re-lays the base chains' rules atomically; [`Firewall::restore`]
//! instead replaces everything with the given networks and ports, dropping stale ones.
//!
//! Limits: IPv4 only. NAT is decided on a connection's first packet, so a UDP flow that
//! reached the host before its port was published keeps going to the host until its
//! conntrack entry expires (30 s idle; Docker deletes such entries, arca does not yet).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use arca_model::ErrorKind;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::ports::Protocol;

/// The daemon's table name.
pub const DEFAULT_TABLE: &str = "arca";

/// The firewall state of one network (one bridge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    /// The bridge interface; must exist when the network is added.
    pub bridge: String,
    /// The network's subnet: address and prefix length.
    pub subnet: (Ipv4Addr, u8),
    /// `--internal`: no traffic in or out of the bridge, only within it.
    pub internal: bool,
}

/// One published port: `host_ip:host_port` → `container_ip:container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    pub proto: Protocol,
    /// `None` (or 0.0.0.0): every address of the host, 127.0.0.1 included.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// A failed firewall operation.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("invalid {what} name {name:?}")]
    InvalidName { what: &'static str, name: String },
    #[error("invalid subnet {addr}/{prefix}")]
    InvalidSubnet { addr: Ipv4Addr, prefix: u8 },
    #[error("invalid port {0}: ports must not be 0")]
    InvalidPort(u16),
    #[error("failed to run {program} (is the nftables package installed?)")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// nft rejected the script; nothing of it was applied.
    #[error("nft failed to {op} in table {table}: {stderr}")]
    Nft {
        op: &'static str,
        table: String,
        stderr: String,
    },
    #[error("failed to set sysctl {path}")]
    Sysctl {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FirewallError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidName { .. } | Self::InvalidSubnet { .. } | Self::InvalidPort(_) => {
                ErrorKind::InvalidArgument
            }
            Self::Spawn { .. } | Self::Nft { .. } | Self::Sysctl { .. } => ErrorKind::Internal,
        }
    }
}

/// arca's nftables table. Cheap to construct; every method runs one `nft` transaction.
#[derive(Debug, Clone)]
pub struct Firewall {
    table: String,
    nft: PathBuf,
}

impl Firewall {
    /// A handle on table `ip <table>`; nothing is changed until [`Firewall::ensure`].
    /// The name is a letter followed by letters, digits and `_`, at most 32 characters.
    pub fn new(table: &str) -> Result<Self, FirewallError> {
        let valid = table.len() <= 32
            && table.starts_with(|c: char| c.is_ascii_alphabetic())
            && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(FirewallError::InvalidName {
                what: "table",
                name: table.to_owned(),
            });
        }
        Ok(Self {
            table: table.to_owned(),
            nft: nft_program(),
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table, its sets, maps and base chains if missing, (re)lays the base
    /// chains' rules, and enables IPv4 forwarding. On an existing table, networks and
    /// published ports are kept; an incompatible table (another version's set types)
    /// makes this fail, and [`Firewall::delete`] then starts over.
    pub async fn ensure(&self) -> Result<(), FirewallError> {
        self.run("create the table", &ensure_script(&self.table))
            .await?;
        write_sysctl(Path::new(IP_FORWARD))
    }

    /// Adds (or updates) a network: outbound masquerade unless internal, isolation from the
    /// other networks, and `route_localnet` on the bridge, which must exist.
    pub async fn add_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        let script = network_script(&self.table, net)?;
        write_sysctl(&route_localnet(&net.bridge))?;
        self.run("add a network", &script).await
    }

    /// Removes everything [`Firewall::add_network`] added for `bridge`; a no-op when absent.
    pub async fn remove_network(&self, bridge: &str) -> Result<(), FirewallError> {
        self.run(
            "remove a network",
            &remove_network_script(&self.table, bridge)?,
        )
        .await
    }

    /// Publishes `ports` (all or none). A host address and port already published is
    /// redirected to the new target.
    pub async fn publish(&self, ports: &[Port]) -> Result<(), FirewallError> {
        if ports.is_empty() {
            return Ok(());
        }
        // Fast path: adding elements is idempotent and deletes nothing (about 3 ms).
        let fast = self
            .run("publish ports", &publish_script(&self.table, ports, &[])?)
            .await;
        let Err(fast_error) = fast else {
            return Ok(());
        };
        // A key maps to another target (left by a crash, say): replace those keys. nft
        // 1.0.6 has no `destroy`, so find which keys exist first.
        let mut existing = Vec::new();
        for port in ports {
            if self.element_exists(port).await? {
                existing.push(*port);
            }
        }
        if existing.is_empty() {
            return Err(fast_error);
        }
        self.run(
            "publish ports",
            &publish_script(&self.table, ports, &existing)?,
        )
        .await
    }

    /// Removes the mappings of `ports` (all or none); a port not published is skipped. A
    /// host port now published for another target is an error and nothing is removed.
    pub async fn unpublish(&self, ports: &[Port]) -> Result<(), FirewallError> {
        if ports.is_empty() {
            return Ok(());
        }
        self.run("unpublish ports", &unpublish_script(&self.table, ports)?)
            .await
    }

    /// Replaces the whole table, in one transaction, with one holding exactly `networks`
    /// and `ports` (what [`Firewall::ensure`], [`Firewall::add_network`] and
    /// [`Firewall::publish`] would make): for a daemon that starts again and wants no
    /// stale entries. Connections already NAT'd keep going (conntrack holds their NAT).
    pub async fn restore(
        &self,
        networks: &[NetworkRules],
        ports: &[Port],
    ) -> Result<(), FirewallError> {
        let t = &self.table;
        let mut script = format!("add table ip {t}\ndelete table ip {t}\n");
        script.push_str(&ensure_script(t));
        for net in networks {
            script.push_str(&network_script(t, net)?);
        }
        script.push_str(&publish_script(t, ports, &[])?);
        for net in networks {
            write_sysctl(&route_localnet(&net.bridge))?;
        }
        self.run("restore the table", &script).await?;
        write_sysctl(Path::new(IP_FORWARD))
    }

    /// Deletes the whole table; a no-op when absent. Sysctls are left as they are.
    pub async fn delete(&self) -> Result<(), FirewallError> {
        let table = &self.table;
        self.run(
            "delete the table",
            &format!("add table ip {table}\ndelete table ip {table}\n"),
        )
        .await
    }

    async fn element_exists(&self, port: &Port) -> Result<bool, FirewallError> {
        let (map, key) = port_key(port);
        let table = &self.table;
        let output = Command::new(&self.nft)
            .args(["get", "element", "ip", table, map, &format!("{{ {key} }}")])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| FirewallError::Spawn {
                program: self.nft.clone(),
                source,
            })?;
        Ok(output.status.success())
    }

    async fn run(&self, op: &'static str, script: &str) -> Result<(), FirewallError> {
        tracing::debug!(table = %self.table, op, script, "nft");
        let spawn_error = |source| FirewallError::Spawn {
            program: self.nft.clone(),
            source,
        };
        let mut child = Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(spawn_error)?;
        }
        let output = child.wait_with_output().await.map_err(spawn_error)?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(FirewallError::Nft {
            op,
            table: self.table.clone(),
            stderr: if stderr.is_empty() {
                format!("nft exited with {}", output.status)
            } else {
                stderr
            },
        })
    }
}

/// Debian installs nft in /usr/sbin, which a service's PATH may lack.
fn nft_program() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("nft"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("nft"))
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Only call with a checked bridge name.
fn route_localnet(bridge: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"))
}

fn write_sysctl(path: &Path) -> Result<(), FirewallError> {
    let error = |source| FirewallError::Sysctl {
        path: path.to_owned(),
        source,
    };
    if std::fs::read_to_string(path).map_err(error)?.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, "1\n").map_err(error)
}

/// A bridge name as the kernel accepts it, restricted to characters that need no quoting
/// in nft scripts and chain names.
fn check_bridge(bridge: &str) -> Result<(), FirewallError> {
    let valid = !bridge.is_empty()
        && bridge.len() <= 15
        && bridge != "."
        && bridge != ".."
        && bridge
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(FirewallError::InvalidName {
            what: "bridge",
            name: bridge.to_owned(),
        })
    }
}

fn ensure_script(t: &str) -> String {
    let mut s = format!(
        "add table ip {t}\n\
         add set ip {t} bridges {{ type ifname; }}\n\
         add set ip {t} internal {{ type ifname; }}\n\
         add set ip {t} intra {{ type ifname . ifname; }}\n\
         add map ip {t} nets {{ type ifname : verdict; }}\n\
         add map ip {t} ports_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}\n\
         add map ip {t} ports_ip {{ type inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service; }}\n\
         add chain ip {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
         add chain ip {t} output {{ type nat hook output priority -100; policy accept; }}\n\
         add chain ip {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         add chain ip {t} forward {{ type filter hook forward priority filter; policy accept; }}\n\
         add chain ip {t} guard {{ type filter hook prerouting priority raw; policy accept; }}\n"
    );
    for chain in ["prerouting", "output", "postrouting", "forward", "guard"] {
        s.push_str(&format!("flush chain ip {t} {chain}\n"));
    }
    let rules: [(&str, &str); 15] = [
        // route_localnet on arca bridges lets 127.0.0.1 be DNAT'd into them; it would also
        // let a container (CAP_NET_RAW) send to the host's loopback-only services through
        // the gateway's MAC (CVE-2020-8558). Nothing from a bridge may be for 127/8.
        ("guard", "iifname @bridges ip daddr 127.0.0.0/8 drop"),
        // Published on one address, then on every local address.
        (
            "prerouting",
            "dnat ip to meta l4proto . ip daddr . th dport map @ports_ip",
        ),
        (
            "prerouting",
            "fib daddr type local dnat ip to meta l4proto . th dport map @ports_any",
        ),
        (
            "output",
            "dnat ip to meta l4proto . ip daddr . th dport map @ports_ip",
        ),
        (
            "output",
            "fib daddr type local dnat ip to meta l4proto . th dport map @ports_any",
        ),
        // The host's connections to 127.0.0.1 DNAT'd into a bridge: the container must
        // answer an address it can route to.
        (
            "postrouting",
            "oifname @bridges ip saddr 127.0.0.0/8 masquerade",
        ),
        // Per network: hairpin (into the bridge) and outbound (out of it) masquerade.
        ("postrouting", "oifname vmap @nets"),
        ("postrouting", "iifname vmap @nets"),
        ("forward", "ct state established,related accept"),
        ("forward", "iifname . oifname @intra accept"),
        ("forward", "iifname @internal drop"),
        ("forward", "oifname @internal drop"),
        ("forward", "oifname @bridges ct status dnat accept"),
        // Other networks and other hosts reach containers only through published ports.
        ("forward", "oifname @bridges drop"),
        ("forward", "iifname @bridges accept"),
    ];
    for (chain, rule) in rules {
        s.push_str(&format!("add rule ip {t} {chain} {rule}\n"));
    }
    s
}

fn network_script(t: &str, net: &NetworkRules) -> Result<String, FirewallError> {
    let br = &net.bridge;
    check_bridge(br)?;
    let (addr, prefix) = net.subnet;
    if prefix > 32 {
        return Err(FirewallError::InvalidSubnet { addr, prefix });
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let subnet = format!("{}/{prefix}", Ipv4Addr::from(u32::from(addr) & mask));
    let mut s = format!(
        "add element ip {t} bridges {{ \"{br}\" }}\n\
         add element ip {t} intra {{ \"{br}\" . \"{br}\" }}\n\
         add chain ip {t} net_{br}\n\
         flush chain ip {t} net_{br}\n"
    );
    // Hairpin: a container reaching a published port of its own network (its own
    // included) through a host address. Without masquerade the server would answer its
    // peer directly, from the wrong address; with br_netfilter such DNAT'd frames are
    // bridged, and a container reaching its own port also needs hairpin mode on its
    // bridge port.
    s.push_str(&format!(
        "add rule ip {t} net_{br} oifname \"{br}\" ct status dnat ip saddr {subnet} masquerade\n"
    ));
    // Adding an element before deleting it makes the delete succeed whether or not it
    // was there: this is how a script ensures an element's absence.
    s.push_str(&format!("add element ip {t} internal {{ \"{br}\" }}\n"));
    if !net.internal {
        s.push_str(&format!(
            "add rule ip {t} net_{br} oifname != @bridges ip saddr {subnet} masquerade\n\
             delete element ip {t} internal {{ \"{br}\" }}\n"
        ));
    }
    s.push_str(&format!(
        "add element ip {t} nets {{ \"{br}\" : jump net_{br} }}\n"
    ));
    Ok(s)
}

fn remove_network_script(t: &str, br: &str) -> Result<String, FirewallError> {
    check_bridge(br)?;
    Ok(format!(
        "add chain ip {t} net_{br}\n\
         add element ip {t} nets {{ \"{br}\" : jump net_{br} }}\n\
         delete element ip {t} nets {{ \"{br}\" }}\n\
         delete chain ip {t} net_{br}\n\
         add element ip {t} bridges {{ \"{br}\" }}\n\
         delete element ip {t} bridges {{ \"{br}\" }}\n\
         add element ip {t} intra {{ \"{br}\" . \"{br}\" }}\n\
         delete element ip {t} intra {{ \"{br}\" . \"{br}\" }}\n\
         add element ip {t} internal {{ \"{br}\" }}\n\
         delete element ip {t} internal {{ \"{br}\" }}\n"
    ))
}

/// The map a port goes to and its key there.
fn port_key(port: &Port) -> (&'static str, String) {
    let proto = port.proto.as_str();
    match port.host_ip.filter(|ip| !ip.is_unspecified()) {
        None => ("ports_any", format!("{proto} . {}", port.host_port)),
        Some(ip) => ("ports_ip", format!("{proto} . {ip} . {}", port.host_port)),
    }
}

fn port_element(port: &Port) -> Result<(&'static str, String, String), FirewallError> {
    for p in [port.host_port, port.container_port] {
        if p == 0 {
            return Err(FirewallError::InvalidPort(p));
        }
    }
    let (map, key) = port_key(port);
    let value = format!("{} . {}", port.container_ip, port.container_port);
    Ok((map, key, value))
}

/// Adds every port; first deletes the keys in `replace`, which must exist.
fn publish_script(t: &str, ports: &[Port], replace: &[Port]) -> Result<String, FirewallError> {
    let mut s = String::new();
    for port in replace {
        let (map, key) = port_key(port);
        s.push_str(&format!("delete element ip {t} {map} {{ {key} }}\n"));
    }
    for port in ports {
        let (map, key, value) = port_element(port)?;
        s.push_str(&format!("add element ip {t} {map} {{ {key} : {value} }}\n"));
    }
    Ok(s)
}

fn unpublish_script(t: &str, ports: &[Port]) -> Result<String, FirewallError> {
    let mut s = String::new();
    for port in ports {
        // The add fails if the key maps elsewhere, so another target's mapping is never
        // removed; it makes the delete succeed when the port is not published.
        let (map, key, value) = port_element(port)?;
        s.push_str(&format!("add element ip {t} {map} {{ {key} : {value} }}\n"));
        s.push_str(&format!("delete element ip {t} {map} {{ {key} }}\n"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host_ip: Option<Ipv4Addr>) -> Port {
        Port {
            proto: Protocol::Tcp,
            host_ip,
            host_port: 8080,
            container_ip: Ipv4Addr::new(10, 214, 1, 2),
            container_port: 80,
        }
    }

    #[test]
    fn table_names_must_be_plain_identifiers() {
        assert!(Firewall::new("arca").is_ok());
        assert!(Firewall::new("arca_test_12").is_ok());
        for bad in [
            "",
            "1arca",
            "arca table",
            "arca;flush",
            "a-b",
            &"a".repeat(33),
        ] {
            let err = Firewall::new(bad).expect_err("invalid name");
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn bridge_names_that_would_need_quoting_are_rejected() {
        assert!(check_bridge("arca0").is_ok());
        assert!(check_bridge("br-1a2b.3_c").is_ok());
        for bad in ["", ".", "..", "a\"b", "a b", "sixteen_chars_xx", "br}"] {
            assert!(check_bridge(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ensure_relays_base_chain_rules_without_touching_elements() {
        let script = ensure_script("arca");
        assert!(
            script.contains("add rule ip arca guard iifname @bridges ip daddr 127.0.0.0/8 drop\n"),
            "containers must not reach the host's loopback through route_localnet"
        );
        assert!(script.contains("flush chain ip arca forward\n"));
        assert!(!script.contains("flush set"));
        assert!(!script.contains("flush map"));
        assert!(!script.contains("delete"));
        let flush = script
            .find("flush chain ip arca prerouting")
            .expect("flush chain ip arca prerouting");
        let first_rule = script.find("add rule").expect("add rule");
        assert!(flush < first_rule);
    }

    #[test]
    fn network_script_masks_the_subnet_and_toggles_internal() {
        let net = NetworkRules {
            bridge: "arca0".into(),
            subnet: (Ipv4Addr::new(172, 18, 3, 7), 16),
            internal: false,
        };
        let script = network_script("t", &net).expect("valid network");
        assert!(script.contains(
            "add rule ip t net_arca0 oifname \"arca0\" ct status dnat ip saddr 172.18.0.0/16 masquerade\n"
        ));
        assert!(script.contains(
            "add rule ip t net_arca0 oifname != @bridges ip saddr 172.18.0.0/16 masquerade\n"
        ));
        assert!(script.contains("delete element ip t internal { \"arca0\" }"));
        assert!(script.ends_with("add element ip t nets { \"arca0\" : jump net_arca0 }\n"));

        let internal = network_script(
            "t",
            &NetworkRules {
                internal: true,
                ..net.clone()
            },
        )
        .expect("valid network");
        assert!(internal.contains("ct status dnat"));
        assert!(!internal.contains("oifname != @bridges"));
        assert!(!internal.contains("delete element ip t internal"));

        let bad = NetworkRules {
            subnet: (Ipv4Addr::new(10, 0, 0, 0), 33),
            ..net
        };
        assert!(network_script("t", &bad).is_err());
    }

    #[test]
    fn ports_on_every_address_and_on_one_address_go_to_different_maps() {
        let any = publish_script("t", &[port(None)], &[]).expect("valid ports");
        assert_eq!(
            any,
            "add element ip t ports_any { tcp . 8080 : 10.214.1.2 . 80 }\n"
        );
        let unspecified =
            publish_script("t", &[port(Some(Ipv4Addr::UNSPECIFIED))], &[]).expect("valid ports");
        assert_eq!(any, unspecified);
        let one =
            publish_script("t", &[port(Some(Ipv4Addr::LOCALHOST))], &[]).expect("valid ports");
        assert_eq!(
            one,
            "add element ip t ports_ip { tcp . 127.0.0.1 . 8080 : 10.214.1.2 . 80 }\n"
        );
    }

    #[test]
    fn publish_replaces_existing_keys_by_deleting_them_first() {
        let script = publish_script("t", &[port(None)], &[port(None)]).expect("valid ports");
        assert_eq!(
            script,
            "delete element ip t ports_any { tcp . 8080 }\n\
             add element ip t ports_any { tcp . 8080 : 10.214.1.2 . 80 }\n"
        );
    }

    #[test]
    fn unpublish_is_idempotent_by_adding_before_deleting() {
        let script = unpublish_script("t", &[port(None)]).expect("valid ports");
        assert_eq!(
            script,
            "add element ip t ports_any { tcp . 8080 : 10.214.1.2 . 80 }\n\
             delete element ip t ports_any { tcp . 8080 }\n"
        );
    }

    #[test]
    fn port_zero_is_rejected() {
        let zero = Port {
            host_port: 0,
            ..port(None)
        };
        let err = publish_script("t", &[zero], &[]).expect_err("invalid ports");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}
