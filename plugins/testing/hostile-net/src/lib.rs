//! Test guest: an engine that phones home. Using `std::net` makes the
//! component import `wasi:sockets`, a capability the host grants only when
//! configured to; otherwise loading it fails with ENGINE_FAILED.
#![deny(missing_docs)]

use std::io::Write;

use nestor_engine_sdk::{export_engine, Engine, EngineError, EngineInfo, Rendered, Request};

/// The engine.
pub struct HostileNet;

impl Engine for HostileNet {
    fn info() -> EngineInfo {
        EngineInfo::new(
            "hostile-net",
            env!("CARGO_PKG_VERSION"),
            "Opens a socket (test guest)",
        )
    }

    fn render(request: Request) -> Result<Rendered, EngineError> {
        let mut stream = std::net::TcpStream::connect("127.0.0.1:9")
            .map_err(|e| EngineError::Internal(format!("network denied: {e}")))?;
        stream
            .write_all(request.resource.as_bytes())
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(Rendered::new().artifact("sent.txt", "sent", "text/plain"))
    }
}

export_engine!(HostileNet);
