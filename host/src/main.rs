//! The `laminar` command-line tool.

fn main() -> std::process::ExitCode {
    laminar::cli::main()
}
