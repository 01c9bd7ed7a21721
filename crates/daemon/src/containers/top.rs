//! `GET /containers/{id}/top`: the container's processes as `ps` shows them.
//!
//! As moby does: the container's PIDs come from its cgroup; the host's `ps` runs with the
//! client's arguments (`-ef` by default) plus `-q <pids>`, again without `-q` if `ps`
//! rejects that combination, and only rows of the container's PIDs are kept (and the
//! thread rows that follow them, `-` in the PID column). Without a `ps` on the host the
//! default listing is built from `/proc` in `ps -ef`'s columns.

use std::path::Path;

use arca_api::docker::ContainerTopResponse;

use crate::error::{ApiError, ApiResult};

const DEFAULT_ARGS: &str = "-ef";

/// moby refuses `key=PID…` selectors other than `pid=` (they would rename the PID column
/// and break the filtering).
pub fn validate_ps_args(args: &str) -> ApiResult<()> {
    let words: Vec<&str> = args.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        // "user=PIDX" or "user= PIDX": the whole word before `=` must be `pid`.
        let Some((k, v)) = w.split_once('=') else {
            continue;
        };
        let v = if v.is_empty() {
            words.get(i + 1).copied().unwrap_or("")
        } else {
            v
        };
        if !v.starts_with("PID") {
            continue;
        }
        if k != "pid" {
            return Err(ApiError::invalid(format!(
                "specifying \"{k}={v}\" is not allowed"
            )));
        }
    }
    Ok(())
}

/// Keeps the rows of `ps` output whose PID is one of `pids` (sorted), plus the thread rows
/// (`-` as PID) that follow a kept row. Columns after the last title are joined into it
/// (the command line has spaces).
pub fn parse_ps_output(output: &str, pids: &[i32]) -> ApiResult<ContainerTopResponse> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ApiError::internal("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    let mut keep_threads = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(pid) = fields.get(pid_col) else {
            continue;
        };
        let keep = if *pid == "-" {
            keep_threads
        } else {
            let p: i32 = pid
                .parse()
                .map_err(|_| ApiError::internal(format!("Unexpected pid '{pid}'")))?;
            keep_threads = pids.binary_search(&p).is_ok();
            keep_threads
        };
        if keep {
            let split = (titles.len() - 1).min(fields.len());
            let mut row: Vec<String> = fields[..split].iter().map(|f| (*f).to_owned()).collect();
            row.push(fields[split..].join(" "));
            processes.push(row);
        }
    }
    Ok(ContainerTopResponse {
        titles: Some(titles),
        processes: Some(processes),
    })
}

fn run_ps(args: &[&str]) -> std::io::Result<std::process::Output> {
    std::process::Command::new("ps")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
}

