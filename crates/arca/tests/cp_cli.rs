//! `arca cp` against the real `docker cp`: first without a daemon (a fake Docker Engine on a
//! unix socket serves a container filesystem from a temporary directory and records every
//! request), where the requests, what the clients print and the local results must be the
//! same; then end to end on a real arcad (at the end of the file).

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use arca_api::b64;

use common::DOCKER;
use common::fake_engine::{ARCA, Answer, FakeEngine, Request};

/// A request as compared. PUT bodies are kept as their tar listing (two clients write
/// equivalent tars with different header formats), other bodies as bytes.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    method: String,
    /// The path without the API version prefix.
    path: String,
    query: BTreeSet<(String, String)>,
    body: Body,
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    None,
    Tar(Vec<Entry>),
    Raw(Vec<u8>),
}

/// One tar entry: name, type byte, link name, mode, uid, gid, mtime, data.
type Entry = (String, u8, String, u32, u64, u64, u64, Vec<u8>);

fn tar_listing(tar: &[u8]) -> Option<Vec<Entry>> {
    let mut ar = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in ar.entries().ok()? {
        let mut e = e.ok()?;
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).ok()?;
        out.push((
            String::from_utf8_lossy(&e.path_bytes()).into_owned(),
            h.entry_type().as_byte(),
            e.link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default(),
            h.mode().ok()? & 0o7777,
            h.uid().ok()?,
            h.gid().ok()?,
            h.mtime().ok()?,
            data,
        ));
    }
    Some(out)
}

impl From<Request> for Sent {
    fn from(r: Request) -> Self {
        let body = if r.body.is_empty() {
            Body::None
        } else if r.method == "PUT" {
            // A stdin upload is compared byte for byte, a client-made tar by listing.
            let stdin_tar = r.query.iter().any(|(k, v)| k == "path" && v == "/stdin");
            match tar_listing(&r.body) {
                Some(l) if !stdin_tar => Body::Tar(l),
                _ => Body::Raw(r.body),
            }
        } else {
            Body::Raw(r.body)
        };
        Self {
            method: r.method,
            path: r.path,
            query: r.query,
            body,
        }
    }
}

/// The fake engine with [`answer`] serving container `ctr`.
struct Fake {
    engine: FakeEngine,
    /// The filesystem of container `ctr`.
    root: PathBuf,
}

/// Go's os.FileMode of an lstat result.
fn go_mode(m: &std::fs::Metadata) -> u32 {
    let ft = m.file_type();
    let mut mode = m.mode() & 0o777;
    if ft.is_dir() {
        mode |= 1 << 31;
    }
    if ft.is_symlink() {
        mode |= 1 << 27;
    }
    mode
}

/// A tar of `src` named as the Docker daemon names it (`name`, `name/child`), with names
/// written byte for byte (`./` kept).
fn daemon_tar(src: &Path, name: &str) -> Vec<u8> {
    fn add(b: &mut tar::Builder<Vec<u8>>, path: &Path, name: &str) {
        let m = std::fs::symlink_metadata(path).expect("lstat");
        let mut h = tar::Header::new_gnu();
        h.set_mode(m.mode() & 0o7777);
        h.set_uid(m.uid().into());
        h.set_gid(m.gid().into());
        h.set_mtime(u64::try_from(m.mtime()).unwrap_or(0));
        h.set_size(0);
        let mut data = Vec::new();
        let mut link = String::new();
        let mut entry = name.to_owned();
        if m.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            if !entry.ends_with('/') {
                entry.push('/');
            }
        } else if m.file_type().is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            link = std::fs::read_link(path)
                .expect("readlink")
                .to_string_lossy()
                .into_owned();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            data = std::fs::read(path).expect("read");
            h.set_size(data.len() as u64);
        }
        let old = h.as_old_mut();
        old.name[..entry.len()].copy_from_slice(entry.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, &data[..]).expect("append");
        if m.is_dir() {
            let mut kids: Vec<_> = std::fs::read_dir(path)
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            kids.sort();
            let prefix = name.trim_end_matches('/');
            for k in kids {
                let child = format!("{prefix}/{}", k.to_string_lossy());
                add(b, &path.join(&k), &child);
            }
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, src, name);
    b.into_inner().expect("finish")
}

