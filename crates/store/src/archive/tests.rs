use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::*;
use crate::testutil::{RawTar, gzip};

struct Fixture {
    _tmp: tempfile::TempDir,
    /// Where trees to pack are built.
    src: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let dest = tmp.path().join("dest");
    let outside = tmp.path().join("outside");
    for d in [&src, &dest, &outside] {
        fs::create_dir_all(d).expect("mkdir");
    }
    Fixture {
        _tmp: tmp,
        src,
        dest,
        outside,
    }
}

fn opts() -> ExtractOptions {
    ExtractOptions {
        preserve_owner: true,
        allow_devices: true,
        ..ExtractOptions::default()
    }
}

fn assert_empty(dir: &Path) {
    let entries: Vec<_> = fs::read_dir(dir).expect("read_dir").collect();
    assert!(
        entries.is_empty(),
        "{} is not empty: {entries:?}",
        dir.display()
    );
}

/// (name, type, link name) of every entry.
fn listing(tar: &[u8]) -> Vec<(String, EntryType, String)> {
    let mut ar = tar::Archive::new(tar);
    ar.entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().entry_type(),
                e.link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn names(tar: &[u8]) -> Vec<String> {
    listing(tar).into_iter().map(|(n, _, _)| n).collect()
}

fn set_mtime(path: &Path, secs: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(
        None,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .expect("utimensat");
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o640)).expect("mkfifo");
}

