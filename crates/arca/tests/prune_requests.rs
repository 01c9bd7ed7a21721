//! `arca system df`, `system prune` and `container prune` against the real docker CLI 28,
//! without a daemon: a fake Docker Engine on a unix socket records every request and answers
//! with canned, Docker-shaped JSON. Each command runs once through docker and once through
//! arca; the requests (method, path without `/v1.xx`, query parameters as a set, the
//! `filters` JSON compared as a value) and what the clients print must be the same.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;

use common::fake_engine::{Answer, FakeEngine, Request};

/// A request as compared: `filters` parsed (its key order is not significant), the other
/// query parameters as a set.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    method: String,
    path: String,
    query: BTreeSet<(String, String)>,
    filters: Option<Value>,
}

impl From<Request> for Sent {
    fn from(r: Request) -> Self {
        let mut query = BTreeSet::new();
        let mut filters = None;
        for (k, v) in r.query {
            if k == "filters" && !v.is_empty() {
                filters = Some(serde_json::from_str(&v).expect("filters are JSON"));
            } else {
                query.insert((k, v));
            }
        }
        Self {
            method: r.method,
            path: r.path,
            query,
            filters,
        }
    }
}

/// A `GET /system/df` answer as dockerd 28 shapes it (times far in the past, so relative
/// times print the same for both clients).
fn disk_usage() -> String {
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    format!(
        r#"{{"LayersSize":7340032,"Images":[{{"Containers":1,"Created":1600000000,"Id":"sha256:{a}","Labels":{{}},"ParentId":"","RepoDigests":["busybox@sha256:{b}"],"RepoTags":["busybox:latest"],"SharedSize":2097152,"Size":4404019}},{{"Containers":0,"Created":1500000000,"Id":"sha256:{b}","Labels":null,"ParentId":"","RepoDigests":[],"RepoTags":[],"SharedSize":2097152,"Size":5242880}}],"Containers":[{{"Id":"{c}","Names":["/web"],"Image":"busybox","ImageID":"sha256:{a}","Command":"sleep 600","Created":1600000000,"Ports":[],"SizeRw":1048576,"Labels":{{"team":"a"}},"State":"running","Status":"Up 3 days","HostConfig":{{"NetworkMode":"default"}},"NetworkSettings":{{"Networks":{{}}}},"Mounts":[{{"Type":"volume","Name":"data","Source":"/var/lib/docker/volumes/data/_data","Destination":"/data","Driver":"local","Mode":"z","RW":true,"Propagation":""}}]}},{{"Id":"{d}","Names":["/old"],"Image":"busybox:latest","ImageID":"sha256:{a}","Command":"sh -c 'echo a long command line'","Created":1600000000,"Ports":[],"SizeRw":12,"Labels":{{}},"State":"exited","Status":"Exited (0) 3 days ago","HostConfig":{{"NetworkMode":"default"}},"NetworkSettings":{{"Networks":{{}}}},"Mounts":[]}}],"Volumes":[{{"CreatedAt":"2020-09-13T12:26:40Z","Driver":"local","Labels":null,"Mountpoint":"/var/lib/docker/volumes/data/_data","Name":"data","Options":null,"Scope":"local","UsageData":{{"RefCount":1,"Size":104857600}}}},{{"CreatedAt":"2020-09-13T12:26:40Z","Driver":"local","Labels":{{"com.docker.volume.anonymous":""}},"Mountpoint":"/var/lib/docker/volumes/{e}/_data","Name":"{e}","Options":null,"Scope":"local","UsageData":{{"RefCount":0,"Size":2048}}}}],"BuildCache":[]}}"#,
        c = "c".repeat(64),
        d = "d".repeat(64),
        e = "e".repeat(64),
    )
}

