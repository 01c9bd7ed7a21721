//! IPv4 address management, as Docker's default IPAM driver does it: subnets, gateways,
//! ranges and per-network address allocation.
//!
//! Everything here is pure data: the daemon owns the [`Pool`]s, persists them (they are
//! serde-serializable; a [`Subnet`] is stored as its `a.b.c.d/n` text) and calls
//! [`Pool::allocate`] / [`Pool::release`] as containers join and leave a network.
//!
//! Docker's behaviour kept on purpose:
//! - error messages are moby's (`invalid subnet 10.1.0.5/16: it should be 10.1.0.0/16`,
//!   `Address already in use`, `no available IPv4 addresses on this network's address
//!   pools`), so clients that match on them keep working;
//! - the network and broadcast addresses (except in a /31 or /32) and the gateway are never
//!   handed out;
//! - dynamic allocation comes from the `--ip-range` when there is one, and goes round-robin:
//!   it continues after the last address it handed out, so a just-released address is not
//!   reused at once (stale ARP entries and connection tracking of a removed container do not
//!   hit the next one);
//! - a requested address (`--ip`) may be anywhere in the subnet, also outside the range:
//!   Docker's documented way to keep static addresses apart from dynamic ones;
//! - new networks take the first of Docker's default pools (172.17.0.0/16 … 172.31.0.0/16,
//!   then 192.168.0.0/20 … 192.168.240.0/20) that overlaps no other network and no route of
//!   the host ([`pick_subnet`], [`host_routes`]).
//!
//! Limits: IPv4 only. The default gateway is the first address of the subnet (Docker takes
//! the first free address of the `--ip-range` when one is given, which can be its `.0`).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use arca_model::ErrorKind;
use serde::{Deserialize, Serialize};

/// What a CIDR block names in an error message, as moby words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `--subnet`.
    Subnet,
    /// `--ip-range`.
    IpRange,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Subnet => "subnet",
            Self::IpRange => "ip-range",
        })
    }
}

/// Why a subnet, gateway, range or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid {role} {input}: invalid CIDR block notation")]
    InvalidCidr { role: Role, input: String },
    #[error("invalid {role} {input}: only IPv4 is supported")]
    Ipv6 { role: Role, input: String },
    #[error("invalid {role} {input}: it should be {masked}")]
    HostBitsSet {
        role: Role,
        input: String,
        masked: Subnet,
    },
    #[error("invalid gateway {gateway}: parent subnet {subnet} doesn't contain this address")]
    GatewayOutside { gateway: Ipv4Addr, subnet: Subnet },
    #[error("failed to allocate gateway ({gateway}): Address already in use")]
    GatewayReserved { gateway: Ipv4Addr },
    #[error("invalid ip-range {range}: CIDR block is bigger than its parent subnet {subnet}")]
    RangeTooBig { range: Subnet, subnet: Subnet },
    #[error("invalid ip-range {range}: parent subnet {subnet} doesn't contain ip-range")]
    RangeOutside { range: Subnet, subnet: Subnet },
    #[error("invalid address {address}: It does not belong to any of this network's subnets")]
    AddressOutside { address: Ipv4Addr },
    #[error("Address already in use")]
    AddressInUse { address: Ipv4Addr },
    #[error("no available IPv4 addresses on this network's address pools")]
    Exhausted,
}

