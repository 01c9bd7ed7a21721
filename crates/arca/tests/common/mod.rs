//! A dedicated arcad per test, on temporary directories, driven only through public
//! clients: the arca CLI, the real docker CLI, and raw HTTP on the socket.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod fake_engine;
pub mod pty;
pub mod registry;
pub mod token_server;

pub const DOCKER: &str = "/usr/local/bin/docker";

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub root: PathBuf,
    pub exec_root: PathBuf,
    pub cgroup_parent: String,
    /// More arcad options, kept across restarts.
    pub extra_args: Vec<String>,
    /// The default bridge and nftables table of a networked daemon, removed on drop.
    net_cleanup: Option<(String, String)>,
    child: Option<Child>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The busybox docker-archive built by fixtures/build-busybox.sh (built on demand).
pub fn busybox_tar() -> PathBuf {
    let tar = workspace().join("target/fixtures/busybox.tar");
    if !tar.exists() {
        let st = Command::new(workspace().join("fixtures/build-busybox.sh"))
            .arg(&tar)
            .status()
            .expect("run fixtures/build-busybox.sh");
        assert!(st.success(), "fixtures/build-busybox.sh failed");
    }
    tar
}

pub fn poll_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A daemon with bridge networking: a default bridge, subnet and nftables table of its
    /// own (removed when it is dropped, with the bridges of networks it created).
    pub fn start_networked(extra_args: &[&str]) -> Self {
        let n = std::process::id() as u64 * 1000 + u64::from(rand_u16());
        // 10.200.0.0/13 split in /24s: a subnet no other test daemon is likely to pick; a
        // clash would fail the start loudly (the bridge address exists), not silently.
        let third = (n % 2048) as u32;
        let bip = format!("10.{}.{}.1/24", 200 + third / 256, third % 256);
        let bridge = format!("arcat{:x}", n % 0xff_ffff);
        let table = format!("arca_t{n}");
        let mut args: Vec<&str> = vec![
            "--bridge",
            &bridge,
            "--bip",
            &bip,
            "--firewall-table",
            &table,
        ];
        args.extend_from_slice(extra_args);
        let mut d = Self::start_with(&args);
        d.net_cleanup = Some((bridge.clone(), table.clone()));
        d
    }

    /// A daemon with more options (e.g. `["--userns-remap", "100000:100000:65536"]`).
    /// Without `--bridge`, it has no default bridge network (containers asking for the
    /// default network get loopback only), so tests can run side by side.
    pub fn start_with(extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("arca-e2e-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let cgroup_parent = format!(
            "/arca-test-{}",
            std::process::id() as u64 * 1000 + rand_u16() as u64
        );
        let mut d = Self {
            socket: dir.path().join("arca.sock"),
            root: dir.path().join("root"),
            exec_root: dir.path().join("run"),
            dir,
            cgroup_parent,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
            net_cleanup: None,
        };
        if !d.extra_args.iter().any(|a| a == "--bridge") {
            d.extra_args
                .extend(["--bridge".to_owned(), "none".to_owned()]);
        }
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("arcad.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_arcad"))
            .arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--root")
            .arg(&self.root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--shim")
            .arg(env!("CARGO_BIN_EXE_arca-shim"))
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .arg("--log-level")
            .arg("debug")
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn arcad");
        self.child = Some(child);
        let sock = self.socket.clone();
        poll_until("arcad to answer", Duration::from_secs(20), || {
            http(&sock, "GET", "/_ping", None)
                .map(|r| r.0 == 200)
                .unwrap_or(false)
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL the daemon (containers must survive).
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix_kill(c.id() as i32, 15);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A client command (`DOCKER`, the arca binary, `script`) aimed at this daemon, with the
    /// test's own docker config directory: never the user's `~/.docker` credentials.
    pub fn client(&self, prog: &str) -> Command {
        let mut cmd = Command::new(prog);
        cmd.env("DOCKER_HOST", self.host())
            .env("ARCA_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT");
        cmd
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.client(DOCKER)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker CLI")
    }

    pub fn arca(&self, args: &[&str]) -> Output {
        self.client(env!("CARGO_BIN_EXE_arca"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run arca")
    }

    /// Runs a client (`DOCKER` or the arca binary) with `input` on its stdin.
    pub fn with_input(&self, prog: &str, args: &[&str], input: &[u8]) -> Output {
        feed(self.client(prog).args(args), input)
    }

    /// Runs a client command line inside a pseudo-terminal (through `script`), typing
    /// `input` ahead: the pty holds it until the client reads and forwards it.
    pub fn in_pty(&self, cmdline: &str, input: &[u8]) -> Output {
        feed(
            self.client("script").args(["-qec", cmdline, "/dev/null"]),
            input,
        )
    }

    pub fn load_busybox(&self) {
        let out = self.arca(&["load", "-i", busybox_tar().to_str().expect("utf8")]);
        assert_ok(&out, "arca load busybox");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("arcad.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_none() && self.socket.exists() {
            // crashed daemon: restart briefly to clean up containers
        }
        if self.child.is_some() {
            let ids = self.arca(&["ps", "-aq", "--no-trunc"]);
            for id in String::from_utf8_lossy(&ids.stdout).lines() {
                let _ = self.arca(&["rm", "-f", id]);
            }
        }
        self.stop();
        if let Some((bridge, table)) = &self.net_cleanup {
            // The bridges of networks the test created (records in the daemon's root).
            let mut bridges = vec![bridge.clone()];
            if let Ok(dir) = std::fs::read_dir(self.root.join("networks")) {
                for e in dir.flatten() {
                    let rec: Option<serde_json::Value> = std::fs::read(e.path())
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    if let Some(b) = rec.as_ref().and_then(|r| r["bridge"].as_str()) {
                        bridges.push(b.to_owned());
                    }
                }
            }
            bridges.dedup();
            for b in bridges {
                let _ = Command::new("ip")
                    .args(["link", "del", &b])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", table])
                .stderr(Stdio::null())
                .status();
        }
        // Anything still mounted under our directory (a failed test) goes too.
        if let Ok(m) = std::fs::read_to_string("/proc/mounts") {
            let prefix = self.dir.path().to_string_lossy().to_string();
            let mut mounts: Vec<&str> = m
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|p| p.starts_with(&prefix))
                .collect();
            mounts.reverse();
            for p in mounts {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
        // Every hierarchy (v1 controllers, the unified mount, or the v2 root itself). Shims
        // delete their containers' cgroups just after reporting the exit: retry briefly.
        let mut roots: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        roots.push(PathBuf::from("/sys/fs/cgroup"));
        let mut parents: Vec<PathBuf> = roots
            .iter()
            .map(|r| r.join(self.cgroup_parent.trim_start_matches('/')))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            parents.retain(|p| {
                if !p.exists() {
                    return false;
                }
                for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
                std::fs::remove_dir(p).is_err()
            });
            if parents.is_empty() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u16::from_le_bytes(b)
}

fn nix_kill(pid: i32, sig: i32) -> std::io::Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if st.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?})\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// A raw HTTP/1.1 request on the socket: (status, body).
pub fn http(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> std::io::Result<(u16, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: arca\r\nConnection: close\r\n");
    if let Some((ct, b)) = body {
        req.push_str(&format!(
            "Content-Type: {ct}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    if let Some((_, b)) = body {
        s.write_all(b)?;
    }
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Runs `cmd` with `input` on its stdin and collects its output.
pub fn feed(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait for client")
}
