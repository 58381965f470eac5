//! Writes each target's seed corpus to `DIR/<target>/` (the starting corpus of a
//! cargo-fuzz run): `cargo run -p squall-fuzz --bin seed-corpus -- DIR`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/fuzz-corpus".into()),
    );
    for target in squall_fuzz::TARGETS {
        let out = dir.join(target.name);
        std::fs::create_dir_all(&out)?;
        let seeds = squall_fuzz::seeds(target.name);
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(out.join(format!("seed-{i:02}")), seed)?;
        }
        println!(
            "{}: {} seeds in {}",
            target.name,
            seeds.len(),
            out.display()
        );
    }
    Ok(())
}
