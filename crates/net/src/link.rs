//! Bridges and veth pairs over rtnetlink, without spawning a process.
//!
//! [`Netlink`] is arcad's handle on the host's network namespace (the namespace of the
//! thread that made it): a bridge per network ([`Netlink::ensure_bridge`]) and per container
//! a veth pair ([`Netlink::attach`]) whose host end is a port of the bridge and whose peer
//! becomes `eth0` in the container's namespace, with its address and default route.
//!
//! A start with networking has to stay within a few milliseconds of one without, so attach
//! takes few round trips: the veth is created with its peer already named, addressed (MAC),
//! sized (MTU) and inside the container's namespace, and its host end already a port of the
//! bridge and up, in one request. Then a thread that entered the namespace brings the peer
//! up and adds the address and the default route over a netlink socket of its own (four
//! small requests).
//! If anything fails, the veth is deleted, which takes its peer with it.
//!
//! Deleting a veth costs the kernel RCU grace periods: [`Netlink::detach`] takes 15–35 ms
//! (attach about 1 ms), so a stop path should not wait for it (the handle is `Clone`: spawn
//! the detach). Attach is not cancel-safe: a dropped attach future can leave its veth; detach
//! it.
//!
//! Limits: IPv4 only; the host end gets a kernel-chosen MAC.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use arca_model::ErrorKind;
use futures_util::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::netns::{self, NetnsError};

const EEXIST: i32 = Errno::EEXIST as i32;
const ENODEV: i32 = Errno::ENODEV as i32;

/// The longest interface name the kernel takes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// Why a bridge or veth could not be set up or removed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("netlink needs a tokio runtime")]
    NoRuntime,
    #[error("failed to open a netlink socket")]
    Connect(#[source] io::Error),
    #[error("invalid interface name {name:?}")]
    InvalidName { name: String },
    #[error("bridge {name} does not exist")]
    BridgeNotFound { name: String },
    #[error("{name} exists and is not a bridge")]
    NotABridge { name: String },
    #[error("interface {name} already exists")]
    Exists { name: String },
    #[error("failed to {op} {name}")]
    Netlink {
        op: &'static str,
        name: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("failed to {op} {name} in network namespace {netns}")]
    InNetns {
        op: &'static str,
        name: String,
        netns: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl LinkError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidName { .. } => ErrorKind::InvalidArgument,
            Self::BridgeNotFound { .. } => ErrorKind::NotFound,
            Self::NotABridge { .. } | Self::Exists { .. } => ErrorKind::Conflict,
            Self::Netns(e) => e.kind(),
            Self::NoRuntime | Self::Connect(_) | Self::Netlink { .. } | Self::InNetns { .. } => {
                ErrorKind::Internal
            }
        }
    }

    fn netlink(op: &'static str, name: &str) -> impl FnOnce(rtnetlink::Error) -> Self {
        let name = name.to_owned();
        move |source| Self::Netlink { op, name, source }
    }
}

/// A container's link to a bridge: what [`Netlink::attach`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    /// The bridge the host end joins; it must exist.
    pub bridge: String,
    /// The host end's name (at most 15 bytes), e.g. `veth` + 11 hex digits.
    pub host_ifname: String,
    /// The container's network namespace (see [`crate::netns`]).
    pub netns: PathBuf,
    /// The peer's name inside the namespace, e.g. `eth0`.
    pub ifname: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// The default route's next hop; no default route if `None` (internal networks).
    pub gateway: Option<Ipv4Addr>,
    /// The peer's MAC address, e.g. [`mac_for`] its address.
    pub mac: [u8; 6],
    /// Both ends' MTU; the kernel's default (1500) if `None`.
    pub mtu: Option<u32>,
    /// Hairpin mode on the bridge port, so traffic the host DNATs back to the container it
    /// came from (a container reaching its own published port) is forwarded out of the
    /// port it came in by. Docker sets it whenever it runs without its userland proxy.
    pub hairpin: bool,
}

