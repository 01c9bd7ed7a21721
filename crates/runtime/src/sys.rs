//! The few raw syscalls nix does not wrap (or wraps too narrowly). All `unsafe` in this
//! crate lives here.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;

/// Sets a terminal's window size (`TIOCSWINSZ`).
pub fn set_winsize(fd: &impl AsRawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends signal number `sig` (any number, including real-time signals) to `pid`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers and has no memory effects.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `SIGPIPE` to its default action (`ignore == false`) or ignores it.
///
/// The Rust runtime ignores `SIGPIPE` at startup; an ignored signal stays ignored across
/// `execve`, so the shim restores the default before creating the container and ignores it
/// again afterwards (it writes to sockets and pipes whose readers may be gone).
pub fn set_sigpipe(ignore: bool) {
    let handler = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    // SAFETY: installing SIG_IGN/SIG_DFL runs no handler code; the shim is single-threaded.
    unsafe {
        libc::signal(libc::SIGPIPE, handler);
    }
}

/// Gives a process about to `execve` the signal state a program expects, as runc's Go
/// runtime ends up giving it: every signal at its default action and none blocked. The shim
/// blocks `SIGCHLD` (for its signalfd), ignores `SIGPIPE`, and may inherit other ignored
/// signals from whoever started it; a blocked or ignored signal stays so across `execve`.
pub fn reset_signals_for_exec() {
    // The kernel's `struct sigaction` (handler, flags, [restorer,] mask) all zero: SIG_DFL.
    // Through the raw syscall: glibc refuses to touch the signals it reserves (32, 33).
    let default = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads one kernel `struct sigaction` (at most 4 words, all
        // valid) from `default` and writes nothing (null old action); sigsetsize is the
        // kernel's 8 bytes. Setting SIG_DFL runs no code in this process.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8,
            );
        }
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// Puts a descriptor in non-blocking mode.
pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let raw = fd.as_fd().as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(raw, FcntlArg::F_GETFL)?);
    fcntl(raw, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Brings the loopback interface up in the network namespace `netns` (a `/proc/<pid>/ns/net`
/// file), then returns the calling thread to its own namespace. The shim is single-threaded,
/// so switching namespaces affects nothing else.
pub fn loopback_up_in(netns: &File) -> io::Result<()> {
    let own = File::open("/proc/thread-self/ns/net")?;
    nix::sched::setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)?;
    let result = loopback_up();
    // Failing to return would leave the shim in the container's namespace: that only
    // matters for sockets the shim creates later, which are all unix sockets on paths.
    nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNET)?;
    result
}

