//! Host port reservation for published ports.
//!
//! Published ports are forwarded by nftables DNAT (see [`crate::firewall`]), so no process
//! listens on them. To keep Docker's guarantees anyway — a port already used on the host
//! gives `Bind for 0.0.0.0:8080 failed: port is already allocated`, and nothing else can
//! take the port while a container has it — arcad binds a socket to each published host
//! port and holds it in a [`Reservation`] for as long as the port is published:
//!
//! - TCP: bound, never listening, `SO_REUSEADDR` off. Another socket cannot bind the port
//!   (not even with `SO_REUSEADDR`: both sides would need it), and connections that the
//!   firewall does not forward are refused rather than accepted.
//! - UDP: bound. Datagrams the firewall forwards never reach it.
//!
//! Sockets are close-on-exec so shims and containers never inherit them. Dropping the
//! reservation releases the port. Reservations live in arcad's memory: after an arcad
//! restart the daemon must reserve the ports of its running containers again.
//!
//! Limit: without `SO_REUSEADDR` a port whose previous owner left TIME_WAIT connections
//! behind reads as allocated until they expire (about a minute).

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::os::fd::OwnedFd;
use std::str::FromStr;

use arca_model::ErrorKind;
use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, socket};
use serde::{Deserialize, Serialize};

/// The kernel's ephemeral port range, from which `-p <container port>` picks a host port.
const EPHEMERAL_RANGE_PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Docker's fallback when the kernel's range cannot be read.
const DEFAULT_EPHEMERAL_RANGE: RangeInclusive<u16> = 32768..=60999;

/// A transport protocol a port can be published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The lowercase name Docker uses (`"tcp"`, `"udp"`), also nftables' keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = PortError;

    fn from_str(s: &str) -> Result<Self, PortError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            _ => Err(PortError::Protocol(s.to_owned())),
        }
    }
}

/// Why a host port could not be reserved.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Docker's exact wording (moby's `portallocator.ErrPortAlreadyAllocated`): clients and
    /// users match on it.
    #[error("Bind for {host_ip}:{port} failed: port is already allocated")]
    AlreadyAllocated { host_ip: Ipv4Addr, port: u16 },
    /// moby's `portallocator.ErrAllPortsAllocated`.
    #[error("all ports are allocated")]
    AllAllocated { range: RangeInclusive<u16> },
    /// The host address is not one of this host's addresses.
    #[error("cannot bind {proto} {host_ip}:{port}: address not available on this host")]
    AddressNotAvailable {
        proto: Protocol,
        host_ip: Ipv4Addr,
        port: u16,
    },
    #[error("invalid host port range {start}-{end}")]
    InvalidRange { start: u16, end: u16 },
    #[error("invalid protocol {0:?}: want tcp or udp")]
    Protocol(String),
    #[error("failed to bind {proto} {host_ip}:{port}")]
    Bind {
        proto: Protocol,
        host_ip: Ipv4Addr,
        port: u16,
        #[source]
        source: Errno,
    },
}

impl PortError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::AlreadyAllocated { .. } | Self::AllAllocated { .. } => ErrorKind::Conflict,
            Self::AddressNotAvailable { .. } | Self::InvalidRange { .. } | Self::Protocol(_) => {
                ErrorKind::InvalidArgument
            }
            Self::Bind { .. } => ErrorKind::Internal,
        }
    }
}

/// A host port held for a published container port; dropping it releases the port.
#[derive(Debug)]
pub struct Reservation {
    proto: Protocol,
    host_ip: Option<Ipv4Addr>,
    port: u16,
    _socket: OwnedFd,
}

impl Reservation {
    pub fn proto(&self) -> Protocol {
        self.proto
    }

