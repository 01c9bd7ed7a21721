//! `arca-shim`: the per-container monitor. All of it lives in `arca_runtime::shim`.

fn main() {
    arca_runtime::shim::main()
}