/// Docker's MAC address for a container address: 02:42 and the four address bytes (locally
/// administered, unicast; unique on a network as long as its addresses are).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// rtnetlink over one socket in the network namespace of the thread that made it.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens the socket and spawns its connection task on the current tokio runtime.
    pub fn new() -> Result<Netlink, LinkError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LinkError::NoRuntime)?;
        let (connection, handle, _) = rtnetlink::new_connection().map_err(LinkError::Connect)?;
        // The task ends when the last clone of the handle is dropped.
        runtime.spawn(connection);
        Ok(Netlink { handle })
    }

    /// Makes sure bridge `name` exists with address `gateway/prefix` and is up. An existing
    /// bridge is kept as it is, with its other addresses; the address is added if absent.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        gateway: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), LinkError> {
        check_name(name)?;
        // A fixed MAC: otherwise the bridge takes the lowest of its ports', and changes it
        // as containers come and go, which breaks the containers' ARP caches.
        let create = LinkBridge::new(name)
            .address(mac_for(gateway).to_vec())
            .build();
        let created = match self.handle.link().add(create).execute().await {
            Ok(()) => true,
            Err(e) if errno(&e) == Some(EEXIST) => false,
            Err(e) => return Err(LinkError::netlink("create bridge", name)(e)),
        };
        let link = self
            .get(name)
            .await?
            .ok_or_else(|| LinkError::BridgeNotFound {
                name: name.to_owned(),
            })?;
        if !is_bridge(&link) {
            return Err(LinkError::NotABridge {
                name: name.to_owned(),
            });
        }
        let index = link.header.index;
        match self
            .handle
            .address()
            .add(index, IpAddr::V4(gateway), prefix)
            .execute()
            .await
        {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(EEXIST) => {}
            Err(e) => return Err(LinkError::netlink("add gateway address to", name)(e)),
        }
        if !link.header.flags.contains(LinkFlags::Up) {
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .map_err(LinkError::netlink("bring up", name))?;
        }
        if created {
            tracing::info!(bridge = name, %gateway, prefix, "created bridge");
        }
        Ok(())
    }

    /// Deletes link `name` (with its peer, for a veth). A missing link is not an error.
    pub async fn delete_link(&self, name: &str) -> Result<(), LinkError> {
        check_name(name)?;
        let message = LinkUnspec::new_with_name(name).build();
        match self.handle.link().del_with_message(message).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(LinkError::netlink("delete", name)(e)),
        }
    }

    /// Sets up a container's veth pair (see the module docs); on failure nothing is left.
    pub async fn attach(&self, req: &Attach) -> Result<(), LinkError> {
        check_name(&req.host_ifname)?;
        check_name(&req.ifname)?;
        let bridge = self
            .get(&req.bridge)
            .await?
            .ok_or_else(|| LinkError::BridgeNotFound {
                name: req.bridge.clone(),
            })?;
        let ns = std::fs::File::open(&req.netns).map_err(|e| {
            LinkError::Netns(match e.kind() {
                io::ErrorKind::NotFound => NetnsError::NotFound {
                    path: req.netns.clone(),
                },
                _ => NetnsError::Io {
                    op: "open",
                    path: req.netns.clone(),
                    source: e,
                },
            })
        })?;

        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(req.ifname.clone())
            .address(req.mac.to_vec())
            // Not up yet: veth refuses to open an end before both exist (ENOTCONN), and
            // the peer is made first. configure_peer brings it up.
            .setns_by_fd(ns.as_raw_fd());
        let mut host = LinkVeth::new(&req.host_ifname, &req.ifname)
            .controller(bridge.header.index)
            .up();
        if let Some(mtu) = req.mtu {
            peer = peer.mtu(mtu);
            host = host.mtu(mtu);
        }
        let host = host
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        match self.handle.link().add(host).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(EEXIST) => {
                return Err(LinkError::Exists {
                    name: format!(
                        "{} (or {} in {})",
                        req.host_ifname,
                        req.ifname,
                        req.netns.display()
                    ),
                });
            }
            Err(e) => return Err(LinkError::netlink("create veth", &req.host_ifname)(e)),
        }
        drop(ns);
        match self.configure(req).await {
            Ok(()) => Ok(()),
            Err(failure) => {
                if let Err(error) = self.delete_link(&req.host_ifname).await {
                    tracing::warn!(veth = %req.host_ifname, %error, "failed to delete veth after a failed attach");
                }
                Err(failure)
            }
        }
    }

    /// The rest of attach, once the veth exists: the port's hairpin mode, then the peer
    /// inside the namespace.
    async fn configure(&self, req: &Attach) -> Result<(), LinkError> {
        if req.hairpin {
            // The kernel ignores port settings in the request that creates a link.
            let port = LinkBridgePort::new(0)
                .name(req.host_ifname.clone())
                .hairpin(true)
                .build();
            self.handle
                .link()
                .set_port(port)
                .execute()
                .await
                .map_err(LinkError::netlink("set hairpin mode on", &req.host_ifname))?;
        }

        let (ifname, address, prefix, gateway) =
            (req.ifname.clone(), req.address, req.prefix, req.gateway);
        let configured = netns::run_in_async(&req.netns, move || {
            configure_peer(&ifname, address, prefix, gateway)
        })
        .await;
        match configured {
            Ok(Ok(())) => Ok(()),
            Ok(Err((op, source))) => Err(LinkError::InNetns {
                op,
                name: req.ifname.clone(),
                netns: req.netns.clone(),
                source,
            }),
            Err(e) => Err(LinkError::Netns(e)),
        }
    }

    /// Deletes a container's veth pair by its host end. A missing veth is not an error.
    pub async fn detach(&self, host_ifname: &str) -> Result<(), LinkError> {
        self.delete_link(host_ifname).await
    }

    /// The link named `name`, if it exists.
    async fn get(&self, name: &str) -> Result<Option<LinkMessage>, LinkError> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(LinkError::netlink("look up", name)(e)),
        }
    }
}

