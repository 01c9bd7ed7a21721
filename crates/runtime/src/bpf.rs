//! A small compiler from a seccomp rule model to classic BPF, used instead of libseccomp:
//! compiling Docker's profile with libseccomp 2.5.4 costs a container ~7 ms, this costs
//! microseconds. Pure: no syscalls here (see `sys::seccomp_set_filter` to install).
//!
//! Program layout:
//! 1. load `seccomp_data.arch`; one `jeq` per [`ArchFilter`]; anything else returns
//!    [`Filter::bad_arch`].
//! 2. per architecture: load `seccomp_data.nr`, then a **binary search** over the ranges of
//!    syscall numbers that share an outcome (`jge` nodes, so a syscall costs about
//!    log2(ranges) comparisons rather than a linear chain); a range is a plain `ret`, or a
//!    single syscall whose rules compare arguments.
//! 3. argument comparisons read the 64-bit arguments as two 32-bit words, high word first,
//!    as libseccomp does; on 32-bit ABIs ([`ArgWidth::Bits32`]) the kernel zero-extends
//!    arguments, so only the low word is read and the high word is taken as 0.
//!
//! Semantics of a syscall's rules: the first rule whose comparisons all hold decides;
//! none holds, or no rules: [`Filter::default`]. Numbers in [`ArchFilter::high`] (x86_64:
//! the x32 ABI) take that action, except `0xffffffff` (-1, a syscall skipped by a tracer),
//! which takes the default, as in libseccomp.
//!
//! Jump offsets of conditional jumps are 8 bits: the assembler lays the program out, and
//! any conditional jump whose target is more than 255 instructions ahead becomes a short
//! jump over a pair of `ja` (32-bit offset) trampolines, repeated until the layout is
//! stable.

use std::collections::BTreeMap;

use libc::sock_filter;

/// `AUDIT_ARCH_*` values of `seccomp_data.arch` (linux/audit.h).
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
pub const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// x86_64 syscall numbers at or above this bit are x32 ABI calls.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;
/// Offsets of the low and high 32-bit words inside a 64-bit argument (native endian: the
/// kernel fills `seccomp_data` in the host's byte order).
#[cfg(target_endian = "little")]
const LO_HI: (u32, u32) = (0, 4);
#[cfg(target_endian = "big")]
const LO_HI: (u32, u32) = (4, 0);

// Opcodes (linux/filter.h), as the u16 `code` field.
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const JMP_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JMP_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JMP_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// What the filter answers for a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// Fail the syscall with this errno.
    Errno(u16),
    KillProcess,
}

impl Action {
    /// The `SECCOMP_RET_*` value.
    pub const fn ret(self) -> u32 {
        match self {
            Self::Allow => libc::SECCOMP_RET_ALLOW,
            Self::Errno(e) => libc::SECCOMP_RET_ERRNO | e as u32,
            Self::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        }
    }
}

/// A comparison of one 64-bit syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq(u64),
    Ne(u64),
    /// `arg & mask == value`.
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCmp {
    /// Argument index, 0 to 5.
    pub index: u8,
    pub cmp: Cmp,
}

impl ArgCmp {
    pub fn holds(&self, args: &[u64; 6]) -> bool {
        let a = args[usize::from(self.index)];
        match self.cmp {
            Cmp::Eq(v) => a == v,
            Cmp::Ne(v) => a != v,
            Cmp::MaskedEq { mask, value } => a & mask == value,
        }
    }
}

/// One rule of a syscall: if every comparison holds, `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRule {
    pub args: Vec<ArgCmp>,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgWidth {
    Bits32,
    Bits64,
}

