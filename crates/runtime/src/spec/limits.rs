//! `--ulimit`: Docker's rlimit names to OCI `process.rlimits`.
//!
//! Only the limits the config names are written; every other limit stays inherited from
//! the shim (the README promises it). A hard limit above the shim's own is lowered to it
//! with a warning unless the shim may raise it (`CAP_SYS_RESOURCE`): this host's bounding
//! set lacks that capability, and asking anyway would make every container fail.

use arca_api::shim::Rlimit;
use oci_spec::runtime::{PosixRlimit, PosixRlimitBuilder, PosixRlimitType};

use super::SpecError;

/// Docker's names (go-units `ulimit.go`, the list arcad validates against:
/// `arca_model::ulimit::ULIMIT_NAMES`), the OCI type and the kernel's resource number.
const RLIMITS: &[(&str, PosixRlimitType, libc::__rlimit_resource_t)] = &[
    ("core", PosixRlimitType::RlimitCore, libc::RLIMIT_CORE),
    ("cpu", PosixRlimitType::RlimitCpu, libc::RLIMIT_CPU),
    ("data", PosixRlimitType::RlimitData, libc::RLIMIT_DATA),
    ("fsize", PosixRlimitType::RlimitFsize, libc::RLIMIT_FSIZE),
    ("locks", PosixRlimitType::RlimitLocks, libc::RLIMIT_LOCKS),
    (
        "memlock",
        PosixRlimitType::RlimitMemlock,
        libc::RLIMIT_MEMLOCK,
    ),
    (
        "msgqueue",
        PosixRlimitType::RlimitMsgqueue,
        libc::RLIMIT_MSGQUEUE,
    ),
    ("nice", PosixRlimitType::RlimitNice, libc::RLIMIT_NICE),
    ("nofile", PosixRlimitType::RlimitNofile, libc::RLIMIT_NOFILE),
    ("nproc", PosixRlimitType::RlimitNproc, libc::RLIMIT_NPROC),
    ("rss", PosixRlimitType::RlimitRss, libc::RLIMIT_RSS),
    ("rtprio", PosixRlimitType::RlimitRtprio, libc::RLIMIT_RTPRIO),
    ("rttime", PosixRlimitType::RlimitRttime, libc::RLIMIT_RTTIME),
    (
        "sigpending",
        PosixRlimitType::RlimitSigpending,
        libc::RLIMIT_SIGPENDING,
    ),
    ("stack", PosixRlimitType::RlimitStack, libc::RLIMIT_STACK),
];

/// The OCI type and kernel resource for a Docker ulimit name (`nofile`, `NOFILE`).
pub fn rlimit_type(name: &str) -> Option<(PosixRlimitType, libc::__rlimit_resource_t)> {
    RLIMITS
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, t, r)| (t, r))
}

/// [`rlimits`] against this process's own limits: a hard limit above the shim's is lowered
/// to it unless the shim may raise limits (`CAP_SYS_RESOURCE`), probed only when there are
/// limits to set.
pub fn clamped_rlimits(list: &[Rlimit]) -> Result<(Vec<PosixRlimit>, Vec<String>), SpecError> {
    if list.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let may_raise = crate::sys::may_raise_rlimits();
    rlimits(list, |resource| {
        (!may_raise)
            .then(|| crate::sys::hard_rlimit(resource).ok())
            .flatten()
    })
}

/// The rlimits to write, and a warning for each one lowered to the shim's hard limit.
/// `current_hard` gives the shim's hard limit for a kernel resource, `None` when it may be
/// raised (or is unknown); a duplicate name keeps the last entry, as Docker's map does.
pub fn rlimits(
    list: &[Rlimit],
    current_hard: impl Fn(libc::__rlimit_resource_t) -> Option<u64>,
) -> Result<(Vec<PosixRlimit>, Vec<String>), SpecError> {
    let mut out: Vec<PosixRlimit> = Vec::new();
    let mut warnings = Vec::new();
    for r in list {
        let (typ, resource) =
            rlimit_type(&r.name).ok_or_else(|| SpecError::UnknownRlimit(r.name.clone()))?;
        if r.soft > r.hard {
            return Err(SpecError::RlimitSoftAboveHard {
                name: r.name.clone(),
                soft: r.soft,
                hard: r.hard,
            });
        }
        let (mut soft, mut hard) = (r.soft, r.hard);
        if let Some(max) = current_hard(resource).filter(|max| hard > *max) {
            warnings.push(format!(
                "ulimit {}: hard limit {hard} is above the engine's own {max} and cannot be \
                 raised (no CAP_SYS_RESOURCE); using {max}",
                r.name
            ));
            hard = max;
            soft = soft.min(max);
        }
        let limit = PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft)
            .hard(hard)
            .build()
            .expect("every PosixRlimit field is set");
        out.retain(|l| l.typ() != typ);
        out.push(limit);
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shim_knows_exactly_the_names_arcad_accepts() {
        let mut ours: Vec<&str> = RLIMITS.iter().map(|(n, _, _)| *n).collect();
        ours.sort_unstable();
        assert_eq!(ours, arca_model::ulimit::ULIMIT_NAMES);
    }

    use super::*;

    fn lim(name: &str, soft: u64, hard: u64) -> Rlimit {
        Rlimit {
            name: name.into(),
            soft,
            hard,
        }
    }

    #[test]
    fn every_docker_ulimit_name_is_known() {
        for name in arca_model::ulimit::ULIMIT_NAMES {
            assert!(rlimit_type(name).is_some(), "{name}");
        }
        assert_eq!(
            rlimit_type("NOFILE"),
            Some((PosixRlimitType::RlimitNofile, libc::RLIMIT_NOFILE))
        );
        assert_eq!(rlimit_type("files"), None);
    }

    #[test]
    fn unknown_names_and_inverted_limits_are_rejected() {
        let e = rlimits(&[lim("bogus", 1, 1)], |_| None).expect_err("unknown");
        assert_eq!(e.to_string(), "unknown ulimit name \"bogus\"");
        let e = rlimits(&[lim("nofile", 10, 5)], |_| None).expect_err("soft > hard");
        assert!(e.to_string().contains("soft limit 10"), "{e}");
    }

    #[test]
    fn limits_serialize_as_oci_names_and_last_duplicate_wins() {
        let (v, w) = rlimits(&[lim("nofile", 1, 2), lim("nofile", 3, 4)], |_| None).expect("ok");
        assert!(w.is_empty());
        assert_eq!(v.len(), 1);
        let j = serde_json::to_value(v[0]).expect("json");
        assert_eq!(j["type"], "RLIMIT_NOFILE");
        assert_eq!((j["soft"].as_u64(), j["hard"].as_u64()), (Some(3), Some(4)));
    }

    #[test]
    fn hard_limits_above_the_shims_are_clamped_with_a_warning() {
        let cap = |r| (r == libc::RLIMIT_NOFILE).then_some(20_000);
        let (v, w) = rlimits(
            &[lim("nofile", 30_000, 40_000), lim("nproc", 5, 50_000)],
            cap,
        )
        .expect("ok");
        assert_eq!((v[0].soft(), v[0].hard()), (20_000, 20_000));
        assert_eq!((v[1].soft(), v[1].hard()), (5, 50_000));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("nofile"), "{w:?}");
        let (v, w) = rlimits(&[lim("nofile", 100, 10_000)], cap).expect("ok");
        assert_eq!((v[0].soft(), v[0].hard()), (100, 10_000));
        assert!(w.is_empty());
    }
}
