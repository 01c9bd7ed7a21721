//! Privileged: network namespaces, a bridge and veth pairs for real (needs root).
//!
//! Most tests stand up a namespace of their own as the "host" and put the bridge there, so
//! they touch nothing of the machine's network and need no unique interface names; one test
//! uses the machine's own namespace, as arcad does, with unique names and a 10.213.x.0/24
//! subnet. Every namespace, bridge and veth is removed by a guard, also when a test fails.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use arca_net::link::{Attach, LinkError, Netlink, mac_for};
use arca_net::netns::{self, NetnsError};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number unique to this test process and call, for names and subnets.
fn unique() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Removes a namespace made by a test, even if the test fails.
struct NsGuard(PathBuf);

impl NsGuard {
    fn create(path: PathBuf) -> NsGuard {
        netns::create(&path).expect("create netns");
        NsGuard(path)
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        if let Err(e) = netns::remove(&self.0) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Deletes links of the machine's own namespace, even if the test fails.
struct LinkGuard(Vec<String>);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        // A thread of its own: this may run inside a runtime, which cannot block_on.
        let cleaned = std::thread::spawn(move || {
            block_on(async move {
                let netlink = Netlink::new().expect("netlink");
                for name in names {
                    if let Err(e) = netlink.delete_link(&name).await {
                        eprintln!("cleanup: {e}");
                    }
                }
            })
        })
        .join();
        if cleaned.is_err() {
            eprintln!("cleanup thread panicked");
        }
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Runs async `f` on a thread inside the namespace at `path`, as if it were arcad's host.
fn in_netns<T: Send, F: Future<Output = T>>(path: &Path, f: impl FnOnce() -> F + Send) -> T {
    netns::run_in(path, || block_on(f())).expect("enter netns")
}

/// The link named `name` in the calling thread's namespace, if any.
async fn link(name: &str) -> Option<LinkMessage> {
    let (connection, handle, _) = rtnetlink::new_connection().expect("netlink");
    tokio::spawn(connection);
    match handle
        .link()
        .get()
        .match_name(name)
        .execute()
        .try_next()
        .await
    {
        Ok(link) => link,
        // ENODEV
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => None,
        Err(e) => panic!("look up {name}: {e}"),
    }
}

fn mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

fn mac(link: &LinkMessage) -> Option<Vec<u8>> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => Some(m.clone()),
        _ => None,
    })
}

/// Whether the calling thread's namespace has a default route via `gateway`.
fn has_default_route_via(gateway: Ipv4Addr) -> bool {
    let routes = std::fs::read_to_string("/proc/thread-self/net/route").expect("routes");
    let gw = format!("{:08X}", u32::from_ne_bytes(gateway.octets()));
    routes.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.get(1) == Some(&"00000000") && f.get(2) == Some(&gw.as_str())
    })
}

/// A TCP listener on `ip` in the namespace at `ns` (sockets stay in the namespace they were
/// made in, so it can be served from any thread).
fn listen_in(ns: &Path, ip: Ipv4Addr) -> TcpListener {
    netns::run_in(ns, || TcpListener::bind((ip, 0)))
        .expect("enter netns")
        .expect("bind")
}

/// Connects from the namespace at `ns` to `to`, served by `listener`, and exchanges a line.
fn talk(ns: &Path, listener: &TcpListener) {
    let to = listener.local_addr().expect("addr");
    let mut client = netns::run_in(ns, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(5))
    })
    .expect("enter netns")
    .unwrap_or_else(|e| panic!("connect to {to} from {}: {e}", ns.display()));
    client.write_all(b"ping\n").expect("write");
    let (mut served, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 5];
    served.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"ping\n");
    served.write_all(b"pong\n").expect("write back");
    client.read_exact(&mut buf).expect("read back");
    assert_eq!(&buf, b"pong\n");
}

fn attach_req(bridge: &str, host_ifname: &str, ns: &Path, address: Ipv4Addr) -> Attach {
    Attach {
        bridge: bridge.to_owned(),
        host_ifname: host_ifname.to_owned(),
        netns: ns.to_owned(),
        ifname: "eth0".to_owned(),
        address,
        prefix: 24,
        gateway: Some(Ipv4Addr::new(10, 213, 0, 1)),
        mac: mac_for(address),
        mtu: None,
        hairpin: false,
    }
}

