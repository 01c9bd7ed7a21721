//! `GET /events` through the real docker CLI and `arca events`: history replay between
//! `since` and `until`, Docker's attributes and filters.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Daemon, assert_ok, poll_until, stdout};

fn now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

#[test]
fn events_replay_history_with_docker_attributes_and_filters() {
    let d = Daemon::start();
    d.load_busybox();
    let t0 = now();
    let out = d.docker(&[
        "run", "--name", "ev", "-l", "team=a", "busybox", "sh", "-c", "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "docker run: {out:?}");

    let events_since = |since: &str, filters: &[&str]| {
        let until = now();
        let mut args = vec!["events", "--since", since, "--until", &until];
        for f in filters {
            args.extend(["--filter", f]);
        }
        args.extend(["--format", "{{.Action}} {{.Actor.Attributes.exitCode}}"]);
        let out = d.docker(&args);
        assert_ok(&out, "docker events");
        stdout(&out)
    };
    let events = |filters: &[&str]| events_since(&t0, filters);
    // `die` is published as the exit is recorded; `docker run` may see the exit first.
    let mut lines = String::new();
    poll_until("the die event", Duration::from_secs(10), || {
        lines = events(&["container=ev"]);
        lines.contains("die 3")
    });
    let actions: Vec<&str> = lines
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["create", "attach", "start", "die"], "{lines}");
    assert_eq!(lines.lines().last(), Some("die 3"), "{lines}");

    assert_eq!(events(&["container=ev", "label=team=a"]), lines);
    assert_eq!(events(&["label=team=b"]), "");
    // The busybox load came before t0.
    assert_eq!(events(&["type=image"]), "");
    assert_eq!(
        events_since("0", &["type=image", "event=load"]),
        "load <no value>\n"
    );

    // Image and exec events.
    assert_ok(&d.docker(&["tag", "busybox", "ev:1"]), "docker tag");
    assert_ok(&d.docker(&["rmi", "ev:1"]), "docker rmi");
    let images = events(&["type=image"]);
    let actions: Vec<&str> = images
        .lines()
        .map(|l| l.trim_end_matches(" <no value>"))
        .collect();
    assert_eq!(actions, ["tag", "untag"], "{images}");
    assert_ok(
        &d.docker(&["run", "-d", "--name", "ex", "busybox", "sleep", "60"]),
        "run -d",
    );
    let out = d.docker(&["exec", "ex", "sh", "-c", "exit 2"]);
    assert_eq!(out.status.code(), Some(2), "docker exec: {out:?}");
    poll_until("exec events", Duration::from_secs(10), || {
        let ev = events(&[
            "container=ex",
            "event=exec_create",
            "event=exec_start",
            "event=exec_die",
        ]);
        ev == "exec_create: sh -c exit 2 <no value>\nexec_start: sh -c exit 2 <no value>\nexec_die 2\n"
    });

    let out = d.docker(&["events", "--filter", "bogus=1", "--until", &now()]);
    assert!(!out.status.success(), "bogus filter accepted: {out:?}");

    // arca's default format: time, type, action, ID and the sorted attributes.
    let id = stdout(&d.docker(&["inspect", "-f", "{{.Id}}", "ev"]))
        .trim()
        .to_owned();
    let out = d.arca(&[
        "events",
        "--since",
        &t0,
        "--until",
        &now(),
        "-f",
        "container=ev",
    ]);
    assert_ok(&out, "arca events");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let (time, rest) = lines[0].split_once(' ').expect("a timestamp");
    assert!(
        chrono_like(time),
        "not an RFC 3339 time with nanoseconds: {time}"
    );
    assert_eq!(
        rest,
        format!("container create {id} (image=busybox, name=ev, team=a)")
    );
    assert!(
        lines[3].ends_with(&format!(
            "container die {id} (exitCode=3, image=busybox, name=ev, team=a)"
        )),
        "{text}"
    );
}

/// `2026-11-22T22:30:01.123456789Z` (or with an offset instead of `Z`).
fn chrono_like(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 30
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[20..29].iter().all(u8::is_ascii_digit)
}

#[test]
fn events_stream_live_with_headers_sent_at_once() {
    use std::io::{BufRead, BufReader, Write};
    let d = Daemon::start();
    d.load_busybox();
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // filters={"container":["live"]}
    s.write_all(
        b"GET /v1.51/events?filters=%7B%22container%22%3A%5B%22live%22%5D%7D HTTP/1.1\r\nHost: arca\r\n\r\n",
    )
    .expect("request");
    let mut r = BufReader::new(s);
    let mut status = String::new();
    // Nothing has happened yet: only the headers can arrive.
    r.read_line(&mut status).expect("headers before any event");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let out = d.docker(&["run", "--name", "live", "busybox", "true"]);
    assert_ok(&out, "docker run");
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains(r#""Action":"die""#))
    {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("event") > 0, "stream ended");
        if line.starts_with('{') {
            seen.push(line);
        }
    }
    let die: serde_json::Value = serde_json::from_str(seen.last().expect("die")).expect("json");
    assert_eq!(die["status"], "die");
    assert_eq!(die["from"], "busybox");
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "0");
    assert_eq!(die["scope"], "local");
}
