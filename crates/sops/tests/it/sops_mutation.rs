//! Property-style robustness check (stable toolchain, bounded time): mutated
//! SOPS files in every store never make the parser or decryptor panic; a
//! mutation either decrypts (it hit something unauthenticated, like a comment
//! or whitespace) or fails with an error. The cargo-fuzz target in xtask/fuzz
//! does the same with coverage guidance.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sops::{self, CreationRule, DecryptOptions, Format, Identities, Selection};

fn corpus(recipient: &str) -> Vec<(Format, Vec<u8>)> {
    let rule = CreationRule::new(
        vec![recipient.to_string()],
        Selection::UnencryptedSuffix("_unencrypted".into()),
    );
    let yaml = "# c\na: b\nn: 5\nf: 1.5\nt: true\nd: 2024-01-01\nl:\n  - x\n  - {k: v}\nblock: |\n  text\nanc: &a v\nali: *a\n---\nsecond: doc\n";
    vec![
        (
            Format::Yaml,
            sops::encrypt(yaml.as_bytes(), Format::Yaml, &rule).unwrap(),
        ),
        (
            Format::Json,
            sops::encrypt(
                br#"{"a": "b", "n": [1, 2.5, null, true], "o": {"x": "y"}}"#,
                Format::Json,
                &rule,
            )
            .unwrap(),
        ),
        (
            Format::Dotenv,
            sops::encrypt(b"A=b\n#c\nB=multi\\nline\n", Format::Dotenv, &rule).unwrap(),
        ),
        (
            Format::Ini,
            sops::encrypt(b"[s]\na = b\n; c\n", Format::Ini, &rule).unwrap(),
        ),
        (
            Format::Binary,
            sops::encrypt(b"binary\x01data", Format::Binary, &rule).unwrap(),
        ),
    ]
}

const TOKENS: &[&[u8]] = &[
    b"ENC[AES256_GCM,data:",
    b",iv:",
    b",tag:",
    b",type:int]",
    b",type:comment]",
    b"\n",
    b": ",
    b"- ",
    b"---\n",
    b"*a",
    b"&a ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"'",
    b"|",
    b">",
    b"#",
    b"=",
    b"sops:",
    b"\"sops\": ",
    b"[sops]",
    b"sops_mac=",
    b"\t",
    b"\xff",
    b"\\",
];

fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        if v.is_empty() {
            v.push(b'a');
        }
        let i = rng.gen_range(0..v.len());
        match rng.gen_range(0..6) {
            0 => v[i] ^= 1 << rng.gen_range(0..8),
            1 => {
                v.remove(i);
            }
            2 => v.insert(i, rng.r#gen()),
            3 => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())];
                v.splice(i..i, t.iter().copied());
            }
            4 => v.truncate(i),
            _ => {
                let j = rng.gen_range(0..v.len());
                let (a, b) = (i.min(j), i.max(j));
                let chunk = v[a..b].to_vec();
                let k = rng.gen_range(0..v.len());
                v.splice(k..k, chunk);
            }
        }
    }
    v
}

#[test]
fn mutated_inputs_never_panic() {
    let (secret, recipient) = sops::generate_identity();
    let ids = Identities::from_keys_text(&secret).unwrap();
    let corpus = corpus(&recipient);
    let seed = std::env::var("SOPS_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let budget = Duration::from_millis(
        std::env::var("SOPS_MUTATION_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3000),
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let (mut runs, mut decrypted) = (0u64, 0u64);
    while start.elapsed() < budget {
        let (format, base) = &corpus[rng.gen_range(0..corpus.len())];
        let input = mutate(&mut rng, base);
        // Feed it to every store, not only its own.
        for f in [*format, Format::Yaml, Format::Json] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = sops::is_encrypted(&input, f);
                let _ = sops::recipients(&input, f);
                sops::decrypt(&input, f, &ids, DecryptOptions::default()).is_ok()
            }));
            match r {
                Ok(ok) => decrypted += ok as u64,
                Err(_) => panic!(
                    "panic on a mutated {f:?} input of {} bytes (reproduce with SOPS_MUTATION_SEED={seed}, run {runs})",
                    input.len()
                ),
            }
        }
        runs += 1;
    }
    eprintln!(
        "{runs} mutated inputs x 3 stores in {:?}, {decrypted} still decrypted (no panic)",
        start.elapsed()
    );
    assert!(runs > 100, "too few runs: {runs}");
}

/// Regression (found by cargo-fuzz): a flattened metadata key with a huge list
/// index made dotenv/INI metadata parsing allocate without bound.
#[test]
fn huge_flattened_list_index_is_an_error_not_an_oom() {
    let ids = Identities::from_keys_text("").unwrap();
    let env = b"key=x\nsops_age__list_4172743693670809600__map_enc=x\nsops_mac=ENC[x]\n";
    assert!(sops::decrypt(env, Format::Dotenv, &ids, DecryptOptions::default()).is_err());
    let ini = b"[a]\nk = v\n[sops]\nage__list_4172743693670809600__map_enc = x\n";
    assert!(sops::decrypt(ini, Format::Ini, &ids, DecryptOptions::default()).is_err());
}
