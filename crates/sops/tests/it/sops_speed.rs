//! Speed comparison (ignored by default; run with `--ignored --nocapture`):
//! encrypt + decrypt of 200 generated Secrets with the engine vs the sops CLI.

use crate::common;

use std::time::Instant;

use exec::runner::Cmd;
use sops::{self, CreationRule, DecryptOptions, Format, Identities, Selection};

#[test]
#[ignore]
fn engine_vs_sops_200_secrets() {
    let Some(sops_bin) = common::tool("sops") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (secret, recipient) = sops::generate_identity();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, &secret).unwrap();
    let ids = Identities::from_keys_text(&secret).unwrap();
    let rule = CreationRule::new(
        vec![recipient.clone()],
        Selection::EncryptedRegex("^(data|stringData)$".into()),
    );
    let docs: Vec<String> = (0..200)
        .map(|i| format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\n  namespace: default\nstringData:\n  password: pw-{i}-abcdefghijkl\n  token: tok-{i}-0123456789\n  url: https://example.com/{i}\n"))
        .collect();
    let t = Instant::now();
    let enc: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| sops::encrypt(d.as_bytes(), Format::Yaml, &rule).unwrap())
        .collect();
    let ours_enc = t.elapsed();
    let t = Instant::now();
    for e in &enc {
        sops::decrypt(e, Format::Yaml, &ids, DecryptOptions::default()).unwrap();
    }
    let ours_dec = t.elapsed();
    let files: Vec<_> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = dir.path().join(format!("s{i}.yaml"));
            std::fs::write(&p, d).unwrap();
            p
        })
        .collect();
    let run = |args: &[&str], f: &std::path::Path| {
        Cmd::new(&sops_bin)
            .args(args)
            .arg(f)
            .dir(dir.path())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY_FILE", &keys)
            .read_bytes()
            .unwrap()
    };
    let t = Instant::now();
    for f in &files {
        run(
            &[
                "-e",
                "-i",
                "--age",
                &recipient,
                "--encrypted-regex",
                "^(data|stringData)$",
            ],
            f,
        );
    }
    let sops_enc = t.elapsed();
    let t = Instant::now();
    for f in &files {
        run(&["-d"], f);
    }
    let sops_dec = t.elapsed();
    eprintln!(
        "200 Secrets: engine encrypt {ours_enc:?}, decrypt {ours_dec:?}; sops encrypt {sops_enc:?}, decrypt {sops_dec:?}"
    );
    eprintln!(
        "ratio: encrypt {:.0}x, decrypt {:.0}x",
        sops_enc.as_secs_f64() / ours_enc.as_secs_f64(),
        sops_dec.as_secs_f64() / ours_dec.as_secs_f64()
    );
}
