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

/// Takes ownership of a descriptor just received with `SCM_RIGHTS`.
pub fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process for this message only; nothing
    // else refers to it, so it can have exactly one owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