fn loopback_up() -> io::Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills `req`, which lives for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel set ifru_flags; reading and updating that union member is valid.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads `req`, which lives for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs a seccomp filter on the calling thread (`seccomp(SECCOMP_SET_MODE_FILTER)`,
/// no flags, as libseccomp does by default). Needs `CAP_SYS_ADMIN` in the effective set
/// unless `no_new_privs` is set.
pub fn seccomp_set_filter(prog: &[libc::sock_filter]) -> io::Result<()> {
    let len =
        u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads the program.
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: seccomp(2) reads `fprog` and the `len` instructions it points to, which
    // live for the call; it copies the program into the kernel.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A thread's capability sets, bit `n` = capability number `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The calling thread's capability sets (`capget`).
pub fn capget() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 of capget writes two `__user_cap_data_struct`s, which `data` holds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | u64::from(f(&data[1])) << 32;
    Ok(CapSets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

/// Sets the calling thread's capability sets (`capset`).
pub fn capset(sets: CapSets) -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |v: u64| [v as u32, (v >> 32) as u32];
    let (e, p, i) = (
        split(sets.effective),
        split(sets.permitted),
        split(sets.inheritable),
    );
    let data = [0, 1].map(|n| CapData {
        effective: e[n],
        permitted: p[n],
        inheritable: i[n],
    });
    // SAFETY: version 3 of capset reads two `__user_cap_data_struct`s from `data`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes capability number `cap` from the bounding set (`PR_CAPBSET_DROP`; needs
/// `CAP_SETPCAP`).
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Empties the ambient capability set.
pub fn clear_ambient_caps() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of a descriptor just received with `SCM_RIGHTS`.
pub fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process for this message only; nothing
    // else refers to it, so it can have exactly one owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Drops this process's page-table entries for `len` bytes at `addr` (`MADV_DONTNEED`).
/// Only for private file mappings that were never written: their pages come back from the
/// page cache on the next touch, unchanged.
pub fn drop_clean_file_pages(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the caller passes a whole mapping of this process taken from /proc/self/smaps
    // that is file-backed and has no private (anonymous) pages, so discarding the PTEs loses
    // nothing: a later access faults the same file content back in.
    if unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops stack pages below the live part of the stack (`MADV_DONTNEED`: they read as zeros
/// when touched again, which is what an unused stack page may contain).
pub fn drop_unused_stack(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the caller passes a page-aligned range of this thread's `[stack]` mapping that
    // lies below its stack pointer (less a margin), where no live frame can be.
    if unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Returns free heap memory to the kernel (glibc `malloc_trim(0)`).
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of the allocator; no pointer is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The calling process's hard limit for kernel resource `resource` (`getrlimit`).
pub fn hard_rlimit(resource: libc::__rlimit_resource_t) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `struct rlimit` to the pointer, valid for the call.
    if unsafe { libc::getrlimit(resource, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_max)
}

/// Whether the calling thread may raise hard resource limits (`CAP_SYS_RESOURCE` effective).
pub fn may_raise_rlimits() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    capget().is_ok_and(|c| c.effective & (1 << CAP_SYS_RESOURCE) != 0)
}

/// A user namespace with the given `uid_map` and `gid_map` contents (lines of
/// `inside outside count`), held by the returned descriptor only: the process made to create
/// it has exited when this returns. For idmapped mounts, which need a namespace before the
/// container's exists.
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> io::Result<OwnedFd> {
    use nix::unistd::{ForkResult, fork, pipe};
    let (ready_r, ready_w) = pipe()?;
    let (hold_r, hold_w) = pipe()?;
    // SAFETY: the shim is single-threaded, and the child only makes async-signal-safe
    // calls (unshare, write, close, read, _exit) before it exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            // SAFETY: plain syscalls on descriptors this process owns; `_exit` skips every
            // destructor and atexit handler (nothing of the parent's is flushed twice).
            unsafe {
                let ok = [u8::from(libc::unshare(libc::CLONE_NEWUSER) == 0)];
                libc::write(ready_w.as_raw_fd(), ok.as_ptr().cast(), 1);
                libc::close(hold_w.as_raw_fd());
                let mut b = [0u8; 1];
                // Returns once the parent closes its end: the namespace must live until then.
                libc::read(hold_r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                libc::_exit(0)
            }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(hold_r);
            let mut ok = [0u8; 1];
            let unshared =
                nix::unistd::read(ready_r.as_raw_fd(), &mut ok).map(|n| n == 1 && ok[0] == 1);
            let result = match unshared {
                Ok(true) => std::fs::write(format!("/proc/{child}/uid_map"), uid_map)
                    .and_then(|()| std::fs::write(format!("/proc/{child}/gid_map"), gid_map))
                    .and_then(|()| File::open(format!("/proc/{child}/ns/user")))
                    .map(OwnedFd::from),
                Ok(false) => Err(io::Error::other("unshare(CLONE_NEWUSER) failed")),
                Err(e) => Err(e.into()),
            };
            drop(hold_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

/// `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cpath(p: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Mounts a copy of the directory tree at `source` on `target` with its IDs mapped through
/// the user namespace `userns` (an idmapped mount: `open_tree`, `mount_setattr`,
/// `move_mount`; Linux 5.12, and the source filesystem must support it).
pub fn mount_idmapped(
    source: &std::path::Path,
    target: &std::path::Path,
    userns: &impl AsRawFd,
) -> io::Result<()> {
    let (source, target) = (cpath(source)?, cpath(target)?);
    // SAFETY: open_tree reads the NUL-terminated path for the call and returns a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            source.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr reads `attr` (its size is passed) and the empty path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: move_mount reads the two NUL-terminated paths for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` with file-system IDs `uid`/`gid`, so that what it creates is owned by them,
/// keeping the shim's capabilities (the kernel drops the file-system ones from the effective
/// set when the fsuid leaves 0; they are raised again from the permitted set).
pub fn with_fs_ids<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> io::Result<T> {
    use nix::unistd::{Gid, Uid, setfsgid, setfsuid};
    let caps = capget()?;
    let (old_gid, old_uid) = (setfsgid(Gid::from_raw(gid)), setfsuid(Uid::from_raw(uid)));
    let raised = capset(caps);
    let out = raised.as_ref().ok().map(|()| f());
    setfsuid(old_uid);
    setfsgid(old_gid);
    let restored = capset(caps);
    raised?;
    restored?;
    Ok(out.expect("f ran when the capabilities were raised"))
}

/// Moves the calling (single-threaded) process into the user namespace `userns` and
/// becomes `uid`/`gid` with supplementary `gids` there (IDs as the namespace sees them),
/// keeping its permitted capabilities effective, as libcontainer's own switch of user does.
/// Needs `CAP_SYS_ADMIN` over the namespace.
pub fn enter_userns(userns: RawFd, uid: u32, gid: u32, gids: &[u32]) -> io::Result<()> {
    use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
    // SAFETY: the caller passes a descriptor that stays open for this call.
    let ns = unsafe { std::os::fd::BorrowedFd::borrow_raw(userns) };
    nix::sched::setns(ns, CloneFlags::CLONE_NEWUSER)?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let groups: Vec<Gid> = gids.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups)?;
    let gid = Gid::from_raw(gid);
    setresgid(gid, gid, gid)?;
    let uid = Uid::from_raw(uid);
    setresuid(uid, uid, uid)?;
    let caps = capget()?;
    capset(CapSets {
        effective: caps.permitted,
        ..caps
    })?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `open_tree(path, OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached copy of the mount tree at
/// `path` (a bind mount not yet attached anywhere), made read-only if asked
/// (`mount_setattr` with `MOUNT_ATTR_RDONLY`, recursively). Attach it with [`move_mount`].
pub fn clone_tree(path: &std::path::Path, readonly: bool) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: `c` is a valid NUL-terminated string living for the call.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    if readonly {
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let empty = c"";
        // SAFETY: `attr` and `empty` live for the call; the size matches the struct.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                empty.as_ptr(),
                (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// Attaches a detached mount tree from [`clone_tree`] at `target` (resolved by the kernel
/// from the caller's root and working directory).
pub fn move_mount(tree: &OwnedFd, target: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let c = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let empty = c"";
    // SAFETY: both strings live for the call; `tree` is an open descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` inside the mount namespace `ns` (a `/proc/<pid>/ns/mnt` file; root and working
/// directory become that namespace's), then returns to this process's own namespace and
/// working directory. Single-threaded callers only (`setns` refuses a shared `fs` anyway).
pub fn in_mount_namespace<T>(ns: &File, f: impl FnOnce() -> T) -> io::Result<T> {
    let own = File::open("/proc/self/ns/mnt")?;
    let cwd = std::env::current_dir()?;
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNS)?;
    let out = f();
    nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNS)?;
    nix::unistd::chdir(&cwd)?;
    Ok(out)
}

/// This process's stdout as a `File` (unbuffered), for a process that writes binary data
/// there and owns fd 1 from then on.
pub fn stdout_file() -> File {
    // SAFETY: fd 1 is open for the process's whole life; the caller is the only user.
    unsafe { File::from_raw_fd(1) }
}