fn mounted_under(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.to_string_lossy();
    mounts.lines().any(|l| l.contains(dir.as_ref()))
}

#[test]
fn two_containers_on_a_bridge_talk_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = NsGuard::create(dir.path().join("host"));
    let a = NsGuard::create(dir.path().join("deep/a"));
    let b = NsGuard::create(dir.path().join("deep/b"));
    let gateway = Ipv4Addr::new(10, 213, 0, 1);
    let (ip_a, ip_b) = (Ipv4Addr::new(10, 213, 0, 2), Ipv4Addr::new(10, 213, 0, 3));

    in_netns(&host.0, || async {
        let netlink = Netlink::new().expect("netlink");
        netlink
            .ensure_bridge("br0", gateway, 24)
            .await
            .expect("bridge");
        let mut req_a = attach_req("br0", "vetha", &a.0, ip_a);
        req_a.mtu = Some(1400);
        netlink.attach(&req_a).await.expect("attach a");
        netlink
            .attach(&attach_req("br0", "vethb", &b.0, ip_b))
            .await
            .expect("attach b");
        let host_end = link("vetha").await.expect("host end exists");
        assert!(host_end.header.flags.contains(LinkFlags::Up));
        assert_eq!(mtu(&host_end), Some(1400));
    });

    // Inside a: eth0 with the MAC, MTU and default route asked for; loopback up.
    netns::run_in(&a.0, || {
        block_on(async {
            let eth0 = link("eth0").await.expect("eth0 in a");
            assert!(eth0.header.flags.contains(LinkFlags::Up));
            assert!(eth0.header.flags.contains(LinkFlags::LowerUp), "carrier");
            assert_eq!(mac(&eth0), Some(mac_for(ip_a).to_vec()));
            assert_eq!(mtu(&eth0), Some(1400));
            let lo = link("lo").await.expect("lo");
            assert!(lo.header.flags.contains(LinkFlags::Up));
        });
        assert!(has_default_route_via(gateway));
    })
    .expect("enter a");

    // a ↔ b across the bridge, b → the gateway on the host, the host → a.
    talk(&b.0, &listen_in(&a.0, ip_a));
    talk(&a.0, &listen_in(&b.0, ip_b));
    talk(&b.0, &listen_in(&host.0, gateway));
    talk(&host.0, &listen_in(&a.0, ip_a));
    // Loopback works inside a container's namespace.
    talk(&a.0, &listen_in(&a.0, Ipv4Addr::LOCALHOST));

    in_netns(&host.0, || async {
        let netlink = Netlink::new().expect("netlink");
        netlink.detach("vetha").await.expect("detach a");
        netlink.detach("vethb").await.expect("detach b");
        netlink.detach("vethb").await.expect("detach twice is ok");
        assert!(link("vetha").await.is_none());
        assert!(link("vethb").await.is_none());
        netlink.delete_link("br0").await.expect("delete bridge");
        netlink
            .delete_link("br0")
            .await
            .expect("delete twice is ok");
        assert!(link("br0").await.is_none());
    });
    // The peers went with their veths.
    netns::run_in(&a.0, || {
        block_on(async { assert!(link("eth0").await.is_none()) })
    })
    .expect("enter a");

    for ns in [&host, &a, &b] {
        netns::remove(&ns.0).expect("remove");
        netns::remove(&ns.0).expect("remove twice is ok");
        assert!(!ns.0.exists());
    }
    assert!(!mounted_under(dir.path()), "a namespace is still mounted");
}

