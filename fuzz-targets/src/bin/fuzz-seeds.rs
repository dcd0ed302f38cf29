//! Writes every target's seed inputs into `fuzz/corpus/<target>/seed-<n>` (run from the
//! repository root), for `cargo fuzz cmin` to fold into the committed corpus.

use std::path::Path;

fn main() -> std::io::Result<()> {
    for (name, _) in fuzz_targets::TARGETS {
        let dir = Path::new("fuzz/corpus").join(name);
        std::fs::create_dir_all(&dir)?;
        let seeds = fuzz_targets::seeds::for_target(name);
        for (n, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{n}")), seed)?;
        }
        println!("{name}: {} seeds", seeds.len());
    }
    Ok(())
}
