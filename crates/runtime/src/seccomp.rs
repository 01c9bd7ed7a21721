//! Docker's default seccomp profile (moby `profiles/seccomp`), written out as data.
//!
//! Default action `ERRNO(EPERM)`; an allow-list of syscalls; `clone` only without
//! namespace flags, `clone3` answered with `ENOSYS` (so libcs fall back to `clone`, whose
//! flags can be inspected), `personality` limited to Docker's values, and the syscalls
//! that a capability unlocks allowed only when the container has that capability.
//!
//! Architectures: the native one and its 32-bit compat ABI (x86_64 + x86, aarch64 + arm);
//! not x32, see [`ARCHES`].
//!
//! Names this host's libseccomp (2.5.4 on Debian 12) does not know are harmless:
//! libcontainer skips unknown names with a warning. Rules gated on a minimum kernel in
//! Docker (`ptrace` & co., kernel 4.8) are included unconditionally: arca needs newer.
//!
//! Note on `SCMP_CMP_MASKED_EQ`: runc reads `value` as the mask and `valueTwo` as the
//! expected result; libcontainer 0.7 reads them the other way round. [`to_oci`] writes the
//! order libcontainer needs (checked by a unit test and the shim integration test).

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// `CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
/// | CLONE_NEWCGROUP`.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Docker's personality values: PER_LINUX, UNAME26, PER_LINUX32, UNAME26|PER_LINUX32, query.
const PERSONALITIES: [u64; 5] = [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Allowed for every container.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Docker gates these on kernel >= 4.8 (seccomp can no longer be bypassed by ptrace).
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];

/// Allowed when the container holds the capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Architecture-specific allowances, by Rust target architecture.
#[cfg(target_arch = "x86_64")]
const ARCH_ALLOWED: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(target_arch = "aarch64")]
const ARCH_ALLOWED: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH_ALLOWED: &[&str] = &[];

/// Docker also lists x32. arca leaves it out: compiling the filter for a third ABI costs
/// the container ~6 ms (libseccomp 2.5.4, measured here), the x32 ABI is disabled in the
/// common distribution kernels (Debian's included), and an x86_64-only filter still sends
/// x32 syscall numbers to the bad-architecture action (kill), so they stay denied.
#[cfg(target_arch = "x86_64")]
const ARCHES: &[Arch] = &[Arch::ScmpArchX86_64, Arch::ScmpArchX86];
#[cfg(target_arch = "aarch64")]
const ARCHES: &[Arch] = &[Arch::ScmpArchAarch64, Arch::ScmpArchArm];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCHES: &[Arch] = &[Arch::ScmpArchNative];

/// One rule with runc's argument semantics (see the module docs for `MaskedEq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: LinuxSeccompAction,
    pub errno: Option<u32>,
    /// `(index, op, value, value_two)`; all must match.
    pub args: Vec<(usize, LinuxSeccompOperator, u64, u64)>,
}

fn allow(names: &[&str]) -> Rule {
    Rule {
        names: names.iter().map(|s| (*s).to_owned()).collect(),
        action: LinuxSeccompAction::ScmpActAllow,
        errno: None,
        args: Vec::new(),
    }
}

/// Docker's default rules for a container holding `capabilities` (`CAP_*` names).
pub fn default_rules(capabilities: &[String]) -> Vec<Rule> {
    let norm = |c: &str| c.to_ascii_uppercase().trim_start_matches("CAP_").to_owned();
    let held: Vec<String> = capabilities.iter().map(|c| norm(c)).collect();
    let has = |cap: &str| held.contains(&norm(cap));
    let mut rules = vec![allow(ALLOWED)];
    if !ARCH_ALLOWED.is_empty() {
        rules.push(allow(ARCH_ALLOWED));
    }
    rules.push(Rule {
        args: vec![(0, LinuxSeccompOperator::ScmpCmpNe, libc::AF_VSOCK as u64, 0)],
        ..allow(&["socket"])
    });
    for p in PERSONALITIES {
        rules.push(Rule {
            args: vec![(0, LinuxSeccompOperator::ScmpCmpEq, p, 0)],
            ..allow(&["personality"])
        });
    }
    for (cap, names) in BY_CAPABILITY {
        if has(cap) {
            rules.push(allow(names));
        }
    }
    if !has("CAP_SYS_ADMIN") {
        // s390 passes the flags second; arca does not build for s390.
        rules.push(Rule {
            args: vec![(
                0,
                LinuxSeccompOperator::ScmpCmpMaskedEq,
                CLONE_NAMESPACE_FLAGS,
                0,
            )],
            ..allow(&["clone"])
        });
        rules.push(Rule {
            action: LinuxSeccompAction::ScmpActErrno,
            errno: Some(ENOSYS),
            ..allow(&["clone3"])
        });
    }
    rules
}

