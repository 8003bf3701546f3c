//! Any text as a config file: the parser accepts it or says why (never a panic), and a config it
//! accepts is one it can print back (`vaak config print-default` renders the same way) and read
//! again into the same settings — so no accepted value is one validation would refuse once
//! written out (a NaN slipping past a range check, a key that prints but does not parse).
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/config/mod.rs"]
mod config;

/// The one module of `text` that the config reads (language names and scripts).
#[path = "../../src/text"]
mod text {
    pub mod script;
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = match config::Config::parse(text) {
        Ok(cfg) => cfg,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let printed = toml::to_string_pretty(&cfg).expect("an accepted config prints as TOML");
    let again = config::Config::parse(&printed)
        .unwrap_or_else(|e| panic!("an accepted config does not read back: {e}\n{printed}"));
    let reprinted = toml::to_string_pretty(&again).expect("prints twice");
    assert_eq!(printed, reprinted, "reading the printed config changed it");
});
