use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::*;
use crate::testutil::RawTar;

struct Fixture {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("snap/fs");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&dest).expect("mkdir");
    fs::create_dir_all(&outside).expect("mkdir");
    Fixture {
        _tmp: tmp,
        dest,
        outside,
    }
}

fn run(f: &Fixture, tar: &[u8]) -> Result<Unpacked, UnpackError> {
    unpack(tar, &f.dest, "sha256:test", None, &Limits::default())
}

fn assert_empty(dir: &Path) {
    let entries: Vec<_> = fs::read_dir(dir).expect("read_dir").collect();
    assert!(
        entries.is_empty(),
        "{} is not empty: {entries:?}",
        dir.display()
    );
}

#[test]
fn unpack_rejects_parent_dir_entries() {
    let f = fixture();
    let tar = RawTar::new().file("../outside/evil", b"x").finish();
    let err = run(&f, &tar).expect_err("must fail");
    assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "layer sha256:test entry \"../outside/evil\" escapes the layer root"
    );
    let tar = RawTar::new().file("a/../../outside/evil", b"x").finish();
    assert!(matches!(run(&f, &tar), Err(UnpackError::Escape { .. })));
    assert_empty(&f.outside);
}

#[test]
fn unpack_rejects_absolute_paths() {
    let f = fixture();
    let target = format!("{}/evil", f.outside.display());
    let tar = RawTar::new().file(&target, b"x").finish();
    assert!(matches!(run(&f, &tar), Err(UnpackError::Escape { .. })));
    assert_empty(&f.outside);
}

#[test]
fn unpack_rejects_symlink_parent_traversal() {
    let f = fixture();
    let abs = f.outside.display().to_string();
    for target in [abs.as_str(), "../../outside"] {
        let tar = RawTar::new()
            .symlink("link", target)
            .file("link/evil", b"x")
            .finish();
        let err = run(&f, &tar).expect_err("must fail");
        assert!(matches!(err, UnpackError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("traverses a symlink"));
        assert_empty(&f.outside);
    }
    // A directory entry through the link, and a whiteout through it, are refused too.
    let tar = RawTar::new().symlink("l", &abs).dir("l/d/").finish();
    assert!(matches!(run(&f, &tar), Err(UnpackError::Symlink { .. })));
    let tar = RawTar::new()
        .symlink("m", &abs)
        .file("m/.wh.x", b"")
        .finish();
    assert!(matches!(run(&f, &tar), Err(UnpackError::Symlink { .. })));
    assert_empty(&f.outside);
}

#[test]
fn unpack_does_not_follow_symlink_at_final_component() {
    let f = fixture();
    let victim = f.outside.join("victim");
    fs::write(&victim, b"original").expect("write");
    let tar = RawTar::new()
        .symlink("x", &victim.display().to_string())
        .file("x", b"replaced")
        .finish();
    run(&f, &tar).expect("unpack");
    assert_eq!(fs::read(&victim).expect("read"), b"original");
    assert_eq!(fs::read(f.dest.join("x")).expect("read"), b"replaced");
}

#[test]
fn hardlink_to_outside_is_rejected() {
    let f = fixture();
    fs::write(f.outside.join("secret"), b"s").expect("write");
    let tar = RawTar::new().hardlink("h", "../outside/secret").finish();
    let err = run(&f, &tar).expect_err("must fail");
    assert!(err.to_string().contains("escapes the layer root"), "{err}");
    let abs = f.outside.join("secret").display().to_string();
    let tar = RawTar::new().hardlink("h", &abs).finish();
    assert!(matches!(run(&f, &tar), Err(UnpackError::Hardlink { .. })));
    let tar = RawTar::new()
        .symlink("l", &f.outside.display().to_string())
        .hardlink("h", "l/secret")
        .finish();
    let err = run(&f, &tar).expect_err("must fail");
    assert!(err.to_string().contains("traverses a symlink"), "{err}");
    let tar = RawTar::new().hardlink("h", "missing").finish();
    assert!(matches!(run(&f, &tar), Err(UnpackError::Hardlink { .. })));
    assert_eq!(
        fs::metadata(f.outside.join("secret"))
            .expect("stat")
            .nlink(),
        1
    );
}

#[test]
fn hardlink_within_layer_works() {
    let f = fixture();
    let tar = RawTar::new()
        .file("bin/busybox", b"elf")
        .hardlink("./bin/sh", "./bin/busybox")
        .finish();
    run(&f, &tar).expect("unpack");
    let a = fs::metadata(f.dest.join("bin/busybox")).expect("stat");
    let b = fs::metadata(f.dest.join("bin/sh")).expect("stat");
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let f = fixture();
    let tar = RawTar::new()
        .file("etc/.wh.gone", b"")
        .dir("var/")
        .file("var/.wh..wh..opq", b"")
        .file("var/.wh..wh.plnk", b"")
        .finish();
    run(&f, &tar).expect("unpack");
    let wh = fs::symlink_metadata(f.dest.join("etc/gone")).expect("whiteout");
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!f.dest.join("etc/.wh.gone").exists());
    let path = CString::new(f.dest.join("var").display().to_string()).expect("path");
    let name = CString::new("trusted.overlay.opaque").expect("name");
    let value = sys::lgetxattr(&path, &name).expect("getxattr");
    assert_eq!(value.as_deref(), Some(&b"y"[..]));
    assert_eq!(fs::read_dir(f.dest.join("var")).expect("read").count(), 0);
}

