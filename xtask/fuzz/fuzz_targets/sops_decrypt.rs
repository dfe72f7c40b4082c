//! Feeds arbitrary bytes to every SOPS store's parser and decryptor.
//! Run: `cd xtask/fuzz && cargo +nightly fuzz run sops_decrypt -- -max_total_time=60`
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use xtask::sops::{self, DecryptOptions, Format, Identities};

static IDS: LazyLock<Identities> = LazyLock::new(|| {
    // A fixed public test identity (the Flux test key), never a real secret.
    Identities::from_keys_text(
        "AGE-SECRET-KEY-1RH87A5Z54ZGUR9S0AS3R6WHFSEFNPLYMAKF5Z2CEU7R06VRJ0A3Q7242AM",
    )
    .unwrap()
});

fuzz_target!(|data: &[u8]| {
    for format in [
        Format::Yaml,
        Format::Json,
        Format::Dotenv,
        Format::Ini,
        Format::Binary,
    ] {
        let _ = sops::is_encrypted(data, format);
        let _ = sops::recipients(data, format);
        let _ = sops::decrypt(data, format, &IDS, DecryptOptions { ignore_mac: true });
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = sops::decrypt_object(&v, &IDS);
    }
});