/// A tree with a file, a setuid file, a sticky directory, a symlink, a hard link and a fifo.
fn sample_tree(root: &Path) -> PathBuf {
    let top = root.join("tree");
    fs::create_dir_all(top.join("sub/deeper")).expect("mkdir");
    fs::write(top.join("a.txt"), b"hello").expect("write");
    fs::write(top.join("sub/suid"), b"#!/bin/sh\n").expect("write");
    fs::set_permissions(top.join("sub/suid"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    fs::write(top.join("sub/deeper/z"), b"zzz").expect("write");
    fs::hard_link(top.join("a.txt"), top.join("sub/hard")).expect("link");
    symlink("../a.txt", top.join("sub/link")).expect("symlink");
    mkfifo(&top.join("fifo"));
    fs::set_permissions(top.join("sub"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    std::os::unix::fs::lchown(top.join("a.txt"), Some(1234), Some(5678)).expect("chown");
    for (p, t) in [
        ("a.txt", 1_500_000_000),
        ("sub/deeper/z", 1_500_000_001),
        ("sub/deeper", 1_500_000_002),
        ("sub/link", 1_500_000_003),
        ("sub", 1_500_000_004),
        ("", 1_500_000_005),
    ] {
        set_mtime(&top.join(p), t);
    }
    top
}

#[test]
fn pack_names_entries_under_the_rebase_name_in_name_order() {
    let f = fixture();
    let top = sample_tree(&f.src);
    let tar = pack(&top, "tree", Vec::new()).expect("pack");
    assert_eq!(
        listing(&tar),
        vec![
            ("tree/".into(), EntryType::Directory, String::new()),
            ("tree/a.txt".into(), EntryType::Regular, String::new()),
            ("tree/fifo".into(), EntryType::Fifo, String::new()),
            ("tree/sub/".into(), EntryType::Directory, String::new()),
            (
                "tree/sub/deeper/".into(),
                EntryType::Directory,
                String::new()
            ),
            (
                "tree/sub/deeper/z".into(),
                EntryType::Regular,
                String::new()
            ),
            ("tree/sub/hard".into(), EntryType::Link, "tree/a.txt".into()),
            (
                "tree/sub/link".into(),
                EntryType::Symlink,
                "../a.txt".into()
            ),
            ("tree/sub/suid".into(), EntryType::Regular, String::new()),
        ]
    );
    // `dir/.` style: `./` prefixes that `tar` would normalise away.
    let dot = pack(&top.join("sub/deeper"), ".", Vec::new()).expect("pack");
    assert_eq!(names(&dot), ["./", "./z"]);
    // The root of a container: `/` and `/child`, as moby's rebase of the root.
    let root = pack(&top.join("sub/deeper"), "/", Vec::new()).expect("pack");
    assert_eq!(names(&root), ["/", "/z"]);
    // A file is one entry, named exactly as asked; a symlink is packed, not followed.
    let file = pack(&top.join("a.txt"), "renamed", Vec::new()).expect("pack");
    assert_eq!(names(&file), ["renamed"]);
    let link = pack(&top.join("sub/link"), "link", Vec::new()).expect("pack");
    assert_eq!(
        listing(&link),
        [("link".into(), EntryType::Symlink, "../a.txt".into())]
    );
}

#[test]
fn pack_writes_header_metadata_like_docker() {
    let f = fixture();
    let top = sample_tree(&f.src);
    let tar = pack(&top, "tree", Vec::new()).expect("pack");
    let mut ar = tar::Archive::new(&tar[..]);
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let h = e.header().clone();
        match name.as_str() {
            "tree/a.txt" => {
                assert_eq!(h.mode().expect("mode"), 0o644);
                assert_eq!((h.uid().expect("uid"), h.gid().expect("gid")), (1234, 5678));
                assert_eq!(h.mtime().expect("mtime"), 1_500_000_000);
                let mut data = String::new();
                e.read_to_string(&mut data).expect("read");
                assert_eq!(data, "hello");
            }
            "tree/sub/" => assert_eq!(h.mode().expect("mode"), 0o1777),
            "tree/sub/suid" => assert_eq!(h.mode().expect("mode"), 0o4755),
            "tree/fifo" => assert_eq!(h.mode().expect("mode"), 0o640),
            _ => {}
        }
    }
}

#[test]
fn pack_leaves_out_sockets_and_keeps_long_names() {
    let f = fixture();
    let top = f.src.join("t");
    let long = "d".repeat(120);
    fs::create_dir_all(top.join(&long)).expect("mkdir");
    fs::write(top.join(&long).join("f"), b"x").expect("write");
    symlink("t".repeat(150), top.join("longlink")).expect("symlink");
    let _sock = std::os::unix::net::UnixListener::bind(top.join("sock")).expect("bind");
    let tar = pack(&top, "t", Vec::new()).expect("pack");
    assert_eq!(
        listing(&tar),
        vec![
            ("t/".into(), EntryType::Directory, String::new()),
            (format!("t/{long}/"), EntryType::Directory, String::new()),
            (format!("t/{long}/f"), EntryType::Regular, String::new()),
            ("t/longlink".into(), EntryType::Symlink, "t".repeat(150)),
        ]
    );
}

#[test]
fn pack_then_extract_round_trips_a_tree() {
    let f = fixture();
    let top = sample_tree(&f.src);
    let tar = pack(&top, "tree", Vec::new()).expect("pack");
    let stats = extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert_eq!(stats.entries, 9);
    assert_eq!(stats.bytes, 5 + 10 + 3);
    let out = f.dest.join("tree");
    assert_eq!(fs::read(out.join("a.txt")).expect("read"), b"hello");
    assert_eq!(fs::read(out.join("sub/deeper/z")).expect("read"), b"zzz");
    let a = fs::metadata(out.join("a.txt")).expect("stat");
    let hard = fs::metadata(out.join("sub/hard")).expect("stat");
    assert_eq!(a.ino(), hard.ino(), "hard link kept");
    assert_eq!((a.uid(), a.gid()), (1234, 5678));
    assert_eq!(a.mtime(), 1_500_000_000);
    assert_eq!(
        fs::read_link(out.join("sub/link")).expect("readlink"),
        Path::new("../a.txt")
    );
    assert_eq!(
        fs::symlink_metadata(out.join("sub/link"))
            .expect("lstat")
            .mtime(),
        1_500_000_003
    );
    let fifo = fs::symlink_metadata(out.join("fifo")).expect("lstat");
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o640);
    assert_eq!(
        fs::metadata(out.join("sub/suid")).expect("stat").mode() & 0o7777,
        0o4755
    );
    // Directories get their mode and mtime after their contents were written.
    let sub = fs::metadata(out.join("sub")).expect("stat");
    assert_eq!(sub.mode() & 0o7777, 0o1777);
    assert_eq!(sub.mtime(), 1_500_000_004);
    assert_eq!(
        fs::metadata(out.join("sub/deeper")).expect("stat").mtime(),
        1_500_000_002
    );
    assert_eq!(fs::metadata(&out).expect("stat").mtime(), 1_500_000_005);
}

#[test]
fn extract_applies_read_only_directory_modes_after_their_contents() {
    let f = fixture();
    let tar = RawTar::new()
        .add("ro/", EntryType::Directory, b"", "", 0o555)
        .file("ro/inside", b"x")
        .finish();
    extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert_eq!(
        fs::metadata(f.dest.join("ro")).expect("stat").mode() & 0o7777,
        0o555
    );
    assert_eq!(fs::read(f.dest.join("ro/inside")).expect("read"), b"x");
}

#[test]
fn extract_skips_entries_naming_the_destination_itself() {
    let f = fixture();
    fs::set_permissions(&f.dest, fs::Permissions::from_mode(0o750)).expect("chmod");
    let tar = RawTar::new()
        .add("./", EntryType::Directory, b"", "", 0o700)
        .file("./x", b"x")
        .add("/", EntryType::Directory, b"", "", 0o711)
        .finish();
    let stats = extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert_eq!(stats.entries, 3);
    assert_eq!(fs::metadata(&f.dest).expect("stat").mode() & 0o7777, 0o750);
    assert_eq!(fs::read(f.dest.join("x")).expect("read"), b"x");
}

#[test]
fn extract_creates_implied_parents_and_replaces_files() {
    let f = fixture();
    fs::create_dir(f.dest.join("keep")).expect("mkdir");
    fs::write(f.dest.join("keep/old"), b"old").expect("write");
    fs::write(f.dest.join("keep/f"), b"previous").expect("write");
    let tar = RawTar::new()
        .file("implied/deep/f", b"new")
        .file("keep/f", b"replaced")
        .finish();
    extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert_eq!(
        fs::read(f.dest.join("implied/deep/f")).expect("read"),
        b"new"
    );
    assert_eq!(
        fs::metadata(f.dest.join("implied")).expect("stat").mode() & 0o7777,
        0o755
    );
    assert_eq!(fs::read(f.dest.join("keep/f")).expect("read"), b"replaced");
    assert_eq!(fs::read(f.dest.join("keep/old")).expect("read"), b"old");
}

#[test]
fn extract_refuses_names_that_climb_out() {
    let f = fixture();
    for name in ["../outside/evil", "a/../../outside/evil", ".."] {
        let tar = RawTar::new().file(name, b"x").finish();
        let err = extract(&tar[..], &f.dest, &opts()).expect_err(name);
        assert!(matches!(err, ExtractError::Breakout(_)), "{name}: {err}");
        if name.starts_with("../") {
            assert_eq!(
                err.to_string(),
                format!(
                    "\"{name}\" is outside of {:?}",
                    f.dest.display().to_string()
                )
            );
        }
    }
    assert_empty(&f.outside);
    assert_empty(&f.dest);
}

#[test]
fn extract_treats_absolute_names_as_relative_to_the_destination() {
    // moby strips the leading `/`: `/etc/x` lands in `dest/etc/x`; `/../x` stays at the top.
    let f = fixture();
    let tar = RawTar::new()
        .file("/etc/x", b"abs")
        .file("/../top", b"top")
        .finish();
    extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert_eq!(fs::read(f.dest.join("etc/x")).expect("read"), b"abs");
    assert_eq!(fs::read(f.dest.join("top")).expect("read"), b"top");
    assert_empty(&f.outside);
}

#[test]
fn extract_refuses_symlinks_that_point_out_and_never_writes_through_them() {
    let f = fixture();
    let tar = RawTar::new()
        .symlink("l", "../outside")
        .file("l/evil", b"x")
        .finish();
    let err = extract(&tar[..], &f.dest, &opts()).expect_err("escape");
    assert!(matches!(err, ExtractError::Breakout(_)), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid symlink {:?} -> \"../outside\"",
            f.dest.join("l").display().to_string()
        )
    );
    let tar = RawTar::new().symlink("a/b/l", "../../../x").finish();
    assert!(matches!(
        extract(&tar[..], &f.dest, &opts()),
        Err(ExtractError::Breakout(_))
    ));
    assert_empty(&f.outside);
    // Staying inside is fine, however roundabout.
    let tar = RawTar::new().symlink("a/b/l", "../../x/../y").finish();
    extract(&tar[..], &f.dest, &opts()).expect("inside");
    assert_eq!(
        fs::read_link(f.dest.join("a/b/l")).expect("readlink"),
        Path::new("../../x/../y")
    );
}

#[test]
fn extract_resolves_absolute_symlinks_inside_the_destination() {
    // An absolute target is allowed (it means the container's root) and stored verbatim,
    // but writing through it lands inside `dest`, never in the host's directory.
    let f = fixture();
    let outside = f.outside.display().to_string();
    let tar = RawTar::new()
        .symlink("l", &outside)
        .file("l/evil", b"x")
        .finish();
    extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert_eq!(
        fs::read_link(f.dest.join("l")).expect("readlink"),
        f.outside
    );
    let inside = f.dest.join(outside.trim_start_matches('/')).join("evil");
    assert_eq!(fs::read(inside).expect("read"), b"x");
    assert_empty(&f.outside);
}

#[test]
fn extract_never_writes_through_existing_symlinks_pointing_out() {
    let f = fixture();
    symlink(&f.outside, f.dest.join("abs")).expect("symlink");
    symlink("../outside", f.dest.join("rel")).expect("symlink");
    fs::write(f.outside.join("victim"), b"safe").expect("write");
    symlink(f.outside.join("victim"), f.dest.join("final")).expect("symlink");
    let tar = RawTar::new()
        .file("abs/a", b"x")
        .file("rel/b", b"x")
        .file("rel/../../c", b"x")
        .file("final", b"replaced")
        .finish();
    // `rel/../../c` is refused lexically; the rest stays inside.
    let err = extract(&tar[..], &f.dest, &opts()).expect_err("lexical escape");
    assert!(matches!(err, ExtractError::Breakout(_)), "{err}");
    let tar = RawTar::new()
        .file("abs/a", b"x")
        .file("rel/b", b"x")
        .file("final", b"replaced")
        .finish();
    extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert_eq!(fs::read(f.outside.join("victim")).expect("read"), b"safe");
    let names: Vec<_> = fs::read_dir(&f.outside)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["victim"]);
    // The final component was replaced, not followed.
    assert_eq!(fs::read(f.dest.join("final")).expect("read"), b"replaced");
    // `rel` -> `../outside` from the root: `..` stops at `dest`.
    assert_eq!(fs::read(f.dest.join("outside/b")).expect("read"), b"x");
    let abs = f.dest.join(f.outside.strip_prefix("/").expect("absolute"));
    assert_eq!(fs::read(abs.join("a")).expect("read"), b"x");
}

