//! Giving back the memory the shim needed only to create the container.
//!
//! A shim lives as long as its container, but most of its resident memory is left over from
//! creating it (libcontainer's and serde's code pages, freed heap) or from handling a
//! request. Its event loop, idle, touches almost nothing. So whenever no client has connected
//! for a moment (`TRIM_DELAY` in the monitor; arcad connects as it starts the container, so
//! this also covers creation), off the start path, the shim
//! - returns free heap to the kernel (`malloc_trim`),
//! - drops its page-table entries of clean, read-only file mappings (its own code and
//!   read-only data, the shared libraries'): those pages stay in the page cache, shared
//!   with every other shim, and fault back in (a minor fault) when touched, and
//! - drops the pages of its stack below the current stack pointer (less a margin): creating
//!   a container runs deep call chains once; the event loop needs a few KiB.
//!
//! A trim costs well under a millisecond (one read of `/proc/self/smaps`, a few dozen
//! `madvise` calls). The arca-shim binary is linked without PIE (`crates/arca/build.rs`):
//! a PIE's relocated read-only data (vtables, ~450 KiB here) is private dirty memory in every
//! shim, while in a fixed-address binary it is clean file memory that a trim can drop.
//!
//! Mappings with private dirty pages (RELRO after relocation, `.data`, anything written) are
//! never touched: dropping them would lose content.

use std::io::{self, BufRead, BufReader};

use crate::sys;

/// What a trim did, for the shim's diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    pub mappings: usize,
    pub bytes: usize,
}

/// Trims the heap and drops clean file pages of this process (see the module docs).
pub fn release_startup_memory() -> io::Result<Trimmed> {
    sys::trim_heap();
    let smaps = BufReader::new(std::fs::File::open("/proc/self/smaps")?);
    let lines: Vec<String> = smaps.lines().map_while(Result::ok).collect();
    let mut done = Trimmed::default();
    for m in clean_file_mappings(lines.iter().cloned()) {
        if sys::drop_clean_file_pages(m.start, m.end - m.start).is_ok() {
            done.mappings += 1;
            done.bytes += m.rss_kb * 1024;
        }
    }
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    if let Some((start, end)) = unused_stack(&lines, sp)
        && sys::drop_unused_stack(start, end - start).is_ok()
    {
        done.mappings += 1;
    }
    Ok(done)
}

/// Room left below the stack pointer: the frames of the calls made from here (the madvise
/// itself, the red zone) live there.
const STACK_MARGIN: usize = 64 << 10;
const PAGE: usize = 4096;

/// The part of the `[stack]` mapping that lies more than [`STACK_MARGIN`] below `sp`, page
/// aligned; `None` if there is none.
fn unused_stack(smaps: &[String], sp: usize) -> Option<(usize, usize)> {
    let line = smaps.iter().find(|l| l.ends_with("[stack]"))?;
    let (range, _) = line.split_once(' ')?;
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    if !(start..end).contains(&sp) {
        return None;
    }
    let top = sp.checked_sub(STACK_MARGIN)? & !(PAGE - 1);
    (top > start).then_some((start, top))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    rss_kb: usize,
}

