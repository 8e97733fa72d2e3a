//! The `laminar` command line, built inside the test crate so CLI tests can run it.

fn main() -> std::process::ExitCode {
    laminar::cli::main()
}
