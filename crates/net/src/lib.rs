//! Container networking on the host, as Docker's bridge driver does it, without a process
//! per published port.
//!
//! - [`netns`]: network namespaces made by arcad and bind-mounted under the exec root, so
//!   they outlive arcad's restarts; the shim's container joins one by path.
//! - [`link`]: bridges and veth pairs over rtnetlink: a bridge per network with the
//!   gateway address; per container a veth whose peer becomes `eth0` in the container's
//!   namespace with its address and default route.
//! - [`ipam`]: subnets, gateways, ranges and address allocation (pure, persisted by the
//!   caller).
//! - [`firewall`]: one nftables table of arca's own (nothing else on the host is touched):
//!   outbound NAT per network, isolation between networks, published ports as DNAT (from
//!   other hosts, from the host itself including 127.0.0.1, and hairpin from containers).
//! - [`ports`]: host port reservation (a bound socket held by arcad per published port, so
//!   "port is already allocated" is detected and nothing else can take the port).
//!
//! Everything here needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for namespaces and mounts).

pub mod firewall;
pub mod ipam;
pub mod link;
pub mod netns;
pub mod ports;
