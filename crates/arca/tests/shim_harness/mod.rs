//! The `arca-shim` test harness shared by the shim test files: a busybox rootfs in a
//! temporary directory, one shim per test with its own cgroup parent
//! (`/arca-test-<random>`), and a check that nothing is left behind (mounts, runtime state,
//! socket, cgroups). Use it with `mod shim_harness; use shim_harness::*;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arca_api::shim::{
    ExitStatus, NetworkConfig, PROTOCOL_VERSION, ProcessConfig, Ready, Reply, Request,
    ResourcesConfig, RootfsConfig, SecurityConfig, ShimConfig,
};
use arca_api::stdcopy::{self, StreamKind};

pub const SHIM: &str = env!("CARGO_BIN_EXE_arca-shim");
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn docker_caps() -> Vec<String> {
    arca_model::caps::to_strings(arca_model::caps::DOCKER_DEFAULT)
}

/// A temporary busybox image layer plus everything one container needs.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("arca-shim-test")
            .tempdir()
            .expect("tempdir");
        let lower = dir.path().join("lower");
        for d in ["bin", "etc", "tmp"] {
            std::fs::create_dir_all(lower.join(d)).expect("mkdir");
        }
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "/bin/busybox is missing: apt-get install -y busybox-static"
        );
        std::fs::copy(busybox, lower.join("bin/busybox")).expect("copy busybox");
        for applet in ["sh", "echo", "true", "sleep", "cat", "id", "tty", "stty"] {
            symlink("busybox", lower.join("bin").join(applet)).expect("symlink");
        }
        // An absolute symlink: must resolve inside the rootfs, not on the host.
        std::fs::create_dir_all(lower.join("usr/bin")).expect("mkdir");
        symlink("/bin/busybox", lower.join("usr/bin/env")).expect("symlink");
        std::fs::write(lower.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("w");
        std::fs::write(lower.join("etc/group"), "root:x:0:\nwheel:x:10:root\n").expect("w");
        std::fs::write(lower.join("etc/notexec"), "#!/bin/sh\n").expect("w");
        for d in ["upper", "work", "bundle", "state", "run"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        Self {
            dir,
            cgroup_parent: format!("/arca-test-{}", random_hex(6)),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn config(&self, args: &[&str]) -> ShimConfig {
        let id = random_hex(32);
        ShimConfig {
            version: PROTOCOL_VERSION,
            bundle: self.path("bundle"),
            state_root: self.path("state"),
            socket: self.path("run/shim.sock"),
            exit_file: self.path("run/exit.json"),
            log_path: self.path("run/json.log"),
            log: Default::default(),
            shim_log: self.path("run/shim.log"),
            rootfs: RootfsConfig {
                lower: vec![self.path("lower")],
                upper: self.path("upper"),
                work: self.path("work"),
                readonly: false,
                volatile: false,
            },
            process: ProcessConfig {
                args: args.iter().map(|s| (*s).to_owned()).collect(),
                env: vec!["PATH=/usr/bin:/bin".into()],
                cwd: "/".into(),
                user: String::new(),
                tty: false,
                open_stdin: false,
                stdin_once: false,
                console_size: None,
                group_add: Vec::new(),
                rlimits: Vec::new(),
            },
            hostname: id[..12].to_owned(),
            mounts: Vec::new(),
            resources: ResourcesConfig::default(),
            cgroup_path: format!("{}/{id}", self.cgroup_parent),
            network: NetworkConfig::None,
            security: SecurityConfig {
                capabilities: docker_caps(),
                no_new_privileges: false,
                seccomp: true,
                privileged: false,
            },
            namespaces: Default::default(),
            devices: Vec::new(),
            shm_size: None,
            init: None,
            id,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // libcontainer removes the container's leaf cgroup (after the shim has answered
        // Wait, so possibly a moment later); the parent is the test's. Bounded retry.
        let name = self.cgroup_parent.trim_start_matches('/');
        let mut parents: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(name))
            .collect();
        parents.push(Path::new("/sys/fs/cgroup").join(name));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            parents.retain(|p| p.exists() && std::fs::remove_dir(p).is_err());
            if parents.is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

pub struct Shim {
    pub child: Child,
    pub cfg: ShimConfig,
    pub ready: Ready,
}

pub fn spawn(cfg: &ShimConfig) -> Shim {
    spawn_with(SHIM, cfg)
}

pub fn spawn_with(bin: &str, cfg: &ShimConfig) -> Shim {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn arca-shim");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(&serde_json::to_vec(cfg).expect("json"))
        .expect("write config");
    drop(stdin);
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read Ready");
    let ready: Ready = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Shim {
        child,
        cfg: cfg.clone(),
        ready,
    }
}

impl Shim {
    pub fn request(&self, req: &Request) -> (Reply, UnixStream) {
        let mut s = UnixStream::connect(&self.cfg.socket).expect("connect to the shim");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut line = serde_json::to_vec(req).expect("json");
        line.push(b'\n');
        s.write_all(&line).expect("send request");
        let mut reply = Vec::new();
        let mut b = [0u8; 1];
        while s.read(&mut b).expect("read reply") == 1 && b[0] != b'\n' {
            reply.push(b[0]);
        }
        let reply = serde_json::from_slice(&reply)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&reply)));
        (reply, s)
    }

    pub fn wait_conn(&self) -> UnixStream {
        let mut s = UnixStream::connect(&self.cfg.socket).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.write_all(b"{\"op\":\"wait\"}\n").expect("send wait");
        s
    }

    pub fn start(&self) {
        let (reply, _) = self.request(&Request::Start);
        assert!(matches!(reply, Reply::Ok { pid: Some(_) }), "{reply:?}");
    }

    /// Waits for the shim process to exit and checks it left nothing behind.
    pub fn finish(mut self) {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // 0 after a container ran; 1 when creating it failed (reported in Ready).
                let want = if self.ready.error.is_some() { 1 } else { 0 };
                assert_eq!(st.code(), Some(want), "shim exited with {st}");
                break;
            }
            assert!(Instant::now() < deadline, "the shim did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
        let bundle = self.cfg.bundle.display().to_string();
        assert!(!mounts.contains(&bundle), "rootfs still mounted:\n{mounts}");
        assert!(!self.cfg.socket.exists(), "socket left behind");
        assert!(
            !self.cfg.state_root.join(&self.cfg.id).exists(),
            "runtime state left behind"
        );
        for leaf in cgroup_dirs(&self.cfg.cgroup_path) {
            assert!(!leaf.exists(), "cgroup {} left behind", leaf.display());
        }
    }
}

/// The container's cgroup directories on this host (v1 controllers or the v2 tree).
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    if Path::new("/sys/fs/cgroup/memory").is_dir() {
        ["memory", "pids", "cpu", "devices"]
            .iter()
            .map(|c| Path::new("/sys/fs/cgroup").join(c).join(rel))
            .collect()
    } else {
        vec![Path::new("/sys/fs/cgroup").join(rel)]
    }
}

