//! Feeds arbitrary bytes to every SOPS store's parser and decryptor.
//! Run: `cd crates/sops/fuzz && cargo +nightly fuzz run sops_decrypt -- -max_total_time=60`
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sops::{DecryptOptions, Format, Identities};

static IDS: LazyLock<Identities> = LazyLock::new(|| {
    // A key made for this run: no private key lives in the repository.
    let (secret, _recipient) = sops::generate_identity();
    Identities::from_keys_text(&secret).unwrap()
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
