//! The `quargo` binary: see `quargo --help`.

fn main() -> std::process::ExitCode {
    quargo::cli::main()
}