fn answer(r: &Request) -> Answer {
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/system/df") => Answer::json(200, disk_usage()),
        ("POST", "/containers/prune") => Answer::json(
            200,
            format!(
                r#"{{"ContainersDeleted":["{}","{}"],"SpaceReclaimed":1234567}}"#,
                "c".repeat(64),
                "d".repeat(64)
            ),
        ),
        ("POST", "/networks/prune") => Answer::json(200, r#"{"NetworksDeleted":["old1"]}"#),
        ("POST", "/volumes/prune") => Answer::json(
            200,
            format!(
                r#"{{"VolumesDeleted":["{}"],"SpaceReclaimed":2048}}"#,
                "e".repeat(64)
            ),
        ),
        ("POST", "/images/prune") => Answer::json(
            200,
            format!(
                r#"{{"ImagesDeleted":[{{"Untagged":"extra:1"}},{{"Deleted":"sha256:{}"}}],"SpaceReclaimed":5242880}}"#,
                "b".repeat(64)
            ),
        ),
        ("POST", "/build/prune") => Answer::json(200, r#"{"CachesDeleted":[],"SpaceReclaimed":0}"#),
        _ => Answer::json(404, r#"{"message":"page not found"}"#),
    }
}

/// The fake engine with [`answer`]; requests compared as [`Sent`].
struct Fake(FakeEngine);

impl Fake {
    fn start() -> Self {
        Self(FakeEngine::start(answer))
    }

    /// Runs `args` through docker and arca with `input` on stdin; both must send the same
    /// requests, print the same and exit alike. Returns docker's output and requests.
    fn same(&self, args: &[&str], input: &[u8]) -> (String, Vec<Sent>) {
        let ((out, reqs), _) = self.0.same(args, Some(input));
        (String::from_utf8_lossy(&out.stdout).into_owned(), reqs)
    }
}

#[test]
fn system_df_prints_like_docker_in_every_format() {
    let f = Fake::start();
    let (out, reqs) = f.same(&["system", "df"], b"");
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(
        out.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
        "{out}"
    );
    assert!(
        out.contains("Local Volumes   2         1         104.9MB   2.048kB (0%)\n"),
        "{out}"
    );
    f.same(&["system", "df", "-v"], b"");
    f.same(&["system", "df", "--format", "json"], b"");
    f.same(&["system", "df", "--format", "raw"], b"");
    f.same(
        &[
            "system",
            "df",
            "--format",
            "table {{.Type}}\\t{{.Reclaimable}}",
        ],
        b"",
    );
    f.same(&["system", "df", "--format", "{{.Type}}: {{.Size}}"], b"");
    f.same(&["system", "df", "-v", "--format", "json"], b"");
    f.same(&["system", "df", "-v", "--format", "raw"], b"");
    f.same(
        &[
            "system",
            "df",
            "-v",
            "--format",
            "{{range .Images}}{{.ID}} {{.UniqueSize}}\n{{end}}{{range .Containers}}{{.Names}} {{.Mounts}}\n{{end}}",
        ],
        b"",
    );
}

#[test]
fn system_prune_sends_docker_requests_in_docker_order() {
    let f = Fake::start();
    let (out, reqs) = f.same(&["system", "prune", "-f"], b"");
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/containers/prune",
            "/networks/prune",
            "/images/prune",
            "/build/prune"
        ]
    );
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.ends_with("\nTotal reclaimed space: 6.477MB\n"), "{out}");

    let (_, reqs) = f.same(
        &[
            "system",
            "prune",
            "-a",
            "--volumes",
            "--force",
            "--filter",
            "label=a=b",
            "--filter",
            "label!=keep",
        ],
        b"",
    );
    assert_eq!(reqs.len(), 5, "{reqs:?}");
    assert_eq!(reqs[2].path, "/volumes/prune");
    f.same(&["system", "prune", "--filter", "until=24h"], b"y\n");
    f.same(&["system", "prune", "--volumes"], b"n\n");
    f.same(
        &["system", "prune", "--volumes", "--filter", "until=1h"],
        b"",
    );
    f.same(&["system", "prune", "--filter", "nonsense"], b"");
}

#[test]
fn container_and_image_prune_match_docker() {
    let f = Fake::start();
    let (out, _) = f.same(&["container", "prune", "-f"], b"");
    assert_eq!(
        out,
        format!(
            "Deleted Containers:\n{}\n{}\n\nTotal reclaimed space: 1.235MB\n",
            "c".repeat(64),
            "d".repeat(64)
        )
    );
    f.same(&["container", "prune", "--filter", "until=10m"], b"Y\n");
    f.same(&["container", "prune"], b"yes\n");
    f.same(&["image", "prune", "-f"], b"");
    f.same(&["image", "prune", "-a", "--filter", "label=x"], b"y\n");
}
