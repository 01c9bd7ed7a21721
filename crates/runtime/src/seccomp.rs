//! Docker's default seccomp profile (moby `profiles/seccomp`), written out as data, and
//! its compilation to a BPF program for this host (by [`crate::bpf`], not libseccomp).
//!
//! Default action `ERRNO(EPERM)`; an allow-list of syscalls; `clone` only without
//! namespace flags, `clone3` answered with `ENOSYS` (so libcs fall back to `clone`, whose
//! flags can be inspected), `personality` limited to Docker's values, and the syscalls
//! that a capability unlocks allowed only when the container has that capability.
//!
//! Architectures: the native ABI and its 32-bit compat ABI (x86_64 + i386, aarch64 + arm).
//! Not x32: x86_64 syscall numbers with the x32 bit kill the process, as any other
//! architecture does. (libseccomp, which Docker and runc use, kills the calling thread in
//! both cases; for a single-threaded process that is the same, otherwise arca is
//! stricter.) x32 is disabled in the common distribution kernels anyway.
//!
//! Syscall names are resolved per ABI with this host's libseccomp tables (2.5.4 on Debian
//! 12; ~0.1 ms for both ABIs, the bulk of building the program): a name it does not know,
//! or that does not exist on an ABI, is skipped for that ABI, as libcontainer does. Rules gated on a minimum kernel in Docker (`ptrace`
//! & co., kernel 4.8) are included unconditionally: arca needs newer.
//!
//! The compiled program agrees with what libseccomp compiles from the same rules for every
//! syscall number of both ABIs (checked by a unit test against libseccomp's own BPF).

use libc::sock_filter;
use libseccomp::{ScmpArch, ScmpSyscall};

use crate::bpf::{self, Action, ArchFilter, ArgCmp, ArgWidth, BpfError, Cmp, Filter, SyscallRule};

const EPERM: u16 = libc::EPERM as u16;
const ENOSYS: u16 = libc::ENOSYS as u16;

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

/// One ABI the filter covers.
struct Abi {
    /// libseccomp's name for it, to resolve syscall names.
    scmp: ScmpArch,
    audit_arch: u32,
    width: ArgWidth,
    high: Option<(u32, Action)>,
    /// Direct numbers of the syscalls libseccomp resolves to pseudo-numbers on this ABI.
    direct: &'static [(&'static str, u32)],
}

/// libseccomp 2.5 resolves i386's socket and SysV IPC calls to pseudo-numbers: it filters
/// them both through their multiplexer (`socketcall`, `ipc`: Docker allows both outright)
/// and as the direct syscalls Linux 4.3 and 5.1 added, numbered here. A unit test checks
/// them against libseccomp's reverse lookup.
#[cfg(target_arch = "x86_64")]
const I386_DIRECT: &[(&str, u32)] = &[
    ("recvmmsg", 337),
    ("sendmmsg", 345),
    ("socket", 359),
    ("socketpair", 360),
    ("bind", 361),
    ("connect", 362),
    ("listen", 363),
    ("accept4", 364),
    ("getsockopt", 365),
    ("setsockopt", 366),
    ("getsockname", 367),
    ("getpeername", 368),
    ("sendto", 369),
    ("sendmsg", 370),
    ("recvfrom", 371),
    ("recvmsg", 372),
    ("shutdown", 373),
    ("semget", 393),
    ("semctl", 394),
    ("shmget", 395),
    ("shmctl", 396),
    ("shmat", 397),
    ("shmdt", 398),
    ("msgget", 399),
    ("msgsnd", 400),
    ("msgrcv", 401),
    ("msgctl", 402),
];

#[cfg(target_arch = "x86_64")]
const ABIS: &[Abi] = &[
    Abi {
        scmp: ScmpArch::X8664,
        audit_arch: bpf::AUDIT_ARCH_X86_64,
        width: ArgWidth::Bits64,
        high: Some((bpf::X32_SYSCALL_BIT, Action::KillProcess)),
        direct: &[],
    },
    Abi {
        scmp: ScmpArch::X86,
        audit_arch: bpf::AUDIT_ARCH_I386,
        width: ArgWidth::Bits32,
        high: None,
        direct: I386_DIRECT,
    },
];
#[cfg(target_arch = "aarch64")]
const ABIS: &[Abi] = &[
    Abi {
        scmp: ScmpArch::Aarch64,
        audit_arch: bpf::AUDIT_ARCH_AARCH64,
        width: ArgWidth::Bits64,
        high: None,
        direct: &[],
    },
    Abi {
        scmp: ScmpArch::Arm,
        audit_arch: bpf::AUDIT_ARCH_ARM,
        width: ArgWidth::Bits32,
        high: None,
        direct: &[],
    },
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("arca's seccomp filter supports x86_64 and aarch64 hosts only");

/// One rule: for each of `names`, `action` when every comparison in `args` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<&'static str>,
    pub action: Action,
    pub args: Vec<ArgCmp>,
}

