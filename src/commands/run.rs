//! `squall validate FILE` and `squall run FILE`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use squall_topology::{load_topology_file, EnvOverrides, Topology};

/// Loads and validates a file; `Ok(Err(text))` carries every validation problem.
fn load(file: &Path, sets: &[String]) -> anyhow::Result<Result<Topology, String>> {
    let def = load_topology_file(file, sets, &EnvOverrides::Process)?;
    Ok(def.validate(&crate::registry()).map_err(|e| e.to_string()))
}

/// Prints the resolved graph, or every problem (exit code 2).
pub(super) fn validate(file: &Path, sets: &[String]) -> anyhow::Result<ExitCode> {
    match load(file, sets)? {
        Ok(topology) => {
            print!("{topology}");
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            eprint!("{}: {problems}", file.display());
            Ok(ExitCode::from(2))
        }
    }
}

/// Runs the file until its spouts are exhausted or a signal; prints the report.
pub(super) fn run(
    file: &Path,
    sets: &[String],
    metrics_addr: Option<SocketAddr>,
    workers: Option<usize>,
    ui_addr: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    match load(file, sets)? {
        Ok(topology) => {
            super::run_until_signal(topology, "topology", workers, metrics_addr, ui_addr)
        }
        Err(problems) => {
            eprint!("{}: {problems}", file.display());
            Ok(ExitCode::from(2))
        }
    }
}