#[test]
fn extract_refuses_hard_links_out_of_the_destination() {
    let f = fixture();
    fs::write(f.outside.join("secret"), b"secret").expect("write");
    let tar = RawTar::new().hardlink("h", "../outside/secret").finish();
    let err = extract(&tar[..], &f.dest, &opts()).expect_err("escape");
    assert!(matches!(err, ExtractError::Breakout(_)), "{err}");
    assert!(err.to_string().starts_with("invalid hardlink "), "{err}");
    // `/etc/passwd` means `dest/etc/passwd`, which does not exist.
    let tar = RawTar::new().hardlink("p", "/etc/passwd").finish();
    let err = extract(&tar[..], &f.dest, &opts()).expect_err("missing");
    assert!(matches!(err, ExtractError::Io(_)), "{err}");
    // Through a symlink that points out: resolved inside `dest`, so not found either.
    symlink(&f.outside, f.dest.join("out")).expect("symlink");
    let tar = RawTar::new().hardlink("s", "out/secret").finish();
    assert!(extract(&tar[..], &f.dest, &opts()).is_err());
    assert!(!f.dest.join("p").exists() && !f.dest.join("h").exists());
    assert!(fs::symlink_metadata(f.dest.join("s")).is_err());
    assert_eq!(
        fs::metadata(f.outside.join("secret"))
            .expect("stat")
            .nlink(),
        1
    );
}