/// Hand-built archives a hostile container could send.
fn evil_tar(which: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, link: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, data).expect("append");
    };
    match which {
        "/evil-symlink" => {
            add("evil-symlink/", tar::EntryType::Directory, "", b"");
            add(
                "evil-symlink/l",
                tar::EntryType::Symlink,
                // From `<dest>/new/l`: the engine's own `outside` directory.
                "../../outside",
                b"",
            );
            add("evil-symlink/l/pwned", tar::EntryType::Regular, "", b"x");
        }
        "/evil-dotdot" => {
            add("evil-dotdot/", tar::EntryType::Directory, "", b"");
            // Extracted in `<dest>`: lands next to it, in the engine's directory.
            add("../pwned", tar::EntryType::Regular, "", b"x");
        }
        _ => {
            // `/evil-abs`: an absolute symlink, then a file through it.
            let outside = which.strip_prefix("/evil-abs:").expect("evil kind");
            add("evil-abs/", tar::EntryType::Directory, "", b"");
            add("evil-abs/l", tar::EntryType::Symlink, outside, b"");
            add("evil-abs/l/pwned", tar::EntryType::Regular, "", b"x");
        }
    }
    b.into_inner().expect("finish")
}

fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

impl Fake {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("arca-fake-cp-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(&root).expect("rootfs");
        let r = root.clone();
        let engine = FakeEngine::start_in(dir, move |req| answer(req, &r));
        Self { engine, root }
    }

    /// The fake's temporary directory (the rootfs is in it).
    fn dir(&self) -> &Path {
        self.engine.dir()
    }

    /// Runs a client with `args` (and `input` on stdin) and returns its output and requests.
    fn run(&self, prog: &str, args: &[&str], input: Option<&[u8]>) -> (Output, Vec<Sent>) {
        self.engine.run(prog, args, input)
    }

    /// Runs the same command through docker and arca (`{}` in an argument is replaced by a
    /// fresh local directory per client) and checks requests, output and exit status match.
    /// Returns the two local directories (docker's, arca's) and outputs.
    fn same(&self, args: &[&str], input: Option<&[u8]>) -> Compared {
        self.same_with(args, input, &|_| {})
    }

    /// [`Fake::same`] with each local directory first set up by `prepare`.
    fn same_with(&self, args: &[&str], input: Option<&[u8]>, prepare: &dyn Fn(&Path)) -> Compared {
        let mut results = Vec::new();
        for (prog, tag) in [(DOCKER, "docker"), (ARCA, "arca")] {
            let local = self.dir().join(format!("local-{tag}-{}", unique()));
            std::fs::create_dir_all(&local).expect("mkdir");
            prepare(&local);
            let args: Vec<String> = args
                .iter()
                .map(|a| a.replace("{}", local.to_str().expect("utf8")))
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (out, reqs) = self.run(prog, &args, input);
            results.push((local, out, reqs));
        }
        let (ours_dir, ours, our_reqs) = results.pop().expect("arca");
        let (theirs_dir, theirs, their_reqs) = results.pop().expect("docker");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        // The local directory differs between the runs: compare with it masked.
        let mask = |s: String, dir: &Path| s.replace(dir.to_str().expect("utf8"), "{}");
        let mask_reqs = |reqs: Vec<Sent>, dir: &Path| -> Vec<Sent> {
            reqs.into_iter()
                .map(|mut r| {
                    r.query = r
                        .query
                        .into_iter()
                        .map(|(k, v)| (k, mask(v, dir)))
                        .collect();
                    r
                })
                .collect()
        };
        assert_eq!(
            mask_reqs(our_reqs, &ours_dir),
            mask_reqs(their_reqs, &theirs_dir),
            "requests of {args:?}"
        );
        assert_eq!(ours.stdout, theirs.stdout, "stdout of {args:?}");
        // docker's own log lines (a tar writer whose reader went away) are not output.
        let docker_err: String = text(&theirs.stderr)
            .lines()
            .filter(|l| !l.starts_with("time="))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            mask(text(&ours.stderr), &ours_dir),
            mask(docker_err, &theirs_dir),
            "stderr of {args:?}"
        );
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "status of {args:?}: docker said {}",
            text(&theirs.stderr)
        );
        assert_eq!(
            tree(&ours_dir),
            tree(&theirs_dir),
            "local files of {args:?}"
        );
        Compared {
            docker_dir: theirs_dir,
            arca_dir: ours_dir,
            arca: ours,
        }
    }

    fn requests_of(&self, prog: &str, args: &[&str]) -> Vec<Sent> {
        self.run(prog, args, None).1
    }
}

