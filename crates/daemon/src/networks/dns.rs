//! The embedded DNS server of user-defined networks: containers on such a network find each
//! other by name, network alias and short ID, as with Docker.
//!
//! One UDP socket per user network, bound to the network's gateway address, port 53, in
//! the host's namespace (containers get `nameserver <gateway>` in `/etc/resolv.conf`; Docker
//! uses 127.0.0.11 inside each container, which needs a socket per container). A query for
//! an A record of a name known on that network is answered from the network's endpoints;
//! every other query is forwarded, untouched, to the host's resolvers (loopback ones work:
//! arcad runs in the host's namespace) and the answer relayed. Names on other networks are
//! not answered (networks are isolated), they are forwarded and fail as unknown names do.
//!
//! The DNS wire format is handled here for the one thing needed (the question of a query,
//! an A answer): a few dozen lines, tested below; forwarding never parses.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

/// Finds the address of `name` on the network the server belongs to.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Ipv4Addr> + Send + Sync>;

/// How long a forwarded query may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers carry this TTL: containers come and go.
const TTL: u32 = 600;
/// Forwarded queries in flight at once (each holds a socket for up to 5 s): beyond it,
/// SERVFAIL, so a container flooding unknown names cannot exhaust arcad's descriptors.
const MAX_FORWARDS: usize = 64;

/// A running server; dropping it stops it.
pub struct DnsServer {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DnsServer {
    /// Serves on `addr` (gateway:53) the clients `allowed` accepts (the network's own
    /// subnet: other networks must not learn its names), answering from `lookup`,
    /// forwarding to `upstream`.
    pub async fn start(
        addr: SocketAddr,
        lookup: Lookup,
        upstream: Vec<SocketAddr>,
        allowed: impl Fn(std::net::IpAddr) -> bool + Send + Sync + 'static,
    ) -> std::io::Result<DnsServer> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let forwards = Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDS));
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                if !allowed(from.ip()) {
                    continue;
                }
                let query = buf[..n].to_vec();
                if let Some(reply) = answer(&query, &*lookup) {
                    let _ = socket.send_to(&reply, from).await;
                    continue;
                }
                let Ok(permit) = forwards.clone().try_acquire_owned() else {
                    if let Some(fail) = servfail(&query) {
                        let _ = socket.send_to(&fail, from).await;
                    }
                    continue;
                };
                let (socket, upstream) = (socket.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Some(reply) = forward(&query, &upstream).await {
                        let _ = socket.send_to(&reply, from).await;
                    } else if let Some(fail) = servfail(&query) {
                        let _ = socket.send_to(&fail, from).await;
                    }
                });
            }
        });
        Ok(DnsServer { task })
    }
}

/// The host's resolvers (`/etc/resolv.conf`), as socket addresses.
pub fn host_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

async fn forward(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(s) = UdpSocket::bind(bind).await else {
            continue;
        };
        if s.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) = tokio::time::timeout(UPSTREAM_TIMEOUT, s.recv_from(&mut buf)).await
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// The question of a query: (name in lower case, qtype, qclass, end offset).
fn question(msg: &[u8]) -> Option<(String, u16, u16, usize)> {
    if msg.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    // A standard query (QR = 0, opcode 0) with one question.
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 || qdcount != 1 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression is not used in questions of queries
        }
        let label = msg.get(pos..pos + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(pos + 2)?, *msg.get(pos + 3)?]);
    Some((labels.join("."), qtype, qclass, pos + 4))
}

/// An answer to `query` when it asks about a name `lookup` knows: its A record, or an
/// empty answer for other types of that name (so the resolver does not wait on AAAA).
fn answer(query: &[u8], lookup: &dyn Fn(&str) -> Option<Ipv4Addr>) -> Option<Vec<u8>> {
    const A: u16 = 1;
    const IN: u16 = 1;
    let (name, qtype, qclass, end) = question(query)?;
    if qclass != IN {
        return None;
    }
    let ip = lookup(name.trim_end_matches('.'))?;
    let mut out = Vec::with_capacity(end + 16);
    out.extend_from_slice(&query[..2]); // ID
    let rd = query[2] & 0x01;
    out.push(0x84 | rd); // QR, AA, RD copied
    out.push(0x80); // RA, NOERROR
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    let answers: u16 = if qtype == A { 1 } else { 0 };
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // NSCOUNT, ARCOUNT
    out.extend_from_slice(&query[12..end]);
    if qtype == A {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        out.extend_from_slice(&A.to_be_bytes());
        out.extend_from_slice(&IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

/// SERVFAIL for a query no upstream answered.
fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let (_, _, _, end) = question(query)?;
    let mut out = Vec::with_capacity(end);
    out.extend_from_slice(&query[..2]);
    out.push(0x80 | (query[2] & 0x01));
    out.push(0x80 | 2);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    fn lookup(name: &str) -> Option<Ipv4Addr> {
        (name == "web").then_some(Ipv4Addr::new(10, 1, 0, 2))
    }

    #[test]
    fn known_names_get_an_a_record() {
        let q = query("Web", 1);
        let r = answer(&q, &lookup).expect("answered");
        assert_eq!(&r[..2], &[0x12, 0x34], "same id");
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &[10, 1, 0, 2]);
    }

    #[test]
    fn other_types_of_known_names_get_no_records_and_unknown_names_are_forwarded() {
        let r = answer(&query("web", 28), &lookup).expect("answered");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
        assert!(answer(&query("example.com", 1), &lookup).is_none());
        assert!(
            answer(&[0u8; 5], &lookup).is_none(),
            "garbage is not answered"
        );
        let s = servfail(&query("example.com", 1)).expect("servfail");
        assert_eq!(s[3] & 0x0f, 2);
    }

    #[tokio::test]
    async fn unknown_names_are_forwarded_and_the_answer_relayed() {
        // A fake upstream that answers every query with its ID and a marker byte.
        let upstream = UdpSocket::bind("127.0.0.1:0").await.expect("upstream");
        let up_addr = upstream.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            if let Ok((n, from)) = upstream.recv_from(&mut buf).await {
                let mut reply = buf[..n].to_vec();
                reply.push(0xee);
                let _ = upstream.send_to(&reply, from).await;
            }
        });
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        drop(sock);
        let _server = DnsServer::start(addr, Arc::new(lookup), vec![up_addr], |_| true)
            .await
            .expect("server");
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
        let q = query("example.com", 1);
        client.send_to(&q, addr).await.expect("send");
        let mut buf = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("relayed in time")
            .expect("recv");
        assert_eq!(&buf[..n - 1], &q[..], "the upstream's answer, untouched");
        assert_eq!(buf[n - 1], 0xee);
    }

    #[tokio::test]
    async fn the_server_answers_over_udp() {
        // A free port (the server binds a given address).
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        drop(sock);
        let _server = DnsServer::start(addr, Arc::new(lookup), Vec::new(), |_| true)
            .await
            .expect("server");
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
        client.send_to(&query("web", 1), addr).await.expect("send");
        let mut buf = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("answer in time")
            .expect("recv");
        assert_eq!(&buf[n - 4..n], &[10, 1, 0, 2]);
    }
}