#[test]
fn failed_attach_leaves_no_veth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = NsGuard::create(dir.path().join("host"));
    let c = NsGuard::create(dir.path().join("c"));
    in_netns(&host.0, || async {
        let netlink = Netlink::new().expect("netlink");
        netlink
            .ensure_bridge("br0", Ipv4Addr::new(10, 213, 0, 1), 24)
            .await
            .expect("bridge");

        // The gateway is not on eth0's subnet: the default route fails after the veth and
        // the address were made.
        let mut req = attach_req("br0", "vethc", &c.0, Ipv4Addr::new(10, 213, 0, 2));
        req.gateway = Some(Ipv4Addr::new(10, 99, 0, 1));
        let err = netlink.attach(&req).await.expect_err("unreachable gateway");
        assert!(matches!(err, LinkError::InNetns { .. }), "{err:?}");
        assert!(link("vethc").await.is_none(), "veth left behind");

        // The name is taken in the container: nothing is made.
        let mut req = attach_req("br0", "vethc", &c.0, Ipv4Addr::new(10, 213, 0, 2));
        req.ifname = "lo".to_owned();
        let err = netlink.attach(&req).await.expect_err("lo exists");
        assert!(matches!(err, LinkError::Exists { .. }), "{err:?}");
        assert!(link("vethc").await.is_none(), "veth left behind");

        let req = attach_req("nobridge", "vethc", &c.0, Ipv4Addr::new(10, 213, 0, 2));
        let err = netlink.attach(&req).await.expect_err("no bridge");
        assert!(matches!(err, LinkError::BridgeNotFound { .. }), "{err:?}");

        let req = attach_req(
            "br0",
            "vethc",
            &dir.path().join("missing"),
            Ipv4Addr::new(10, 213, 0, 2),
        );
        let err = netlink.attach(&req).await.expect_err("no netns");
        assert!(
            matches!(err, LinkError::Netns(NetnsError::NotFound { .. })),
            "{err:?}"
        );
        assert!(link("vethc").await.is_none(), "veth left behind");
    });
    netns::run_in(&c.0, || {
        block_on(async { assert!(link("eth0").await.is_none()) })
    })
    .expect("enter c");
}

#[test]
fn ensure_bridge_is_idempotent_and_refuses_other_link_kinds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = NsGuard::create(dir.path().join("host"));
    in_netns(&host.0, || async {
        let netlink = Netlink::new().expect("netlink");
        let gateway = Ipv4Addr::new(10, 213, 0, 1);
        netlink
            .ensure_bridge("br0", gateway, 24)
            .await
            .expect("create");
        // Set down by someone: ensure brings it back up and keeps one address.
        let index = link("br0").await.expect("br0").header.index;
        let (connection, handle, _) = rtnetlink::new_connection().expect("netlink");
        tokio::spawn(connection);
        handle
            .link()
            .set(rtnetlink::LinkUnspec::new_with_index(index).down().build())
            .execute()
            .await
            .expect("down");
        netlink
            .ensure_bridge("br0", gateway, 24)
            .await
            .expect("again");
        let br0 = link("br0").await.expect("br0");
        assert!(br0.header.flags.contains(LinkFlags::Up));
        assert_eq!(br0.header.index, index, "the bridge was kept");
        assert_eq!(mac(&br0), Some(mac_for(gateway).to_vec()));
        let addresses: Vec<_> = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .expect("addresses");
        assert_eq!(addresses.len(), 1, "{addresses:?}");

        let err = netlink
            .ensure_bridge("lo", gateway, 24)
            .await
            .expect_err("lo is no bridge");
        assert!(matches!(err, LinkError::NotABridge { .. }), "{err:?}");
        let err = netlink
            .ensure_bridge("a-name-too-long-for-linux", gateway, 24)
            .await
            .expect_err("too long");
        assert!(matches!(err, LinkError::InvalidName { .. }), "{err:?}");
    });
}

#[test]
fn netns_create_refuses_a_mounted_path_and_reuses_a_stale_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/dir/ns");
    let ns = NsGuard::create(path.clone());
    let err = netns::create(&path).expect_err("already mounted");
    assert!(matches!(err, NetnsError::AlreadyExists { .. }), "{err:?}");
    // Still one working namespace.
    netns::run_in(&ns.0, || ()).expect("enter");

    let stale = dir.path().join("stale");
    std::fs::write(&stale, b"").expect("stale file");
    let stale = NsGuard::create(stale);
    netns::run_in(&stale.0, || ()).expect("enter");
    drop((ns, stale));
    assert!(!mounted_under(dir.path()));
}