#[test]
fn extract_links_hard_links_inside_the_destination() {
    let f = fixture();
    let tar = RawTar::new()
        .file("a/f", b"data")
        .hardlink("b/g", "a/f")
        .hardlink("c", "/a/f")
        .finish();
    extract(&tar[..], &f.dest, &opts()).expect("extract");
    let ino = fs::metadata(f.dest.join("a/f")).expect("stat").ino();
    assert_eq!(fs::metadata(f.dest.join("b/g")).expect("stat").ino(), ino);
    assert_eq!(fs::metadata(f.dest.join("c")).expect("stat").ino(), ino);
}

#[test]
fn extract_without_overwriting_refuses_dir_non_dir_swaps() {
    let f = fixture();
    fs::create_dir(f.dest.join("d")).expect("mkdir");
    fs::write(f.dest.join("d/keep"), b"k").expect("write");
    fs::write(f.dest.join("file"), b"f").expect("write");
    let strict = ExtractOptions {
        no_overwrite_dir_non_dir: true,
        ..opts()
    };
    let tar = RawTar::new().file("d", b"x").finish();
    let err = extract(&tar[..], &f.dest, &strict).expect_err("dir replaced by file");
    assert!(matches!(err, ExtractError::Refused(_)), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot overwrite directory {:?} with non-directory {:?}",
            f.dest.join("d").display().to_string(),
            f.dest.display().to_string()
        )
    );
    let tar = RawTar::new().dir("file/").finish();
    let err = extract(&tar[..], &f.dest, &strict).expect_err("file replaced by dir");
    assert!(
        err.to_string()
            .starts_with("cannot overwrite non-directory"),
        "{err}"
    );
    assert_eq!(fs::read(f.dest.join("d/keep")).expect("read"), b"k");
    assert_eq!(fs::read(f.dest.join("file")).expect("read"), b"f");
    // Without the option both are replaced, as moby does.
    let tar = RawTar::new().file("d", b"x").dir("file/").finish();
    extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert_eq!(fs::read(f.dest.join("d")).expect("read"), b"x");
    assert!(fs::metadata(f.dest.join("file")).expect("stat").is_dir());
}

