//! Health checks (`HEALTHCHECK`, `docker run --health-cmd …`) with Docker's semantics.
//!
//! While a container runs (and is not paused) one task per container runs its probe as an
//! exec (so it gets Docker's `exec_create`/`exec_start`/`exec_die` events), waits the
//! interval between the end of one probe and the start of the next, and keeps
//! `State.Health`: the status (`starting` until the first success or until `Retries`
//! consecutive failures after the start period, then `healthy`/`unhealthy`), the failing
//! streak and the last five results. A change of status emits `health_status: <status>`.
//!
//! Limits: a probe that outlives its timeout is killed by its host PID (recorded when it
//! started), which could in theory have been reused if the probe had already exited.
//! Probe results are kept in memory and saved with the next state change, as Docker does.

use std::sync::Arc;
use std::time::Duration;

use arca_api::docker::{ContainerConfig, ExecConfig, Health, HealthConfig};
use arca_api::stdcopy;
use arca_model::ContainerStatus;
use tokio::io::AsyncReadExt;

use super::record::{HealthRecord, ProbeRecord, now_rfc3339};
use super::{Container, Containers};
use crate::error::{ApiError, ApiResult};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Probe output kept per result; more is cut and marked with `...`.
const MAX_OUTPUT: usize = 4096;
/// Results kept in `State.Health.Log`.
const MAX_LOG: usize = 5;
const MIN_DURATION_NS: i64 = 1_000_000;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