#[test]
fn run_in_does_not_move_the_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = NsGuard::create(dir.path().join("ns"));
    let own = std::fs::read_link("/proc/thread-self/ns/net").expect("own netns");
    let inside = netns::run_in(&ns.0, || std::fs::read_link("/proc/thread-self/ns/net"))
        .expect("enter")
        .expect("netns link");
    assert_ne!(inside, own);
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").expect("own netns"),
        own
    );
    let inside_async = block_on(netns::run_in_async(&ns.0, || {
        std::fs::read_link("/proc/thread-self/ns/net")
    }))
    .expect("enter")
    .expect("netns link");
    assert_eq!(inside_async, inside);
}

/// As arcad does it: the bridge in the machine's own namespace.
#[test]
fn container_and_host_talk_through_a_bridge_of_the_host() {
    let n = unique();
    let pid = std::process::id();
    let bridge = format!("atb{pid:x}{n}");
    let veth = format!("atv{pid:x}{n}");
    // 10.213.(200 + pid % 50).0/24: unlikely to clash with parallel test processes.
    let third = 200 + (pid % 50) as u8;
    let gateway = Ipv4Addr::new(10, 213, third, 1);
    let address = Ipv4Addr::new(10, 213, third, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = NsGuard::create(dir.path().join("c"));
    let _links = LinkGuard(vec![veth.clone(), bridge.clone()]);

    block_on(async {
        let netlink = Netlink::new().expect("netlink");
        netlink
            .ensure_bridge(&bridge, gateway, 24)
            .await
            .expect("bridge");
        let mut req = attach_req(&bridge, &veth, &ns.0, address);
        req.gateway = Some(gateway);
        req.hairpin = true;
        netlink.attach(&req).await.expect("attach");
    });
    let hairpin = std::fs::read_to_string(format!("/sys/class/net/{veth}/brport/hairpin_mode"))
        .expect("bridge port of the veth");
    assert_eq!(hairpin.trim(), "1");
    let host = TcpListener::bind(SocketAddrV4::new(gateway, 0)).expect("bind gateway");
    talk(&ns.0, &host);
    let container = listen_in(&ns.0, address);
    let to = container.local_addr().expect("addr");
    let mut client = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
    client.write_all(b"x").expect("write");
    let (mut served, from) = container.accept().expect("accept");
    assert_eq!(from.ip(), std::net::IpAddr::V4(gateway));
    let mut buf = [0u8; 1];
    served.read_exact(&mut buf).expect("read");

    block_on(async {
        let netlink = Netlink::new().expect("netlink");
        netlink.detach(&veth).await.expect("detach");
        netlink.delete_link(&bridge).await.expect("delete bridge");
        assert!(link(&veth).await.is_none());
        assert!(link(&bridge).await.is_none());
    });
}

/// Prints how long a container's networking takes: namespace, veth and addresses, and the
/// teardown. `cargo test -p arca-net --test netns -- --ignored --nocapture`
#[test]
#[ignore]
fn attach_and_detach_time() {
    const ROUNDS: u32 = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let host = NsGuard::create(dir.path().join("host"));
    let (mut create, mut attach, mut detach, mut remove) = (vec![], vec![], vec![], vec![]);
    in_netns(&host.0, || async {
        let netlink = Netlink::new().expect("netlink");
        netlink
            .ensure_bridge("br0", Ipv4Addr::new(10, 213, 0, 1), 24)
            .await
            .expect("bridge");
        for i in 0..ROUNDS {
            let path = dir.path().join(format!("c{i}"));
            let t = Instant::now();
            let ns = NsGuard::create(path.clone());
            create.push(t.elapsed());
            let t = Instant::now();
            let mut req = attach_req("br0", "veth0", &path, Ipv4Addr::new(10, 213, 0, 2));
            req.hairpin = true;
            netlink.attach(&req).await.expect("attach");
            attach.push(t.elapsed());
            let t = Instant::now();
            netlink.detach("veth0").await.expect("detach");
            detach.push(t.elapsed());
            let t = Instant::now();
            drop(ns);
            remove.push(t.elapsed());
        }
    });
    for (what, mut times) in [
        ("netns::create", create),
        ("attach", attach),
        ("detach", detach),
        ("netns::remove", remove),
    ] {
        times.sort();
        let total: Duration = times.iter().sum();
        println!(
            "{what:14} mean {:>8.3} ms  median {:>8.3} ms  max {:>8.3} ms  ({ROUNDS} rounds)",
            total.as_secs_f64() * 1e3 / f64::from(ROUNDS),
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
        );
    }
}