#[test]
fn extract_refuses_devices_unless_allowed() {
    let f = fixture();
    let mut raw = RawTar::new();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Char);
    h.set_mode(0o666);
    h.set_device_major(1).expect("major");
    h.set_device_minor(3).expect("minor");
    h.set_size(0);
    h.set_path("null").expect("path");
    h.set_cksum();
    raw.0.append(&h, std::io::empty()).expect("append");
    let tar = raw.finish();
    let no_dev = ExtractOptions {
        allow_devices: false,
        ..opts()
    };
    let err = extract(&tar[..], &f.dest, &no_dev).expect_err("device");
    assert!(matches!(err, ExtractError::Refused(_)), "{err}");
    assert_empty(&f.dest);
    extract(&tar[..], &f.dest, &opts()).expect("extract");
    let m = fs::symlink_metadata(f.dest.join("null")).expect("lstat");
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(m.mode() & 0o7777, 0o666);
}

#[test]
fn extract_owners_follow_the_options() {
    let f = fixture();
    let mut raw = RawTar::new();
    raw.file("plain", b"x").dir("d/").symlink("l", "plain");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o4755);
    h.set_uid(5);
    h.set_gid(6);
    h.set_size(1);
    h.set_path("owned").expect("path");
    h.set_cksum();
    raw.0.append(&h, &b"y"[..]).expect("append");
    let tar = raw.finish();
    let owner_of = |p: &str| {
        let m = fs::symlink_metadata(f.dest.join(p)).expect("lstat");
        (m.uid(), m.gid())
    };

    extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert_eq!(owner_of("owned"), (5, 6));
    // chown first, chmod after: the setuid bit survives.
    assert_eq!(
        fs::metadata(f.dest.join("owned")).expect("stat").mode() & 0o7777,
        0o4755
    );

    let forced = ExtractOptions {
        owner: Some((42, 43)),
        ..opts()
    };
    extract(&tar[..], &f.dest, &forced).expect("extract");
    for p in ["plain", "d", "l", "owned"] {
        assert_eq!(owner_of(p), (42, 43), "{p}");
    }

    let mapped = ExtractOptions {
        id_map: Some(IdMapping {
            uids: vec![(0, 100_000, 65536)],
            gids: vec![(0, 200_000, 65536)],
        }),
        ..opts()
    };
    let nested = RawTar::new().file("x/y", b"z").finish();
    extract(&tar[..], &f.dest, &mapped).expect("extract");
    extract(&nested[..], &f.dest, &mapped).expect("extract");
    assert_eq!(owner_of("owned"), (100_005, 200_006));
    assert_eq!(owner_of("plain"), (100_000, 200_000));
    assert_eq!(
        owner_of("x"),
        (100_000, 200_000),
        "implied dirs: mapped root"
    );

    // `owner` is a container ID too: mapped like header IDs.
    let forced_mapped = ExtractOptions {
        owner: Some((42, 43)),
        ..mapped.clone()
    };
    extract(&tar[..], &f.dest, &forced_mapped).expect("extract");
    assert_eq!(owner_of("owned"), (100_042, 200_043));

    let narrow = ExtractOptions {
        id_map: Some(IdMapping {
            uids: vec![(0, 100_000, 1)],
            gids: vec![(0, 200_000, 1)],
        }),
        ..opts()
    };
    let err = extract(&tar[..], &f.dest, &narrow).expect_err("unmapped");
    assert!(matches!(err, ExtractError::Invalid(_)), "{err}");

    let untouched = ExtractOptions {
        preserve_owner: false,
        ..opts()
    };
    fs::remove_file(f.dest.join("owned")).expect("rm");
    extract(&tar[..], &f.dest, &untouched).expect("extract");
    assert_eq!(owner_of("owned"), (0, 0), "created by this (root) process");
}