fn allow(names: &[&'static str]) -> Rule {
    Rule {
        names: names.to_vec(),
        action: Action::Allow,
        args: Vec::new(),
    }
}

fn arg0(cmp: Cmp) -> Vec<ArgCmp> {
    vec![ArgCmp { index: 0, cmp }]
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
        args: arg0(Cmp::Ne(libc::AF_VSOCK as u64)),
        ..allow(&["socket"])
    });
    for p in PERSONALITIES {
        rules.push(Rule {
            args: arg0(Cmp::Eq(p)),
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
            args: arg0(Cmp::MaskedEq {
                mask: CLONE_NAMESPACE_FLAGS,
                value: 0,
            }),
            ..allow(&["clone"])
        });
        rules.push(Rule {
            action: Action::Errno(ENOSYS),
            ..allow(&["clone3"])
        });
    }
    rules
}

/// The number of syscall `name` on `abi`: `None` if this libseccomp does not know the name
/// or the ABI does not have it (libseccomp answers with a negative pseudo-number).
fn resolve(abi: &Abi, name: &str) -> Option<u32> {
    let nr = ScmpSyscall::from_name_by_arch(name, abi.scmp)
        .ok()?
        .as_raw_syscall();
    match u32::try_from(nr) {
        Ok(nr) => Some(nr),
        // The multiplexed pseudo-numbers (-101 to -299 in libseccomp 2.5).
        Err(_) if (-299..=-100).contains(&nr) => abi
            .direct
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, nr)| nr),
        Err(_) => None,
    }
}

/// `rules` resolved for this host's ABIs, with Docker's default (`EPERM`) and bad-arch
/// (kill) actions.
pub fn filter(rules: &[Rule]) -> Filter {
    let arches = ABIS
        .iter()
        .map(|abi| {
            // (number, rule index), sorted stably: the rules of a syscall keep their order.
            let mut numbered: Vec<(u32, usize)> = Vec::with_capacity(512);
            for (i, r) in rules.iter().enumerate() {
                numbered.extend(
                    r.names
                        .iter()
                        .filter_map(|n| resolve(abi, n))
                        .map(|nr| (nr, i)),
                );
            }
            numbered.sort_by_key(|&(nr, _)| nr);
            let mut syscalls: Vec<(u32, Vec<SyscallRule>)> = Vec::with_capacity(numbered.len());
            for (nr, i) in numbered {
                let rule = SyscallRule {
                    args: rules[i].args.clone(),
                    action: rules[i].action,
                };
                match syscalls.last_mut() {
                    Some((last, list)) if *last == nr => list.push(rule),
                    _ => syscalls.push((nr, vec![rule])),
                }
            }
            ArchFilter {
                audit_arch: abi.audit_arch,
                arg_width: abi.width,
                high: abi.high,
                // Sorted input: built in one pass.
                syscalls: syscalls.into_iter().collect(),
            }
        })
        .collect();
    Filter {
        default: Action::Errno(EPERM),
        bad_arch: Action::KillProcess,
        arches,
    }
}

