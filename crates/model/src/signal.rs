//! Signal names and numbers as Docker accepts them (moby's `signal.ParseSignal` on Linux):
//! `SIGTERM`, `TERM`, `term`, `15`, `RTMIN+3`, `SIGRTMAX-2`. One parser for the CLI and the
//! daemon, so that both accept exactly the same spellings.

/// The first real-time signal as glibc exposes it (32 and 33 are the C library's own).
pub const SIGRTMIN: i32 = 34;
pub const SIGRTMAX: i32 = 64;

/// Linux signal names without the `SIG` prefix, and their numbers.
const SIGNALS: &[(&str, i32)] = &[
    ("ABRT", 6),
    ("ALRM", 14),
    ("BUS", 7),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("FPE", 8),
    ("HUP", 1),
    ("ILL", 4),
    ("INT", 2),
    ("IO", 29),
    ("IOT", 6),
    ("KILL", 9),
    ("PIPE", 13),
    ("POLL", 29),
    ("PROF", 27),
    ("PWR", 30),
    ("QUIT", 3),
    ("SEGV", 11),
    ("STKFLT", 16),
    ("STOP", 19),
    ("SYS", 31),
    ("TERM", 15),
    ("TRAP", 5),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("USR1", 10),
    ("USR2", 12),
    ("VTALRM", 26),
    ("WINCH", 28),
    ("XCPU", 24),
    ("XFSZ", 25),
];

/// The signal number `raw` names, if it names one (1..=64).
pub fn parse_signal(raw: &str) -> Option<i32> {
    if let Ok(n) = raw.parse::<i32>() {
        return (1..=SIGRTMAX).contains(&n).then_some(n);
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(s, _)| *s == name) {
        return Some(n);
    }
    let offset = |o: &str| -> Option<i32> {
        if o.is_empty() || !o.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        o.parse().ok()
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        match rest.strip_prefix('+') {
            None if rest.is_empty() => SIGRTMIN,
            Some(o) => SIGRTMIN.checked_add(offset(o)?)?,
            None => return None,
        }
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        match rest.strip_prefix('-') {
            None if rest.is_empty() => SIGRTMAX,
            Some(o) => SIGRTMAX.checked_sub(offset(o)?)?,
            None => return None,
        }
    } else {
        return None;
    };
    (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_real_time_offsets_parse_like_moby() {
        for (raw, n) in [
            ("SIGTERM", 15),
            ("term", 15),
            ("kill", 9),
            ("9", 9),
            ("64", 64),
            ("SIGRTMIN", 34),
            ("RTMIN+2", 36),
            ("SIGRTMAX", 64),
            ("RTMAX-1", 63),
            ("rtmax-30", 34),
        ] {
            assert_eq!(parse_signal(raw), Some(n), "{raw}");
        }
        for raw in [
            "",
            "0",
            "65",
            "-1",
            "SIGBOGUS",
            "RTMIN+-5",
            "RTMIN+2147483647",
            "RTMIN+31",
            "RTMAX+1",
            "RTMAX-31",
            "RTMAX-",
            "RTMIN+",
            "1e1",
        ] {
            assert_eq!(parse_signal(raw), None, "{raw:?}");
        }
    }
}
