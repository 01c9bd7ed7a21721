//! The resource-limit names Docker accepts in `--ulimit <name>=<soft>[:<hard>]` (go-units'
//! `ParseUlimit`): `RLIMIT_<NAME>` in lower case, without the prefix.

/// Every name `--ulimit` accepts, sorted.
pub const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Whether `name` is a `--ulimit` name.
pub fn is_ulimit_name(name: &str) -> bool {
    ULIMIT_NAMES.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_for_lookup() {
        assert!(ULIMIT_NAMES.windows(2).all(|w| w[0] < w[1]));
        assert!(is_ulimit_name("nofile") && !is_ulimit_name("as") && !is_ulimit_name(""));
    }
}
