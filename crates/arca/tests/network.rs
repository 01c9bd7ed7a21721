//! Bridge networking end to end through the real docker CLI: addresses, published ports
//! (no proxy process), user networks with DNS by name, isolation, errors, and a daemon
//! restart. Every daemon has its own bridge, subnet and nftables table
//! (`Daemon::start_networked`); traffic goes only to loopback and to addresses of
//! containers the test made.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{Daemon, assert_ok, poll_until, stderr, stdout};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The body of `GET /` at `addr`, if something answers within 2 s.
fn http_get(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (_, body) = out.split_once("\r\n\r\n")?;
    Some(body.to_owned())
}

fn inspect(d: &Daemon, what: &str, name: &str) -> serde_json::Value {
    let out = d.docker(&[what, "inspect", name]);
    assert_ok(&out, "inspect");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    v[0].clone()
}

/// A folder with an index page, for busybox httpd.
fn www(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), text).expect("index");
    dir
}

fn serve(d: &Daemon, cli: &str, name: &str, port: u16, dir: &std::path::Path, extra: &[&str]) {
    let publish = format!("{port}:80");
    let volume = format!("{}:/www:ro", dir.display());
    let mut args = vec!["run", "-d", "--name", name, "-p", &publish, "-v", &volume];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "httpd", "-f", "-p", "80", "-h", "/www"]);
    let out = if cli == "docker" {
        d.docker(&args)
    } else {
        d.arca(&args)
    };
    assert_ok(&out, &format!("{cli} run {name}"));
}

fn wait_for_page(addr: &str, text: &str) {
    poll_until(
        &format!("{addr} to serve the page"),
        Duration::from_secs(15),
        || http_get(addr).is_some_and(|b| b.contains(text)),
    );
}

/// `GET /` of `ip`:80 from a container on `network` (busybox `nc`: the fixture's static
/// glibc `wget` crashes in NSS once the image has an `/etc/nsswitch.conf`).
fn fetch(d: &Daemon, network: &str, ip: &str, timeout: u32) -> std::process::Output {
    fetch_port(d, network, ip, 80, timeout)
}

fn fetch_port(
    d: &Daemon,
    network: &str,
    ip: &str,
    port: u16,
    timeout: u32,
) -> std::process::Output {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {timeout} {ip} {port}");
    d.docker(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "sh",
        "-c",
        &script,
    ])
}

/// A /24 for a user network of this test process: 10.210-217.x.0/24.
fn test_subnet(k: u32) -> String {
    let n = (std::process::id() * 7 + k) % 2048;
    format!("10.{}.{}.0/24", 210 + n / 256, n % 256)
}

#[test]
fn a_published_port_serves_a_bind_mounted_folder_and_is_released_at_stop() {
    let d = Daemon::start_networked(&[]);
    d.load_busybox();
    let dir = www("hello from arca\n");
    let port = free_port();
    serve(&d, "docker", "web", port, dir.path(), &[]);
    let addr = format!("127.0.0.1:{port}");
    wait_for_page(&addr, "hello from arca");

    let c = inspect(&d, "container", "web");
    let ns = &c["NetworkSettings"];
    let ip = ns["IPAddress"].as_str().expect("an address");
    assert!(
        ip.starts_with("10.2"),
        "address {ip} from the daemon's subnet"
    );
    assert_eq!(ns["Networks"]["bridge"]["IPAddress"], ip);
    assert_eq!(ns["Ports"]["80/tcp"][0]["HostPort"], port.to_string());
    assert!(ns["SandboxKey"].as_str().is_some_and(|k| !k.is_empty()));
    // The container's own address serves too (the host routes to the bridge).
    wait_for_page(&format!("{ip}:80"), "hello from arca");
    // Another container reaches the published port on a host address (the bridge's
    // gateway): DNAT of the host's non-loopback addresses, and hairpin back into the bridge.
    let gw = ns["Gateway"].as_str().expect("gateway").to_owned();
    let out = fetch_port(&d, "bridge", &gw, port, 5);
    assert!(stdout(&out).contains("hello from arca"), "{}", stdout(&out));
    // And the container itself, through its own published port (hairpin).
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {gw} {port}");
    let out = d.docker(&["exec", "web", "sh", "-c", &script]);
    assert!(stdout(&out).contains("hello from arca"), "{}", stdout(&out));
    let ports = d.docker(&["port", "web"]);
    assert_ok(&ports, "docker port");
    assert!(
        stdout(&ports).contains(&format!("80/tcp -> 0.0.0.0:{port}")),
        "{}",
        stdout(&ports)
    );
    let ps = d.docker(&["ps", "--format", "{{.Ports}}"]);
    assert!(
        stdout(&ps).contains(&format!("0.0.0.0:{port}->80/tcp")),
        "{}",
        stdout(&ps)
    );
    let net = inspect(&d, "network", "bridge");
    assert_eq!(net["Containers"].as_object().map(|m| m.len()), Some(1));
    // No proxy process: arcad's own socket holds the port, nothing listens.
    let listeners = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let hex = format!(":{port:04X} ");
    assert!(
        !listeners
            .lines()
            .any(|l| l.contains(&hex) && l.split_whitespace().nth(3) == Some("0A")),
        "something listens on {port}"
    );

    assert_ok(&d.docker(&["stop", "-t", "1", "web"]), "docker stop");
    assert!(
        http_get(&addr).is_none(),
        "the port still answers after stop"
    );
    let net = inspect(&d, "network", "bridge");
    assert_eq!(net["Containers"].as_object().map(|m| m.len()), Some(0));
    // The port is free for the next one.
    serve(&d, "docker", "web2", port, dir.path(), &[]);
    wait_for_page(&addr, "hello from arca");
}