impl IpamError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            // moby: ErrIPAlreadyAllocated is a Forbidden error.
            Self::AddressInUse { .. } => ErrorKind::Forbidden,
            Self::Exhausted => ErrorKind::Unavailable,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// An IPv4 network: a network address with no host bits set, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// The subnet `network/prefix`; `None` if the prefix is over 32 or host bits are set.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Option<Subnet> {
        let subnet = Subnet::containing(network, prefix)?;
        (subnet.network == network).then_some(subnet)
    }

    /// The subnet of length `prefix` that contains `address` (host bits cleared); `None` if
    /// the prefix is over 32.
    pub fn containing(address: Ipv4Addr, prefix: u8) -> Option<Subnet> {
        (prefix <= 32).then(|| Subnet {
            network: Ipv4Addr::from(u32::from(address) & mask(prefix)),
            prefix,
        })
    }

    /// Parses `a.b.c.d/n`, naming the block as `role` in errors (`invalid ip-range …`).
    pub fn parse(input: &str, role: Role) -> Result<Subnet, IpamError> {
        let invalid = || IpamError::InvalidCidr {
            role,
            input: input.to_owned(),
        };
        let (addr, prefix) = input.split_once('/').ok_or_else(invalid)?;
        if addr.contains(':') {
            return Err(IpamError::Ipv6 {
                role,
                input: input.to_owned(),
            });
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        // Go's netip.ParsePrefix: decimal digits only, no sign, no leading zeros.
        if prefix.is_empty()
            || !prefix.bytes().all(|b| b.is_ascii_digit())
            || (prefix.len() > 1 && prefix.starts_with('0'))
        {
            return Err(invalid());
        }
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        let subnet = Subnet::containing(addr, prefix).ok_or_else(invalid)?;
        if subnet.network != addr {
            return Err(IpamError::HostBitsSet {
                role,
                input: input.to_owned(),
                masked: subnet,
            });
        }
        Ok(subnet)
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length (0–32).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask, e.g. 255.255.0.0 for a /16.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    /// The last address (the broadcast address when the prefix is 30 or less).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.last())
    }

    /// The first address usable by a host: the network address + 1, or the network address
    /// itself in a /31 or /32.
    pub fn first_host(&self) -> Ipv4Addr {
        if self.prefix >= 31 {
            self.network
        } else {
            Ipv4Addr::from(u32::from(self.network) + 1)
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether `other` lies entirely inside this subnet.
    pub fn contains_subnet(&self, other: &Subnet) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    fn first(&self) -> u32 {
        u32::from(self.network)
    }

    fn last(&self) -> u32 {
        u32::from(self.network) | !mask(self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = IpamError;

    /// Parses `a.b.c.d/n` with moby's `--subnet` errors.
    fn from_str(s: &str) -> Result<Subnet, IpamError> {
        Subnet::parse(s, Role::Subnet)
    }
}

impl TryFrom<String> for Subnet {
    type Error = IpamError;

    fn try_from(s: String) -> Result<Subnet, IpamError> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// The addresses of one network: its subnet, gateway, optional dynamic range and the
/// addresses handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// Where dynamic allocation takes addresses from (`--ip-range`); the subnet if `None`.
    pub range: Option<Subnet>,
    pub allocated: BTreeSet<Ipv4Addr>,
    /// The last address handed out dynamically: the next search starts after it.
    #[serde(default)]
    pub last: Option<Ipv4Addr>,
}

impl Pool {
    /// A pool for `subnet`; the gateway defaults to the subnet's first address.
    pub fn new(
        subnet: Subnet,
        gateway: Option<Ipv4Addr>,
        range: Option<Subnet>,
    ) -> Result<Pool, IpamError> {
        if let Some(range) = range {
            if range.prefix < subnet.prefix {
                return Err(IpamError::RangeTooBig { range, subnet });
            }
            if !subnet.contains(range.network) {
                return Err(IpamError::RangeOutside { range, subnet });
            }
        }
        let gateway = gateway.unwrap_or_else(|| subnet.first_host());
        if !subnet.contains(gateway) {
            return Err(IpamError::GatewayOutside { gateway, subnet });
        }
        let pool = Pool {
            subnet,
            gateway,
            range,
            allocated: BTreeSet::new(),
            last: None,
        };
        if pool.reserved(gateway) {
            return Err(IpamError::GatewayReserved { gateway });
        }
        Ok(pool)
    }

    /// Hands out `requested`, or the next free address of the range (round-robin).
    pub fn allocate(&mut self, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        if let Some(address) = requested {
            if !self.subnet.contains(address) {
                return Err(IpamError::AddressOutside { address });
            }
            if address == self.gateway
                || self.reserved(address)
                || self.allocated.contains(&address)
            {
                return Err(IpamError::AddressInUse { address });
            }
            self.allocated.insert(address);
            return Ok(address);
        }
        let range = self.range.unwrap_or(self.subnet);
        let (lo, hi) = (range.first(), range.last());
        let start = match self.last.map(u32::from) {
            Some(last) if last >= lo && last < hi => last + 1,
            _ => lo,
        };
        let found = self
            .first_free(start, hi)
            .or_else(|| {
                (start > lo)
                    .then(|| self.first_free(lo, start - 1))
                    .flatten()
            })
            .ok_or(IpamError::Exhausted)?;
        self.allocated.insert(found);
        self.last = Some(found);
        Ok(found)
    }

    /// Gives `ip` back; returns whether it was allocated.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        self.allocated.remove(&ip)
    }

    /// Whether `ip` is the subnet's network or broadcast address (none in a /31 or /32).
    fn reserved(&self, ip: Ipv4Addr) -> bool {
        self.subnet.prefix <= 30 && (ip == self.subnet.network || ip == self.subnet.broadcast())
    }

    /// The lowest address in `lo..=hi` that is neither reserved, the gateway nor allocated.
    fn first_free(&self, lo: u32, hi: u32) -> Option<Ipv4Addr> {
        let mut candidate = lo;
        // Each step skips one taken address, so this runs at most (allocated + 3) times.
        loop {
            if candidate > hi {
                return None;
            }
            let ip = Ipv4Addr::from(candidate);
            let taken = ip == self.gateway || self.reserved(ip) || self.allocated.contains(&ip);
            if !taken {
                return Some(ip);
            }
            candidate = candidate.checked_add(1)?;
        }
    }
}

/// Docker's default local address pools, in the order it takes them.
pub fn default_pools() -> impl Iterator<Item = Subnet> {
    let b16 = (17u8..=31).map(|b| Subnet {
        network: Ipv4Addr::new(172, b, 0, 0),
        prefix: 16,
    });
    let c20 = (0u8..16).map(|i| Subnet {
        network: Ipv4Addr::new(192, 168, i * 16, 0),
        prefix: 20,
    });
    b16.chain(c20)
}

/// The first of Docker's default pools that overlaps none of `taken` (the subnets of the
/// other networks and, through [`host_routes`], the host's routes).
pub fn pick_subnet(taken: &[Subnet]) -> Option<Subnet> {
    default_pools().find(|candidate| !taken.iter().any(|t| t.overlaps(candidate)))
}

/// The destinations of the host's IPv4 routes in the main table (from `/proc/net/route` of
/// the caller's network namespace), without default routes: subnets a new network should
/// avoid. Empty if the table cannot be read.
pub fn host_routes() -> Vec<Subnet> {
    match std::fs::read_to_string("/proc/net/route") {
        Ok(text) => parse_proc_routes(&text),
        Err(error) => {
            tracing::warn!(%error, "cannot read /proc/net/route; not avoiding host routes");
            Vec::new()
        }
    }
}

/// Parses the text of `/proc/net/route`: destinations and masks are hexadecimal renderings
/// of the kernel's network-order words, so native byte order gives the address bytes back.
pub fn parse_proc_routes(text: &str) -> Vec<Subnet> {
    let mut routes = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(dst), Some(mask)) = (fields.get(1), fields.get(7)) else {
            continue;
        };
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(dst, 16), u32::from_str_radix(mask, 16))
        else {
            continue;
        };
        let mask = u32::from_be_bytes(mask.to_ne_bytes());
        let prefix = mask.leading_ones() as u8;
        if prefix == 0 {
            continue;
        }
        if let Some(subnet) = Subnet::containing(Ipv4Addr::from(dst.to_ne_bytes()), prefix)
            && !routes.contains(&subnet)
        {
            routes.push(subnet);
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect(s)
    }

    fn net(s: &str) -> Subnet {
        s.parse().expect(s)
    }

    #[test]
    fn subnet_parses_and_displays() {
        let s = net("10.1.0.0/16");
        assert_eq!(s.network(), ip("10.1.0.0"));
        assert_eq!(s.prefix(), 16);
        assert_eq!(s.to_string(), "10.1.0.0/16");
        assert_eq!(s.netmask(), ip("255.255.0.0"));
        assert_eq!(s.broadcast(), ip("10.1.255.255"));
        assert_eq!(net("0.0.0.0/0").broadcast(), ip("255.255.255.255"));
        assert_eq!(net("10.0.0.7/32").broadcast(), ip("10.0.0.7"));
    }

    #[test]
    fn subnet_with_host_bits_is_refused_with_mobys_message() {
        let err = "10.1.0.5/16"
            .parse::<Subnet>()
            .expect_err("must be refused");
        assert_eq!(
            err.to_string(),
            "invalid subnet 10.1.0.5/16: it should be 10.1.0.0/16"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let err = Subnet::parse("10.1.2.3/24", Role::IpRange).expect_err("must be refused");
        assert_eq!(
            err.to_string(),
            "invalid ip-range 10.1.2.3/24: it should be 10.1.2.0/24"
        );
    }

    #[test]
    fn malformed_subnets_are_invalid_cidr_notation() {
        for input in [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0/8",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "x/8",
            "10.0.0.0/8/8",
            " 10.0.0.0/8",
            "300.0.0.0/8",
        ] {
            let err = input.parse::<Subnet>().expect_err("must be refused");
            assert_eq!(
                err.to_string(),
                format!("invalid subnet {input}: invalid CIDR block notation"),
                "{input:?}"
            );
        }
        assert!(matches!(
            "fd00::/64".parse::<Subnet>(),
            Err(IpamError::Ipv6 { .. })
        ));
    }

    #[test]
    fn subnet_contains_and_overlaps() {
        let a = net("10.1.0.0/16");
        assert!(a.contains(ip("10.1.255.3")));
        assert!(!a.contains(ip("10.2.0.0")));
        assert!(a.overlaps(&net("10.1.4.0/24")));
        assert!(net("10.1.4.0/24").overlaps(&a));
        assert!(a.overlaps(&net("10.0.0.0/8")));
        assert!(!a.overlaps(&net("10.2.0.0/16")));
        assert!(net("0.0.0.0/0").overlaps(&a));
        assert!(a.contains_subnet(&net("10.1.4.0/24")));
        assert!(!net("10.1.4.0/24").contains_subnet(&a));
    }

    #[test]
    fn subnet_serializes_as_text() {
        let s = net("172.18.0.0/16");
        assert_eq!(
            serde_json::to_string(&s).expect("serialize"),
            "\"172.18.0.0/16\""
        );
        assert_eq!(
            serde_json::from_str::<Subnet>("\"172.18.0.0/16\"").expect("deserialize"),
            s
        );
        assert!(serde_json::from_str::<Subnet>("\"172.18.0.1/16\"").is_err());
    }

    #[test]
    fn pool_defaults_gateway_to_first_address() {
        let pool = Pool::new(net("172.18.0.0/16"), None, None).expect("valid pool");
        assert_eq!(pool.gateway, ip("172.18.0.1"));
    }

    #[test]
    fn pool_refuses_gateway_outside_subnet() {
        let err =
            Pool::new(net("10.1.0.0/16"), Some(ip("10.2.0.1")), None).expect_err("must be refused");
        assert_eq!(
            err.to_string(),
            "invalid gateway 10.2.0.1: parent subnet 10.1.0.0/16 doesn't contain this address"
        );
        let err =
            Pool::new(net("10.1.0.0/16"), Some(ip("10.1.0.0")), None).expect_err("must be refused");
        assert_eq!(
            err.to_string(),
            "failed to allocate gateway (10.1.0.0): Address already in use"
        );
    }

    #[test]
    fn pool_refuses_range_outside_or_bigger_than_subnet() {
        let err = Pool::new(net("10.1.0.0/16"), None, Some(net("10.0.0.0/8")))
            .expect_err("must be refused");
        assert_eq!(
            err.to_string(),
            "invalid ip-range 10.0.0.0/8: CIDR block is bigger than its parent subnet 10.1.0.0/16"
        );
        let err = Pool::new(net("10.1.0.0/16"), None, Some(net("10.2.0.0/24")))
            .expect_err("must be refused");
        assert_eq!(
            err.to_string(),
            "invalid ip-range 10.2.0.0/24: parent subnet 10.1.0.0/16 doesn't contain ip-range"
        );
        assert!(Pool::new(net("10.1.0.0/16"), None, Some(net("10.1.0.0/16"))).is_ok());
    }

    #[test]
    fn allocation_starts_after_gateway_and_skips_reserved() {
        let mut pool = Pool::new(net("10.0.0.0/24"), None, None).expect("valid pool");
        assert_eq!(pool.allocate(None).expect("free address"), ip("10.0.0.2"));
        assert_eq!(pool.allocate(None).expect("free address"), ip("10.0.0.3"));
        let mut pool =
            Pool::new(net("10.0.0.0/24"), Some(ip("10.0.0.254")), None).expect("valid pool");
        assert_eq!(pool.allocate(None).expect("free address"), ip("10.0.0.1"));
    }

    #[test]
    fn allocation_goes_round_robin_before_reusing() {
        let mut pool = Pool::new(net("10.0.0.0/29"), None, None).expect("valid pool");
        // .0 network, .1 gateway, .7 broadcast: .2 to .6 are free.
        let got: Vec<_> = (0..5)
            .map(|_| pool.allocate(None).expect("free address"))
            .collect();
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(ip)
        );
        let err = pool.allocate(None).expect_err("must be refused");
        assert_eq!(
            err.to_string(),
            "no available IPv4 addresses on this network's address pools"
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(pool.release(ip("10.0.0.3")));
        assert!(pool.release(ip("10.0.0.5")));
        assert!(!pool.release(ip("10.0.0.5")));
        // After .6 the search wraps: .3 first, then .5.
        assert_eq!(pool.allocate(None).expect("free address"), ip("10.0.0.3"));
        assert!(pool.release(ip("10.0.0.4")));
        assert_eq!(pool.allocate(None).expect("free address"), ip("10.0.0.4"));
        assert_eq!(pool.allocate(None).expect("free address"), ip("10.0.0.5"));
    }

    #[test]
    fn released_address_is_not_reused_at_once() {
        let mut pool = Pool::new(net("10.0.0.0/24"), None, None).expect("valid pool");
        let a = pool.allocate(None).expect("free address");
        pool.release(a);
        assert_ne!(pool.allocate(None).expect("free address"), a);
    }

    #[test]
    fn requested_address_must_be_free_and_in_subnet() {
        let mut pool =
            Pool::new(net("10.0.0.0/24"), None, Some(net("10.0.0.128/25"))).expect("valid pool");
        assert_eq!(
            pool.allocate(Some(ip("10.0.0.9"))).expect("free address"),
            ip("10.0.0.9")
        );
        for taken in ["10.0.0.9", "10.0.0.1", "10.0.0.0", "10.0.0.255"] {
            let err = pool.allocate(Some(ip(taken))).expect_err("must be refused");
            assert_eq!(err.to_string(), "Address already in use", "{taken}");
            assert_eq!(err.kind(), ErrorKind::Forbidden);
        }
        let err = pool
            .allocate(Some(ip("10.0.1.1")))
            .expect_err("must be refused");
        assert_eq!(
            err.to_string(),
            "invalid address 10.0.1.1: It does not belong to any of this network's subnets"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn dynamic_allocation_stays_in_range() {
        let mut pool =
            Pool::new(net("10.0.0.0/24"), None, Some(net("10.0.0.252/30"))).expect("valid pool");
        let got: Vec<_> = (0..3)
            .map(|_| pool.allocate(None).expect("free address"))
            .collect();
        // .255 is the subnet's broadcast address.
        assert_eq!(got, ["10.0.0.252", "10.0.0.253", "10.0.0.254"].map(ip));
        assert!(matches!(pool.allocate(None), Err(IpamError::Exhausted)));
    }

    #[test]
    fn point_to_point_and_host_subnets_use_every_address() {
        let mut pool = Pool::new(net("10.0.0.0/31"), None, None).expect("valid pool");
        assert_eq!(pool.gateway, ip("10.0.0.0"));
        assert_eq!(pool.allocate(None).expect("free address"), ip("10.0.0.1"));
        assert!(pool.allocate(None).is_err());
        let mut pool = Pool::new(net("10.0.0.0/32"), None, None).expect("valid pool");
        assert!(pool.allocate(None).is_err());
    }

    #[test]
    fn allocation_at_top_of_address_space_does_not_overflow() {
        let mut pool = Pool::new(net("255.255.255.252/30"), None, None).expect("valid pool");
        assert_eq!(
            pool.allocate(None).expect("free address"),
            ip("255.255.255.254")
        );
        assert!(pool.allocate(None).is_err());
        let mut pool = Pool::new(net("255.255.255.254/31"), None, None).expect("valid pool");
        assert_eq!(
            pool.allocate(None).expect("free address"),
            ip("255.255.255.255")
        );
        assert!(pool.allocate(None).is_err());
    }

    #[test]
    fn pool_round_trips_through_json() {
        let mut pool =
            Pool::new(net("10.0.0.0/24"), None, Some(net("10.0.0.0/25"))).expect("valid pool");
        pool.allocate(None).expect("free address");
        pool.allocate(Some(ip("10.0.0.200"))).expect("free address");
        let json = serde_json::to_string(&pool).expect("serialize");
        let back: Pool = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, pool);
    }

    #[test]
    fn pick_subnet_takes_dockers_pools_in_order() {
        assert_eq!(pick_subnet(&[]), Some(net("172.17.0.0/16")));
        assert_eq!(
            pick_subnet(&[net("172.17.0.0/16"), net("172.18.5.0/24")]),
            Some(net("172.19.0.0/16"))
        );
        assert_eq!(
            pick_subnet(&[net("172.16.0.0/12")]),
            Some(net("192.168.0.0/20"))
        );
        assert_eq!(
            pick_subnet(&[net("172.16.0.0/12"), net("192.168.0.0/19")]),
            Some(net("192.168.32.0/20"))
        );
        assert_eq!(pick_subnet(&[net("0.0.0.0/0")]), None);
        assert_eq!(default_pools().count(), 31);
    }

    #[test]
    fn proc_routes_are_parsed_without_default_route() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            br0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_proc_routes(text),
                vec![net("192.0.2.0/24"), net("172.17.0.0/16")]
            );
        }
    }

    #[test]
    fn host_routes_reads_this_namespace() {
        // Whatever the host has, every entry is a proper subnet and no default route.
        for route in host_routes() {
            assert!(route.prefix() > 0);
            assert_eq!(Subnet::new(route.network(), route.prefix()), Some(route));
        }
    }
}
