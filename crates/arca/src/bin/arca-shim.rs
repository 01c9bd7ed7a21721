//! `arca-shim`: the per-container monitor (all of it lives in `arca_runtime::shim`), and,
//! as `arca-shim archive <request>`, the sandboxed helper of the archive API
//! (`arca_runtime::archive`).

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("archive") {
        let request = args.next().unwrap_or_default();
        arca_runtime::archive::main(&request)
    }
    arca_runtime::shim::main()
}