#[test]
fn a_host_port_in_use_fails_the_start_and_leaks_nothing() {
    let d = Daemon::start_networked(&[]);
    d.load_busybox();
    let dir = www("first\n");
    let port = free_port();
    serve(&d, "docker", "first", port, dir.path(), &[]);
    let publish = format!("{port}:80");
    let out = d.docker(&[
        "run", "-d", "--name", "second", "-p", &publish, "busybox", "sleep", "60",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "Bind for 0.0.0.0:{port} failed: port is already allocated"
        )),
        "{}",
        stderr(&out)
    );
    let second = inspect(&d, "container", "second");
    assert_eq!(second["State"]["Running"], false);
    let net = inspect(&d, "network", "bridge");
    assert_eq!(
        net["Containers"].as_object().map(|m| m.len()),
        Some(1),
        "only the first container has an endpoint: {net}"
    );
    wait_for_page(&format!("127.0.0.1:{port}"), "first");
}

#[test]
fn user_networks_resolve_names_and_are_isolated() {
    let d = Daemon::start_networked(&[]);
    d.load_busybox();
    let (s1, s2) = (test_subnet(1), test_subnet(2));
    assert_ok(
        &d.docker(&["network", "create", "--subnet", &s1, "front"]),
        "network create",
    );
    assert_ok(
        &d.docker(&["network", "create", "--subnet", &s2, "back"]),
        "network create",
    );
    let out = d.docker(&["network", "create", "--subnet", &s1, "clash"]);
    assert!(!out.status.success(), "overlapping subnet accepted");
    assert!(stderr(&out).contains("overlaps"), "{}", stderr(&out));

    let dir = www("api here\n");
    let port = free_port();
    serve(
        &d,
        "docker",
        "api",
        port,
        dir.path(),
        &["--network", "front", "--network-alias", "svc"],
    );
    wait_for_page(&format!("127.0.0.1:{port}"), "api here");
    let ip = inspect(&d, "container", "api")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
        .as_str()
        .expect("address on front")
        .to_owned();
    // The fixture's busybox is linked statically with glibc: its wget cannot resolve names
    // (NSS), its nslookup has a resolver of its own. So: resolve, then fetch by address.
    let short_id = inspect(&d, "container", "api")["Id"].as_str().expect("id")[..12].to_owned();
    for name in ["api", "svc", short_id.as_str()] {
        let out = d.docker(&[
            "run",
            "--rm",
            "--network",
            "front",
            "busybox",
            "nslookup",
            name,
        ]);
        assert_ok(&out, &format!("nslookup {name} on the same network"));
        assert!(
            stdout(&out).contains(&format!("Address: {ip}")),
            "{name}: {}",
            stdout(&out)
        );
    }
    let out = fetch(&d, "front", &ip, 5);
    assert_ok(&out, "fetch on the same network");
    assert!(stdout(&out).ends_with("api here\n"), "{}", stdout(&out));
    // Another network neither resolves the name nor reaches the address.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "nslookup",
        "api",
    ]);
    assert!(
        !stdout(&out).contains(&format!("Address: {ip}")),
        "resolved from another network: {}",
        stdout(&out)
    );
    let out = fetch(&d, "back", &ip, 2);
    assert!(
        !stdout(&out).contains("api here"),
        "reached {ip} from another network"
    );
    let out = d.docker(&["network", "rm", "front"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has active endpoints"),
        "{}",
        stderr(&out)
    );

    // Connected to a second network while running, it is reachable there too.
    assert_ok(
        &d.docker(&["network", "connect", "back", "api"]),
        "network connect",
    );
    let back_ip =
        inspect(&d, "container", "api")["NetworkSettings"]["Networks"]["back"]["IPAddress"]
            .as_str()
            .expect("address on back")
            .to_owned();
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "nslookup",
        "api",
    ]);
    assert!(
        stdout(&out).contains(&format!("Address: {back_ip}")),
        "{}",
        stdout(&out)
    );
    let out = fetch(&d, "back", &back_ip, 5);
    assert_ok(&out, "fetch after connect");
    assert!(stdout(&out).ends_with("api here\n"), "{}", stdout(&out));
    assert_ok(&d.docker(&["rm", "-f", "api"]), "rm");
    assert_ok(&d.docker(&["network", "rm", "front", "back"]), "network rm");
    let ls = d.docker(&["network", "ls", "--format", "{{.Name}}"]);
    let mut names: Vec<String> = stdout(&ls).lines().map(str::to_owned).collect();
    names.sort();
    assert_eq!(names, ["bridge", "host", "none"]);
}

