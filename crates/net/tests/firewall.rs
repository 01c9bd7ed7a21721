//! The firewall and port reservations against real traffic (privileged: root, netns).
//!
//! Each test builds its own world with iproute2: bridges with unique names and subnets in
//! 10.214.0.0/16, network namespaces standing for containers (veth `eth0`, default route
//! via the bridge), a namespace standing for another host (a veth from the host), and a
//! dummy interface holding a host address that is neither loopback nor on a bridge.
//! Servers and clients are threads that entered a namespace with setns(2). Traffic only
//! goes to loopback and to addresses the test created. Everything (table, namespaces,
//! links) is removed when the world drops, also when a test fails.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arca_net::firewall::{Firewall, NetworkRules, Port};
use arca_net::ports::{self, Protocol};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call.
fn unique() -> String {
    format!(
        "{}{:02}",
        std::process::id() % 10000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

static SUBNETS: AtomicU32 = AtomicU32::new(0);

/// A /24 of 10.214.0.0/16 for this process: 16 per process, spread by pid.
fn subnet() -> [u8; 3] {
    let n = SUBNETS.fetch_add(1, Ordering::Relaxed);
    assert!(n < 16, "tests use more than 16 subnets");
    let third = (std::process::id() % 16) * 16 + n;
    [10, 214, third as u8]
}

fn ip(net: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], host)
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Test-created network objects, removed on drop.
#[derive(Default)]
struct World {
    tables: Vec<String>,
    netns: Vec<String>,
    links: Vec<String>,
}

struct Net {
    bridge: String,
    subnet: [u8; 3],
}

impl Net {
    fn gateway(&self) -> Ipv4Addr {
        ip(self.subnet, 1)
    }

    fn rules(&self, internal: bool) -> NetworkRules {
        NetworkRules {
            bridge: self.bridge.clone(),
            subnet: (ip(self.subnet, 0), 24),
            internal,
        }
    }
}

impl World {
    fn firewall(&mut self) -> Firewall {
        let table = format!("arca_test_{}", unique());
        self.tables.push(table.clone());
        Firewall::new(&table).expect("valid table name")
    }

    fn bridge(&mut self) -> Net {
        let bridge = format!("afb{}", unique());
        let subnet = subnet();
        sh(&["ip", "link", "add", &bridge, "type", "bridge"]);
        self.links.push(bridge.clone());
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ip(subnet, 1)),
            "dev",
            &bridge,
        ]);
        sh(&["ip", "link", "set", &bridge, "up"]);
        Net { bridge, subnet }
    }

    fn netns(&mut self) -> String {
        let ns = format!("afns{}", unique());
        sh(&["ip", "netns", "add", &ns]);
        self.netns.push(ns.clone());
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A veth from the host into a new namespace, addressed `addr`/24 inside, with a
    /// default route via `gateway`; returns the namespace and the host end.
    fn veth_ns(&mut self, addr: Ipv4Addr, gateway: Ipv4Addr) -> (String, String) {
        let ns = self.netns();
        let host = format!("afv{}", unique());
        let peer = format!("{host}p");
        sh(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
        ]);
        self.links.push(host.clone());
        sh(&["ip", "link", "set", &peer, "netns", &ns]);
        sh(&["ip", "-n", &ns, "link", "set", &peer, "name", "eth0"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &gateway.to_string(),
        ]);
        (ns, host)
    }

    /// A container on `net` with address `.host`.
    fn container(&mut self, net: &Net, host: u8) -> String {
        let (ns, veth) = self.veth_ns(ip(net.subnet, host), net.gateway());
        sh(&["ip", "link", "set", &veth, "master", &net.bridge, "up"]);
        // As arca's link code does: with br_netfilter, a container reaching its own
        // published port gets its frames back through the port they came in by.
        sh(&[
            "ip",
            "link",
            "set",
            &veth,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ]);
        ns
    }

    /// Another host, reached through a veth of its own subnet: returns its namespace, the
    /// host's address on that link and the other host's address.
    fn outside(&mut self) -> (String, Ipv4Addr, Ipv4Addr) {
        let subnet = subnet();
        let (ns, veth) = self.veth_ns(ip(subnet, 2), ip(subnet, 1));
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ip(subnet, 1)),
            "dev",
            &veth,
        ]);
        sh(&["ip", "link", "set", &veth, "up"]);
        (ns, ip(subnet, 1), ip(subnet, 2))
    }

    /// A host address on no bridge (as the host's own eth0 address would be).
    fn host_address(&mut self) -> Ipv4Addr {
        let link = format!("afd{}", unique());
        let addr = ip(subnet(), 1);
        // A bridge without ports: this kernel may have no dummy driver.
        sh(&["ip", "link", "add", &link, "type", "bridge"]);
        self.links.push(link.clone());
        sh(&["ip", "addr", "add", &format!("{addr}/32"), "dev", &link]);
        sh(&["ip", "link", "set", &link, "up"]);
        addr
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Best effort: a failure here must not hide the test's own failure.
        for table in &self.tables {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", table])
                .stderr(std::process::Stdio::null())
                .status();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for link in &self.links {
            let _ = Command::new("ip")
                .args(["link", "del", link])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Runs `f` on a thread that entered network namespace `ns` (the host's when `None`).
fn in_netns<T: Send + 'static>(
    ns: Option<&str>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = ns.map(|ns| format!("/run/netns/{ns}"));
    std::thread::spawn(move || {
        if let Some(path) = ns {
            setns(File::open(path)?, CloneFlags::CLONE_NEWNET)?;
        }
        f()
    })
    .join()
    .expect("client thread panicked")
}

/// A server in a namespace answering `<name> <peer address>` on TCP or UDP `port`.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(ns: &str, proto: Protocol, port: u16, name: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = format!("/run/netns/{ns}");
        let name = name.to_owned();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            setns(File::open(path).expect("netns"), CloneFlags::CLONE_NEWNET).expect("setns");
            match proto {
                Protocol::Tcp => {
                    let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
                    ready_tx.send(()).expect("ready");
                    while wait_readable(&listener, &flag) {
                        if let Ok((mut conn, peer)) = listener.accept() {
                            let _ = writeln!(conn, "{name} {}", peer.ip());
                        }
                    }
                }
                Protocol::Udp => {
                    let socket = UdpSocket::bind(("0.0.0.0", port)).expect("bind");
                    ready_tx.send(()).expect("ready");
                    let mut buf = [0u8; 64];
                    while wait_readable(&socket, &flag) {
                        if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                            let _ =
                                socket.send_to(format!("{name} {}\n", peer.ip()).as_bytes(), peer);
                        }
                    }
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server started");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

/// Waits until `fd` is readable; false once the server is told to stop.
fn wait_readable(fd: &impl std::os::fd::AsFd, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(50u16)).unwrap_or(0) > 0 {
            return true;
        }
    }
    false
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

const ANSWER: Duration = Duration::from_secs(3);
const NO_ANSWER: Duration = Duration::from_millis(800);

/// One TCP request from namespace `ns` (or the host); the server's answer.
fn tcp(ns: Option<&str>, ip: Ipv4Addr, port: u16, timeout: Duration) -> io::Result<String> {
    in_netns(ns, move || {
        let addr = SocketAddr::V4(SocketAddrV4::new(ip, port));
        let mut conn = TcpStream::connect_timeout(&addr, timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        Ok(answer.trim().to_owned())
    })
}

/// One UDP request from namespace `ns` (or the host); the server's answer.
fn udp(ns: Option<&str>, ip: Ipv4Addr, port: u16, timeout: Duration) -> io::Result<String> {
    in_netns(ns, move || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 64];
        // Datagrams may be lost while neighbours resolve: resend until the deadline.
        loop {
            socket.send_to(b"ping", (ip, port))?;
            match socket.recv_from(&mut buf) {
                Ok((n, _)) => return Ok(String::from_utf8_lossy(&buf[..n]).trim().to_owned()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
        }
    })
}

fn answer(result: io::Result<String>, what: &str) -> String {
    result.unwrap_or_else(|e| panic!("{what}: no answer: {e}"))
}

fn no_answer(result: io::Result<String>, what: &str) {
    if let Ok(answer) = result {
        panic!("{what}: expected no answer, got {answer:?}");
    }
}

#[tokio::test]
async fn published_tcp_port_answers_on_loopback_host_addresses_other_hosts_and_hairpin() {
    let mut world = World::default();
    let fw = world.firewall();
    let net = world.bridge();
    let a = world.container(&net, 2);
    let b = world.container(&net, 3);
    let host_addr = world.host_address();
    let (other_host, host_on_link, other_addr) = world.outside();
    fw.ensure().await.expect("firewall operation");
    fw.add_network(&net.rules(false))
        .await
        .expect("firewall operation");
    let _server = Server::start(&a, Protocol::Tcp, 80, "a");

    let reservation = ports::reserve_any(Protocol::Tcp, None, None).expect("reserve a port");
    let host_port = reservation.port();
    let err = ports::reserve(Protocol::Tcp, None, host_port).expect_err("reservation must fail");
    assert_eq!(
        err.to_string(),
        format!("Bind for 0.0.0.0:{host_port} failed: port is already allocated")
    );
    let port = Port {
        proto: Protocol::Tcp,
        host_ip: None,
        host_port,
        container_ip: ip(net.subnet, 2),
        container_port: 80,
    };
    fw.publish(&[port]).await.expect("firewall operation");

    let gw = net.gateway();
    // The host's own connections: to 127.0.0.1 the source is masqueraded to the gateway.
    let got = answer(
        tcp(None, Ipv4Addr::LOCALHOST, host_port, ANSWER),
        "host → 127.0.0.1",
    );
    assert_eq!(got, format!("a {gw}"));
    let got = answer(
        tcp(None, host_addr, host_port, ANSWER),
        "host → host address",
    );
    assert_eq!(got, format!("a {host_addr}"));
    // Another host keeps its own address, as with Docker.
    let got = answer(
        tcp(Some(&other_host), host_on_link, host_port, ANSWER),
        "other host → host",
    );
    assert_eq!(got, format!("a {other_addr}"));
    // Hairpin: another container, and the container itself, through a host address.
    let got = answer(
        tcp(Some(&b), host_addr, host_port, ANSWER),
        "b → host address",
    );
    assert_eq!(got, format!("a {gw}"));
    let got = answer(tcp(Some(&b), gw, host_port, ANSWER), "b → gateway");
    assert_eq!(got, format!("a {gw}"));
    let got = answer(
        tcp(Some(&a), host_addr, host_port, ANSWER),
        "a → its own port",
    );
    assert_eq!(got, format!("a {gw}"));

    fw.unpublish(&[port]).await.expect("firewall operation");
    fw.unpublish(&[port]).await.expect("firewall operation");
    no_answer(
        tcp(None, Ipv4Addr::LOCALHOST, host_port, NO_ANSWER),
        "host → 127.0.0.1 after unpublish",
    );
    no_answer(
        tcp(Some(&b), host_addr, host_port, NO_ANSWER),
        "b → host address after unpublish",
    );
    fw.remove_network(&net.bridge)
        .await
        .expect("firewall operation");
    fw.delete().await.expect("firewall operation");
}

#[tokio::test]
async fn published_udp_port_answers_on_loopback_and_hairpin() {
    let mut world = World::default();
    let fw = world.firewall();
    let net = world.bridge();
    let a = world.container(&net, 2);
    let b = world.container(&net, 3);
    fw.ensure().await.expect("firewall operation");
    fw.add_network(&net.rules(false))
        .await
        .expect("firewall operation");
    let _server = Server::start(&a, Protocol::Udp, 53, "a");

    let reservation = ports::reserve_any(Protocol::Udp, None, None).expect("reserve a port");
    let port = Port {
        proto: Protocol::Udp,
        host_ip: None,
        host_port: reservation.port(),
        container_ip: ip(net.subnet, 2),
        container_port: 53,
    };
    fw.publish(&[port]).await.expect("firewall operation");
    let gw = net.gateway();
    let got = answer(
        udp(None, Ipv4Addr::LOCALHOST, port.host_port, ANSWER),
        "host → 127.0.0.1 udp",
    );
    assert_eq!(got, format!("a {gw}"));
    let got = answer(udp(Some(&b), gw, port.host_port, ANSWER), "b → gateway udp");
    assert_eq!(got, format!("a {gw}"));

    fw.unpublish(&[port]).await.expect("firewall operation");
    // A fresh source port: conntrack has no entry for it, so no stale DNAT applies.
    no_answer(
        udp(None, Ipv4Addr::LOCALHOST, port.host_port, NO_ANSWER),
        "host → 127.0.0.1 udp after unpublish",
    );
}

#[tokio::test]
async fn port_published_on_one_address_answers_only_there() {
    let mut world = World::default();
    let fw = world.firewall();
    let net = world.bridge();
    let a = world.container(&net, 2);
    let host_addr = world.host_address();
    fw.ensure().await.expect("firewall operation");
    fw.add_network(&net.rules(false))
        .await
        .expect("firewall operation");
    let _server = Server::start(&a, Protocol::Tcp, 80, "a");

    let reservation =
        ports::reserve_any(Protocol::Tcp, Some(Ipv4Addr::LOCALHOST), None).expect("reserve a port");
    let port = Port {
        proto: Protocol::Tcp,
        host_ip: Some(Ipv4Addr::LOCALHOST),
        host_port: reservation.port(),
        container_ip: ip(net.subnet, 2),
        container_port: 80,
    };
    fw.publish(&[port]).await.expect("firewall operation");
    answer(
        tcp(None, Ipv4Addr::LOCALHOST, port.host_port, ANSWER),
        "host → 127.0.0.1",
    );
    no_answer(
        tcp(None, host_addr, port.host_port, NO_ANSWER),
        "host → another address",
    );
}

#[tokio::test]
async fn networks_are_isolated_and_internal_networks_stay_inside() {
    let mut world = World::default();
    let fw = world.firewall();
    let net1 = world.bridge();
    let net2 = world.bridge();
    let net3 = world.bridge();
    let a = world.container(&net1, 2);
    let c = world.container(&net2, 2);
    let d = world.container(&net3, 2);
    let e = world.container(&net3, 3);
    let (other_host, host_on_link, other_addr) = world.outside();
    fw.ensure().await.expect("firewall operation");
    fw.add_network(&net1.rules(false))
        .await
        .expect("firewall operation");
    fw.add_network(&net2.rules(false))
        .await
        .expect("firewall operation");
    fw.add_network(&net3.rules(true))
        .await
        .expect("firewall operation");
    let _servers = [
        Server::start(&c, Protocol::Tcp, 80, "c"),
        Server::start(&e, Protocol::Tcp, 80, "e"),
        Server::start(&other_host, Protocol::Tcp, 80, "other"),
    ];

    // Out to the world, masqueraded behind the host's address on the way out.
    let got = answer(tcp(Some(&a), other_addr, 80, ANSWER), "a → other host");
    assert_eq!(got, format!("other {host_on_link}"));
    // Not across networks, and not from other hosts straight to a container.
    no_answer(tcp(Some(&a), ip(net2.subnet, 2), 80, NO_ANSWER), "a → c");
    no_answer(
        tcp(Some(&other_host), ip(net2.subnet, 2), 80, NO_ANSWER),
        "other host → c",
    );
    // Internal: within the bridge only.
    let got = answer(tcp(Some(&d), ip(net3.subnet, 3), 80, ANSWER), "d → e");
    assert_eq!(got, format!("e {}", ip(net3.subnet, 2)));
    no_answer(tcp(Some(&d), other_addr, 80, NO_ANSWER), "d → other host");
    no_answer(tcp(Some(&d), ip(net2.subnet, 2), 80, NO_ANSWER), "d → c");
    no_answer(tcp(Some(&a), ip(net3.subnet, 3), 80, NO_ANSWER), "a → e");

    // A published port is open to every network but internal ones.
    let reservation = ports::reserve_any(Protocol::Tcp, None, None).expect("reserve a port");
    let port = Port {
        proto: Protocol::Tcp,
        host_ip: None,
        host_port: reservation.port(),
        container_ip: ip(net2.subnet, 2),
        container_port: 80,
    };
    fw.publish(&[port]).await.expect("firewall operation");
    let got = answer(
        tcp(Some(&a), net1.gateway(), port.host_port, ANSWER),
        "a → c's published port",
    );
    assert!(got.starts_with("c "), "{got}");
    no_answer(
        tcp(Some(&d), net3.gateway(), port.host_port, NO_ANSWER),
        "d → c's published port",
    );

    // Removing a network ends its outbound NAT (the test's other host routes the
    // container's own address back through the host; a real one would not).
    fw.remove_network(&net1.bridge)
        .await
        .expect("firewall operation");
    let got = answer(
        tcp(Some(&a), other_addr, 80, ANSWER),
        "a → other host after remove_network",
    );
    assert_eq!(got, format!("other {}", ip(net1.subnet, 2)));
}

fn nft_list(table: &str) -> String {
    let out = Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .expect("nft list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn operations_are_idempotent_and_ensure_keeps_networks_and_ports() {
    let mut world = World::default();
    let fw = world.firewall();
    let net = world.bridge();
    let port = Port {
        proto: Protocol::Tcp,
        host_ip: None,
        host_port: 18080,
        container_ip: ip(net.subnet, 2),
        container_port: 80,
    };
    let one_ip = Port {
        proto: Protocol::Udp,
        host_ip: Some(Ipv4Addr::LOCALHOST),
        host_port: 5353,
        container_ip: ip(net.subnet, 2),
        container_port: 53,
    };

    fw.delete().await.expect("firewall operation");
    fw.ensure().await.expect("firewall operation");
    fw.ensure().await.expect("firewall operation");
    fw.add_network(&net.rules(false))
        .await
        .expect("firewall operation");
    fw.add_network(&net.rules(false))
        .await
        .expect("firewall operation");
    fw.publish(&[port, one_ip])
        .await
        .expect("firewall operation");
    fw.publish(&[port, one_ip])
        .await
        .expect("firewall operation");
    let rules = nft_list(fw.table());
    fw.ensure().await.expect("firewall operation");
    assert_eq!(
        nft_list(fw.table()),
        rules,
        "ensure changed an existing table"
    );
    let element = format!("tcp . 18080 : {} . 80", ip(net.subnet, 2));
    assert!(rules.contains(&element), "{rules}");
    assert!(rules.contains(&format!(
        "udp . 127.0.0.1 . 5353 : {} . 53",
        ip(net.subnet, 2)
    )));
    assert!(
        rules.contains(&format!("jump net_{}", net.bridge)),
        "{rules}"
    );

    // Publishing a port again for another target moves it.
    let moved = Port {
        container_ip: ip(net.subnet, 9),
        ..port
    };
    fw.publish(&[moved]).await.expect("firewall operation");
    let rules = nft_list(fw.table());
    assert!(
        rules.contains(&format!("tcp . 18080 : {} . 80", ip(net.subnet, 9))),
        "{rules}"
    );
    // Unpublishing the old target leaves the new one alone.
    assert!(fw.unpublish(&[port]).await.is_err());
    assert!(nft_list(fw.table()).contains(&format!("{} . 80", ip(net.subnet, 9))));

    // Internal toggles the outbound NAT off and back on.
    let outbound = "oifname != @bridges ip saddr";
    assert!(rules.contains(outbound), "{rules}");
    let internal_set = format!(
        "set internal {{\n\t\ttype ifname\n\t\telements = {{ \"{}\" }}",
        net.bridge
    );
    fw.add_network(&net.rules(true))
        .await
        .expect("firewall operation");
    let rules = nft_list(fw.table());
    assert!(!rules.contains(outbound), "{rules}");
    assert!(rules.contains(&internal_set), "{rules}");
    fw.add_network(&net.rules(false))
        .await
        .expect("firewall operation");
    let rules = nft_list(fw.table());
    assert!(rules.contains(outbound), "{rules}");
    assert!(!rules.contains(&internal_set), "{rules}");

    fw.unpublish(&[moved, one_ip])
        .await
        .expect("firewall operation");
    fw.unpublish(&[moved, one_ip])
        .await
        .expect("firewall operation");
    fw.remove_network(&net.bridge)
        .await
        .expect("firewall operation");
    fw.remove_network(&net.bridge)
        .await
        .expect("firewall operation");
    let rules = nft_list(fw.table());
    assert!(!rules.contains(&net.bridge), "{rules}");
    assert!(!rules.contains("elements"), "{rules}");

    fw.delete().await.expect("firewall operation");
    fw.delete().await.expect("firewall operation");
    let listed = Command::new("nft")
        .args(["list", "table", "ip", fw.table()])
        .output()
        .expect("nft list");
    assert!(!listed.status.success(), "table still exists");
}

#[tokio::test]
async fn restore_keeps_given_ports_answering_and_drops_stale_entries() {
    let mut world = World::default();
    let fw = world.firewall();
    let net = world.bridge();
    let stale_net = world.bridge();
    let a = world.container(&net, 2);
    fw.ensure().await.expect("firewall operation");
    fw.add_network(&net.rules(false))
        .await
        .expect("firewall operation");
    fw.add_network(&stale_net.rules(false))
        .await
        .expect("firewall operation");
    let _server = Server::start(&a, Protocol::Tcp, 80, "a");
    let reservation = ports::reserve_any(Protocol::Tcp, None, None).expect("reserve a port");
    let port = Port {
        proto: Protocol::Tcp,
        host_ip: None,
        host_port: reservation.port(),
        container_ip: ip(net.subnet, 2),
        container_port: 80,
    };
    let stale_port = Port {
        host_port: 18082,
        container_ip: ip(stale_net.subnet, 2),
        ..port
    };
    fw.publish(&[port, stale_port])
        .await
        .expect("firewall operation");

    fw.restore(&[net.rules(false)], &[port])
        .await
        .expect("firewall operation");
    let rules = nft_list(fw.table());
    assert!(!rules.contains(&stale_net.bridge), "{rules}");
    assert!(!rules.contains("18082"), "{rules}");
    assert!(
        rules.contains(&format!("jump net_{}", net.bridge)),
        "{rules}"
    );
    let got = answer(
        tcp(None, Ipv4Addr::LOCALHOST, port.host_port, ANSWER),
        "host → 127.0.0.1 after restore",
    );
    assert_eq!(got, format!("a {}", net.gateway()));
}

#[tokio::test]
async fn operations_on_a_missing_table_report_nft_errors() {
    let mut world = World::default();
    let fw = world.firewall();
    let port = Port {
        proto: Protocol::Tcp,
        host_ip: None,
        host_port: 18081,
        container_ip: Ipv4Addr::new(10, 214, 255, 2),
        container_port: 80,
    };
    let err = fw
        .publish(&[port])
        .await
        .expect_err("firewall operation must fail");
    let message = err.to_string();
    assert!(message.contains("nft failed to publish ports"), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
}

/// Prints the time of publishing and unpublishing one port (`--ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn publish_and_unpublish_timing() {
    let mut world = World::default();
    let fw = world.firewall();
    fw.ensure().await.expect("firewall operation");
    let rounds = 20u32;
    let (mut publish, mut unpublish) = (Duration::ZERO, Duration::ZERO);
    for i in 0..rounds {
        let port = Port {
            proto: Protocol::Tcp,
            host_ip: None,
            host_port: 20000 + i as u16,
            container_ip: Ipv4Addr::new(10, 214, 255, 2),
            container_port: 80,
        };
        let start = Instant::now();
        fw.publish(&[port]).await.expect("firewall operation");
        publish += start.elapsed();
        let start = Instant::now();
        fw.unpublish(&[port]).await.expect("firewall operation");
        unpublish += start.elapsed();
    }
    println!(
        "publish one port: {:?}, unpublish: {:?} (mean of {rounds})",
        publish / rounds,
        unpublish / rounds
    );
}
