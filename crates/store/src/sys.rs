//! The store's only `unsafe` code: turning raw descriptors from `nix` into owned ones and the
//! extended-attribute calls `nix` 0.29 does not wrap.
//!
//! Every function here takes already-validated names; none resolves a path on its own except
//! through descriptors the caller opened without following symlinks.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::NixPath;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// `openat(2)` returning an owned descriptor (always `O_CLOEXEC`).
pub(crate) fn openat<P: ?Sized + NixPath>(
    dir: BorrowedFd<'_>,
    path: &P,
    flags: OFlag,
    mode: Mode,
) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(Some(dir.as_raw_fd()), path, flags | OFlag::O_CLOEXEC, mode)?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open(2)` of an absolute or relative path, returning an owned descriptor.
pub(crate) fn open<P: ?Sized + NixPath>(path: &P, flags: OFlag) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cstring(bytes: &[u8]) -> nix::Result<CString> {
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

/// Sets extended attribute `name` on the open file `fd`.
pub(crate) fn fsetxattr(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> nix::Result<()> {
    let name = cstring(name)?;
    // SAFETY: `name` is a NUL-terminated string and `value` a valid slice for the duration of
    // the call; the kernel copies both.
    let res = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(res).map(drop)
}

/// Sets extended attribute `name` on the entry `file` (which may be a symlink, never followed)
/// inside the directory `dir`. Goes through `/proc/self/fd/<dir>`, a magic link to `dir`
/// itself, so no path outside `dir` is resolved.
pub(crate) fn lsetxattr_at(
    dir: BorrowedFd<'_>,
    file: &OsStr,
    name: &[u8],
    value: &[u8],
) -> nix::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(file.as_bytes());
    let path = cstring(&path)?;
    let name = cstring(name)?;
    // SAFETY: both strings are NUL-terminated and `value` is a valid slice during the call.
    let res = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(res).map(drop)
}

/// Reads extended attribute `name` of `path` without following a final symlink.
/// `None` when the attribute is absent.
pub(crate) fn lgetxattr(
    path: &std::ffi::CStr,
    name: &std::ffi::CStr,
) -> nix::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: both strings are NUL-terminated; `buf` is writable for `buf.len()` bytes.
    let res = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match Errno::result(res) {
        Ok(n) => {
            let n = usize::try_from(n).map_err(|_| Errno::EINVAL)?;
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(Errno::ENODATA) => Ok(None),
        Err(e) => Err(e),
    }
}
