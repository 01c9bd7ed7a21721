//! The crate graph only points down (docs/design/architecture.md): a test reads every
//! workspace `Cargo.toml` and fails on an edge that points up or sideways.

use std::collections::BTreeMap;
use std::path::Path;

fn layer_of(name: &str) -> Option<u32> {
    Some(match name {
        "arca-model" => 0,
        "arca-api" => 1,
        "arca-store" => 2,
        "arca-runtime" | "arca-registry" | "arca-net" => 3,
        "arca-daemon" | "arca-cli" => 4,
        "arca" => 5,
        _ => return None,
    })
}

#[test]
fn crate_dependencies_only_point_down() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = BTreeMap::new();
    for entry in std::fs::read_dir(&crates).expect("crates dir") {
        let manifest = entry.expect("entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let doc: toml::Value = toml::from_str(&text).expect("valid Cargo.toml");
        let name = doc["package"]["name"]
            .as_str()
            .expect("package name")
            .to_owned();
        let layer =
            layer_of(&name).unwrap_or_else(|| panic!("{name} has no layer: add it to layer_of()"));
        for table in ["dependencies", "build-dependencies"] {
            let Some(deps) = doc.get(table).and_then(|d| d.as_table()) else {
                continue;
            };
            for dep in deps.keys().filter(|d| d.starts_with("arca")) {
                let dl = layer_of(dep).unwrap_or_else(|| panic!("{dep} has no layer"));
                assert!(
                    dl < layer,
                    "{name} (layer {layer}) depends on {dep} (layer {dl}): dependencies must point down"
                );
            }
        }
        seen.insert(name, layer);
    }
    assert!(
        seen.len() >= 7,
        "expected every crate to be checked, saw {seen:?}"
    );
    // The daemon must never link the runtime (it would fork from a threaded process).
    let daemon =
        std::fs::read_to_string(crates.join("daemon/Cargo.toml")).expect("daemon manifest");
    assert!(!daemon.contains("libcontainer") && !daemon.contains("arca-runtime"));
}
