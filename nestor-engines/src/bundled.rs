//! The four engines that ship inside the binary, built from `plugins/` by
//! the build script and embedded here.

/// One embedded engine component.
#[derive(Debug, Clone, Copy)]
pub struct BundledPlugin {
    /// The engine name it registers under.
    pub name: &'static str,
    /// The wasm32-wasip2 component.
    pub wasm: &'static [u8],
}

/// Terraform, Crossplane, Helm and Pulumi.
pub const BUNDLED: &[BundledPlugin] = &[
    BundledPlugin {
        name: "terraform",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/terraform.wasm")),
    },
    BundledPlugin {
        name: "crossplane",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/crossplane.wasm")),
    },
    BundledPlugin {
        name: "helm",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/helm.wasm")),
    },
    BundledPlugin {
        name: "pulumi",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/pulumi.wasm")),
    },
];

/// Where the build put artifacts the tests and the benchmark load: the
/// test guests (`nestor_test_*.wasm`) and the native example engine.
#[doc(hidden)]
pub mod build_artifacts {
    /// The folder holding every component of `plugins/`, test guests included.
    pub const GUESTS_DIR: &str = env!("NESTOR_TEST_GUESTS_DIR");
    /// The Terraform engine built as a native shared library.
    pub const NATIVE_EXAMPLE: &str = env!("NESTOR_NATIVE_EXAMPLE");
}