pub fn read_to_end(mut s: UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read stream");
    out
}

/// Splits stdcopy frames into (stdout, stderr).
pub fn demux(mut data: &[u8]) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while !data.is_empty() {
        let h: [u8; 8] = data[..8].try_into().expect("header");
        let (kind, len) = stdcopy::parse_header(&h).expect("valid frame header");
        let payload = &data[8..8 + len];
        match kind {
            StreamKind::Stdout => out.extend_from_slice(payload),
            StreamKind::Stderr => err.extend_from_slice(payload),
            other => panic!("unexpected stream {other:?}"),
        }
        data = &data[8 + len..];
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

pub fn exited(conn: UnixStream) -> ExitStatus {
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .expect("read Exited");
    match serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")) {
        Reply::Exited(s) => s,
        other => panic!("expected Exited, got {other:?}"),
    }
}

/// Runs `args` to completion with stdout and stderr attached.
pub fn run(cfg: &ShimConfig) -> (String, String, ExitStatus) {
    let shim = spawn(cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let (reply, attach) = shim.request(&Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
    let wait = shim.wait_conn();
    shim.start();
    let (out, err) = demux(&read_to_end(attach));
    let status = exited(wait);
    shim.finish();
    (out, err, status)
}

pub fn exec_process(args: &[&str]) -> ProcessConfig {
    ProcessConfig {
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        env: vec!["PATH=/usr/bin:/bin".into()],
        cwd: String::new(),
        user: String::new(),
        tty: false,
        open_stdin: false,
        stdin_once: false,
        console_size: None,
        group_add: Vec::new(),
        rlimits: Vec::new(),
    }
}

impl Shim {
    pub fn exec(
        &self,
        exec_id: &str,
        process: ProcessConfig,
        privileged: bool,
    ) -> (Reply, UnixStream) {
        self.request(&Request::Exec {
            exec_id: exec_id.to_owned(),
            process,
            privileged,
        })
    }

    /// Runs an exec to completion: its demuxed output and exit code.
    pub fn exec_output(&self, exec_id: &str, process: ProcessConfig) -> (String, String, i32) {
        self.exec_output_with(exec_id, process, false)
    }

    pub fn exec_output_with(
        &self,
        exec_id: &str,
        process: ProcessConfig,
        privileged: bool,
    ) -> (String, String, i32) {
        let (reply, stream) = self.exec(exec_id, process, privileged);
        assert!(matches!(reply, Reply::Ok { pid: Some(_) }), "{reply:?}");
        let (out, err) = demux(&read_to_end(stream));
        (out, err, self.exec_wait(exec_id).exit_code)
    }

    pub fn exec_wait_conn(&self, exec_id: &str) -> UnixStream {
        let mut s = UnixStream::connect(&self.cfg.socket).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut line = serde_json::to_vec(&Request::ExecWait {
            exec_id: exec_id.to_owned(),
        })
        .expect("json");
        line.push(b'\n');
        s.write_all(&line).expect("send exec wait");
        s
    }

    pub fn exec_wait(&self, exec_id: &str) -> ExitStatus {
        exited(self.exec_wait_conn(exec_id))
    }

    /// Kills the container and checks that it and the shim are gone.
    pub fn stop(self, wait: UnixStream) {
        let (reply, _) = self.request(&Request::Kill { signal: 9 });
        assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
        assert_eq!(exited(wait).exit_code, 137);
        self.finish();
    }

    /// The shim's child processes.
    pub fn children(&self) -> Vec<i32> {
        let pid = self.ready.shim_pid;
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .expect("children")
            .split_whitespace()
            .map(|p| p.parse().expect("pid"))
            .collect()
    }
}

/// A started container running `args`, and a connection waiting for its exit.
pub fn running(cfg: &ShimConfig) -> (Shim, UnixStream) {
    let shim = spawn(cfg);
    assert!(shim.ready.error.is_none(), "{:?}", shim.ready);
    let wait = shim.wait_conn();
    shim.start();
    (shim, wait)
}

pub fn error_message(reply: Reply) -> String {
    match reply {
        Reply::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}
