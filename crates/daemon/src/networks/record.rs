//! What arcad keeps of a network on disk: `<root>/networks/<id>.json`, one file per
//! network, written atomically. The endpoints of running containers are part of it, so an
//! arcad restart knows which addresses are taken and what to tear down.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

use arca_net::ipam::Pool;
use serde::{Deserialize, Serialize};

/// Version of the record format.
pub const VERSION: u32 = 1;

/// Docker's network drivers that arca has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
    Host,
    Null,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub version: u32,
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    pub driver: Driver,
    /// RFC 3339.
    pub created: String,
    /// One of the networks every daemon has (`bridge`, `host`, `none`): never removed.
    pub builtin: bool,
    pub internal: bool,
    pub attachable: bool,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub options: HashMap<String, String>,
    /// The bridge interface (bridge driver).
    pub bridge: Option<String>,
    /// Subnet, gateway, range and the addresses in use (bridge driver).
    pub pool: Option<Pool>,
    /// Running containers on this network, by container ID.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// A running container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 64 hex digits, Docker's `EndpointID`.
    pub id: String,
    /// The container's name (without `/`), for DNS and `network inspect`.
    pub name: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// The host end of the veth.
    pub host_ifname: String,
    /// The interface inside the container (`eth0`, …).
    pub ifname: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Published ports (first network of a container only).
    #[serde(default)]
    pub ports: Vec<Published>,
}

/// A published port as it was bound (for inspect's `NetworkSettings.Ports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub proto: String,
    pub container_port: u16,
    /// Empty = all addresses.
    pub host_ip: String,
    pub host_port: u16,
}

impl NetworkRecord {
    pub fn load(path: &Path) -> std::io::Result<NetworkRecord> {
        let bytes = std::fs::read(path)?;
        let rec: NetworkRecord = serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if rec.version != VERSION {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unsupported network record version {}", rec.version),
            ));
        }
        Ok(rec)
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::paths::write_atomic(&dir.join(format!("{}.json", self.id)), &bytes, true)
    }

    /// The gateway, for bridge networks.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.pool.as_ref().map(|p| p.gateway)
    }
}
