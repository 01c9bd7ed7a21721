//! `arca-init`, the `--init` process: run as PID 1 of a fresh PID namespace
//! (`unshare --fork --pid --mount-proc`) and in a busybox-only chroot.

use std::os::unix::fs::symlink;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INIT: &str = env!("CARGO_BIN_EXE_arca-init");
const DEADLINE: Duration = Duration::from_secs(10);

/// `arca-init -- args...` as PID 1 of a new PID namespace; killed on drop.
struct Namespaced {
    unshare: Child,
}

impl Namespaced {
    fn spawn(args: &[&str]) -> Self {
        let unshare = Command::new("unshare")
            .args(["--fork", "--pid", "--mount-proc", INIT, "--"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn unshare");
        Self { unshare }
    }

    /// The init's host PID, once it has spawned its child (signals are blocked by then).
    fn init_pid(&self) -> i32 {
        let init = poll(|| children(self.unshare.id() as i32).first().copied());
        poll(|| (!children(init).is_empty()).then_some(init))
    }

    fn wait(mut self) -> (i32, String) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.unshare.try_wait().expect("try_wait") {
                let mut out = String::new();
                if let Some(mut o) = self.unshare.stdout.take() {
                    std::io::Read::read_to_string(&mut o, &mut out).expect("read stdout");
                }
                return (st.code().expect("unshare exited"), out);
            }
            assert!(Instant::now() < deadline, "arca-init did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Namespaced {
    fn drop(&mut self) {
        // SIGKILL to the namespace's init ends every process in it.
        for pid in children(self.unshare.id() as i32) {
            signal(pid, libc::SIGKILL);
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a PID this test started.
    unsafe { libc::kill(pid, sig) };
}

fn poll<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn init_exits_with_its_childs_exit_code() {
    let (code, _) = Namespaced::spawn(&["sh", "-c", "exit 3"]).wait();
    assert_eq!(code, 3);
    let (code, out) = Namespaced::spawn(&["sh", "-c", "echo pid=$$"]).wait();
    assert_eq!((code, out.as_str()), (0, "pid=2\n"), "the child is PID 2");
}

#[test]
fn child_killed_by_a_signal_gives_128_plus_the_signal() {
    let (code, _) = Namespaced::spawn(&["sh", "-c", "kill -9 $$"]).wait();
    assert_eq!(code, 137);
}

#[test]
fn missing_command_exits_127() {
    let (code, _) = Namespaced::spawn(&["/no/such/command"]).wait();
    assert_eq!(code, 127);
}

#[test]
fn sigterm_to_init_reaches_the_child() {
    let ns = Namespaced::spawn(&["sleep", "100"]);
    signal(ns.init_pid(), libc::SIGTERM);
    assert_eq!(ns.wait().0, 128 + libc::SIGTERM);
}

#[test]
fn other_signals_are_forwarded_to_the_child() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = dir.path().join("trapped");
    let script = format!(
        "trap 'exit 42' USR1; touch {}; while :; do sleep 0.05; done",
        mark.display()
    );
    let ns = Namespaced::spawn(&["sh", "-c", &script]);
    let init = ns.init_pid();
    poll(|| mark.exists().then_some(()));
    signal(init, libc::SIGUSR1);
    assert_eq!(ns.wait().0, 42);
}

#[test]
fn orphaned_grandchildren_are_reaped() {
    // The subshell exits at once; its `sleep` becomes an orphan of PID 1, then exits.
    let ns = Namespaced::spawn(&["sh", "-c", "(sleep 0.5 &); exec sleep 100"]);
    let init = ns.init_pid();
    poll(|| (children(init).len() == 2).then_some(()));
    // Once it exits the orphan must not linger as a zombie: only the main child is left.
    poll(|| (children(init).len() == 1).then_some(()));
    let kids = children(init);
    assert!(
        kids.iter().all(|&p| state(p) != Some('Z')),
        "zombies left: {kids:?}"
    );
    signal(init, libc::SIGTERM);
    assert_eq!(ns.wait().0, 143);
}

#[test]
fn init_runs_in_a_busybox_only_chroot() {
    let root = tempfile::tempdir().expect("tempdir");
    for d in ["bin", "sbin"] {
        std::fs::create_dir(root.path().join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", root.path().join("bin/busybox")).expect("copy busybox");
    symlink("busybox", root.path().join("bin/sh")).expect("symlink");
    std::fs::copy(INIT, root.path().join("sbin/docker-init")).expect("copy init");
    let out = Command::new("chroot")
        .arg(root.path())
        .args([
            "/sbin/docker-init",
            "--",
            "/bin/sh",
            "-c",
            "echo hello; exit 5",
        ])
        .output()
        .expect("run chroot");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
}

#[test]
fn init_binary_needs_no_dynamic_loader() {
    let elf = std::fs::read(INIT).expect("read arca-init");
    assert_eq!(&elf[..4], b"\x7fELF");
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().expect("8 bytes"));
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().expect("2 bytes"));
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    const PT_DYNAMIC: u32 = 2;
    const DT_NEEDED: u64 = 1;
    let mut dynamic = None;
    for i in 0..usize::from(phnum) {
        let ph = phoff + i * usize::from(phentsize);
        let typ = u32::from_le_bytes(elf[ph..ph + 4].try_into().expect("4 bytes"));
        assert_ne!(typ, PT_INTERP, "arca-init asks for a program interpreter");
        if typ == PT_DYNAMIC {
            dynamic = Some((u64_at(ph + 8) as usize, u64_at(ph + 32) as usize));
        }
    }
    // A static PIE has a dynamic section (for its own relocations) but needs no library.
    if let Some((off, size)) = dynamic {
        for entry in elf[off..off + size].chunks_exact(16) {
            let tag = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
            assert_ne!(tag, DT_NEEDED, "arca-init needs a shared library");
        }
    }
}
