//! The `nestor` binary: see the `nestor_server` library.

fn main() -> std::process::ExitCode {
    nestor_server::run()
}
