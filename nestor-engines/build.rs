//! Builds the plugins workspace (`../plugins`) for wasm32-wasip2 so that
//! `cargo build` on a fresh clone embeds real components, and builds the
//! Terraform engine once more as a native shared library: the example the
//! native loader's tests and the benchmark load.
//!
//! The guests get a target directory of their own beside this build's
//! (`<target>/wasm-plugins`), never inside the source tree, and share this
//! build's jobserver, so they do not oversubscribe the machine. The script
//! reruns only when a file of the plugins workspace changes.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundled engines: crate name and the file name they are embedded as.
const BUNDLED: &[(&str, &str)] = &[
    ("nestor_engine_terraform", "terraform.wasm"),
    ("nestor_engine_crossplane", "crossplane.wasm"),
    ("nestor_engine_helm", "helm.wasm"),
    ("nestor_engine_pulumi", "pulumi.wasm"),
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let plugins = manifest_dir
        .parent()
        .expect("the crate lives in the workspace")
        .join("plugins");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    watch_sources(&plugins);
    require_wasm_target();

    let target_dir = guest_target_dir(&out_dir);
    cargo(
        &plugins,
        &target_dir,
        &["--target", "wasm32-wasip2", "--workspace"],
    );
    cargo(
        &plugins,
        &target_dir,
        &["-p", "nestor-engine-terraform", "--lib"],
    );

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    for (krate, file) in BUNDLED {
        let built = wasm_dir.join(format!("{krate}.wasm"));
        std::fs::copy(&built, out_dir.join(file))
            .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    }
    let native = target_dir.join("release").join(format!(
        "{}nestor_engine_terraform{}",
        env::consts::DLL_PREFIX,
        env::consts::DLL_SUFFIX
    ));
    println!(
        "cargo:rustc-env=NESTOR_TEST_GUESTS_DIR={}",
        wasm_dir.display()
    );
    println!("cargo:rustc-env=NESTOR_NATIVE_EXAMPLE={}", native.display());
}

/// The guests need the toolchain's `wasm32-wasip2` standard library. rustup
/// installs the targets rust-toolchain.toml lists only where it installs
/// toolchains on its own (not with `RUSTUP_AUTO_INSTALL=0`, nor for a
/// toolchain installed earlier), and without it the guests' build fails
/// with a page of `can't find crate for std`; say in one line what to run.
fn require_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Some(sysroot) = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    else {
        return; // the guests' own build will say what is wrong
    };
    if !sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
        eprintln!(
            "error: the wasm32-wasip2 target is not installed; run `rustup target add wasm32-wasip2` (nestor-engines builds the bundled engine plugins for it)"
        );
        std::process::exit(1);
    }
}

/// `<target>/wasm-plugins`, where `<target>` holds `<profile>/build/<crate>/out`.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    let target = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent()?.parent())
        .unwrap_or(out_dir);
    target.join("wasm-plugins")
}

fn cargo(plugins: &Path, target_dir: &Path, args: &[&str]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir);
    // The outer build's flags and wrappers are for the host crates, not the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("running cargo for the plugins: {e}"));
    assert!(
        status.success(),
        "building the plugins workspace failed ({status}); see the output above"
    );
}

/// Reruns this script when anything the guests are built from changes
/// (and never for the guests' own build output).
fn watch_sources(plugins: &Path) {
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", plugins.join(file).display());
    }
    let mut stack = vec![plugins.to_path_buf()];
    while let Some(dir) = stack.pop() {
        // A directory also catches files added to it; one holding a build
        // output (`target/`) would be rescanned on every build, so list its files only.
        if !dir.join("target").exists() {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "rs" || e == "toml" || e == "wit")
            {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