#[test]
fn device_nodes_are_skipped() {
    let f = fixture();
    let tar = RawTar::new()
        .add("dev/sda", EntryType::Block, b"", "", 0o660)
        .add("dev/null", EntryType::Char, b"", "", 0o666)
        .add("run/fifo", EntryType::Fifo, b"", "", 0o600)
        .finish();
    run(&f, &tar).expect("unpack");
    assert!(fs::symlink_metadata(f.dest.join("dev/null")).is_err());
    assert!(fs::symlink_metadata(f.dest.join("dev/sda")).is_err());
    let fifo = fs::symlink_metadata(f.dest.join("run/fifo")).expect("fifo");
    assert!(fifo.file_type().is_fifo());
}

#[test]
fn diff_id_mismatch_is_rejected() {
    let f = fixture();
    let tar = RawTar::new().file("a", b"x").finish();
    let err = unpack(
        &tar[..],
        &f.dest,
        "L",
        Some(&Digest::of(b"no")),
        &Limits::default(),
    )
    .expect_err("must fail");
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
    assert!(err.to_string().starts_with("layer L has diff_id"));
}

#[test]
fn diff_id_is_hash_of_uncompressed_stream() {
    let f = fixture();
    let tar = RawTar::new().file("a", b"hello").finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let want = Digest::of(&tar);
    let got = unpack(&gz[..], &f.dest, "L", Some(&want), &Limits::default()).expect("unpack");
    assert_eq!(
        got,
        Unpacked {
            diff_id: want,
            size: 5
        }
    );
    let zs = zstd::encode_all(&tar[..], 1).expect("zstd");
    let g = fixture();
    let got = unpack(&zs[..], &g.dest, "L", None, &Limits::default()).expect("unpack");
    assert_eq!(got.diff_id, Digest::of(&tar));
}

#[test]
fn metadata_is_preserved() {
    let f = fixture();
    let mut b = RawTar::new();
    b.0.append_pax_extensions([("SCHILY.xattr.user.note", &b"hi"[..])])
        .expect("pax");
    b.add("bin/su", EntryType::Regular, b"x", "", 0o104755);
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::Directory);
    h.set_path("opt/").expect("path");
    h.set_mode(0o1777);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_234_567);
    h.set_size(0);
    h.set_cksum();
    b.0.append(&h, &b""[..]).expect("append");
    b.file("opt/child", b"c");
    b.symlink("opt/link", "/bin/su");
    let tar = b.finish();
    run(&f, &tar).expect("unpack");
    let su = fs::metadata(f.dest.join("bin/su")).expect("stat");
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(su.mtime(), 1_600_000_000);
    let path = CString::new(f.dest.join("bin/su").display().to_string()).expect("path");
    let name = CString::new("user.note").expect("name");
    assert_eq!(
        sys::lgetxattr(&path, &name).expect("xattr").as_deref(),
        Some(&b"hi"[..])
    );
    let opt = fs::metadata(f.dest.join("opt")).expect("stat");
    assert_eq!(opt.permissions().mode() & 0o7777, 0o1777);
    assert_eq!((opt.uid(), opt.gid()), (1000, 1001));
    assert_eq!(
        opt.mtime(),
        1_234_567,
        "directory mtime is set after its children"
    );
    let link = fs::symlink_metadata(f.dest.join("opt/link")).expect("stat");
    assert!(link.file_type().is_symlink());
    assert_eq!(link.mtime(), 1_600_000_000);
    assert_eq!(
        fs::read_link(f.dest.join("opt/link")).expect("readlink"),
        Path::new("/bin/su")
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let f = fixture();
    let tar = RawTar::new()
        .file("a", b"one")
        .file("a", b"two")
        .file("d/x", b"x")
        .file("d", b"now a file")
        .dir("e/")
        .file("e/keep", b"k")
        .dir("e/")
        .finish();
    run(&f, &tar).expect("unpack");
    assert_eq!(fs::read(f.dest.join("a")).expect("read"), b"two");
    assert_eq!(fs::read(f.dest.join("d")).expect("read"), b"now a file");
    assert!(
        f.dest.join("e/keep").exists(),
        "re-listing a directory keeps its content"
    );
}

#[test]
fn limits_stop_decompression_bombs() {
    let f = fixture();
    let tar = RawTar::new().file("big", &vec![0u8; 100_000]).finish();
    let limits = Limits {
        max_bytes: 50_000,
        max_entries: 10,
    };
    let err = unpack(&tar[..], &f.dest, "L", None, &limits).expect_err("must fail");
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    let mut b = RawTar::new();
    for i in 0..20 {
        b.file(&format!("f{i}"), b"");
    }
    let tar = b.finish();
    let g = fixture();
    let err = unpack(&tar[..], &g.dest, "L", None, &limits).expect_err("must fail");
    assert!(matches!(err, UnpackError::TooManyEntries { .. }), "{err}");
}

#[test]
fn split_path_normalises_and_refuses_escapes() {
    assert_eq!(split_path(b"./a//b/").expect("ok"), vec!["a", "b"]);
    assert!(split_path(b"./").expect("ok").is_empty());
    assert_eq!(split_path(b"/etc"), Err(BadName::Escape));
    assert_eq!(split_path(b"a/../b"), Err(BadName::Escape));
    assert_eq!(split_path(b"a\0b"), Err(BadName::Nul));
}

#[test]
fn pax_times_parse_with_fractions() {
    assert_eq!(
        parse_pax_time(b"12.5"),
        Some(TimeSpec::new(12, 500_000_000))
    );
    assert_eq!(parse_pax_time(b"7"), Some(TimeSpec::new(7, 0)));
    assert_eq!(parse_pax_time(b"x"), None);
    // Before the epoch, also less than a second before it.
    assert_eq!(
        parse_pax_time(b"-1.25"),
        Some(TimeSpec::new(-2, 750_000_000))
    );
    assert_eq!(
        parse_pax_time(b"-0.5"),
        Some(TimeSpec::new(-1, 500_000_000))
    );
}
