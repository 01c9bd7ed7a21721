//! Links `arca-init` statically: it runs as PID 1 inside containers whose root filesystem
//! may have no C library at all (busybox), so it must not need a dynamic loader.
//!
//! Only the machine's `x86_64-unknown-linux-gnu` target is assumed (no musl), and cargo has
//! no per-binary `-C target-feature=+crt-static`. So `arca-init` alone gets `-static-pie`
//! plus a search directory, placed before the system ones, where the shared libraries std
//! asks for (`-lgcc_s`, `-lc`, `-lm`, which rustc requests with `-Bdynamic`) are linker
//! scripts naming their static archives instead. This needs glibc's static libraries
//! (`libc.a`, from libc6-dev) and gcc's `libgcc_eh.a`, both present wherever Rust links
//! with gcc. The other binaries are untouched.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(out) = std::env::var_os("OUT_DIR") else {
        panic!("cargo sets OUT_DIR for build scripts");
    };
    let dir = PathBuf::from(out).join("static-libs");
    let scripts = [
        ("libgcc_s.so", "INPUT(-l:libgcc_eh.a -l:libgcc.a)\n"),
        ("libc.so", "GROUP(-l:libc.a -l:libgcc_eh.a -l:libgcc.a)\n"),
        ("libm.so", "INPUT(-l:libm.a)\n"),
    ];
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| {
        scripts
            .iter()
            .try_for_each(|(n, s)| std::fs::write(dir.join(n), s))
    }) {
        panic!("failed to write linker scripts to {}: {e}", dir.display());
    }
    println!("cargo:rustc-link-arg-bin=arca-init=-L{}", dir.display());
    println!("cargo:rustc-link-arg-bin=arca-init=-static-pie");
    println!("cargo:rustc-link-arg-bin=arca-shim=-no-pie");
}
