//! The Aether control plane. Not built yet: the binary refuses to pretend otherwise.

fn main() -> std::process::ExitCode {
    eprintln!("aether-server: the control plane is not available in this version");
    std::process::ExitCode::FAILURE
}
