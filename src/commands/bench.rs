//! `squall bench ...`: runs the benchmarks of `squall-bench`.

use std::process::ExitCode;

use anyhow::Context;
use squall_bench::fleet::System;
use squall_pipeline::topologies::Names;

use crate::cli::BenchCommand;
use crate::config::Config;

/// Runs one benchmark.
pub(super) fn main(what: BenchCommand) -> anyhow::Result<ExitCode> {
    match what {
        BenchCommand::Generate {
            devices,
            per_device,
            rules,
            template,
            out,
        } => {
            squall_bench::generate::generate(
                template.as_deref(),
                devices,
                per_device,
                rules,
                &out,
            )?;
            eprintln!(
                "wrote {} payloads and {} configs to {}",
                devices * per_device,
                devices * rules,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Chaos { options } => {
            let exe = std::env::current_exe().context("finding the squall binary")?;
            let report =
                super::runtime(None)?.block_on(squall_bench::chaos::chaos(&exe, options))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        BenchCommand::Failover { options } => {
            let exe = std::env::current_exe().context("finding the squall binary")?;
            let report =
                super::runtime(None)?.block_on(squall_bench::chaos::failover(&exe, options))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Pipeline {
            payloads,
            fixtures,
            account,
            dir,
            dump,
            workers,
        } => {
            let (dir, temporary) = match dir {
                Some(d) => (d, false),
                None => (
                    std::env::temp_dir().join(format!("squall-bench-{}", std::process::id())),
                    true,
                ),
            };
            let result = super::runtime(workers)?.block_on(squall_bench::pipeline::pipeline(
                &payloads,
                &fixtures,
                account.as_deref(),
                &dir,
                dump.as_deref(),
            ));
            if temporary {
                let _ = std::fs::remove_dir_all(&dir);
            }
            println!("{}", serde_json::to_string(&result?)?);
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Wordcount { options, workers } => {
            let report =
                super::runtime(workers)?.block_on(squall_bench::wordcount::wordcount(&options))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Multilang {
            python,
            tuples,
            parallelism,
            max_pending,
            serializer,
            workers,
        } => {
            if tuples == 0 || max_pending == 0 || parallelism.contains(&0) {
                eprintln!("--tuples, --max-pending and --parallelism must be at least 1");
                return Ok(ExitCode::from(2));
            }
            let rt = super::runtime(workers)?;
            for &p in &parallelism {
                for bolt in [None, Some(python.as_str())] {
                    let report = rt.block_on(squall_bench::multilang::multilang(
                        bolt,
                        &serializer,
                        tuples,
                        p,
                        max_pending,
                    ))?;
                    println!("{}", serde_json::to_string(&report)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Fleet {
            brokers,
            options,
            workers,
        } if options.processes > 0 => {
            let exe = std::env::current_exe().context("finding the squall binary")?;
            let out = options.out.clone();
            let report = super::runtime(workers)?.block_on(squall_bench::fleet::fleet_cluster(
                &exe, options, brokers, &out,
            ))?;
            if let Some(max) = report.max_sustained_rate {
                println!("max sustained rate: {max:.0} payloads/s");
            }
            println!("report: {}", out.join("report.json").display());
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Fleet {
            brokers,
            options,
            workers,
        } => {
            // The system under test is configured as `squall up` is by default.
            let defaults = Config::default();
            let system = System {
                intake: defaults.intake(""),
                alerting: defaults.alerting.clone(),
            };
            let prefix = squall_bench::fleet::fresh_prefix();
            // The embedded broker, when none is named, lives on this thread.
            let dir = tempfile::tempdir().context("creating the benchmark's directory")?;
            let journal = dir.path().join("journal");
            let (embedded, brokers) = super::broker(
                brokers.as_deref().unwrap_or_default(),
                (!options.memory).then_some((&*journal, 1 << 30)),
                &Names::new(&prefix).topics(),
                options.partitions,
            )?;
            let out = options.out.clone();
            let rt = super::runtime(workers)?;
            let report = rt.block_on(squall_bench::fleet::fleet(
                options,
                brokers,
                &prefix,
                embedded.is_none(),
                dir.path(),
                &system,
            ))?;
            drop(rt);
            drop(embedded);
            if let Some(max) = report.max_sustained_rate {
                println!("max sustained rate: {max:.0} payloads/s");
            }
            println!("report: {}", out.join("report.json").display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