#[test]
fn extract_accepts_gzip_streams_and_pax_metadata() {
    let f = fixture();
    let mut b = tar::Builder::new(Vec::new());
    pack::append_pax(
        &mut b,
        &[
            (b"mtime", b"1600000000.5"),
            (b"uid", b"3000000"),
            (b"path", b"pax/long-name"),
        ],
    )
    .expect("pax");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o600);
    h.set_size(2);
    pack::append(&mut b, &mut h, b"short", None, &b"hi"[..]).expect("append");
    let tar = b.into_inner().expect("finish");
    extract(&gzip(&tar)[..], &f.dest, &opts()).expect("extract");
    let m = fs::metadata(f.dest.join("pax/long-name")).expect("stat");
    assert_eq!(m.uid(), 3_000_000);
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 500_000_000));
}

#[test]
fn extract_treats_whiteout_names_as_plain_files() {
    let f = fixture();
    fs::write(f.dest.join("victim"), b"still here").expect("write");
    let tar = RawTar::new()
        .file(".wh.victim", b"")
        .file(".wh..wh..opq", b"")
        .finish();
    extract(&tar[..], &f.dest, &opts()).expect("extract");
    assert!(f.dest.join(".wh.victim").is_file());
    assert!(f.dest.join(".wh..wh..opq").is_file());
    assert_eq!(
        fs::read(f.dest.join("victim")).expect("read"),
        b"still here"
    );
}

