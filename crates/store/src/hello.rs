//! The built-in `hello-world` image, so `arca run hello-world` works offline.
//!
//! Its only file, `/hello`, is a minimal static ELF executable assembled here by hand: one
//! `PT_LOAD` segment holding the code (`write(1, msg, len); exit(0)` via raw system calls) and
//! the message. Everything (program, layer tar, config) is deterministic, so the image ID is
//! stable across hosts and releases. x86_64 and aarch64 are supported.

use arca_model::{Digest, Reference};
use serde_json::json;

use crate::image::LayerBlob;
use crate::record::ref_key;
use crate::{Store, StoreError};

/// What `/hello` prints.
pub const HELLO_MESSAGE: &str = "
Hello from arca!
This message shows that your installation appears to be working correctly.

To generate this message, arca took the following steps:
 1. The arca client contacted the arca daemon (arcad).
 2. arcad found the \"hello-world\" image. It is built into arca itself,
    so no registry or network was needed.
 3. arcad created a new container from that image and started it
    through arca-shim, which runs the executable that produced the
    output you are currently reading.
 4. arcad streamed that output to the arca client, which sent it
    to your terminal.

To try something more ambitious, you can run a shell in a container:
 $ arca run -it busybox sh

Docker's own client works too: point DOCKER_HOST at arcad's socket.
";

const CREATED: &str = "2026-01-01T00:00:00Z";
const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("no built-in hello-world program for architecture {0}")]
    UnsupportedArch(String),
}

/// The `/hello` executable for `arch` (Rust's names: `x86_64`, `aarch64`).
pub fn program(arch: &str) -> Result<Vec<u8>, HelloError> {
    let msg = HELLO_MESSAGE.as_bytes();
    let len = u32::try_from(msg.len()).expect("the message is small");
    let (machine, align, code) = match arch {
        "x86_64" => (62u16, 0x1000u64, x86_64_code(len)),
        "aarch64" => (183, 0x1_0000, aarch64_code(len)),
        other => return Err(HelloError::UnsupportedArch(other.to_owned())),
    };
    let total = (EHDR + PHDR + code.len() + msg.len()) as u64;
    let mut elf = Vec::with_capacity(total as usize);
    // ELF header: 64-bit, little-endian, version 1, System V ABI.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + (EHDR + PHDR) as u64).to_le_bytes()); // e_entry
    elf.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&(EHDR as u16).to_le_bytes());
    elf.extend_from_slice(&(PHDR as u16).to_le_bytes());
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    // Program header: the whole file, readable and executable, at BASE.
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&total.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&total.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&align.to_le_bytes());
    elf.extend_from_slice(&code);
    elf.extend_from_slice(msg);
    Ok(elf)
}

/// `write(1, msg, len); exit(0)`; the message follows the code.
fn x86_64_code(len: u32) -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&[0xb8, 1, 0, 0, 0]); // mov eax, 1 (write)
    c.extend_from_slice(&[0xbf, 1, 0, 0, 0]); // mov edi, 1
    c.extend_from_slice(&[0x48, 0x8d, 0x35]); // lea rsi, [rip + rel32]
    c.extend_from_slice(&16i32.to_le_bytes()); // rel32: from the next instruction to msg
    c.push(0xba); // mov edx, imm32
    c.extend_from_slice(&len.to_le_bytes());
    c.extend_from_slice(&[0x0f, 0x05]); // syscall
    c.extend_from_slice(&[0xb8, 60, 0, 0, 0]); // mov eax, 60 (exit)
    c.extend_from_slice(&[0x31, 0xff]); // xor edi, edi
    c.extend_from_slice(&[0x0f, 0x05]); // syscall
    debug_assert_eq!(c.len(), 17 + 16);
    c
}