/// Lists `pids` with `ps <ps_args>` (blocking: it runs a process and reads `/proc`).
pub fn top_blocking(pids: &[i32], ps_args: &str) -> ApiResult<ContainerTopResponse> {
    let ps_args = if ps_args.trim().is_empty() {
        DEFAULT_ARGS
    } else {
        ps_args
    };
    validate_ps_args(ps_args)?;
    let args: Vec<&str> = ps_args.split_whitespace().collect();
    let quick = format!(
        "-q{}",
        pids.iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut with_q = args.clone();
    if !pids.is_empty() {
        with_q.push(&quick);
    }
    let out = match run_ps(&with_q) {
        Ok(o) if o.status.success() => o,
        Ok(_) => match run_ps(&args) {
            Ok(o) if o.status.success() => o,
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let first = err.lines().next().unwrap_or("").trim();
                let msg = if first.is_empty() {
                    format!("ps: {}", o.status)
                } else {
                    format!("ps: {first}")
                };
                return Err(ApiError::internal(msg));
            }
            Err(e) => return Err(ApiError::internal(format!("ps: {e}"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && ps_args == DEFAULT_ARGS => {
            return Ok(proc_ps::list(Path::new("/proc"), pids));
        }
        Err(e) => return Err(ApiError::internal(format!("ps: {e}"))),
    };
    parse_ps_output(&String::from_utf8_lossy(&out.stdout), pids)
}

/// `ps -ef` from `/proc`, for hosts without `ps`.
pub mod proc_ps {
    use std::path::Path;

    use arca_api::docker::ContainerTopResponse;

    /// The fields of `/proc/<pid>/stat` that `ps -ef` shows.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ProcStat {
        pub comm: String,
        pub ppid: i32,
        pub tty_nr: u64,
        /// User plus system time, in clock ticks.
        pub cpu_ticks: u64,
        /// Start time in clock ticks after boot.
        pub start_ticks: u64,
    }

    /// Parses `/proc/<pid>/stat` (the command name may contain spaces and parentheses:
    /// the fields start after the last `)`).
    pub fn parse_stat(s: &str) -> Option<ProcStat> {
        let open = s.find('(')?;
        let close = s.rfind(')')?;
        let comm = s.get(open + 1..close)?.to_owned();
        let f: Vec<&str> = s.get(close + 1..)?.split_whitespace().collect();
        // f[0] is field 3 (state).
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        Some(ProcStat {
            comm,
            ppid: f.get(1)?.parse().ok()?,
            tty_nr: num(4)?,
            cpu_ticks: num(11)? + num(12)?,
            start_ticks: num(19)?,
        })
    }

    /// `pts/3`, `tty1`, or `?`.
    pub fn tty_name(tty_nr: u64) -> String {
        let major = (tty_nr >> 8) & 0xfff;
        let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
        match major {
            136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
            4 if minor < 64 => format!("tty{minor}"),
            _ => "?".into(),
        }
    }

    /// Cumulative CPU time as `ps` prints it: `HH:MM:SS`, `D-HH:MM:SS` past a day.
    pub fn cpu_time(secs: u64) -> String {
        let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
        if d > 0 {
            format!("{d}-{h:02}:{m:02}:{s:02}")
        } else {
            format!("{h:02}:{m:02}:{s:02}")
        }
    }

    /// `STIME`: `HH:MM` today, `MonDD` this year, else the year.
    pub fn start_time(
        start: chrono::DateTime<chrono::Local>,
        now: chrono::DateTime<chrono::Local>,
    ) -> String {
        use chrono::Datelike;
        if start.date_naive() == now.date_naive() {
            start.format("%H:%M").to_string()
        } else if start.year() == now.year() {
            start.format("%b%d").to_string()
        } else {
            start.format("%Y").to_string()
        }
    }

    fn user_name(proc_root: &Path, pid: i32) -> String {
        use std::os::unix::fs::MetadataExt;
        // The owner of /proc/<pid> is the process's effective UID.
        let Ok(uid) = std::fs::metadata(proc_root.join(pid.to_string())).map(|m| m.uid()) else {
            return "?".into();
        };
        let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid.to_string()).then(|| name.to_owned())
            })
        });
        // ps prints the number when the name does not fit its column.
        name.filter(|n| n.len() <= 8)
            .unwrap_or_else(|| uid.to_string())
    }

    pub fn list(proc_root: &Path, pids: &[i32]) -> ContainerTopResponse {
        let titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
        let ticks = match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
            Ok(Some(t)) if t > 0 => t as u64,
            _ => 100,
        };
        let btime = std::fs::read_to_string(proc_root.join("stat"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<i64>().ok())
            })
            .unwrap_or(0);
        let now = chrono::Local::now();
        let mut rows = Vec::new();
        for &pid in pids {
            let dir = proc_root.join(pid.to_string());
            let Some(st) = std::fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
            else {
                continue; // exited meanwhile
            };
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let cmd = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let cmd = if cmd.is_empty() {
                format!("[{}]", st.comm)
            } else {
                cmd
            };
            let started = btime + (st.start_ticks / ticks) as i64;
            let start = chrono::DateTime::from_timestamp(started, 0)
                .map(|d| d.with_timezone(&chrono::Local))
                .unwrap_or(now);
            let elapsed = (now.timestamp() - started).max(1) as u64;
            let c = (st.cpu_ticks * 100 / ticks / elapsed).min(99);
            rows.push(vec![
                user_name(proc_root, pid),
                pid.to_string(),
                st.ppid.to_string(),
                c.to_string(),
                start_time(start, now),
                tty_name(st.tty_nr),
                cpu_time(st.cpu_ticks / ticks),
                cmd,
            ]);
        }
        ContainerTopResponse {
            titles: Some(titles.iter().map(|t| (*t).to_owned()).collect()),
            processes: Some(rows),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::proc_ps::*;
    use super::*;

    #[test]
    fn ps_output_keeps_container_rows_and_their_threads() {
        let out = "UID   PID  PPID  C STIME TTY   TIME     CMD\n\
                   root    1     0  0 10:00 ?     00:00:01 /sbin/init\n\
                   root   42     1  0 10:01 ?     00:00:00 sleep 1000 --flag\n\
                   root    -     -  0 10:01 ?     00:00:00 -\n\
                   root   43     1  0 10:01 ?     00:00:00 other\n\
                   root    -     -  0 10:01 ?     00:00:00 -\n";
        let top = parse_ps_output(out, &[42]).expect("parse");
        assert_eq!(top.titles.as_ref().map(Vec::len), Some(8));
        let procs = top.processes.expect("processes");
        assert_eq!(procs.len(), 2, "{procs:?}");
        assert_eq!(procs[0][1], "42");
        assert_eq!(procs[0][7], "sleep 1000 --flag");
        assert_eq!(procs[1][1], "-");
    }

    #[test]
    fn ps_output_without_pid_column_is_an_error() {
        assert!(parse_ps_output("USER COMMAND\nroot x\n", &[1]).is_err());
    }

    #[test]
    fn ps_args_may_not_rename_the_pid_column() {
        assert!(validate_ps_args("-ef").is_ok());
        assert!(validate_ps_args("-o pid=PID,comm").is_ok());
        assert!(validate_ps_args("-o user=PID").is_err());
        assert!(validate_ps_args("-o pid,user= PIDX").is_err());
    }

    #[test]
    fn proc_stat_parses_names_with_spaces_and_parens() {
        let s = "42 (my (odd) name) S 1 42 42 34816 42 4194560 100 0 0 0 150 50 0 0 20 0 1 0 12345 1000 100";
        let st = parse_stat(s).expect("stat");
        assert_eq!(st.comm, "my (odd) name");
        assert_eq!(st.ppid, 1);
        assert_eq!(st.tty_nr, 34816);
        assert_eq!(st.cpu_ticks, 200);
        assert_eq!(st.start_ticks, 12345);
        assert_eq!(tty_name(34816), "pts/0");
        assert_eq!(tty_name(0), "?");
        assert_eq!(cpu_time(3661), "01:01:01");
        assert_eq!(cpu_time(90061), "1-01:01:01");
    }

    #[test]
    fn proc_listing_has_ps_ef_columns_for_this_process() {
        let me = std::process::id() as i32;
        let top = list(Path::new("/proc"), &[me, i32::MAX]);
        let procs = top.processes.expect("rows");
        assert_eq!(procs.len(), 1, "a missing PID is skipped");
        assert_eq!(procs[0].len(), 8);
        assert_eq!(procs[0][1], me.to_string());
        assert_eq!(procs[0][2], std::os::unix::process::parent_id().to_string());
        assert!(procs[0][6].contains(':'));
    }
}