#[test]
fn rebase_renames_the_top_entry_and_hard_link_targets() {
    let f = fixture();
    let top = sample_tree(&f.src);
    let tar = pack(&top, "tree", Vec::new()).expect("pack");
    let out = rebase(&tar[..], Vec::new(), "tree", "copy").expect("rebase");
    let listed = listing(&out);
    assert_eq!(listed[0].0, "copy/");
    assert!(listed.contains(&("copy/sub/hard".into(), EntryType::Link, "copy/a.txt".into())));
    assert!(listed.contains(&(
        "copy/sub/link".into(),
        EntryType::Symlink,
        "../a.txt".into()
    )));
    // Metadata and data survive.
    extract(&out[..], &f.dest, &opts()).expect("extract");
    assert_eq!(fs::read(f.dest.join("copy/a.txt")).expect("read"), b"hello");
    let a = fs::metadata(f.dest.join("copy/a.txt")).expect("stat");
    assert_eq!((a.uid(), a.gid(), a.mtime()), (1234, 5678, 1_500_000_000));
    assert_eq!(
        fs::metadata(f.dest.join("copy/sub/hard"))
            .expect("stat")
            .ino(),
        a.ino()
    );
}

#[test]
fn rebase_matches_whole_components_only() {
    let tar = RawTar::new()
        .file("foo", b"1")
        .file("foo/x", b"2")
        .file("foobar", b"3")
        .file("./foo", b"4")
        .finish();
    let out = rebase(&tar[..], Vec::new(), "foo/", "bar").expect("rebase");
    assert_eq!(names(&out), ["bar", "bar/x", "foobar", "./foo"]);
    // `dir/.` archives: `.` is the old base.
    let tar = RawTar::new().dir("./").file("./x", b"1").finish();
    let out = rebase(&tar[..], Vec::new(), ".", "new").expect("rebase");
    assert_eq!(names(&out), ["new/", "new/x"]);
    // The root: leading slashes dropped, everything under the new name.
    let tar = RawTar::new().dir("/").file("/etc/x", b"1").finish();
    let out = rebase(&tar[..], Vec::new(), "/", "root").expect("rebase");
    assert_eq!(names(&out), ["root/", "root/etc/x"]);
    let long = "n".repeat(140);
    let out = rebase(&tar[..], Vec::new(), "", &long).expect("rebase");
    assert_eq!(names(&out), [format!("{long}/"), format!("{long}/etc/x")]);
}

#[test]
fn go_file_modes_match_go() {
    let f = fixture();
    let file = f.src.join("f");
    fs::write(&file, b"").expect("write");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let meta = |p: &Path| fs::symlink_metadata(p).expect("lstat");
    assert_eq!(go_file_mode(&meta(&file)), 0o644);
    fs::set_permissions(&f.src, fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(go_file_mode(&meta(&f.src)), (1 << 31) | 0o755);
    symlink("f", f.src.join("l")).expect("symlink");
    assert_eq!(go_file_mode(&meta(&f.src.join("l"))), (1 << 27) | 0o777);
    assert_eq!(
        go_file_mode(&meta(Path::new("/dev/null"))),
        (1 << 26) | (1 << 21) | 0o666
    );
    mkfifo(&f.src.join("p"));
    assert_eq!(go_file_mode(&meta(&f.src.join("p"))) & !0o777, 1 << 25);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o7755)).expect("chmod");
    assert_eq!(
        go_file_mode(&meta(&file)),
        (1 << 23) | (1 << 22) | (1 << 20) | 0o755
    );
    assert!(is_dir_mode(go_file_mode(&meta(&f.src))));
    assert!(!is_dir_mode(go_file_mode(&meta(&file))));
    assert!(is_symlink_mode(go_file_mode(&meta(&f.src.join("l")))));
}