/// The OCI form of `rules`, in the argument order libcontainer 0.7 evaluates.
pub fn to_oci(rules: &[Rule]) -> LinuxSeccomp {
    let syscalls = rules
        .iter()
        .map(|r| {
            let mut s = LinuxSyscall::default();
            s.set_names(r.names.clone());
            s.set_action(r.action);
            s.set_errno_ret(r.errno);
            if !r.args.is_empty() {
                let args = r
                    .args
                    .iter()
                    .map(|&(index, op, value, value_two)| {
                        // libcontainer: (arg & value_two) == value for MaskedEq.
                        let (value, value_two) = match op {
                            LinuxSeccompOperator::ScmpCmpMaskedEq => (value_two, value),
                            _ => (value, value_two),
                        };
                        LinuxSeccompArgBuilder::default()
                            .index(index)
                            .op(op)
                            .value(value)
                            .value_two(value_two)
                            .build()
                            .expect("every LinuxSeccompArg field has a default")
                    })
                    .collect();
                s.set_args(Some(args));
            }
            s
        })
        .collect();
    let mut seccomp = LinuxSeccomp::default();
    seccomp.set_default_action(LinuxSeccompAction::ScmpActErrno);
    seccomp.set_default_errno_ret(Some(EPERM));
    seccomp.set_architectures(Some(ARCHES.to_vec()));
    seccomp.set_syscalls(Some(syscalls));
    seccomp
}

/// Docker's default profile for a container holding `capabilities`.
pub fn default_profile(capabilities: &[String]) -> LinuxSeccomp {
    to_oci(&default_rules(capabilities))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_default_caps() -> Vec<String> {
        [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    fn allowed(p: &LinuxSeccomp, name: &str) -> bool {
        p.syscalls().iter().flatten().any(|s| {
            s.action() == LinuxSeccompAction::ScmpActAllow
                && s.args().is_none()
                && s.names().iter().any(|n| n == name)
        })
    }

    #[test]
    fn default_profile_denies_with_eperm_and_allows_the_basics() {
        let p = default_profile(&docker_default_caps());
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        for name in [
            "read",
            "write",
            "execve",
            "fork",
            "wait4",
            "chroot",
            "arch_prctl",
        ] {
            assert!(allowed(&p, name), "{name} should be allowed");
        }
        for name in [
            "mount", "unshare", "setns", "reboot", "clone", "clone3", "bpf",
        ] {
            assert!(
                !allowed(&p, name),
                "{name} should not be allowed unconditionally"
            );
        }
    }

    #[test]
    fn clone_is_allowed_only_without_namespace_flags_in_libcontainer_order() {
        let p = default_profile(&docker_default_caps());
        let clone = p
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &vec!["clone".to_owned()])
            .expect("clone rule");
        let arg = clone.args().as_ref().expect("args")[0];
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        // libcontainer builds ScmpArgCompare(mask = value_two, datum = value).
        assert_eq!(arg.value_two(), Some(CLONE_NAMESPACE_FLAGS));
        assert_eq!(arg.value(), 0);
        let clone3 = p
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &vec!["clone3".to_owned()])
            .expect("clone3 rule");
        assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3.errno_ret(), Some(ENOSYS));
    }

    #[test]
    fn capabilities_unlock_their_syscalls() {
        let mut caps = docker_default_caps();
        caps.push("CAP_SYS_ADMIN".into());
        caps.push("CAP_SYS_PTRACE".into());
        let p = default_profile(&caps);
        for name in ["mount", "unshare", "clone", "clone3", "kcmp"] {
            assert!(
                allowed(&p, name),
                "{name} should be allowed with its capability"
            );
        }
        // With CAP_SYS_ADMIN there is no clone3 ENOSYS rule.
        assert!(
            !p.syscalls()
                .iter()
                .flatten()
                .any(|s| s.action() == LinuxSeccompAction::ScmpActErrno)
        );
    }

    #[test]
    fn personality_is_limited_to_dockers_values() {
        let rules = default_rules(&docker_default_caps());
        let values: Vec<u64> = rules
            .iter()
            .filter(|r| r.names == ["personality"])
            .map(|r| r.args[0].2)
            .collect();
        assert_eq!(values, PERSONALITIES.to_vec());
    }

    #[test]
    fn profile_targets_native_and_compat_arches() {
        let p = default_profile(&[]);
        let arches = p.architectures().as_ref().expect("arches");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(arches, &vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]);
        assert!(!arches.is_empty());
    }
}