#[test]
fn running_containers_keep_their_network_across_a_daemon_restart() {
    let mut d = Daemon::start_networked(&[]);
    d.load_busybox();
    let dir = www("still here\n");
    let port = free_port();
    serve(&d, "docker", "web", port, dir.path(), &[]);
    let addr = format!("127.0.0.1:{port}");
    wait_for_page(&addr, "still here");
    d.stop();
    // arcad is gone; the container and its published port are not.
    wait_for_page(&addr, "still here");
    d.spawn();
    wait_for_page(&addr, "still here");
    // The port is still held: another container cannot take it.
    let publish = format!("{port}:80");
    let out = d.docker(&["run", "-d", "-p", &publish, "busybox", "sleep", "60"]);
    assert!(
        stderr(&out).contains("port is already allocated"),
        "{}",
        stderr(&out)
    );
    assert_ok(&d.docker(&["stop", "-t", "1", "web"]), "stop");
    assert!(http_get(&addr).is_none());
}

/// The seed exercise of issue 5: `web` … `web5` on 8080 … 8084 serving a host folder, with
/// the real docker CLI and then with arca.
#[test]
fn five_web_servers_on_8080_to_8084_with_docker_and_with_arca() {
    let d = Daemon::start_networked(&[]);
    d.load_busybox();
    let dir = www("seed exercise\n");
    for cli in ["docker", "arca"] {
        for (i, port) in (8080..=8084).enumerate() {
            let name = if i == 0 {
                "web".to_owned()
            } else {
                format!("web{}", i + 1)
            };
            serve(&d, cli, &name, port, dir.path(), &[]);
        }
        for port in 8080..=8084 {
            wait_for_page(&format!("127.0.0.1:{port}"), "seed exercise");
        }
        let names = ["web", "web2", "web3", "web4", "web5"];
        let mut rm = vec!["rm", "-f"];
        rm.extend_from_slice(&names);
        assert_ok(&d.docker(&rm), "rm");
    }
}

