//! The `laminar` command-line tool.

/// The process's allocator (the `mimalloc` feature, on by default).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: laminar::allocator::Allocator = laminar::allocator::Allocator;

fn main() -> std::process::ExitCode {
    laminar::cli::main()
}
