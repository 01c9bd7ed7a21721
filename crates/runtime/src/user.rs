//! Docker's `--user` resolution against the container's `/etc/passwd` and `/etc/group`
//! text, with runc's `GetExecUser` semantics:
//!
//! - `""` is uid 0; `name` or `uid` picks the first matching passwd entry and its primary
//!   gid; a uid with no entry runs with gid 0; an unknown name is an error.
//! - `user:group` / `uid:gid` set the gid explicitly (a name must exist in `/etc/group`).
//! - Without an explicit group, supplementary gids are the groups listing the matched user
//!   name as a member; the primary gid is always in the list too (Docker's fix for
//!   CVE-2023-25173).
//!
//! Lines whose numeric fields do not parse are skipped (runc would read them as 0).
//!
//! [`additional_groups`] resolves Docker's `--group-add` as runc's `GetAdditionalGroups`:
//! a group name or gid listed in `/etc/group`, else a plain number.

/// The identity the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Home directory from the matched passwd entry, if one matched and has one.
    pub home: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("uids and gids must be in range 0-2147483647: {0}")]
    Range(String),
}

const MAX_ID: u64 = (1 << 31) - 1;

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next();
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        let _gecos = f.next();
        let home = f.next().unwrap_or("");
        Some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next();
        let gid = f.next()?.parse().ok()?;
        let members = f.next().unwrap_or("");
        Some(GroupEntry { name, gid, members })
    })
}

/// A numeric id in runc's accepted range, or `None` if `s` is not a number.
fn parse_id(s: &str) -> Result<Option<u32>, UserError> {
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_ID => Ok(Some(n as u32)),
        Ok(_) => Err(UserError::Range(s.to_owned())),
        // Negative numbers are numbers too, and out of range.
        Err(_) if s.parse::<i64>().is_ok() => Err(UserError::Range(s.to_owned())),
        Err(_) => Ok(None),
    }
}

/// Resolves a Docker user spec. `passwd` and `group` are the files' contents, `None` when
/// the image lacks them.
pub fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ExecUser, UserError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let uid_arg = parse_id(user_arg)?;
    let mut out = ExecUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: None,
    };

    let matched = passwd.and_then(|text| {
        passwd_entries(text).find(|e| match (user_arg, uid_arg) {
            ("", _) => e.uid == 0,
            (_, Some(uid)) => e.uid == uid,
            (name, None) => e.name == name,
        })
    });
    let matched_name = match matched {
        Some(e) => {
            out.uid = e.uid;
            out.gid = e.gid;
            out.home = (!e.home.is_empty()).then(|| e.home.to_owned());
            Some(e.name.to_owned())
        }
        None if user_arg.is_empty() => None,
        None => {
            out.uid = uid_arg.ok_or_else(|| UserError::NoUser(user_arg.to_owned()))?;
            None
        }
    };

    if !group_arg.is_empty() {
        let gid_arg = parse_id(group_arg)?;
        let found = group.and_then(|text| {
            group_entries(text).find(|g| match gid_arg {
                Some(gid) => g.gid == gid,
                None => g.name == group_arg,
            })
        });
        out.gid = match (found, gid_arg) {
            (Some(g), _) => g.gid,
            (None, Some(gid)) => gid,
            (None, None) => return Err(UserError::NoGroup(group_arg.to_owned())),
        };
    } else if let (Some(name), Some(text)) = (matched_name.as_deref(), group) {
        out.additional_gids = group_entries(text)
            .filter(|g| g.members.split(',').any(|m| m.trim() == name))
            .map(|g| g.gid)
            .collect();
    }
    // As Docker since the fix for CVE-2023-25173: the primary group is also a
    // supplementary group, so dropping to the user never keeps a stale group list.
    if !out.additional_gids.contains(&out.gid) {
        out.additional_gids.insert(0, out.gid);
    }
    Ok(out)
}

/// Docker's `--group-add` entries as gids: each is a group's name or gid in the container's
/// `/etc/group` (`None` when the image has none), or any number in range.
pub fn additional_groups(entries: &[String], group: Option<&str>) -> Result<Vec<u32>, UserError> {
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let found = group.and_then(|text| {
            group_entries(text)
                .find(|g| g.name == entry || g.gid.to_string() == *entry)
                .map(|g| g.gid)
        });
        let gid = match found {
            Some(gid) => gid,
            None => parse_id(entry)?.ok_or_else(|| UserError::NoGroup(entry.clone()))?,
        };
        if !out.contains(&gid) {
            out.push(gid);
        }
    }
    Ok(out)
}

