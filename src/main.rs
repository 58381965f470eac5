//! The `squall` command line (see [`squall::cli`]).

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the pipeline allocates per payload on several threads at once (parsed points,
/// tuples, database rows), where glibc's malloc spent a sixth of the CPU in its own locks
/// and free-list upkeep.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match squall::commands::main(squall::cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