#[test]
fn stat_reports_docker_path_stat_with_resolved_links() {
    let f = fixture();
    let root = &f.src;
    fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
    symlink("usr/bin", root.join("bin")).expect("symlink");
    symlink("/bin/../bin/./sh", root.join("sh")).expect("symlink");
    symlink("/nowhere/x", root.join("dangling")).expect("symlink");
    fs::write(root.join("usr/bin/file"), b"12345").expect("write");
    set_mtime(&root.join("usr/bin/file"), 1_700_000_000);

    let st = stat_in_root(root, Path::new("/usr/bin/file"), "file").expect("stat");
    assert_eq!(
        st,
        PathStat {
            name: "file".into(),
            size: 5,
            mode: 0o644,
            mtime: "2023-11-14T22:13:20Z".into(),
            link_target: String::new(),
        }
    );
    let bin = stat_in_root(root, Path::new("/bin"), "bin").expect("stat");
    assert!(is_symlink_mode(bin.mode));
    assert_eq!(bin.link_target, "/usr/bin");
    let sh = stat_in_root(root, Path::new("/sh"), "sh").expect("stat");
    assert_eq!(sh.link_target, "/usr/bin/sh");
    let dangling = stat_in_root(root, Path::new("dangling"), "dangling").expect("stat");
    assert_eq!(dangling.link_target, "/nowhere/x");
    assert_eq!(
        stat_in_root(root, Path::new("/missing"), "missing")
            .expect_err("missing")
            .kind(),
        std::io::ErrorKind::NotFound
    );
    assert_eq!(
        resolve_in_root(root, Path::new("/bin/../../../bin/file")).expect("resolve"),
        Path::new("/usr/bin/file")
    );
}

#[test]
fn path_stat_header_is_base64_of_docker_json() {
    let st = PathStat {
        name: "f".into(),
        size: 3,
        mode: MODE_DIR | 0o755,
        mtime: "2024-01-02T03:04:05.1Z".into(),
        link_target: "/x".into(),
    };
    let header = st.to_header();
    let json = arca_api::b64::decode(&header).expect("base64");
    assert_eq!(
        String::from_utf8(json).expect("utf8"),
        r#"{"name":"f","size":3,"mode":2147484141,"mtime":"2024-01-02T03:04:05.1Z","linkTarget":"/x"}"#
    );
    assert_eq!(PathStat::from_header(&header), Some(st));
    assert_eq!(PathStat::from_header("not base64!"), None);
}

#[test]
fn go_time_trims_fraction_zeros() {
    assert_eq!(go_time(0, 0), "1970-01-01T00:00:00Z");
    assert_eq!(
        go_time(1_704_164_645, 123_456_789),
        "2024-01-02T03:04:05.123456789Z"
    );
    assert_eq!(
        go_time(1_704_164_645, 120_000_000),
        "2024-01-02T03:04:05.12Z"
    );
}

#[test]
fn clean_name_strips_roots_and_refuses_climbing() {
    let c = |n: &str| {
        clean_name(n.as_bytes()).map(|v| {
            v.iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(c("./a//b/"), Some(vec!["a".into(), "b".into()]));
    assert_eq!(c("/../a"), Some(vec!["a".into()]));
    assert_eq!(c("a/../b"), Some(vec!["b".into()]));
    assert_eq!(c("."), Some(vec![]));
    assert_eq!(c("a/../../b"), None);
    assert_eq!(c(".."), None);
}

#[test]
fn rebase_of_a_broken_stream_does_not_end_the_archive() {
    // The second header's uid is not a number: the copy stops there, and what was written
    // must not look like a complete archive (no end-of-archive blocks).
    let mut tar = RawTar::new().file("a", b"x").file("b", b"y").finish();
    tar[1024 + 108..1024 + 116].copy_from_slice(b"zzzzzzz\0");
    let mut h = tar::Header::from_byte_slice(&tar[1024..1536]).clone();
    h.set_cksum();
    tar[1024..1536].copy_from_slice(h.as_bytes());
    let mut out = Vec::new();
    rebase(&tar[..], &mut out, "a", "c").expect_err("bad uid");
    assert_eq!(
        out.len(),
        1024,
        "one header and its data block, nothing more"
    );
    assert_eq!(names(&out), ["c"]);
}