/// Mappings of `/proc/self/smaps` that are file-backed (an absolute path), not writable,
/// not shared-writable, with resident pages and no anonymous (private dirty) pages.
fn clean_file_mappings(lines: impl Iterator<Item = String>) -> Vec<Mapping> {
    struct Current {
        m: Mapping,
        eligible: bool,
        anonymous_kb: usize,
    }
    let mut out = Vec::new();
    let mut cur: Option<Current> = None;
    let flush = |c: Option<Current>, out: &mut Vec<Mapping>| {
        if let Some(c) = c
            && c.eligible
            && c.anonymous_kb == 0
            && c.m.rss_kb > 0
        {
            out.push(c.m);
        }
    };
    for line in lines {
        if let Some(header) = parse_header(&line) {
            flush(cur.take(), &mut out);
            cur = Some(header);
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        let mut kv = line.split_whitespace();
        let (Some(key), Some(val)) = (kv.next(), kv.next()) else {
            continue;
        };
        let kb = || val.parse::<usize>().unwrap_or(usize::MAX);
        match key {
            "Rss:" => c.m.rss_kb = kb(),
            "Anonymous:" => c.anonymous_kb = kb(),
            _ => {}
        }
    }
    flush(cur.take(), &mut out);

    fn parse_header(line: &str) -> Option<Current> {
        // "55d0c8a00000-55d0c8a3a000 r--p 00000000 fd:01 1234   /usr/bin/x"
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let perms = f.next()?;
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let (_offset, _dev, _inode) = (f.next()?, f.next()?, f.next()?);
        let path = f.next().unwrap_or("");
        let p = perms.as_bytes();
        let eligible = p.len() == 4
            && p[0] == b'r'
            && p[1] == b'-'
            && p[3] == b'p'
            && path.starts_with('/')
            && !line.ends_with("(deleted)");
        Some(Current {
            m: Mapping {
                start,
                end,
                rss_kb: 0,
            },
            eligible,
            anonymous_kb: 0,
        })
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c8a00000-55d0c8a3a000 r--p 00000000 fd:01 1234                       /usr/bin/arca-shim
Size:                232 kB
Rss:                 200 kB
Anonymous:             0 kB
55d0c8a3a000-55d0c8f00000 r-xp 0003a000 fd:01 1234                       /usr/bin/arca-shim
Rss:                3000 kB
Anonymous:             0 kB
55d0c8f00000-55d0c8f20000 r--p 00500000 fd:01 1234                       /usr/bin/arca-shim
Rss:                 128 kB
Anonymous:           128 kB
55d0c8f20000-55d0c8f21000 rw-p 00520000 fd:01 1234                       /usr/bin/arca-shim
Rss:                   4 kB
Anonymous:             4 kB
55d0c9000000-55d0c9100000 rw-p 00000000 00:00 0                          [heap]
Rss:                 900 kB
Anonymous:           900 kB
7f0000000000-7f0000010000 r--p 00000000 fd:01 99                         /lib/x86_64-linux-gnu/libc.so.6
Rss:                  64 kB
Anonymous:             0 kB
7f0000020000-7f0000021000 r--s 00000000 fd:01 77                         /dev/shm/x
Rss:                   4 kB
Anonymous:             0 kB
7f0000030000-7f0000031000 r-xp 00000000 fd:01 78                         /tmp/gone (deleted)
Rss:                   4 kB
Anonymous:             0 kB
7f0000040000-7f0000041000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
Anonymous:             0 kB
7f0000050000-7f0000060000 r-xp 00000000 fd:01 99                         /lib/x86_64-linux-gnu/libc.so.6
Rss:                   0 kB
Anonymous:             0 kB
";

    #[test]
    fn only_clean_private_read_only_file_mappings_are_dropped() {
        let got = clean_file_mappings(SMAPS.lines().map(str::to_owned));
        let starts: Vec<usize> = got.iter().map(|m| m.start).collect();
        assert_eq!(
            starts,
            vec![0x55d0c8a00000, 0x55d0c8a3a000, 0x7f0000000000],
            "RELRO with private pages, writable, shared, deleted, vdso and empty mappings stay"
        );
        assert_eq!(got[1].rss_kb, 3000);
    }

    #[test]
    fn unused_stack_is_below_the_stack_pointer_less_a_margin() {
        let smaps = vec![
            "7ffd22000000-7ffd22100000 rw-p 00000000 00:00 0                          [stack]"
                .to_owned(),
        ];
        let (start, end) = unused_stack(&smaps, 0x7ffd220f0123).expect("some");
        assert_eq!(start, 0x7ffd22000000);
        assert_eq!(end, (0x7ffd220f0123 - STACK_MARGIN) & !(PAGE - 1));
        assert!(
            unused_stack(&smaps, 0x7ffd22000100).is_none(),
            "nothing below the margin"
        );
        assert!(
            unused_stack(&smaps, 0x1000).is_none(),
            "sp outside the stack"
        );
    }

    #[test]
    fn trimming_this_process_keeps_it_working() {
        let before = std::fs::read_to_string("/proc/self/status").expect("status");
        let t = release_startup_memory().expect("trim");
        // Code keeps running after its pages were dropped: they fault back in.
        let after = std::fs::read_to_string("/proc/self/status").expect("status");
        assert!(before.contains("VmRSS") && after.contains("VmRSS"));
        assert!(
            t.mappings > 0,
            "a test binary has clean file mappings: {t:?}"
        );
    }
}