/// The same on aarch64 (`svc #0`, syscall number in x8).
fn aarch64_code(len: u32) -> Vec<u8> {
    let movz = |rd: u32, imm: u32| 0xd280_0000 | ((imm & 0xffff) << 5) | rd;
    // adr x1, msg: msg is 28 bytes after the adr (8 instructions of 4 bytes, adr is 2nd).
    let offset: u32 = 28;
    let adr = 0x1000_0000 | ((offset & 3) << 29) | ((offset >> 2) << 5) | 1;
    let words = [
        movz(0, 1),   // x0 = 1 (stdout)
        adr,          // x1 = msg
        movz(2, len), // x2 = len
        movz(8, 64),  // x8 = write
        0xd400_0001,  // svc #0
        movz(0, 0),   // x0 = 0
        movz(8, 93),  // x8 = exit
        0xd400_0001,  // svc #0
    ];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A deterministic tar holding only `hello` (mode 0755, root-owned, mtime 0).
pub(crate) fn layer_tar(program: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_path("hello").expect("a short relative path");
    header.set_size(program.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append(&header, program)
        .expect("writing to a Vec cannot fail");
    builder.into_inner().expect("writing to a Vec cannot fail")
}

/// The image config for the layer with `diff_id`.
pub(crate) fn config(oci_arch: &str, diff_id: &Digest) -> Vec<u8> {
    let config = json!({
        "architecture": oci_arch,
        "os": "linux",
        "config": {
            "Cmd": ["/hello"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "created": CREATED,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": CREATED, "created_by": "arca built-in hello-world" }],
    });
    serde_json::to_vec(&config).expect("a JSON value always serializes")
}

impl Store {
    /// Creates the `hello-world` image if missing and tags it `hello-world:latest` unless
    /// that tag already exists. Skipped, with a warning, on unsupported architectures.
    pub(crate) fn seed_hello(&self) -> Result<(), StoreError> {
        let program = match program(std::env::consts::ARCH) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "not providing the built-in hello-world image");
                return Ok(());
            }
        };
        let tar = layer_tar(&program);
        let config = config(crate::import::host_arch(), &Digest::of(&tar));
        let id = Digest::of(&config);
        if self.record(&id)?.is_none() {
            let _lease = self.lease();
            let (blob, _) = self.write_blob(&tar[..], None)?;
            let layer = LayerBlob {
                digest: blob,
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            };
            self.create_image(&config, &[layer], &[])?;
        }
        let reference: Reference = "hello-world:latest"
            .parse()
            .expect("a valid reference literal");
        let tagged = self.lock_refs().contains_key(&ref_key(&reference));
        if !tagged {
            self.tag(&id, &reference)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use crate::testutil::empty_store;

    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn hello_program_prints_the_message() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("hello");
        std::fs::write(&path, program("x86_64").expect("program")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = Command::new(&path).output().expect("run");
        assert!(out.status.success(), "{:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stdout), HELLO_MESSAGE);
        assert!(out.stderr.is_empty());
    }

    #[test]
    fn hello_programs_are_small_elf_files() {
        for arch in ["x86_64", "aarch64"] {
            let p = program(arch).expect("program");
            assert_eq!(&p[..4], b"\x7fELF");
            assert!(p.len() < 2048, "{arch}: {} bytes", p.len());
        }
        assert!(program("sparc").is_err());
    }

    #[test]
    fn hello_image_is_deterministic_and_seeded() {
        let tar = layer_tar(&program("x86_64").expect("program"));
        assert_eq!(tar, layer_tar(&program("x86_64").expect("program")));
        let (_tmp, store) = empty_store();
        let img = store.get("hello-world").expect("seeded");
        assert_eq!(img.repo_tags, vec!["hello-world:latest"]);
        assert_eq!(img.config["config"]["Cmd"], json!(["/hello"]));
        assert_eq!(img.created, CREATED);
        let hello = store.layer_dirs(&img)[0].join("hello");
        let meta = std::fs::metadata(&hello).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        // Re-opening neither duplicates nor re-tags a moved tag.
        let other = crate::testutil::import_files(&store, &[("x", b"x")], None);
        store
            .tag(&other.id, &"hello-world:latest".parse().expect("ref"))
            .expect("tag");
        let root = store.root().to_path_buf();
        drop(store);
        let store = Store::open(&root).expect("reopen");
        assert_eq!(store.get("hello-world").expect("get").id, other.id);
        assert!(store.get(&img.id.to_string()).is_ok());
    }
}