/// The rules of one architecture (ABI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchFilter {
    /// `AUDIT_ARCH_*`.
    pub audit_arch: u32,
    pub arg_width: ArgWidth,
    /// `(first, action)`: numbers from `first` to `0xfffffffe` take `action`.
    pub high: Option<(u32, Action)>,
    /// Rules by syscall number, in order (the first matching rule decides).
    pub syscalls: BTreeMap<u32, Vec<SyscallRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// For syscalls without a matching rule.
    pub default: Action,
    /// For architectures not listed.
    pub bad_arch: Action,
    pub arches: Vec<ArchFilter>,
}

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("syscall argument index {0} is out of range")]
    ArgIndex(u8),
    #[error("syscall number {nr:#x} is in the range reserved for another action")]
    SyscallNumber { nr: u32 },
    #[error("the filter needs {0} instructions, more than the kernel's limit of 4096")]
    TooLong(usize),
}

impl Filter {
    /// The action for a syscall, straight from the model (the reference the compiled
    /// program must agree with).
    pub fn evaluate(&self, arch: u32, nr: u32, args: &[u64; 6]) -> Action {
        let Some(a) = self.arches.iter().find(|a| a.audit_arch == arch) else {
            return self.bad_arch;
        };
        if let Some((first, action)) = a.high
            && nr >= first
            && nr != u32::MAX
        {
            return action;
        }
        let args = match a.arg_width {
            ArgWidth::Bits64 => *args,
            ArgWidth::Bits32 => args.map(|v| v & 0xffff_ffff),
        };
        a.syscalls
            .get(&nr)
            .and_then(|rules| rules.iter().find(|r| r.args.iter().all(|c| c.holds(&args))))
            .map_or(self.default, |r| r.action)
    }

    /// Compiles the filter to a program for `seccomp(SECCOMP_SET_MODE_FILTER)`.
    pub fn compile(&self) -> Result<Vec<sock_filter>, BpfError> {
        let mut asm = Asm::default();
        asm.stmt(LD_W_ABS, OFF_ARCH);
        let entries: Vec<Label> = self.arches.iter().map(|_| asm.label()).collect();
        for (a, &entry) in self.arches.iter().zip(&entries) {
            let next = asm.label();
            asm.jump(JMP_JEQ_K, a.audit_arch, entry, next);
            asm.bind(next);
        }
        asm.ret(self.bad_arch);
        for (a, &entry) in self.arches.iter().zip(&entries) {
            asm.bind(entry);
            asm.stmt(LD_W_ABS, OFF_NR);
            let segments = segments(a, self.default)?;
            emit_search(&mut asm, a.arg_width, self.default, &segments)?;
        }
        asm.finish()
    }
}

/// What a range of syscall numbers leads to.
#[derive(Debug, Clone, Copy)]
enum Leaf<'a> {
    Ret(Action),
    Rules(&'a [SyscallRule]),
}

/// The rules that can decide: those up to the first unconditional one.
fn effective(rules: &[SyscallRule], default: Action) -> Leaf<'_> {
    let end = rules
        .iter()
        .position(|r| r.args.is_empty())
        .map_or(rules.len(), |i| i + 1);
    let rules = &rules[..end];
    match rules {
        [] => Leaf::Ret(default),
        [only] if only.args.is_empty() => Leaf::Ret(only.action),
        _ if rules.iter().all(|r| r.action == default) => Leaf::Ret(default),
        _ => Leaf::Rules(rules),
    }
}