struct Compared {
    docker_dir: PathBuf,
    arca_dir: PathBuf,
    arca: Output,
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Every path under `dir`: (relative path, kind, mode, content or link target).
fn tree(dir: &Path) -> Vec<(String, char, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, char, u32, Vec<u8>)>) {
        let mut kids: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        kids.sort();
        for p in kids {
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if m.is_dir() {
                out.push((rel, 'd', m.mode() & 0o7777, Vec::new()));
                walk(root, &p, out);
            } else if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).expect("readlink");
                out.push((rel, 'l', 0, t.to_string_lossy().as_bytes().to_vec()));
            } else {
                out.push((
                    rel,
                    'f',
                    m.mode() & 0o7777,
                    std::fs::read(&p).expect("read"),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

fn json_error(status: u16, msg: &str) -> Answer {
    Answer::json(
        status,
        format!("{{\"message\":{}}}\n", serde_json::Value::from(msg)),
    )
}

/// What the fake engine answers: container `ctr` has the filesystem under `root`.
fn answer(req: &Request, root: &Path) -> Answer {
    let (method, path) = (req.method.as_str(), req.path.as_str());
    let arg = req.param("path").unwrap_or_default();
    let Some(rest) = path.strip_prefix("/containers/") else {
        return json_error(404, "page not found");
    };
    let Some((ctr, "archive")) = rest.split_once('/') else {
        return json_error(404, "page not found");
    };
    if ctr != "ctr" {
        return json_error(404, &format!("No such container: {ctr}"));
    }
    if method == "PUT" {
        return Answer::empty(200);
    }
    if method == "GET" && arg.starts_with("/evil") {
        let stat = format!(
            r#"{{"name":"x","size":4096,"mode":{},"mtime":"2024-01-02T03:04:05Z","linkTarget":""}}"#,
            (1u32 << 31) | 0o755
        );
        return Answer::empty(200)
            .header("Content-Type", "application/x-tar")
            .header("X-Docker-Container-Path-Stat", b64::encode(stat.as_bytes()))
            .body(evil_tar(arg));
    }
    // moby: the path is absolute in the container, a trailing `/` or `/.` kept.
    let mut abs = clean(&format!("/{arg}"));
    if arg.ends_with("/.") || arg == "." {
        abs.push_str(if abs.ends_with('/') { "." } else { "/." });
    } else if arg.ends_with('/') && !abs.ends_with('/') {
        abs.push('/');
    }
    let host = root.join(abs.trim_start_matches('/'));
    let Ok(meta) = std::fs::symlink_metadata(&host) else {
        return json_error(
            404,
            &format!("Could not find the file {arg} in container {ctr}"),
        );
    };
    let name = abs
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let link_target = if meta.file_type().is_symlink() {
        let t = std::fs::read_link(&host)
            .expect("readlink")
            .to_string_lossy()
            .into_owned();
        if t.starts_with('/') {
            clean(&t)
        } else {
            let parent = abs.rsplit_once('/').map_or("", |(p, _)| p);
            clean(&format!("{parent}/{t}"))
        }
    } else {
        String::new()
    };
    let stat = format!(
        r#"{{"name":{},"size":{},"mode":{},"mtime":"2024-01-02T03:04:05Z","linkTarget":{}}}"#,
        serde_json::Value::from(name.clone()),
        meta.len(),
        go_mode(&meta),
        serde_json::Value::from(link_target)
    );
    let stat =
        Answer::empty(200).header("X-Docker-Container-Path-Stat", b64::encode(stat.as_bytes()));
    if method == "HEAD" {
        return stat;
    }
    stat.header("Content-Type", "application/x-tar")
        .body(daemon_tar(&host, &name))
}

/// The container filesystem most tests use.
fn container_fs(f: &Fake) {
    let r = &f.root;
    std::fs::create_dir_all(r.join("etc")).expect("mkdir");
    std::fs::write(r.join("etc/hostname"), "ctr\n").expect("write");
    std::fs::create_dir_all(r.join("data/sub")).expect("mkdir");
    std::fs::write(r.join("data/a.txt"), "alpha\n").expect("write");
    std::fs::write(r.join("data/sub/run.sh"), "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(r.join("data/sub/run.sh"), PermissionsExt::from_mode(0o750))
        .expect("chmod");
    symlink("a.txt", r.join("data/link")).expect("symlink");
    symlink("/data/a.txt", r.join("abs-link")).expect("symlink");
    std::fs::create_dir_all(r.join("dir")).expect("mkdir");
    std::fs::write(r.join("file"), "f\n").expect("write");
}

#[test]
fn cp_from_container_matches_docker() {
    let f = Fake::start();
    container_fs(&f);
    // A file into an existing directory, under a new name, and over an existing file.
    f.same(&["cp", "ctr:/etc/hostname", "{}"], None);
    f.same(&["cp", "ctr:/etc/hostname", "{}/renamed"], None);
    let c = f.same_with(&["cp", "ctr:/etc/hostname", "{}/old"], None, &|d| {
        std::fs::write(d.join("old"), "previous content\n").expect("write");
    });
    assert_eq!(
        std::fs::read_to_string(c.arca_dir.join("old")).expect("read"),
        "ctr\n"
    );
    // Into a directory through a local symlink to it.
    f.same_with(&["cp", "ctr:/etc/hostname", "{}/to-dir"], None, &|d| {
        std::fs::create_dir(d.join("real")).expect("mkdir");
        symlink("real", d.join("to-dir")).expect("symlink");
    });
    // A tree merged into an existing one.
    f.same_with(&["cp", "ctr:/data", "{}"], None, &|d| {
        std::fs::create_dir_all(d.join("data/sub")).expect("mkdir");
        std::fs::write(d.join("data/kept"), "kept\n").expect("write");
        std::fs::write(d.join("data/a.txt"), "old\n").expect("write");
    });
    // A directory to a new path, into an existing one, and only its content (`/.`).
    let c = f.same(&["cp", "ctr:/data", "{}/copy"], None);
    assert_eq!(
        std::fs::read_to_string(c.arca_dir.join("copy/a.txt")).expect("read"),
        "alpha\n"
    );
    assert_eq!(
        std::fs::read_link(c.arca_dir.join("copy/link")).expect("readlink"),
        Path::new("a.txt")
    );
    f.same(&["cp", "ctr:/data", "{}/"], None);
    f.same(&["cp", "ctr:/data/.", "{}"], None);
    f.same(&["cp", "ctr:data/sub/", "{}/new"], None);
    // A symlink: copied as such, or followed with -L (the copy takes the link's name).
    f.same(&["cp", "ctr:/abs-link", "{}"], None);
    let c = f.same(&["cp", "-L", "ctr:/abs-link", "{}"], None);
    assert_eq!(
        std::fs::read_to_string(c.arca_dir.join("abs-link")).expect("read"),
        "alpha\n"
    );
    // A tar on standard output, byte for byte what the daemon sent.
    let c = f.same(&["cp", "ctr:/data", "-"], None);
    assert!(!c.arca.stdout.is_empty());
    // The progress line, asked for without a terminal.
    f.same(&["cp", "-q=false", "ctr:/data", "{}/p"], None);
}

#[test]
fn cp_from_container_errors_match_docker() {
    let f = Fake::start();
    container_fs(&f);
    f.same(&["cp", "ctr:/missing", "{}"], None);
    f.same(&["cp", "nope:/etc", "{}"], None);
    // A directory over an existing file; a file into a directory that does not exist.
    let c = f.same_with(&["cp", "ctr:/data", "{}/x"], None, &|d| {
        std::fs::write(d.join("x"), "file\n").expect("write");
    });
    assert_eq!(c.arca.status.code(), Some(1));
    f.same(&["cp", "ctr:/file", "{}/nodir/"], None);
    // A directory where the archive has a file, and the other way round.
    f.same_with(&["cp", "ctr:/data", "{}"], None, &|d| {
        std::fs::create_dir_all(d.join("data/a.txt")).expect("mkdir");
    });
    f.same_with(&["cp", "ctr:/data", "{}"], None, &|d| {
        std::fs::create_dir_all(d.join("data")).expect("mkdir");
        std::fs::write(d.join("data/sub"), "file\n").expect("write");
    });
    f.same(&["cp", "ctr:/file", "{}/no/such/dir"], None);
    f.same(&["cp", "ctr:/etc", "/dev/null"], None);
    // Argument errors, before any request.
    f.same(&["cp", "a", "b"], None);
    f.same(&["cp", "ctr:/a", "other:/b"], None);
    f.same(&["cp", "", "ctr:/x"], None);
    f.same(&["cp", "ctr:/x", ""], None);
}

#[test]
fn cp_to_container_matches_docker() {
    let f = Fake::start();
    container_fs(&f);
    let src = f.dir().join("src");
    std::fs::create_dir_all(src.join("tree/sub")).expect("mkdir");
    std::fs::write(src.join("hello.txt"), "hello\n").expect("write");
    std::fs::write(src.join("tree/sub/x"), "x\n").expect("write");
    std::fs::set_permissions(src.join("tree/sub/x"), PermissionsExt::from_mode(0o4711))
        .expect("chmod");
    symlink("sub/x", src.join("tree/l")).expect("symlink");
    std::fs::hard_link(src.join("tree/sub/x"), src.join("tree/hard")).expect("link");
    symlink("tree", src.join("tree-link")).expect("symlink");
    let s = |p: &str| src.join(p).to_string_lossy().into_owned();

    // A file into a directory, to a new name, over a file; with -a.
    f.same(&["cp", &s("hello.txt"), "ctr:/dir"], None);
    f.same(&["cp", &s("hello.txt"), "ctr:/dir/new.txt"], None);
    f.same(&["cp", &s("hello.txt"), "ctr:/file"], None);
    f.same(&["cp", "-a", &s("hello.txt"), "ctr:/dir/"], None);
    // A tree to a new path, into a directory, its content only.
    f.same(&["cp", &s("tree"), "ctr:/newtree"], None);
    f.same(&["cp", &s("tree"), "ctr:/dir"], None);
    f.same(&["cp", &s("tree/."), "ctr:/dir"], None);
    // Symlinks: as is, followed by a trailing `/`, followed with -L.
    f.same(&["cp", &s("tree-link"), "ctr:/dir"], None);
    f.same(&["cp", &s("tree-link/"), "ctr:/dir"], None);
    f.same(&["cp", "-L", &s("tree-link"), "ctr:/dir"], None);
    // A destination that is a symlink in the container.
    f.same(&["cp", &s("hello.txt"), "ctr:/abs-link"], None);
    // A tar from standard input, sent as is.
    let tar = daemon_tar(&src.join("tree"), "tree");
    let dir_stdin = f.root.join("stdin");
    std::fs::create_dir_all(&dir_stdin).expect("mkdir");
    f.same(&["cp", "-", "ctr:/stdin"], Some(&tar));
    // The final line, asked for without a terminal.
    f.same(&["cp", "-q=false", &s("hello.txt"), "ctr:/dir"], None);
}

#[test]
fn cp_to_container_errors_match_docker() {
    let f = Fake::start();
    container_fs(&f);
    let src = f.dir().join("src");
    std::fs::create_dir_all(src.join("tree")).expect("mkdir");
    std::fs::write(src.join("hello.txt"), "hello\n").expect("write");
    let s = |p: &str| src.join(p).to_string_lossy().into_owned();
    f.same(&["cp", &s("missing"), "ctr:/dir"], None);
    f.same(&["cp", &s("tree"), "ctr:/file"], None);
    f.same(&["cp", &s("hello.txt"), "ctr:/newdir/"], None);
    f.same(&["cp", "-", "ctr:/file"], Some(b""));
    f.same(&["cp", &s("hello.txt"), "nope:/dir"], None);
}

#[test]
fn cp_refuses_archives_that_reach_out_of_the_destination() {
    let f = Fake::start();
    let outside = f.dir().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    // Both clients refuse a relative escape (docker's breakout checks).
    for which in ["/evil-symlink", "/evil-dotdot"] {
        let c = f.same(&["cp", &format!("ctr:{which}"), "{}/new"], None);
        assert_eq!(c.arca.status.code(), Some(1), "{which}");
        for dir in [&c.docker_dir, &c.arca_dir] {
            assert!(!dir.join("pwned").exists(), "{which}");
        }
    }
    // Where the escapes point: nothing arrived.
    assert_eq!(std::fs::read_dir(&outside).expect("read_dir").count(), 0);
    assert!(!f.dir().join("pwned").exists());
    // An absolute symlink is kept, but arca never writes through it to the host.
    let local = f.dir().join("local-abs");
    std::fs::create_dir_all(&local).expect("mkdir");
    let arg = format!("ctr:/evil-abs:{}", outside.display());
    let (out, _) = f.run(ARCA, &["cp", &arg, local.to_str().expect("utf8")], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&outside).expect("read_dir").count(), 0);
    // Absolute targets restart at the extraction directory, as in a chroot there.
    let inside = local
        .join(outside.strip_prefix("/").expect("absolute"))
        .join("pwned");
    assert_eq!(std::fs::read(inside).expect("contained"), b"x");
}

#[test]
fn cp_sends_docker_requests_for_archive_mode() {
    let f = Fake::start();
    container_fs(&f);
    let src = f.dir().join("hello.txt");
    std::fs::write(&src, "hello\n").expect("write");
    let reqs = f.requests_of(ARCA, &["cp", "-a", src.to_str().expect("utf8"), "ctr:/dir"]);
    let put = reqs.iter().find(|r| r.method == "PUT").expect("a PUT");
    let q: Vec<_> = put.query.iter().cloned().collect();
    assert_eq!(
        q,
        [
            ("copyUIDGID".to_owned(), "true".to_owned()),
            ("noOverwriteDirNonDir".to_owned(), "true".to_owned()),
            ("path".to_owned(), "/dir".to_owned()),
        ]
    );
}

// ---- End to end: arca cp and docker cp on the same arcad ----

fn ok(o: &Output, what: &str) -> String {
    common::assert_ok(o, what);
    common::stdout(o)
}

/// `path` in container `ctr`, through `docker cp … -`: its tar entries with the top-level
/// name dropped (two copies of the same thing under different names compare equal).
fn container_listing(d: &common::Daemon, ctr: &str, path: &str) -> Vec<Entry> {
    let out = d.docker(&["cp", &format!("{ctr}:{path}"), "-"]);
    common::assert_ok(&out, &format!("docker cp {ctr}:{path} -"));
    let mut entries = tar_listing(&out.stdout).expect("a tar");
    for e in &mut entries {
        e.0 =
            e.0.split_once('/')
                .map_or(String::new(), |(_, r)| r.to_owned());
        // The copy's own mtime is the time it was made.
        if e.0.is_empty() {
            e.6 = 0;
        }
        if e.1 == b'1' {
            e.2 =
                e.2.split_once('/')
                    .map_or(String::new(), |(_, r)| r.to_owned());
        }
    }
    entries
}

/// A local tree to copy in: a file, a setuid script, a symlink, a hard link, owned by
/// 4321:4322.
fn local_tree(dir: &Path) -> PathBuf {
    let t = dir.join("tree");
    std::fs::create_dir_all(t.join("sub")).expect("mkdir");
    std::fs::write(t.join("a.txt"), "alpha\n").expect("write");
    std::fs::write(t.join("sub/run.sh"), "#!/bin/sh\necho ran\n").expect("write");
    symlink("sub/run.sh", t.join("link")).expect("symlink");
    std::fs::hard_link(t.join("a.txt"), t.join("sub/hard")).expect("link");
    for p in ["", "a.txt", "sub", "sub/run.sh", "link"] {
        std::os::unix::fs::lchown(t.join(p), Some(4321), Some(4322)).expect("chown");
    }
    // After the chown, which clears set-id bits.
    std::fs::set_permissions(t.join("sub/run.sh"), PermissionsExt::from_mode(0o4755))
        .expect("chmod");
    t
}

#[test]
fn arca_cp_copies_into_a_container_as_docker_cp_does() {
    let d = common::Daemon::start();
    d.load_busybox();
    let host = tempfile::tempdir().expect("tempdir");
    let tree = local_tree(host.path());
    let t = |p: &str| tree.join(p).to_string_lossy().into_owned();
    ok(
        &d.docker(&["run", "-d", "--name", "c", "busybox", "sleep", "1000"]),
        "run",
    );
    ok(
        &d.docker(&[
            "exec", "c", "mkdir", "-p", "/d/file", "/a/file", "/d/dot", "/a/dot", "/d/in", "/a/in",
        ]),
        "mkdir",
    );
    // (docker's destination, arca's destination, source, extra flags)
    let cases: [(&str, &str, String, &[&str]); 5] = [
        ("/d/file/", "/a/file/", t("a.txt"), &[]),
        ("/d/new", "/a/new", tree.to_string_lossy().into_owned(), &[]),
        ("/d/dot", "/a/dot", t("."), &[]),
        (
            "/d/file/renamed",
            "/a/file/renamed",
            t("sub/run.sh"),
            &["-a"],
        ),
        ("/d/link", "/a/link", t("link"), &[]),
    ];
    for (theirs, ours, src, flags) in &cases {
        for (prog, dst) in [(DOCKER, theirs), (ARCA, ours)] {
            let mut args = vec!["cp"];
            args.extend_from_slice(flags);
            let target = format!("c:{dst}");
            args.extend([src.as_str(), target.as_str()]);
            let out = d
                .client(prog)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .expect("run");
            ok(&out, &format!("{prog} {args:?}"));
        }
        assert_eq!(
            container_listing(&d, "c", ours),
            container_listing(&d, "c", theirs),
            "{src} -> {theirs}"
        );
    }
    // Owners come from the archive (4321), as with docker.
    let l = container_listing(&d, "c", "/a/new");
    assert!(
        l.iter().any(|e| e.0 == "sub/run.sh" && e.3 == 0o4755),
        "setuid kept: {l:?}"
    );
    assert!(l.iter().all(|e| e.4 == 4321 || e.1 == b'1'), "{l:?}");
    // A tar on standard input.
    let tar = daemon_tar(&tree, "tree");
    for (prog, dst) in [(DOCKER, "c:/d/in"), (ARCA, "c:/a/in")] {
        let out = common::feed(d.client(prog).args(["cp", "-", dst]), &tar);
        ok(&out, &format!("{prog} cp - {dst}"));
    }
    assert_eq!(
        container_listing(&d, "c", "/a/in"),
        container_listing(&d, "c", "/d/in")
    );

    // -a into a container with a user: everything owned by that user.
    ok(
        &d.docker(&[
            "run",
            "-d",
            "--name",
            "u",
            "--user",
            "1000:1001",
            "busybox",
            "sleep",
            "1000",
        ]),
        "run --user",
    );
    for (prog, dst, flags) in [
        (DOCKER, "u:/tmp/d", vec!["-a"]),
        (ARCA, "u:/tmp/a", vec!["-a"]),
        (DOCKER, "u:/tmp/dn", vec![]),
        (ARCA, "u:/tmp/an", vec![]),
    ] {
        let mut args = vec!["cp"];
        args.extend(flags);
        args.extend([tree.to_str().expect("utf8"), dst]);
        ok(
            &d.client(prog)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .expect("run"),
            &format!("{prog} {args:?}"),
        );
    }
    let with_a = container_listing(&d, "u", "/tmp/a");
    assert_eq!(with_a, container_listing(&d, "u", "/tmp/d"));
    assert!(
        with_a.iter().all(|e| (e.4, e.5) == (1000, 1001)),
        "{with_a:?}"
    );
    assert_eq!(
        container_listing(&d, "u", "/tmp/an"),
        container_listing(&d, "u", "/tmp/dn")
    );

    // The daemon refuses before reading the upload (a read-only root): its message, even
    // for an upload far larger than any buffer on the way. (docker's own client races here:
    // it prints the message or a broken pipe, with log lines.)
    ok(
        &d.docker(&[
            "run",
            "-d",
            "--name",
            "r",
            "--read-only",
            "busybox",
            "sleep",
            "1000",
        ]),
        "run --read-only",
    );
    let big = host.path().join("big");
    std::fs::write(&big, vec![7u8; 32 << 20]).expect("write");
    let out = d.arca(&["cp", big.to_str().expect("utf8"), "r:/tmp/"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        common::stderr(&out),
        "Error response from daemon: container rootfs is marked read-only\n"
    );
    ok(&d.docker(&["rm", "-f", "c", "u", "r"]), "rm");
}

#[test]
fn arca_cp_copies_out_of_a_container_as_docker_cp_does() {
    let d = common::Daemon::start();
    d.load_busybox();
    let host = tempfile::tempdir().expect("tempdir");
    ok(
        &d.docker(&["run", "-d", "--name", "c", "busybox", "sleep", "1000"]),
        "run",
    );
    ok(
        &d.docker(&[
            "exec",
            "c",
            "sh",
            "-c",
            "mkdir -p /t/sub && echo alpha > /t/a.txt && echo run > /t/sub/run.sh \
             && chmod 4750 /t/sub/run.sh && ln -s sub/run.sh /t/link && ln /t/a.txt /t/sub/hard \
             && chown -R 7:8 /t && mkdir -p /tmp/evil \
             && ln -s ../../../../../../../../../../etc /tmp/evil/l",
        ]),
        "populate",
    );
    let sources = ["c:/t/a.txt", "c:/t", "c:/t/.", "c:/t/link", "c:/etc/passwd"];
    for (i, src) in sources.iter().enumerate() {
        for dest in ["", "/new"] {
            let mut trees = Vec::new();
            for (prog, tag) in [(DOCKER, "docker"), (ARCA, "arca")] {
                let local = host
                    .path()
                    .join(format!("{tag}-{i}{}", dest.replace('/', "-")));
                std::fs::create_dir_all(&local).expect("mkdir");
                let target = format!("{}{dest}", local.display());
                let out = d
                    .client(prog)
                    .args(["cp", src, &target])
                    .stdin(Stdio::null())
                    .output()
                    .expect("run");
                ok(&out, &format!("{prog} cp {src} {target}"));
                trees.push(tree(&local));
            }
            assert_eq!(trees[1], trees[0], "{src} -> {dest}");
        }
    }
    // To standard output: the same archive.
    let theirs = d.docker(&["cp", "c:/t", "-"]);
    let ours = d.arca(&["cp", "c:/t", "-"]);
    common::assert_ok(&ours, "arca cp -");
    common::assert_ok(&theirs, "docker cp -");
    let listing = tar_listing(&ours.stdout).expect("arca cp - writes a tar");
    assert!(!listing.is_empty(), "arca cp - wrote an empty tar");
    assert_eq!(
        listing,
        tar_listing(&theirs.stdout).expect("docker cp - writes a tar")
    );
    // A container symlink that climbs out of the local destination: both refuse it.
    let mut outcomes = Vec::new();
    for (prog, tag) in [(DOCKER, "docker"), (ARCA, "arca")] {
        let local = host.path().join(format!("evil-{tag}"));
        std::fs::create_dir_all(&local).expect("mkdir");
        let out = d
            .client(prog)
            .args(["cp", "c:/tmp/evil", &format!("{}/new", local.display())])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        outcomes.push((
            out.status.code(),
            common::stderr(&out).replace(local.to_str().expect("utf8"), "{}"),
        ));
        assert!(std::fs::symlink_metadata(local.join("new/l")).is_err());
    }
    assert_eq!(outcomes[1], outcomes[0]);
    assert_eq!(outcomes[1].0, Some(1));
    assert!(
        outcomes[1].1.starts_with("invalid symlink"),
        "{:?}",
        outcomes[1]
    );
    ok(&d.docker(&["rm", "-f", "c"]), "rm");
}
