//! The on-disk compiled-component cache.

use nestor_engines::{CompileSource, HostConfig, WasmHost, BUNDLED};

fn host(dir: &std::path::Path) -> WasmHost {
    WasmHost::new(HostConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..HostConfig::default()
    })
    .unwrap()
}

#[test]
fn a_second_host_loads_from_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = BUNDLED[0].wasm;
    let (_, source) = host(dir.path()).compile(wasm).unwrap();
    assert_eq!(source, CompileSource::Compiled);
    let entries: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0].starts_with(&nestor_engines::sha256_hex(wasm))
            && entries[0].contains("wasmtime48"),
        "{entries:?}"
    );

    let second = host(dir.path());
    assert_eq!(second.compile(wasm).unwrap().1, CompileSource::DiskCache);
    assert_eq!(second.compile(wasm).unwrap().1, CompileSource::Memory);
    second.load(wasm, "cached").unwrap();
}

#[test]
fn a_corrupt_cache_entry_is_discarded_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = BUNDLED[1].wasm;
    host(dir.path()).compile(wasm).unwrap();
    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&entry, b"definitely not machine code").unwrap();
    assert_eq!(
        host(dir.path()).compile(wasm).unwrap().1,
        CompileSource::Compiled
    );
    assert_eq!(
        host(dir.path()).compile(wasm).unwrap().1,
        CompileSource::DiskCache
    );
}
