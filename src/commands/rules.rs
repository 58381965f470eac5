//! `squall rules check`: rules parsed and printed in their normal form, or their errors.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use squall_alerting::lang;

use crate::cli::RulesAction;

/// Runs `squall rules ...`.
pub(super) fn main(action: RulesAction) -> anyhow::Result<ExitCode> {
    let RulesAction::Check { rules, file } = action;
    // (where, rule text): the argument's place, or FILE:LINE.
    let mut texts: Vec<(String, String)> = Vec::new();
    if file {
        for path in &rules {
            let content =
                std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
            for (i, line) in content.lines().enumerate() {
                let trimmed = line.trim();
                if !trimmed.is_empty() && !trimmed.starts_with('#') {
                    texts.push((format!("{path}:{}", i + 1), line.to_string()));
                }
            }
        }
    } else {
        let many = rules.len() > 1;
        for (i, rule) in rules.into_iter().enumerate() {
            let place = if many {
                format!("rule {}", i + 1)
            } else {
                "rule".to_string()
            };
            texts.push((place, rule));
        }
    }
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let mut failed = 0;
    for (place, text) in &texts {
        match lang::parse(text) {
            Ok(rule) => writeln!(out, "{rule}")?,
            Err(errors) => {
                failed += 1;
                for e in errors {
                    writeln!(err, "{place}: {}", e.render(text))?;
                }
            }
        }
    }
    Ok(if failed > 0 {
        writeln!(err, "{failed} of {} rules have errors", texts.len())?;
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