/// Docker's default profile for a container holding `capabilities`, as a BPF program.
pub fn default_program(capabilities: &[String]) -> Result<Vec<sock_filter>, BpfError> {
    filter(&default_rules(capabilities)).compile()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek};

    use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};

    use super::*;
    use crate::bpf::interp;

    fn docker_default_caps() -> Vec<String> {
        arca_model::caps::to_strings(arca_model::caps::DOCKER_DEFAULT)
    }

    fn all_caps() -> Vec<String> {
        arca_model::caps::to_strings(arca_model::caps::ALL)
    }

    fn native(f: &Filter, name: &str, args: &[u64; 6]) -> Action {
        let abi = &ABIS[0];
        let nr = ScmpSyscall::from_name_by_arch(name, abi.scmp)
            .expect("known name")
            .as_raw_syscall();
        f.evaluate(abi.audit_arch, nr as u32, args)
    }

    fn allowed(f: &Filter, name: &str) -> bool {
        native(f, name, &[0; 6]) == Action::Allow
    }

    #[test]
    fn default_profile_denies_with_eperm_and_allows_the_basics() {
        let f = filter(&default_rules(&docker_default_caps()));
        assert_eq!(f.default, Action::Errno(EPERM));
        for name in [
            "read", "write", "execve", "wait4", "chroot", "capset", "prctl",
        ] {
            assert!(allowed(&f, name), "{name} should be allowed");
        }
        #[cfg(target_arch = "x86_64")]
        assert!(allowed(&f, "fork") && allowed(&f, "arch_prctl"));
        for name in [
            "mount",
            "unshare",
            "setns",
            "reboot",
            "bpf",
            "open_by_handle_at",
        ] {
            assert_eq!(native(&f, name, &[0; 6]), Action::Errno(EPERM), "{name}");
        }
    }

    #[test]
    fn clone_is_allowed_only_without_namespace_flags() {
        let f = filter(&default_rules(&docker_default_caps()));
        let sigchld = [libc::SIGCHLD as u64, 0, 0, 0, 0, 0];
        let newuser = [libc::CLONE_NEWUSER as u64 | 0x11, 0, 0, 0, 0, 0];
        assert_eq!(native(&f, "clone", &sigchld), Action::Allow);
        assert_eq!(native(&f, "clone", &newuser), Action::Errno(EPERM));
        assert_eq!(native(&f, "clone3", &[0; 6]), Action::Errno(ENOSYS));
    }

    #[test]
    fn capabilities_unlock_their_syscalls() {
        let mut caps = docker_default_caps();
        caps.push("CAP_SYS_ADMIN".into());
        caps.push("sys_ptrace".into());
        let f = filter(&default_rules(&caps));
        for name in ["mount", "unshare", "clone3", "kcmp"] {
            assert!(allowed(&f, name), "{name} should be allowed");
        }
        let newuser = [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0];
        assert_eq!(native(&f, "clone", &newuser), Action::Allow);
    }

    #[test]
    fn personality_is_limited_to_dockers_values() {
        let f = filter(&default_rules(&docker_default_caps()));
        for p in PERSONALITIES {
            assert_eq!(
                native(&f, "personality", &[p, 0, 0, 0, 0, 0]),
                Action::Allow
            );
        }
        assert_eq!(
            native(&f, "personality", &[0x0040_0000, 0, 0, 0, 0, 0]),
            Action::Errno(EPERM)
        );
    }

    #[test]
    fn profile_covers_the_native_and_compat_abis() {
        let f = filter(&default_rules(&[]));
        let arches: Vec<u32> = f.arches.iter().map(|a| a.audit_arch).collect();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(arches, [bpf::AUDIT_ARCH_X86_64, bpf::AUDIT_ARCH_I386]);
        // Names resolved on both: hundreds of syscalls each.
        assert!(
            f.arches.iter().all(|a| a.syscalls.len() > 300),
            "{arches:x?}"
        );
        assert!(default_program(&docker_default_caps()).is_ok());
    }

    /// What libseccomp compiles from the same rules, the way libcontainer feeds it
    /// (names resolved natively, per-arch translation by libseccomp).
    fn libseccomp_program(rules: &[Rule]) -> Vec<sock_filter> {
        let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(i32::from(EPERM))).expect("ctx");
        for abi in ABIS {
            ctx.add_arch(abi.scmp).expect("add arch");
        }
        for r in rules {
            let action = match r.action {
                Action::Allow => ScmpAction::Allow,
                Action::Errno(e) => ScmpAction::Errno(i32::from(e)),
                Action::KillProcess => ScmpAction::KillProcess,
            };
            for name in &r.names {
                let Ok(sc) = ScmpSyscall::from_name(name) else {
                    continue;
                };
                let cmps: Vec<ScmpArgCompare> = r
                    .args
                    .iter()
                    .map(|a| {
                        let (op, datum) = match a.cmp {
                            Cmp::Eq(v) => (ScmpCompareOp::Equal, v),
                            Cmp::Ne(v) => (ScmpCompareOp::NotEqual, v),
                            Cmp::MaskedEq { mask, value } => {
                                (ScmpCompareOp::MaskedEqual(mask), value)
                            }
                        };
                        ScmpArgCompare::new(u32::from(a.index), op, datum)
                    })
                    .collect();
                ctx.add_rule_conditional(action, sc, &cmps)
                    .expect("add rule");
            }
        }
        let mut file = tempfile::tempfile().expect("tempfile");
        ctx.export_bpf(&file).expect("export");
        let mut raw = Vec::new();
        file.rewind().expect("rewind");
        file.read_to_end(&mut raw).expect("read");
        raw.chunks_exact(8)
            .map(|c| sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect()
    }

    #[test]
    fn compiled_profile_agrees_with_libseccomp_for_every_syscall() {
        let clone_flags = [
            0u64,
            libc::SIGCHLD as u64,
            0x0001_1200 | libc::SIGCHLD as u64,
            libc::CLONE_NEWUSER as u64,
            libc::CLONE_NEWNS as u64 | 0x11,
            libc::CLONE_NEWCGROUP as u64,
            0x1_0000_0000,
        ];
        let mut arg_sets: Vec<[u64; 6]> = clone_flags.iter().map(|&f| [f, 0, 0, 0, 0, 0]).collect();
        for p in PERSONALITIES.iter().chain(&[1, 0x40_0000, 0x1_0000_0000]) {
            arg_sets.push([*p, 1, 2, 3, 4, 5]);
        }
        for family in [
            libc::AF_INET,
            libc::AF_UNIX,
            libc::AF_VSOCK,
            libc::AF_NETLINK,
        ] {
            arg_sets.push([family as u64, 1, 0, 0, 0, 0]);
            arg_sets.push([family as u64 | 0x1_0000_0000, 1, 0, 0, 0, 0]);
        }
        arg_sets.push([u64::MAX; 6]);
        let mut numbers: Vec<u32> = (0..=520).collect();
        numbers.extend([
            0x3fff_ffff,
            0x4000_0000,
            0x4000_0001,
            0x4000_0038,
            0x7fff_ffff,
            0xffff_fffe,
            u32::MAX,
        ]);
        let arches = [
            bpf::AUDIT_ARCH_X86_64,
            bpf::AUDIT_ARCH_I386,
            bpf::AUDIT_ARCH_AARCH64,
            bpf::AUDIT_ARCH_ARM,
            0,
        ];

        for caps in [Vec::new(), docker_default_caps(), all_caps()] {
            let rules = default_rules(&caps);
            let ours = filter(&rules).compile().expect("compile");
            let theirs = libseccomp_program(&rules);
            for &arch in &arches {
                for &nr in &numbers {
                    for args in &arg_sets {
                        let got = interp::run(&ours, arch, nr, args);
                        let mut want = interp::run(&theirs, arch, nr, args);
                        // libseccomp's bad-arch action kills the thread, ours the process.
                        if want == libc::SECCOMP_RET_KILL_THREAD {
                            want = libc::SECCOMP_RET_KILL_PROCESS;
                        }
                        assert_eq!(
                            got,
                            want,
                            "caps {} arch {arch:#x} nr {nr} ({:?}) args {args:x?}: \
                             ours {got:#x}, libseccomp {want:#x}",
                            caps.len(),
                            ABIS.iter().find(|a| a.audit_arch == arch).and_then(|a| {
                                ScmpSyscall::from(nr as i32).get_name_by_arch(a.scmp).ok()
                            }),
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn direct_numbers_match_libseccomps_reverse_lookup() {
        for abi in ABIS {
            for &(name, nr) in abi.direct {
                let back = ScmpSyscall::from(nr as i32).get_name_by_arch(abi.scmp);
                assert_eq!(back.ok().as_deref(), Some(name), "{nr}");
                assert_eq!(resolve(abi, name), Some(nr));
            }
            // Every syscall of the ABI that the profile names resolves to its number.
            let names: Vec<&str> = default_rules(&all_caps())
                .iter()
                .flat_map(|r| r.names.clone())
                .collect();
            for nr in 0..1024u32 {
                if let Ok(name) = ScmpSyscall::from(nr as i32).get_name_by_arch(abi.scmp)
                    && names.contains(&name.as_str())
                {
                    assert_eq!(resolve(abi, &name), Some(nr), "{name} on {:?}", abi.scmp);
                }
            }
        }
    }

    #[test]
    fn dockers_profile_compiles_to_a_small_program() {
        let caps = docker_default_caps();
        let t = std::time::Instant::now();
        let n = 20;
        for _ in 0..n {
            let prog = default_program(&caps).expect("compile");
            assert!(prog.len() < 1000, "{}", prog.len());
        }
        let per = t.elapsed() / n;
        eprintln!(
            "default seccomp program: {} instructions, {per:?} to resolve and compile",
            default_program(&caps).map(|p| p.len()).unwrap_or(0)
        );
    }
}