/// Runs inside the container's namespace: brings `ifname` up, adds its
/// address and the default route. Returns the failed step with its error.
fn configure_peer(
    ifname: &str,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<(), (&'static str, io::Error)> {
    let mut rtnl = rtnl::Rtnl::open().map_err(|e| ("open netlink for", e))?;
    let link = rtnl.link_by_name(ifname).map_err(|e| ("look up", e))?;
    let index = link.header.index;
    if !link.header.flags.contains(LinkFlags::Up) {
        rtnl.set_up(index).map_err(|e| ("bring up", e))?;
    }
    rtnl.add_address(index, address, prefix)
        .map_err(|e| ("add address to", e))?;
    if let Some(gateway) = gateway {
        rtnl.add_default_route(index, gateway)
            .map_err(|e| ("add default route via", e))?;
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), LinkError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if valid {
        Ok(())
    } else {
        Err(LinkError::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn is_bridge(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|attr| match attr {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|info| matches!(info, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

/// The errno of a netlink error reply, if that is what `e` is.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.to_io().raw_os_error(),
        _ => None,
    }
}

/// Blocking rtnetlink on a socket of the calling thread's namespace, for the short-lived
/// threads that work inside another namespace (no runtime to start there).
pub(crate) mod rtnl {
    use std::io;
    use std::net::Ipv4Addr;

    use rtnetlink::packet_core::{
        NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
    };
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::link::LinkMessage;
    use rtnetlink::sys::protocols::NETLINK_ROUTE;
    use rtnetlink::sys::{Socket, SocketAddr};
    use rtnetlink::{AddressMessageBuilder, LinkUnspec, RouteMessageBuilder};

    /// The loopback interface's index in every namespace.
    pub(crate) const LOOPBACK_INDEX: u32 = 1;

    pub(crate) struct Rtnl {
        socket: Socket,
        sequence: u32,
        buf: Vec<u8>,
    }

    impl Rtnl {
        pub(crate) fn open() -> io::Result<Rtnl> {
            let mut socket = Socket::new(NETLINK_ROUTE)?;
            socket.bind_auto()?;
            socket.connect(&SocketAddr::new(0, 0))?;
            Ok(Rtnl {
                socket,
                sequence: 0,
                buf: Vec::with_capacity(32 * 1024),
            })
        }

        pub(crate) fn set_up(&mut self, index: u32) -> io::Result<()> {
            let message = LinkUnspec::new_with_index(index).up().build();
            self.request(RouteNetlinkMessage::SetLink(message), 0)
                .map(drop)
        }

        pub(crate) fn link_by_name(&mut self, name: &str) -> io::Result<LinkMessage> {
            let message = LinkUnspec::new_with_name(name).build();
            self.request(RouteNetlinkMessage::GetLink(message), 0)?
                .into_iter()
                .find_map(|m| match m {
                    RouteNetlinkMessage::NewLink(link) => Some(link),
                    _ => None,
                })
                .ok_or_else(|| io::Error::other("no link in the reply"))
        }

        pub(crate) fn add_address(
            &mut self,
            index: u32,
            address: Ipv4Addr,
            prefix: u8,
        ) -> io::Result<()> {
            let message = AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(address, prefix)
                .build();
            self.request(
                RouteNetlinkMessage::NewAddress(message),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map(drop)
        }

        pub(crate) fn add_default_route(
            &mut self,
            index: u32,
            gateway: Ipv4Addr,
        ) -> io::Result<()> {
            let message = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .build();
            self.request(
                RouteNetlinkMessage::NewRoute(message),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map(drop)
        }

        /// Sends one request with an ACK asked for; returns the messages before the ACK.
        fn request(
            &mut self,
            message: RouteNetlinkMessage,
            flags: u16,
        ) -> io::Result<Vec<RouteNetlinkMessage>> {
            self.sequence = self.sequence.wrapping_add(1);
            let mut request = NetlinkMessage::from(message);
            request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            request.header.sequence_number = self.sequence;
            request.finalize();
            let mut out = vec![0; request.buffer_len()];
            request.serialize(&mut out);
            self.socket.send(&out, 0)?;

            let mut replies = Vec::new();
            loop {
                self.buf.clear();
                let len = self.socket.recv(&mut self.buf, 0)?;
                if len > self.buf.len() {
                    return Err(io::Error::other("netlink reply truncated"));
                }
                let mut offset = 0;
                while offset < self.buf.len() {
                    let reply =
                        NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..])
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let length = reply.header.length as usize;
                    if length == 0 {
                        break;
                    }
                    offset += (length + 3) & !3;
                    if reply.header.sequence_number != self.sequence {
                        continue;
                    }
                    match reply.payload {
                        NetlinkPayload::Error(e) if e.code.is_none() => return Ok(replies),
                        NetlinkPayload::Error(e) => return Err(e.to_io()),
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::InnerMessage(m) => replies.push(m),
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_for_is_dockers() {
        assert_eq!(
            mac_for(Ipv4Addr::new(172, 17, 0, 2)),
            [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]
        );
    }

    #[test]
    fn interface_names_are_checked() {
        for ok in ["eth0", "veth0123456789a", "arca0", "br-0123456789ab"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "veth0123456789ab", "a/b", "a b", "a:b", ".", ".."] {
            assert!(
                matches!(check_name(bad), Err(LinkError::InvalidName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn netlink_needs_a_runtime() {
        assert!(matches!(Netlink::new(), Err(LinkError::NoRuntime)));
    }

    // arcad spawns these futures on its multi-threaded runtime.
    #[allow(dead_code)]
    fn futures_are_send(n: &Netlink, a: &Attach) {
        fn send<T: Send>(_: T) {}
        send(n.attach(a));
        send(n.detach("x"));
        send(n.ensure_bridge("x", Ipv4Addr::LOCALHOST, 8));
    }

    #[test]
    fn attach_error_kinds() {
        assert_eq!(
            LinkError::BridgeNotFound { name: "x".into() }.kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            LinkError::Exists { name: "x".into() }.kind(),
            ErrorKind::Conflict
        );
    }
}