/// The whole `u32` number space as `(first number, leaf)` ranges, ascending, adjacent
/// ranges with the same plain action merged.
fn segments(a: &ArchFilter, default: Action) -> Result<Vec<(u32, Leaf<'_>)>, BpfError> {
    let limit = a.high.map_or(u32::MAX, |(first, _)| first);
    // Starts in ascending order; where two are equal, the later one wins.
    let mut starts: Vec<(u32, Leaf<'_>)> = Vec::with_capacity(2 * a.syscalls.len() + 3);
    starts.push((0, Leaf::Ret(default)));
    for (&nr, rules) in &a.syscalls {
        if nr >= limit {
            return Err(BpfError::SyscallNumber { nr });
        }
        starts.push((nr, effective(rules, default)));
        // nr < limit <= u32::MAX: no overflow.
        starts.push((nr + 1, Leaf::Ret(default)));
    }
    if let Some((first, action)) = a.high {
        starts.push((first, Leaf::Ret(action)));
        starts.push((u32::MAX, Leaf::Ret(default)));
    }
    let mut out: Vec<(u32, Leaf<'_>)> = Vec::with_capacity(starts.len());
    for (start, leaf) in starts {
        if out.last().is_some_and(|&(s, _)| s == start) {
            // An empty range.
            out.pop();
        }
        if let (Some((_, Leaf::Ret(prev))), Leaf::Ret(this)) = (out.last(), leaf)
            && *prev == this
        {
            continue;
        }
        out.push((start, leaf));
    }
    Ok(out)
}

/// Binary search over `segments`; the accumulator holds the syscall number.
fn emit_search(
    asm: &mut Asm,
    width: ArgWidth,
    default: Action,
    segments: &[(u32, Leaf<'_>)],
) -> Result<(), BpfError> {
    match segments {
        [] => {
            asm.ret(default);
            Ok(())
        }
        [(_, leaf)] => emit_leaf(asm, width, default, *leaf),
        _ => {
            let mid = segments.len() / 2;
            let (low, high) = segments.split_at(mid);
            let (l_low, l_high) = (asm.label(), asm.label());
            asm.jump(JMP_JGE_K, high[0].0, l_high, l_low);
            asm.bind(l_low);
            emit_search(asm, width, default, low)?;
            asm.bind(l_high);
            emit_search(asm, width, default, high)
        }
    }
}

fn emit_leaf(
    asm: &mut Asm,
    width: ArgWidth,
    default: Action,
    leaf: Leaf<'_>,
) -> Result<(), BpfError> {
    match leaf {
        Leaf::Ret(action) => asm.ret(action),
        Leaf::Rules(rules) => {
            for rule in rules {
                let fail = asm.label();
                for c in &rule.args {
                    emit_cmp(asm, width, c, fail)?;
                }
                asm.ret(rule.action);
                asm.bind(fail);
            }
            asm.ret(default);
        }
    }
    Ok(())
}

/// One 32-bit word test: `word & mask == value`. `mask == 0` means the word is known to be
/// 0 without loading it (the high word of a 32-bit ABI's argument).
#[derive(Clone, Copy)]
struct Word {
    offset: u32,
    mask: u32,
    value: u32,
}

/// Falls through when the comparison holds, jumps to `fail` otherwise.
fn emit_cmp(asm: &mut Asm, width: ArgWidth, c: &ArgCmp, fail: Label) -> Result<(), BpfError> {
    if c.index > 5 {
        return Err(BpfError::ArgIndex(c.index));
    }
    let base = OFF_ARGS + 8 * u32::from(c.index);
    let (mask, value) = match c.cmp {
        Cmp::Eq(v) | Cmp::Ne(v) => (u64::MAX, v),
        Cmp::MaskedEq { mask, value } => (mask, value),
    };
    let hi_mask = match width {
        ArgWidth::Bits64 => (mask >> 32) as u32,
        ArgWidth::Bits32 => 0,
    };
    let words = [
        Word {
            offset: base + LO_HI.1,
            mask: hi_mask,
            value: (value >> 32) as u32,
        },
        Word {
            offset: base + LO_HI.0,
            mask: mask as u32,
            value: value as u32,
        },
    ];
    let pass = asm.label();
    match c.cmp {
        Cmp::Eq(_) | Cmp::MaskedEq { .. } => emit_words_equal(asm, &words, pass, fail),
        Cmp::Ne(_) => emit_words_equal(asm, &words, fail, pass),
    }
    asm.bind(pass);
    Ok(())
}

/// Jumps to `equal` if every word test holds, else to `differ`.
fn emit_words_equal(asm: &mut Asm, words: &[Word], equal: Label, differ: Label) {
    for (i, w) in words.iter().enumerate() {
        let last = i + 1 == words.len();
        if w.mask == 0 {
            // The masked word is 0.
            if w.value != 0 {
                asm.ja(differ);
                return;
            }
            if last {
                asm.ja(equal);
            }
            continue;
        }
        asm.stmt(LD_W_ABS, w.offset);
        if w.mask != u32::MAX {
            asm.stmt(ALU_AND_K, w.mask);
        }
        if last {
            asm.jump(JMP_JEQ_K, w.value, equal, differ);
        } else {
            let next = asm.label();
            asm.jump(JMP_JEQ_K, w.value, next, differ);
            asm.bind(next);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

#[derive(Debug, Clone, Copy)]
enum Op {
    Stmt {
        code: u16,
        k: u32,
    },
    Jump {
        code: u16,
        k: u32,
        t: Label,
        f: Label,
    },
    Ja(Label),
}

/// A forward-only assembler with labels and branch relaxation.
#[derive(Default)]
struct Asm {
    ops: Vec<Op>,
    /// Op index each label is bound to.
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.ops.len());
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.ops.push(Op::Stmt { code, k });
    }

    fn jump(&mut self, code: u16, k: u32, t: Label, f: Label) {
        self.ops.push(Op::Jump { code, k, t, f });
    }

    fn ja(&mut self, l: Label) {
        self.ops.push(Op::Ja(l));
    }

    fn ret(&mut self, a: Action) {
        self.stmt(RET_K, a.ret());
    }

    fn finish(self) -> Result<Vec<sock_filter>, BpfError> {
        let target_op = |l: Label| self.labels[l.0].expect("every label is bound");
        // `long[i]`: op i is a conditional jump emitted as `j?? k, 0, 1; ja t; ja f`.
        let mut long = vec![false; self.ops.len()];
        let pos = loop {
            let mut pos = Vec::with_capacity(self.ops.len() + 1);
            let mut at = 0usize;
            for &is_long in &long {
                pos.push(at);
                at += if is_long { 3 } else { 1 };
            }
            pos.push(at);
            let mut changed = false;
            for (i, op) in self.ops.iter().enumerate() {
                if let Op::Jump { t, f, .. } = *op
                    && !long[i]
                {
                    let far = |l: Label| {
                        pos[target_op(l)]
                            .checked_sub(pos[i] + 1)
                            .expect("BPF jumps go forward")
                            > 255
                    };
                    if far(t) || far(f) {
                        long[i] = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                break pos;
            }
        };
        let total = pos[self.ops.len()];
        if total > libc::BPF_MAXINSNS as usize {
            return Err(BpfError::TooLong(total));
        }
        // Jumps only go forward: every label is bound after the jumps that use it.
        let offset = |from: usize, l: Label| -> usize {
            pos[target_op(l)]
                .checked_sub(from + 1)
                .expect("BPF jumps go forward")
        };
        let mut out = Vec::with_capacity(total);
        let insn = |code: u16, jt: u8, jf: u8, k: u32| sock_filter { code, jt, jf, k };
        for (i, op) in self.ops.iter().enumerate() {
            let at = pos[i];
            match *op {
                Op::Stmt { code, k } => out.push(insn(code, 0, 0, k)),
                Op::Ja(l) => out.push(insn(JMP_JA, 0, 0, offset(at, l) as u32)),
                Op::Jump { code, k, t, f } if !long[i] => {
                    // Both fit in u8: checked during relaxation.
                    out.push(insn(code, offset(at, t) as u8, offset(at, f) as u8, k));
                }
                Op::Jump { code, k, t, f } => {
                    out.push(insn(code, 0, 1, k));
                    out.push(insn(JMP_JA, 0, 0, offset(at + 1, t) as u32));
                    out.push(insn(JMP_JA, 0, 0, offset(at + 2, f) as u32));
                }
            }
        }
        Ok(out)
    }
}

/// A classic-BPF interpreter for the instructions seccomp filters use (ours and
/// libseccomp's), to check programs without loading them.
#[cfg(test)]
pub(crate) mod interp {
    use libc::sock_filter;

    /// Runs `prog` on a `seccomp_data` and returns the `SECCOMP_RET_*` value.
    pub fn run(prog: &[sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let word = |k: u32| {
            let k = k as usize;
            assert!(
                k.is_multiple_of(4) && k + 4 <= data.len(),
                "bad load offset {k}"
            );
            u32::from_ne_bytes(data[k..k + 4].try_into().expect("4 bytes"))
        };
        let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        loop {
            let i = prog.get(pc).unwrap_or_else(|| panic!("fell off at {pc}"));
            let (k, jt, jf) = (i.k, usize::from(i.jt), usize::from(i.jf));
            pc += 1;
            let jump = |cond: bool| if cond { jt } else { jf };
            match i.code {
                0x20 => a = word(k),            // ld [k]
                0x00 => a = k,                  // ld #k
                0x60 => a = mem[k as usize],    // ld M[k]
                0x01 => x = k,                  // ldx #k
                0x61 => x = mem[k as usize],    // ldx M[k]
                0x02 => mem[k as usize] = a,    // st M[k]
                0x03 => mem[k as usize] = x,    // stx M[k]
                0x54 => a &= k,                 // and #k
                0x44 => a |= k,                 // or #k
                0x87 => a = x,                  // txa
                0x07 => x = a,                  // tax
                0x05 => pc += k as usize,       // ja
                0x15 => pc += jump(a == k),     // jeq #k
                0x25 => pc += jump(a > k),      // jgt #k
                0x35 => pc += jump(a >= k),     // jge #k
                0x45 => pc += jump(a & k != 0), // jset #k
                0x1d => pc += jump(a == x),     // jeq x
                0x2d => pc += jump(a > x),      // jgt x
                0x3d => pc += jump(a >= x),     // jge x
                0x06 => return k,               // ret #k
                other => panic!("unsupported opcode {other:#x} at {}", pc - 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENOSYS: u16 = libc::ENOSYS as u16;
    const EPERM: u16 = libc::EPERM as u16;

    fn rule(args: Vec<ArgCmp>, action: Action) -> SyscallRule {
        SyscallRule { args, action }
    }

    fn arg(index: u8, cmp: Cmp) -> ArgCmp {
        ArgCmp { index, cmp }
    }

    /// A filter with every kind of rule, on a 64-bit and a 32-bit ABI.
    fn sample() -> Filter {
        let mut x64 = BTreeMap::new();
        for nr in (0..300).filter(|n| n % 7 != 3) {
            x64.insert(nr, vec![rule(vec![], Action::Allow)]);
        }
        x64.insert(
            56,
            vec![rule(
                vec![arg(
                    0,
                    Cmp::MaskedEq {
                        mask: 0x7E02_0000,
                        value: 0,
                    },
                )],
                Action::Allow,
            )],
        );
        x64.insert(
            135,
            [0u64, 8, 0x20000, 0xffff_ffff]
                .map(|v| rule(vec![arg(0, Cmp::Eq(v))], Action::Allow))
                .to_vec(),
        );
        x64.insert(41, vec![rule(vec![arg(0, Cmp::Ne(40))], Action::Allow)]);
        x64.insert(435, vec![rule(vec![], Action::Errno(ENOSYS))]);
        x64.insert(
            400,
            vec![
                rule(
                    vec![arg(1, Cmp::Eq(0x1_0000_0002)), arg(5, Cmp::Ne(7))],
                    Action::Allow,
                ),
                rule(
                    vec![arg(
                        2,
                        Cmp::MaskedEq {
                            mask: 0xff00_0000_0000_00ff,
                            value: 0x1200_0000_0000_0034,
                        },
                    )],
                    Action::Errno(ENOSYS),
                ),
                rule(vec![], Action::KillProcess),
                // Shadowed by the unconditional rule above.
                rule(vec![arg(0, Cmp::Eq(1))], Action::Allow),
            ],
        );
        let mut x86 = BTreeMap::new();
        for nr in [1u32, 2, 3, 4, 5, 10, 102, 359, 500] {
            x86.insert(nr, vec![rule(vec![], Action::Allow)]);
        }
        x86.insert(359, vec![rule(vec![arg(0, Cmp::Ne(40))], Action::Allow)]);
        x86.insert(
            120,
            vec![rule(vec![arg(0, Cmp::Eq(0x1_0000_0000))], Action::Allow)],
        );
        x86.insert(
            121,
            vec![rule(vec![arg(0, Cmp::Ne(0x1_0000_0000))], Action::Allow)],
        );
        Filter {
            default: Action::Errno(EPERM),
            bad_arch: Action::KillProcess,
            arches: vec![
                ArchFilter {
                    audit_arch: AUDIT_ARCH_X86_64,
                    arg_width: ArgWidth::Bits64,
                    high: Some((X32_SYSCALL_BIT, Action::KillProcess)),
                    syscalls: x64,
                },
                ArchFilter {
                    audit_arch: AUDIT_ARCH_I386,
                    arg_width: ArgWidth::Bits32,
                    high: None,
                    syscalls: x86,
                },
            ],
        }
    }

    fn sample_args() -> Vec<[u64; 6]> {
        let mut v = vec![[0; 6], [u64::MAX; 6]];
        for a0 in [
            0u64,
            1,
            8,
            40,
            0x20000,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0028,
            0x1000_0000,
            0x0002_0000 | 0x11,
            0x1200_0000_0000_0034,
        ] {
            v.push([a0, 0x1_0000_0002, a0, 0, 0, 7]);
            v.push([a0, 0x2, 0x12ff_ffff_ffff_ff34, 0, 0, 8]);
            v.push([a0, 0x1_0000_0002, 0, 0, 0, 8]);
        }
        v
    }

    fn numbers() -> Vec<u32> {
        let mut v: Vec<u32> = (0..600).collect();
        v.extend([
            X32_SYSCALL_BIT - 1,
            X32_SYSCALL_BIT,
            X32_SYSCALL_BIT + 1,
            X32_SYSCALL_BIT | 56,
            0x7fff_ffff,
            0xffff_fffe,
            u32::MAX,
        ]);
        v
    }

    fn assert_equivalent(f: &Filter, prog: &[sock_filter]) {
        for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, 0] {
            for &nr in &numbers() {
                for args in sample_args() {
                    let want = f.evaluate(arch, nr, &args).ret();
                    let got = interp::run(prog, arch, nr, &args);
                    assert_eq!(
                        got, want,
                        "arch {arch:#x} nr {nr:#x} args {args:x?}: got {got:#x}, want {want:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn compiled_program_agrees_with_the_model() {
        let f = sample();
        let prog = f.compile().expect("compile");
        assert_equivalent(&f, &prog);
    }

    #[test]
    fn model_follows_first_match_and_the_high_range() {
        let f = sample();
        let x = |nr, a0| f.evaluate(AUDIT_ARCH_X86_64, nr, &[a0, 0, 0, 0, 0, 0]);
        assert_eq!(x(0, 0), Action::Allow);
        assert_eq!(x(3, 0), Action::Errno(EPERM));
        assert_eq!(x(56, 0x11), Action::Allow);
        assert_eq!(x(56, 0x1000_0000), Action::Errno(EPERM));
        assert_eq!(x(135, 0x20000), Action::Allow);
        assert_eq!(x(135, 0x20001), Action::Errno(EPERM));
        assert_eq!(x(41, 40), Action::Errno(EPERM));
        assert_eq!(x(41, 0x1_0000_0028), Action::Allow);
        assert_eq!(x(400, 1), Action::KillProcess);
        assert_eq!(x(X32_SYSCALL_BIT, 0), Action::KillProcess);
        assert_eq!(x(u32::MAX, 0), Action::Errno(EPERM));
        assert_eq!(f.evaluate(0x1234, 0, &[0; 6]), Action::KillProcess);
        // 32-bit ABI: arguments are zero-extended, the high word never matches.
        let i = |nr, a0| f.evaluate(AUDIT_ARCH_I386, nr, &[a0, 0, 0, 0, 0, 0]);
        assert_eq!(i(120, 0x1_0000_0000), Action::Errno(EPERM));
        assert_eq!(i(121, 0), Action::Allow);
        assert_eq!(i(359, 0x1_0000_0028), Action::Errno(EPERM));
    }

    #[test]
    fn syscalls_cost_a_logarithmic_number_of_comparisons() {
        let f = sample();
        let prog = f.compile().expect("compile");
        // Count instructions executed for a plain allowed syscall: arch check, load, search.
        let mut max = 0;
        for nr in 0..300 {
            let steps = steps(&prog, AUDIT_ARCH_X86_64, nr);
            max = max.max(steps);
        }
        // ~90 ranges: depth 7, plus arch dispatch, loads and the return.
        assert!(max <= 12, "{max} instructions for one syscall");
    }

    /// Instructions executed (plain loads, jumps and returns only).
    fn steps(prog: &[sock_filter], arch: u32, nr: u32) -> usize {
        let mut pc = 0;
        let mut a = 0u32;
        let mut n = 0;
        loop {
            let i = prog[pc];
            n += 1;
            pc += 1;
            match i.code {
                LD_W_ABS if i.k == OFF_ARCH => a = arch,
                LD_W_ABS if i.k == OFF_NR => a = nr,
                JMP_JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JMP_JGE_K => pc += usize::from(if a >= i.k { i.jt } else { i.jf }),
                JMP_JA => pc += i.k as usize,
                RET_K => return n,
                _ => return n,
            }
        }
    }

    #[test]
    fn far_jumps_go_through_trampolines() {
        // Many conditional syscalls: the search tree's jumps span hundreds of instructions.
        let mut syscalls = BTreeMap::new();
        for nr in 0..200u32 {
            let rules = vec![
                rule(vec![arg(0, Cmp::Eq(u64::from(nr)))], Action::Allow),
                rule(
                    vec![arg(1, Cmp::Ne(u64::from(nr) << 32))],
                    Action::Errno(ENOSYS),
                ),
            ];
            syscalls.insert(nr * 2, rules);
        }
        let f = Filter {
            default: Action::Errno(EPERM),
            bad_arch: Action::KillProcess,
            arches: vec![
                ArchFilter {
                    audit_arch: AUDIT_ARCH_X86_64,
                    arg_width: ArgWidth::Bits64,
                    high: Some((X32_SYSCALL_BIT, Action::KillProcess)),
                    syscalls: syscalls.clone(),
                },
                ArchFilter {
                    audit_arch: AUDIT_ARCH_I386,
                    arg_width: ArgWidth::Bits32,
                    high: None,
                    syscalls: syscalls.into_iter().take(50).collect(),
                },
            ],
        };
        let prog = f.compile().expect("compile");
        assert!(prog.len() > 256, "{}", prog.len());
        assert!(prog.iter().any(|i| i.code == JMP_JA && i.k > 255));
        for nr in 0..410 {
            for a in [
                [u64::from(nr / 2), 0, 0, 0, 0, 0],
                [7, u64::from(nr / 2) << 32, 0, 0, 0, 0],
                [7; 6],
            ] {
                for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386] {
                    assert_eq!(
                        interp::run(&prog, arch, nr, &a),
                        f.evaluate(arch, nr, &a).ret(),
                        "nr {nr} args {a:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn invalid_input_is_rejected() {
        let mut f = sample();
        f.arches[0]
            .syscalls
            .insert(1, vec![rule(vec![arg(6, Cmp::Eq(0))], Action::Allow)]);
        assert!(matches!(f.compile(), Err(BpfError::ArgIndex(6))));
        let mut f = sample();
        f.arches[0]
            .syscalls
            .insert(X32_SYSCALL_BIT + 1, vec![rule(vec![], Action::Allow)]);
        assert!(matches!(f.compile(), Err(BpfError::SyscallNumber { .. })));
    }

    #[test]
    fn an_empty_filter_applies_the_default() {
        let f = Filter {
            default: Action::Allow,
            bad_arch: Action::KillProcess,
            arches: vec![ArchFilter {
                audit_arch: AUDIT_ARCH_X86_64,
                arg_width: ArgWidth::Bits64,
                high: None,
                syscalls: BTreeMap::new(),
            }],
        };
        let prog = f.compile().expect("compile");
        // Load arch, match it, bad arch; load nr, default.
        assert_eq!(prog.len(), 5);
        assert_equivalent(&f, &prog);
    }
}
