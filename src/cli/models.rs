//! `vaak models …`: fetch, list, verify, convert.

use anyhow::{bail, Result};

use super::{parse_set, store_for};
use crate::ModelsCmd;
use vaak::config::Config;
use vaak::models;

pub(crate) fn models_cmd(cmd: ModelsCmd, config: &Config) -> Result<()> {
    let store = store_for(config);
    match cmd {
        ModelsCmd::Fetch { set } => {
            let set = parse_set(set.as_deref().unwrap_or(&config.models.set))?;
            let started = std::time::Instant::now();
            models::fetch(&store, set, &mut |p| eprintln!("{p}"))?;
            eprintln!(
                "models ({set:?}) ready in {} ({:.1} s)",
                store.root().display(),
                started.elapsed().as_secs_f32()
            );
            Ok(())
        }
        ModelsCmd::List => {
            for e in models::list(&store)? {
                println!("{e}");
            }
            Ok(())
        }
        ModelsCmd::Verify { set } => {
            let mut bad = 0;
            let set = parse_set(set.as_deref().unwrap_or(&config.models.set))?;
            for r in models::verify(&store, set)? {
                println!("{r}");
                if !r.ok() {
                    bad += 1;
                }
            }
            if bad > 0 {
                bail!("{bad} model(s) missing or corrupt: run `vaak models fetch`");
            }
            Ok(())
        }
        ModelsCmd::ConvertCt2 {
            input,
            output,
            weights,
        } => {
            let s = models::ct2_ggml::convert_ct2_whisper(&input, &output, weights)?;
            println!("{}", s);
            Ok(())
        }
    }
}
