//! An independent implementation, npm `sops-age` 4.0.2 (installed by
//! `cargo xtask test` into target/npm), decrypts our YAML, JSON and dotenv output.
//! It matches the identity by the exact `recipient` string, so this also checks
//! that our recipients are canonical.

use crate::common;

use exec::runner::Cmd;
use sops::{self, CreationRule, Format, Selection};

const SCRIPT: &str = r#"
const { decryptSops } = require(process.argv[2]);
decryptSops({ path: process.argv[3], fileType: process.argv[4], secretKey: process.env.TEST_AGE_KEY })
  .then((v) => process.stdout.write(JSON.stringify(v)))
  .catch((e) => { console.error(String(e && e.message || e)); process.exit(1); });
"#;

#[test]
fn npm_sops_age_decrypts_our_output() {
    let Some(node) = common::tool("node") else {
        return;
    };
    let module = common::root().join("target/npm/node_modules/sops-age");
    if !module.is_dir() {
        if common::tools_required() {
            panic!("npm sops-age is required but not installed in target/npm");
        }
        eprintln!(
            "SKIP: npm sops-age not installed (npm install --prefix target/npm sops-age@4.0.2)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dec.cjs");
    std::fs::write(&script, SCRIPT).unwrap();
    let (secret, recipient) = sops::generate_identity();
    let cases: Vec<(&str, Format, &str, serde_json::Value)> = vec![
        (
            "s.enc.yaml",
            Format::Yaml,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n# c\nstringData:\n  password: \"p@ss\"\n  list:\n    - a\n    - b\n  n: \"5\"\n",
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app"}, "stringData": {"password": "p@ss", "list": ["a", "b"], "n": "5"}}),
        ),
        (
            "s.enc.json",
            Format::Json,
            r#"{"a": "b", "nested": {"c": "d", "l": ["x", "y"]}}"#,
            serde_json::json!({"a": "b", "nested": {"c": "d", "l": ["x", "y"]}}),
        ),
        (
            "s.enc.env",
            Format::Dotenv,
            "KEY=value\nOTHER=two words\n",
            serde_json::json!({"KEY": "value", "OTHER": "two words"}),
        ),
    ];
    for (name, format, src, want) in cases {
        let sel = if format == Format::Yaml {
            Selection::EncryptedRegex("^(data|stringData)$".into())
        } else {
            Selection::UnencryptedSuffix("_unencrypted".into())
        };
        let enc = sops::encrypt(
            src.as_bytes(),
            format,
            &CreationRule::new(vec![recipient.clone()], sel),
        )
        .unwrap();
        let f = dir.path().join(name);
        std::fs::write(&f, enc).unwrap();
        let ftype = match format {
            Format::Yaml => "yaml",
            Format::Json => "json",
            _ => "env",
        };
        let out = Cmd::new(&node)
            .arg(&script)
            .arg(&module)
            .arg(&f)
            .arg(ftype)
            .env("TEST_AGE_KEY", &secret)
            .read()
            .unwrap_or_else(|e| panic!("{name}: sops-age failed: {e}"));
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            got == want,
            "{name}: sops-age data differs from the plaintext"
        );
    }
}
