//! The fuzz targets under `cargo test`: every seed, every saved regression
//! (`fuzz/regressions/<target>/`, one file per crash a fuzzer found), then random
//! mutations of the seeds (proptest: bytes flipped, cut, inserted and spliced).

use proptest::prelude::*;
use squall_fuzz::{seeds, Target, TARGETS};

fn target(name: &str) -> Target {
    *TARGETS.iter().find(|t| t.name == name).expect("a target")
}

#[test]
fn every_target_has_seeds_and_runs_them() {
    for t in TARGETS {
        let seeds = seeds(t.name);
        assert!(seeds.len() >= 2, "{}: a seed corpus", t.name);
        for seed in &seeds {
            (t.run)(seed);
        }
    }
}

#[test]
fn the_real_fixtures_pass_every_decoder() {
    use squall_alerting::wire;
    let v2 = &seeds("v2_body")[1];
    let d = wire::decode_v2(
        &v2[1..],
        Some("deflate"),
        Some(&wire::hex_md5(&v2[1..])),
        None,
        squall_fuzz::LIMITS,
    )
    .expect("the real v2 agent's body passes");
    assert_eq!(d.payload, squall_fuzz::V2_FIXTURE);
    let v1 = &seeds("v1_body")[0];
    let d = wire::decode_v1(v1, None, squall_fuzz::LIMITS).expect("the real v1 form passes");
    assert_eq!(d.payload, squall_fuzz::V1_FIXTURE);
    squall_alerting::configs::AlertConfig::from_json(&seeds("alert_config")[0])
        .expect("the example config is valid");
}

#[test]
fn every_saved_regression_still_passes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut ran = 0;
    for t in TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(t.name)) else {
            continue;
        };
        for file in dir {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            (t.run)(&std::fs::read(&path).unwrap());
            ran += 1;
        }
    }
    assert!(
        root.join("README.md").exists(),
        "fuzz/regressions/README.md says how"
    );
    eprintln!("{ran} saved regressions replayed");
}

/// A seed of `name`, mutated: `edits` of (position, kind, byte).
fn mutated(name: &str, pick: usize, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let seeds = seeds(name);
    let mut input = seeds[pick % seeds.len()].clone();
    for &(at, kind, byte) in edits {
        let at = if input.is_empty() {
            0
        } else {
            at % input.len()
        };
        match kind % 4 {
            0 if !input.is_empty() => input[at] = byte,
            1 => input.insert(at, byte),
            2 if !input.is_empty() => {
                input.remove(at);
            }
            _ => input.truncate(at.max(1)),
        }
    }
    input
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_v2_bodies_break_no_invariant(pick in any::<usize>(), e in edits()) {
        (target("v2_body").run)(&mutated("v2_body", pick, &e));
    }

    #[test]
    fn mutated_v1_forms_break_no_invariant(pick in any::<usize>(), e in edits()) {
        (target("v1_body").run)(&mutated("v1_body", pick, &e));
    }

    #[test]
    fn mutated_payloads_break_no_invariant(pick in any::<usize>(), e in edits()) {
        (target("payload").run)(&mutated("payload", pick, &e));
    }

    #[test]
    fn mutated_configs_break_no_invariant(pick in any::<usize>(), e in edits()) {
        (target("alert_config").run)(&mutated("alert_config", pick, &e));
    }

    #[test]
    fn random_bytes_break_no_invariant(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for t in TARGETS {
            (t.run)(&bytes);
        }
    }
}