impl ExecUser {
    /// Adds `gids` to the supplementary groups (once each).
    pub fn add_groups(&mut self, gids: &[u32]) {
        for gid in gids {
            if !self.additional_gids.contains(gid) {
                self.additional_gids.push(*gid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
        \n\
        www-data:x:33:33:www:/var/www:/bin/false\n\
        broken:x:notanumber:0::/:/bin/sh\n\
        nohome:x:1000:1000:::\n";
    const GROUP: &str = "root:x:0:\n\
        daemon:x:1:\n\
        wheel:x:10:root,www-data\n\
        www-data:x:33:\n\
        staff:x:50:www-data\n";

    fn r(spec: &str) -> Result<ExecUser, UserError> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn empty_user_is_root_with_its_groups() {
        let u = r("").expect("root");
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.additional_gids, vec![0, 10]);
        assert_eq!(u.home.as_deref(), Some("/root"));
    }

    #[test]
    fn name_resolves_uid_primary_gid_and_supplementary_groups() {
        let u = r("www-data").expect("www-data");
        assert_eq!((u.uid, u.gid), (33, 33));
        assert_eq!(u.additional_gids, vec![33, 10, 50]);
        assert_eq!(u.home.as_deref(), Some("/var/www"));
    }

    #[test]
    fn numeric_uid_uses_passwd_entry_when_present() {
        let u = r("33").expect("33");
        assert_eq!((u.uid, u.gid), (33, 33));
        assert_eq!(u.additional_gids, vec![33, 10, 50]);
    }

    #[test]
    fn numeric_uid_without_entry_gets_gid_0_and_no_home() {
        let u = r("4242").expect("4242");
        assert_eq!((u.uid, u.gid), (4242, 0));
        assert_eq!(u.additional_gids, vec![0]);
        assert_eq!(u.home, None);
    }

    #[test]
    fn explicit_group_forms() {
        let u = r("www-data:staff").expect("name:name");
        assert_eq!((u.uid, u.gid), (33, 50));
        // Only the primary group in the explicit form.
        assert_eq!(u.additional_gids, vec![50]);
        assert_eq!(r("1:33").map(|u| (u.uid, u.gid)), Ok((1, 33)));
        assert_eq!(r("4242:4343").map(|u| (u.uid, u.gid)), Ok((4242, 4343)));
        assert_eq!(r("daemon:0").map(|u| (u.uid, u.gid)), Ok((1, 0)));
    }

    #[test]
    fn unknown_names_are_errors_with_docker_messages() {
        assert_eq!(
            r("nobody").expect_err("unknown").to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert_eq!(
            r("root:nogroup").expect_err("unknown group").to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
    }

    #[test]
    fn missing_files_allow_numeric_ids_only() {
        let u = resolve("", None, None).expect("root");
        assert_eq!((u.uid, u.gid, u.home), (0, 0, None));
        assert_eq!(
            resolve("5:6", None, None).map(|u| (u.uid, u.gid)),
            Ok((5, 6))
        );
        assert!(matches!(
            resolve("bob", None, None),
            Err(UserError::NoUser(_))
        ));
    }

    #[test]
    fn out_of_range_ids_are_rejected() {
        assert!(matches!(r("4294967296"), Err(UserError::Range(_))));
        assert!(matches!(r("-1"), Err(UserError::Range(_))));
    }

    #[test]
    fn unparsable_lines_and_empty_home_are_tolerated() {
        let u = r("1000").expect("nohome");
        assert_eq!((u.uid, u.gid, u.home), (1000, 1000, None));
        assert!(matches!(r("broken"), Err(UserError::NoUser(_))));
    }

    #[test]
    fn group_add_takes_names_gids_and_plain_numbers() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            additional_groups(&names(&["staff", "33", "4242", "wheel", "10"]), Some(GROUP)),
            Ok(vec![50, 33, 4242, 10])
        );
        assert_eq!(
            additional_groups(&names(&["foo"]), Some(GROUP))
                .expect_err("unknown")
                .to_string(),
            "unable to find group foo: no matching entries in group file"
        );
        assert_eq!(additional_groups(&names(&["7"]), None), Ok(vec![7]));
        assert!(matches!(
            additional_groups(&names(&["4294967296"]), None),
            Err(UserError::Range(_))
        ));
        let mut u = r("www-data").expect("www-data");
        u.add_groups(&[10, 99]);
        assert_eq!(u.additional_gids, vec![33, 10, 50, 99]);
    }
}
