//! Test guest: an engine that misbehaves on request, so the host's sandbox
//! tests load a real component. `engine_config.mode` picks the misdeed:
//! `loop`, `alloc` (1 GiB), `trap`, `panic`, `flood` (100 MB of output),
//! `fs` (read `/etc/passwd`), `env` (read the environment), `clock`,
//! `garbage` (a path escaping the resource folder), `stack` (overflow);
//! anything else renders normally.
#![deny(missing_docs)]

use std::hint::black_box;

use nestor_engine_sdk::{export_engine, json, Engine, EngineError, EngineInfo, Rendered, Request};

/// The engine.
pub struct Hostile;

impl Engine for Hostile {
    fn info() -> EngineInfo {
        EngineInfo::new(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            "Misbehaves on request (test guest)",
        )
    }

    fn render(request: Request) -> Result<Rendered, EngineError> {
        let mode = request.engine_config.str("mode").unwrap_or_default();
        match mode.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let big = black_box(vec![1u8; 1 << 30]);
                Ok(Rendered::new().output(
                    "len",
                    big.iter().step_by(4096).map(|b| *b as u64).sum::<u64>(),
                ))
            }
            "trap" => {
                #[cfg(target_arch = "wasm32")]
                core::arch::wasm32::unreachable();
                #[cfg(not(target_arch = "wasm32"))]
                std::process::abort();
            }
            "panic" => panic!("hostile guest panicked on purpose"),
            "flood" => {
                let chunk = "x".repeat(1 << 20);
                let mut rendered = Rendered::new();
                for i in 0..100 {
                    rendered =
                        rendered.artifact(format!("flood-{i}.txt"), chunk.clone(), "text/plain");
                }
                Ok(rendered)
            }
            "fs" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => Ok(Rendered::new().artifact("passwd", text, "text/plain")),
                Err(e) => Err(EngineError::Internal(format!("filesystem denied: {e}"))),
            },
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                Ok(Rendered::new().output("env", json!(vars)))
            }
            "clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Ok(Rendered::new().output("now", now))
            }
            "garbage" => Ok(Rendered::new().artifact(
                "../../etc/cron.d/evil",
                "* * * * * root true",
                "text/plain",
            )),
            "stack" => Ok(Rendered::new().output("depth", recurse(black_box(1)))),
            _ => Ok(Rendered::new().artifact("ok.txt", "fine\n", "text/plain")),
        }
    }
}

#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let buf = black_box([n; 64]);
    black_box(recurse(buf[0] + 1)) + buf[1]
}

export_engine!(Hostile);