    /// The address the port is held on; `None` for every address (0.0.0.0).
    pub fn host_ip(&self) -> Option<Ipv4Addr> {
        self.host_ip
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Reserves `port` for `proto` on `host_ip` (`None` or 0.0.0.0: every address of the host).
///
/// Fails with [`PortError::AlreadyAllocated`] when any socket on the host holds the port,
/// a container's reservation or another program's.
pub fn reserve(
    proto: Protocol,
    host_ip: Option<Ipv4Addr>,
    port: u16,
) -> Result<Reservation, PortError> {
    if port == 0 {
        return Err(PortError::InvalidRange { start: 0, end: 0 });
    }
    let host_ip = host_ip.filter(|ip| !ip.is_unspecified());
    let socket = bind_socket(proto, host_ip, port)?;
    Ok(Reservation {
        proto,
        host_ip,
        port,
        _socket: socket,
    })
}

/// Reserves a free port for `proto` on `host_ip`, from `range` (Docker's `-p 8000-8010:80`)
/// or, when `None`, from the kernel's ephemeral range (`-p 80`, `-P`). The search starts at
/// a random port of the range so that a port just released is not handed out again at once.
pub fn reserve_any(
    proto: Protocol,
    host_ip: Option<Ipv4Addr>,
    range: Option<RangeInclusive<u16>>,
) -> Result<Reservation, PortError> {
    let range = range.unwrap_or_else(ephemeral_range);
    let (start, end) = (*range.start(), *range.end());
    if start == 0 || end < start {
        return Err(PortError::InvalidRange { start, end });
    }
    let len = u32::from(end - start) + 1;
    let offset = (RandomState::new().hash_one(std::process::id()) % u64::from(len)) as u32;
    for i in 0..len {
        let port = start + ((offset + i) % len) as u16;
        match reserve(proto, host_ip, port) {
            Err(PortError::AlreadyAllocated { .. }) => continue,
            other => return other,
        }
    }
    Err(PortError::AllAllocated { range })
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), or Docker's default
/// 32768-60999 when it cannot be read.
pub fn ephemeral_range() -> RangeInclusive<u16> {
    let parsed = std::fs::read_to_string(EPHEMERAL_RANGE_PATH)
        .ok()
        .and_then(|text| parse_range(&text));
    match parsed {
        Some(range) => range,
        None => {
            tracing::debug!(
                path = EPHEMERAL_RANGE_PATH,
                "cannot read the ephemeral port range, using Docker's default"
            );
            DEFAULT_EPHEMERAL_RANGE
        }
    }
}

fn parse_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut fields = text.split_whitespace().map(str::parse::<u16>);
    let start = fields.next()?.ok()?;
    let end = fields.next()?.ok()?;
    (start > 0 && start <= end).then_some(start..=end)
}

fn bind_socket(
    proto: Protocol,
    host_ip: Option<Ipv4Addr>,
    port: u16,
) -> Result<OwnedFd, PortError> {
    let ip = host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let bind_error = |source: Errno| match source {
        Errno::EADDRINUSE => PortError::AlreadyAllocated { host_ip: ip, port },
        Errno::EADDRNOTAVAIL => PortError::AddressNotAvailable {
            proto,
            host_ip: ip,
            port,
        },
        source => PortError::Bind {
            proto,
            host_ip: ip,
            port,
            source,
        },
    };
    let kind = match proto {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    // SO_REUSEADDR stays off (the default): with it, another SO_REUSEADDR socket could
    // bind the same port and listen on it.
    let socket =
        socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None).map_err(bind_error)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&socket),
        &SockaddrIn::from(SocketAddrV4::new(ip, port)),
    )
    .map_err(bind_error)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    #[test]
    fn reserved_tcp_port_cannot_be_reserved_again() {
        let first =
            reserve_any(Protocol::Tcp, Some(Ipv4Addr::LOCALHOST), None).expect("reserve a port");
        let err = reserve(Protocol::Tcp, Some(Ipv4Addr::LOCALHOST), first.port())
            .expect_err("reservation must fail");
        assert_eq!(
            err.to_string(),
            format!(
                "Bind for 127.0.0.1:{} failed: port is already allocated",
                first.port()
            )
        );
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn reserved_port_blocks_other_programs_even_with_reuseaddr() {
        let held = reserve_any(Protocol::Tcp, None, None).expect("reserve a port");
        // std's TcpListener sets SO_REUSEADDR, as most servers do.
        assert!(TcpListener::bind(("127.0.0.1", held.port())).is_err());
        assert!(TcpListener::bind(("0.0.0.0", held.port())).is_err());
    }

    #[test]
    fn port_in_use_by_another_program_is_already_allocated_on_any_address() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a listener");
        let port = listener.local_addr().expect("local address").port();
        let err = reserve(Protocol::Tcp, None, port).expect_err("reservation must fail");
        assert_eq!(
            err.to_string(),
            format!("Bind for 0.0.0.0:{port} failed: port is already allocated")
        );
    }

    #[test]
    fn dropping_a_reservation_releases_the_port() {
        let held =
            reserve_any(Protocol::Udp, Some(Ipv4Addr::LOCALHOST), None).expect("reserve a port");
        let port = held.port();
        assert!(UdpSocket::bind(("127.0.0.1", port)).is_err());
        drop(held);
        let again =
            reserve(Protocol::Udp, Some(Ipv4Addr::LOCALHOST), port).expect("reserve a port");
        assert_eq!(again.port(), port);
    }

    #[test]
    fn tcp_and_udp_reservations_are_independent() {
        let tcp =
            reserve_any(Protocol::Tcp, Some(Ipv4Addr::LOCALHOST), None).expect("reserve a port");
        let udp =
            reserve(Protocol::Udp, Some(Ipv4Addr::LOCALHOST), tcp.port()).expect("reserve a port");
        assert_eq!((udp.proto(), udp.port()), (Protocol::Udp, tcp.port()));
    }

    #[test]
    fn unspecified_host_ip_means_every_address() {
        let held =
            reserve_any(Protocol::Tcp, Some(Ipv4Addr::UNSPECIFIED), None).expect("reserve a port");
        assert_eq!(held.host_ip(), None);
    }

    #[test]
    fn reserve_any_picks_from_the_range_and_reports_exhaustion() {
        let first =
            reserve_any(Protocol::Tcp, Some(Ipv4Addr::LOCALHOST), None).expect("reserve a port");
        let port = first.port();
        let err = reserve_any(Protocol::Tcp, Some(Ipv4Addr::LOCALHOST), Some(port..=port))
            .expect_err("reservation must fail");
        assert_eq!(err.to_string(), "all ports are allocated");
        drop(first);
        let again = reserve_any(Protocol::Tcp, Some(Ipv4Addr::LOCALHOST), Some(port..=port));
        assert_eq!(again.expect("reserve the released port").port(), port);
    }

    #[test]
    fn reserve_any_rejects_empty_ranges() {
        #[allow(clippy::reversed_empty_ranges)]
        let err =
            reserve_any(Protocol::Tcp, None, Some(9000..=8000)).expect_err("reservation must fail");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(reserve(Protocol::Tcp, None, 0).is_err());
    }

    #[test]
    fn address_not_on_this_host_is_invalid_argument() {
        // TEST-NET-3, never assigned to a host; bind fails locally, nothing is sent.
        let err = reserve(Protocol::Tcp, Some(Ipv4Addr::new(203, 0, 113, 77)), 8080)
            .expect_err("reservation must fail");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn ephemeral_range_is_parsed_from_procfs_format() {
        assert_eq!(parse_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_range("1024 1024"), Some(1024..=1024));
        assert_eq!(parse_range("0 10"), None);
        assert_eq!(parse_range("garbage"), None);
        let range = ephemeral_range();
        assert!(range.start() <= range.end());
    }

    #[test]
    fn protocol_parses_and_prints_docker_names() {
        assert_eq!(
            "tcp".parse::<Protocol>().expect("a protocol"),
            Protocol::Tcp
        );
        assert_eq!(
            "UDP".parse::<Protocol>().expect("a protocol"),
            Protocol::Udp
        );
        assert!("sctp".parse::<Protocol>().is_err());
        assert_eq!(Protocol::Udp.to_string(), "udp");
        assert_eq!(
            serde_json::to_string(&Protocol::Tcp).expect("serialize"),
            "\"tcp\""
        );
    }
}
