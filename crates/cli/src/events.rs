//! `arca events`: the daemon's event stream in docker's default line format.

use std::collections::HashMap;
use std::io::Write;

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptionsBuilder;
use clap::Args;
use futures_util::StreamExt;

use crate::client::Cli;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp (unix seconds, RFC 3339, or a duration
    /// such as 10m before now)
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided (key=value)
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
}

/// A Go-style duration (`90s`, `1h30m`, `1.5h`) in seconds.
fn duration_secs(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|n| *n > 0)?;
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        total += n * match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
    }
    (!s.is_empty()).then_some(total)
}

/// Durations become "now minus the duration", as docker's client does; anything else
/// (unix seconds, RFC 3339) goes to the daemon unchanged.
fn timestamp(s: &str) -> String {
    match duration_secs(s) {
        Some(d) => {
            let t = chrono::Utc::now() - chrono::Duration::nanoseconds((d * 1e9) as i64);
            format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
        }
        None => s.to_owned(),
    }
}

/// `2026-11-22T22:30:01.123456789Z container start <id> (image=busybox, name=x)`.
fn format_event(ev: &EventMessage) -> String {
    let mut out = String::new();
    let nanos = ev
        .time_nano
        .filter(|n| *n != 0)
        .or_else(|| ev.time.map(|t| t * 1_000_000_000));
    if let Some(n) = nanos {
        let t = chrono::DateTime::from_timestamp_nanos(n).with_timezone(&chrono::Local);
        let tz = if t.offset().local_minus_utc() == 0 {
            "Z".to_owned()
        } else {
            t.format("%:z").to_string()
        };
        out.push_str(&format!("{}{tz} ", t.format("%Y-%m-%dT%H:%M:%S%.9f")));
    }
    let kind = ev.typ.map(|t| t.to_string()).unwrap_or_default();
    let actor = ev.actor.clone().unwrap_or_default();
    out.push_str(&format!(
        "{kind} {} {}",
        ev.action.as_deref().unwrap_or(""),
        actor.id.as_deref().unwrap_or("")
    ));
    let mut attrs: Vec<(String, String)> =
        actor.attributes.unwrap_or_default().into_iter().collect();
    if !attrs.is_empty() {
        attrs.sort();
        let attrs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(" ({})", attrs.join(", ")));
    }
    out
}

pub async fn events(cli: &Cli, a: EventsArgs) -> anyhow::Result<i32> {
    let mut filters: HashMap<String, Vec<String>> = HashMap::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
        filters.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    let mut opts = EventsOptionsBuilder::new().filters(&filters);
    if let Some(s) = &a.since {
        opts = opts.since(&timestamp(s));
    }
    if let Some(u) = &a.until {
        opts = opts.until(&timestamp(u));
    }
    let mut stream = cli.docker.events(Some(opts.build()));
    let mut stdout = std::io::stdout();
    while let Some(ev) = stream.next().await {
        writeln!(stdout, "{}", format_event(&ev?))?;
        stdout.flush()?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(duration_secs("90s"), Some(90.0));
        assert_eq!(duration_secs("1h30m"), Some(5400.0));
        assert_eq!(duration_secs("1.5m"), Some(90.0));
        assert_eq!(duration_secs("1700000000"), None);
        assert_eq!(duration_secs("2026-11-22T22:30:01Z"), None);
        assert_eq!(duration_secs(""), None);
    }

    #[test]
    fn events_print_in_docker_default_format() {
        let ev = EventMessage {
            typ: Some(bollard::models::EventMessageTypeEnum::CONTAINER),
            action: Some("start".into()),
            actor: Some(bollard::models::EventActor {
                id: Some("abc".into()),
                attributes: Some(HashMap::from([
                    ("name".to_owned(), "x".to_owned()),
                    ("image".to_owned(), "busybox".to_owned()),
                ])),
            }),
            time_nano: None,
            time: None,
            scope: None,
        };
        assert_eq!(
            format_event(&ev),
            "container start abc (image=busybox, name=x)"
        );
    }
}