/// Create-time checks, with Docker's messages.
pub fn validate(h: &HealthConfig) -> ApiResult<()> {
    let durations = [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ];
    for (name, v) in durations {
        if let Some(v) = v
            && v != 0
            && v < MIN_DURATION_NS
        {
            return Err(ApiError::invalid(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.retries.is_some_and(|r| r < 0) {
        return Err(ApiError::invalid(
            "Retries in Healthcheck cannot be negative",
        ));
    }
    match h.test.as_deref().unwrap_or_default() {
        [] => Ok(()),
        [kind, ..] if kind == "NONE" => Ok(()),
        [kind, rest @ ..] if kind == "CMD" || kind == "CMD-SHELL" => {
            if rest.is_empty() {
                Err(ApiError::invalid(format!(
                    "Healthcheck {kind} needs a command"
                )))
            } else {
                Ok(())
            }
        }
        [kind, ..] => Err(ApiError::invalid(format!(
            "unknown Healthcheck type {kind:?}: expected NONE, CMD or CMD-SHELL"
        ))),
    }
}

/// The effective healthcheck: the request's fields over the image's, field by field (an
/// empty `Test` or a zero duration inherits), as Docker merges them.
pub fn merge(user: Option<HealthConfig>, image: Option<HealthConfig>) -> Option<HealthConfig> {
    let Some(img) = image else {
        return user;
    };
    let Some(mut u) = user else {
        return Some(img);
    };
    if u.test.as_ref().is_none_or(Vec::is_empty) {
        u.test = img.test;
    }
    let inherit = |mine: &mut Option<i64>, theirs: Option<i64>| {
        if mine.unwrap_or(0) == 0 {
            *mine = theirs;
        }
    };
    inherit(&mut u.interval, img.interval);
    inherit(&mut u.timeout, img.timeout);
    inherit(&mut u.start_period, img.start_period);
    inherit(&mut u.start_interval, img.start_interval);
    inherit(&mut u.retries, img.retries);
    Some(u)
}

/// A runnable healthcheck.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

fn duration(ns: Option<i64>, default: Duration) -> Duration {
    match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

impl Probe {
    /// `None` without a healthcheck, with `NONE`, or with an unknown type.
    pub fn of(config: &ContainerConfig) -> Option<Self> {
        let h = config.healthcheck.as_ref()?;
        let test = h.test.as_deref()?;
        let (kind, rest) = test.split_first()?;
        let argv = match kind.as_str() {
            "CMD" => rest.to_vec(),
            "CMD-SHELL" => {
                let mut argv = config
                    .shell
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                argv.extend(rest.iter().cloned());
                argv
            }
            _ => return None,
        };
        if argv.is_empty() {
            return None;
        }
        Some(Self {
            argv,
            interval: duration(h.interval, DEFAULT_INTERVAL),
            timeout: duration(h.timeout, DEFAULT_TIMEOUT),
            start_period: duration(h.start_period, Duration::ZERO),
            start_interval: duration(h.start_interval, DEFAULT_START_INTERVAL),
            retries: h.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES),
        })
    }

    /// The wait before the next probe, `elapsed` after the container started: Docker's
    /// rule (the start interval while starting within the start period; a probe right
    /// when the start period ends).
    pub fn next_interval(&self, elapsed: Duration, starting: bool) -> Duration {
        if elapsed >= self.start_period {
            return self.interval;
        }
        let remaining = self.start_period - elapsed;
        if remaining < self.interval {
            remaining
        } else if starting {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// Records a probe result; returns the status before and after.
pub fn apply_result(
    h: &mut HealthRecord,
    result: ProbeRecord,
    retries: i64,
    in_start_period: bool,
) -> (String, String) {
    let old = h.status.clone();
    let healthy = result.exit_code == 0;
    h.log.push(result);
    if h.log.len() > MAX_LOG {
        let extra = h.log.len() - MAX_LOG;
        h.log.drain(..extra);
    }
    if healthy {
        h.failing_streak = 0;
        h.status = HEALTHY.into();
    } else if !(h.status == STARTING && in_start_period) {
        // Failures while starting within the start period do not count.
        h.failing_streak += 1;
        if h.failing_streak >= retries {
            h.status = UNHEALTHY.into();
        }
    }
    (old, h.status.clone())
}

/// `State.Health` as the API shows it.
pub fn view(h: &HealthRecord) -> Option<Health> {
    let v = serde_json::json!({
        "Status": h.status,
        "FailingStreak": h.failing_streak,
        "Log": h.log.iter().map(|r| serde_json::json!({
            "Start": r.start, "End": r.end, "ExitCode": r.exit_code, "Output": r.output,
        })).collect::<Vec<_>>(),
    });
    // Through JSON: the timestamp type of the generated model depends on its features.
    serde_json::from_value(v).ok()
}

/// Docker's `ps` suffix: `(healthy)`, `(unhealthy)`, `(health: starting)`.
pub fn ps_suffix(h: &HealthRecord) -> String {
    if h.status == STARTING {
        "(health: starting)".into()
    } else {
        format!("({})", h.status)
    }
}

/// Go's `time.Duration` text (`30s`, `200ms`, `1m30s`), as Docker's messages print it.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    let trim = |whole: u128, frac: u128, digits: usize, unit: &str| {
        let f = format!("{frac:0digits$}");
        let f = f.trim_end_matches('0');
        if f.is_empty() {
            format!("{whole}{unit}")
        } else {
            format!("{whole}.{f}{unit}")
        }
    };
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return trim(ns / 1_000, ns % 1_000, 3, "µs");
    }
    if ns < 1_000_000_000 {
        return trim(ns / 1_000_000, ns % 1_000_000, 6, "ms");
    }
    let secs = ns / 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let sec = trim(s, ns % 1_000_000_000, 9, "s");
    match (h, m) {
        (0, 0) => sec,
        (0, m) => format!("{m}m{sec}"),
        (h, m) => format!("{h}h{m}m{sec}"),
    }
}

fn elapsed_since(rfc3339: &str) -> Duration {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .and_then(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .ok()
        })
        .unwrap_or_default()
}

impl Containers {
    /// Starts the container's health monitor (if it has a healthcheck); `reset` marks it
    /// `starting` with no failures (a start, not an unpause).
    pub(super) fn start_health(self: &Arc<Self>, c: &Arc<Container>, reset: bool) {
        let Some(probe) = Probe::of(&c.snapshot().config) else {
            return;
        };
        self.stop_health(c);
        c.update_in_memory(|r| {
            if reset || r.state.health.is_none() {
                let h = r.state.health.get_or_insert_with(HealthRecord::default);
                h.status = STARTING.into();
                h.failing_streak = 0;
            }
        });
        let this = self.clone();
        let task_c = c.clone();
        let task = tokio::spawn(async move { this.health_loop(task_c, probe).await });
        *c.health_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
    }

    /// Stops the health monitor (stop, exit, pause); a probe in flight is abandoned.
    pub(super) fn stop_health(&self, c: &Container) {
        if let Some(t) = c
            .health_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
    }

    async fn health_loop(self: Arc<Self>, c: Arc<Container>, probe: Probe) {
        loop {
            let (started_at, starting) = {
                let r = c.snapshot();
                let starting = r
                    .state
                    .health
                    .as_ref()
                    .is_some_and(|h| h.status == STARTING);
                (r.state.started_at, starting)
            };
            tokio::time::sleep(probe.next_interval(elapsed_since(&started_at), starting)).await;
            if c.status() != ContainerStatus::Running {
                return;
            }
            let start = now_rfc3339();
            let in_start_period = elapsed_since(&started_at) < probe.start_period;
            let (exit_code, output) = self.run_probe(&c, &probe).await;
            if c.status() != ContainerStatus::Running {
                return;
            }
            let result = ProbeRecord {
                start,
                end: now_rfc3339(),
                exit_code,
                output,
            };
            let mut change = None;
            c.update_in_memory(|r| {
                let h = r.state.health.get_or_insert_with(HealthRecord::default);
                let (old, new) = apply_result(h, result, probe.retries, in_start_period);
                if old != new {
                    change = Some(new);
                }
            });
            if let Some(status) = change {
                tracing::info!(id = %c.id, %status, "health status changed");
                self.emit(&c, format!("health_status: {status}"), &[]);
            }
        }
    }

    /// Runs one probe: its exit code (-1 when it could not run or timed out) and output.
    async fn run_probe(self: &Arc<Self>, c: &Arc<Container>, probe: &Probe) -> (i64, String) {
        let config = ExecConfig {
            cmd: Some(probe.argv.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let e = match self.create_exec(c, config) {
            Ok(e) => e,
            Err(err) => return (-1, err.message),
        };
        self.emit(
            c,
            format!("exec_create: {}", e.command()),
            &[("execID", e.id.clone())],
        );
        let result = match self.launch_exec(c, &e, false, None).await {
            Ok(Ok(mut conn)) => {
                let mut out = Vec::new();
                let run = async {
                    let truncated = read_output(&mut conn.reader, &mut out).await;
                    e.wait_done().await;
                    truncated
                };
                match tokio::time::timeout(probe.timeout, run).await {
                    Ok(truncated) => {
                        let mut text = String::from_utf8_lossy(&out).into_owned();
                        if truncated {
                            text.push_str("...");
                        }
                        (e.state().exit_code.unwrap_or(-1), text)
                    }
                    Err(_) => {
                        let pid = e.state().pid;
                        if pid > 0 {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(pid as i32),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                        // Do not let dying probes pile up, within reason.
                        let _ = tokio::time::timeout(Duration::from_secs(5), e.wait_done()).await;
                        let t = go_duration(probe.timeout);
                        let text = String::from_utf8_lossy(&out).into_owned();
                        let msg = if text.is_empty() {
                            format!("Health check exceeded timeout ({t})")
                        } else {
                            format!("Health check exceeded timeout ({t}): {text}")
                        };
                        (-1, msg)
                    }
                }
            }
            Ok(Err(message)) => (-1, format!("OCI runtime exec failed: {message}")),
            Err(err) => (-1, err.message),
        };
        self.execs.remove(&e.id);
        result
    }
}

/// Reads stdcopy frames until EOF, keeping up to [`MAX_OUTPUT`] payload bytes; returns
/// whether some were dropped.
async fn read_output<R: tokio::io::AsyncRead + Unpin>(r: &mut R, out: &mut Vec<u8>) -> bool {
    let mut truncated = false;
    let mut header = [0u8; stdcopy::HEADER_LEN];
    let mut buf = vec![0u8; 4096];
    loop {
        if r.read_exact(&mut header).await.is_err() {
            return truncated;
        }
        let Some((_, mut len)) = stdcopy::parse_header(&header) else {
            return truncated;
        };
        while len > 0 {
            let want = len.min(buf.len());
            if r.read_exact(&mut buf[..want]).await.is_err() {
                return truncated;
            }
            let room = MAX_OUTPUT - out.len();
            out.extend_from_slice(&buf[..want.min(room)]);
            truncated |= want > room;
            len -= want;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(test: &[&str]) -> HealthConfig {
        HealthConfig {
            test: Some(test.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn result(code: i64) -> ProbeRecord {
        ProbeRecord {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn user_fields_override_image_fields_one_by_one() {
        let mut img = hc(&["CMD", "true"]);
        img.interval = Some(5_000_000_000);
        img.retries = Some(7);
        let mut user = HealthConfig {
            timeout: Some(2_000_000_000),
            ..Default::default()
        };
        user.retries = Some(2);
        let m = merge(Some(user), Some(img.clone())).expect("merged");
        assert_eq!(m.test, img.test);
        assert_eq!(m.interval, Some(5_000_000_000));
        assert_eq!(m.timeout, Some(2_000_000_000));
        assert_eq!(m.retries, Some(2));
        let none = merge(Some(hc(&["NONE"])), Some(img)).expect("merged");
        assert!(
            Probe::of(&ContainerConfig {
                healthcheck: Some(none),
                ..Default::default()
            })
            .is_none()
        );
    }

    #[test]
    fn probes_use_docker_defaults_and_the_shell() {
        let cfg = ContainerConfig {
            healthcheck: Some(hc(&["CMD-SHELL", "exit 0"])),
            ..Default::default()
        };
        let p = Probe::of(&cfg).expect("probe");
        assert_eq!(p.argv, vec!["/bin/sh", "-c", "exit 0"]);
        assert_eq!(p.interval, Duration::from_secs(30));
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!(p.retries, 3);
        assert_eq!(p.start_period, Duration::ZERO);
    }

    #[test]
    fn invalid_healthchecks_are_refused() {
        let mut h = hc(&["CMD", "true"]);
        h.interval = Some(10);
        assert_eq!(
            validate(&h).expect_err("too short").message,
            "Interval in Healthcheck cannot be less than 1ms"
        );
        let mut h = hc(&["CMD", "true"]);
        h.retries = Some(-1);
        assert!(validate(&h).is_err());
        assert!(validate(&hc(&["CMD"])).is_err());
        assert!(validate(&hc(&["BOGUS", "x"])).is_err());
        assert!(validate(&hc(&["NONE"])).is_ok());
    }

    #[test]
    fn failures_count_only_after_the_start_period() {
        let mut h = HealthRecord {
            status: STARTING.into(),
            ..Default::default()
        };
        for _ in 0..5 {
            apply_result(&mut h, result(1), 2, true);
        }
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        apply_result(&mut h, result(1), 2, false);
        let (old, new) = apply_result(&mut h, result(1), 2, false);
        assert_eq!((old.as_str(), new.as_str()), (STARTING, UNHEALTHY));
        assert_eq!(h.log.len(), MAX_LOG);
        let (_, new) = apply_result(&mut h, result(0), 2, false);
        assert_eq!((new.as_str(), h.failing_streak), (HEALTHY, 0));
    }

    #[test]
    fn healthy_containers_are_not_spared_by_the_start_period() {
        let mut h = HealthRecord {
            status: HEALTHY.into(),
            ..Default::default()
        };
        apply_result(&mut h, result(1), 1, true);
        assert_eq!(h.status, UNHEALTHY);
    }

    #[test]
    fn intervals_follow_the_start_period() {
        let p = Probe {
            argv: vec!["true".into()],
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            start_period: Duration::from_secs(60),
            start_interval: Duration::from_secs(5),
            retries: 3,
        };
        assert_eq!(
            p.next_interval(Duration::ZERO, true),
            Duration::from_secs(5)
        );
        assert_eq!(
            p.next_interval(Duration::ZERO, false),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.next_interval(Duration::from_secs(50), true),
            Duration::from_secs(10)
        );
        assert_eq!(
            p.next_interval(Duration::from_secs(70), true),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn health_views_as_docker_json() {
        let h = HealthRecord {
            status: HEALTHY.into(),
            failing_streak: 0,
            log: vec![ProbeRecord {
                start: "2024-01-01T00:00:00.000000001Z".into(),
                end: "2024-01-01T00:00:01Z".into(),
                exit_code: 0,
                output: "ok".into(),
            }],
        };
        let v = serde_json::to_value(view(&h).expect("view")).expect("json");
        assert_eq!(v["Status"], "healthy");
        assert_eq!(v["Log"][0]["ExitCode"], 0);
    }
}