#[test]
fn links_and_extra_hosts_go_into_etc_hosts() {
    let d = Daemon::start_networked(&[]);
    d.load_busybox();
    assert_ok(
        &d.docker(&["run", "-d", "--name", "db", "busybox", "sleep", "60"]),
        "run db",
    );
    let ip = inspect(&d, "container", "db")["NetworkSettings"]["IPAddress"]
        .as_str()
        .expect("address")
        .to_owned();
    let out = d.docker(&[
        "run",
        "--rm",
        "--link",
        "db:database",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "example.test:192.0.2.7",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert_ok(&out, "run with --link");
    let hosts = stdout(&out);
    assert!(hosts.contains(&format!("{ip}\tdatabase db ")), "{hosts}");
    assert!(hosts.contains("192.0.2.7\texample.test\n"), "{hosts}");
    let gw = inspect(&d, "network", "bridge")["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .expect("gateway")
        .to_owned();
    assert!(hosts.contains(&format!("{gw}\tgw\n")), "{hosts}");
    // A link to a container that is not running is refused.
    assert_ok(&d.docker(&["stop", "-t", "1", "db"]), "stop db");
    let out = d.docker(&["run", "--rm", "--link", "db:database", "busybox", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot link to a non running container"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_port_specs_and_fixed_addresses_are_checked_at_create() {
    let d = Daemon::start_networked(&[]);
    d.load_busybox();
    for body in [
        r#"{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"http"}]}}}"#,
        r#"{"Image":"busybox","HostConfig":{"PortBindings":{"x/tcp":[{"HostPort":"8080"}]}}}"#,
        r#"{"Image":"busybox","HostConfig":{"PortBindings":{"80/sctpx":[{}]}}}"#,
        r#"{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"99999"}]}}}"#,
        r#"{"Image":"busybox","HostConfig":{"NetworkMode":"nosuch"}}"#,
    ] {
        let (code, text) = common::http(
            &d.socket,
            "POST",
            "/containers/create",
            Some(("application/json", body.as_bytes())),
        )
        .expect("create");
        assert_eq!(code, 400, "{body}: {text}");
    }
    let subnet = test_subnet(3);
    assert_ok(
        &d.docker(&["network", "create", "--subnet", &subnet, "fixed"]),
        "create",
    );
    let want = subnet.replace(".0/24", ".77");
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        &want,
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert_ok(&out, "run --ip");
    assert!(
        stdout(&out).contains(&format!("inet {want}/24")),
        "{}",
        stdout(&out)
    );
    // An address outside the subnet is refused.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        "192.0.2.9",
        "busybox",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("192.0.2.9"), "{}", stderr(&out));
    // An internal network reaches its own containers but not the host's other side.
    let internal = test_subnet(4);
    assert_ok(
        &d.docker(&[
            "network",
            "create",
            "--internal",
            "--subnet",
            &internal,
            "private",
        ]),
        "create --internal",
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "private",
        "busybox",
        "ip",
        "route",
    ]);
    assert_ok(&out, "ip route");
    assert!(
        !stdout(&out).contains("default"),
        "an internal network has no default route: {}",
        stdout(&out)
    );
    assert_ok(&d.docker(&["network", "rm", "fixed", "private"]), "rm");
}

#[test]
fn a_restart_policy_brings_a_container_back_with_its_ports_after_arcad_was_down() {
    let mut d = Daemon::start_networked(&[]);
    d.load_busybox();
    let dir = www("back again\n");
    let port = free_port();
    serve(
        &d,
        "docker",
        "web",
        port,
        dir.path(),
        &["--restart", "always"],
    );
    let addr = format!("127.0.0.1:{port}");
    wait_for_page(&addr, "back again");
    let pid = inspect(&d, "container", "web")["State"]["Pid"]
        .as_i64()
        .expect("pid");
    d.stop();
    // The container dies while arcad is away: its endpoint is stale when arcad returns,
    // and the policy starts it again on the network.
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    poll_until("the container to die", Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    d.spawn();
    wait_for_page(&addr, "back again");
    let c = inspect(&d, "container", "web");
    assert_eq!(c["State"]["Running"], true);
    let net = inspect(&d, "network", "bridge");
    assert_eq!(
        net["Containers"].as_object().map(|m| m.len()),
        Some(1),
        "one endpoint, the new one: {net}"
    );
}

#[test]
fn a_container_taken_off_its_first_network_can_join_others_and_come_back() {
    let d = Daemon::start_networked(&[]);
    d.load_busybox();
    let subnet = test_subnet(5);
    assert_ok(
        &d.docker(&["network", "create", "--subnet", &subnet, "side"]),
        "network create",
    );
    assert_ok(
        &d.docker(&["run", "-d", "--name", "c", "busybox", "sleep", "300"]),
        "run",
    );
    let networks = |d: &Daemon| {
        let v = inspect(d, "container", "c");
        let mut names: Vec<String> = v["NetworkSettings"]["Networks"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        (
            names,
            v["HostConfig"]["NetworkMode"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    };
    let (_, mode_before) = networks(&d);
    assert_ok(
        &d.docker(&["network", "disconnect", "bridge", "c"]),
        "disconnect",
    );
    let (names, mode) = networks(&d);
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(mode, mode_before, "the mode stays, as Docker's");
    // Docker allows joining another network afterwards.
    assert_ok(
        &d.docker(&["network", "connect", "side", "c"]),
        "connect side",
    );
    assert_eq!(networks(&d).0, ["side"]);
    // A restart keeps it on `side` only, with an address there.
    assert_ok(&d.docker(&["restart", "-t", "0", "c"]), "restart");
    assert_eq!(networks(&d).0, ["side"]);
    let ip = inspect(&d, "container", "c")["NetworkSettings"]["Networks"]["side"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(!ip.is_empty(), "an address on side after the restart");
    // And back on its first network.
    assert_ok(
        &d.docker(&["network", "connect", "bridge", "c"]),
        "connect bridge",
    );
    assert_eq!(networks(&d).0, ["bridge", "side"]);
    assert_ok(&d.docker(&["rm", "-f", "c"]), "rm");
    // `until` takes Go durations, as in every prune: a network made just now stays.
    assert_ok(
        &d.docker(&["network", "prune", "-f", "--filter", "until=24h"]),
        "network prune until=24h",
    );
    assert_ok(&d.docker(&["network", "rm", "side"]), "network rm");
}
