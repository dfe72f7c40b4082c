//! The `.sops.yaml` editor on the repository's own config: the edited text
//! differs only in the edited values and reads back with `Config`, and the
//! real sops 3.11 encrypts for the recipients it now names. Keys are
//! generated at test time in temp dirs.

use crate::common;

use exec::runner::Cmd;
use sops::config::edit::{add_recipient, replace_recipients};
use sops::{Config, DecryptOptions, Format, Identities};

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\nstringData:\n  password: hunter2-very-secret\n";

fn repo_config() -> (String, Config) {
    let text = std::fs::read_to_string(common::root().join(".sops.yaml")).unwrap();
    let config = Config::parse(&text).unwrap();
    (text, config)
}

/// The repository's config with a new dev recipient added and the local one
/// replaced; also the expected text, spelled out as plain string edits.
fn edited(text: &str, config: &Config, dev_new: &str, local_new: &str) -> (String, String) {
    let local = config.rule_index_naming("clusters/local/").unwrap();
    let dev = config.rule_index_naming("clusters/dev/").unwrap();
    let (local_old, dev_old) = (&config.rules[local].age, &config.rules[dev].age);
    assert_eq!((local_old.len(), dev_old.len()), (1, 1), "{text}");
    let out = add_recipient(text, "clusters/dev/", dev_new).unwrap();
    let out = replace_recipients(&out, local_old, &[local_new.to_string()]).unwrap();
    let want = text
        .replace(
            &format!("age: {}\n", dev_old[0]),
            &format!("age: {},{dev_new}\n", dev_old[0]),
        )
        .replace(&local_old[0], local_new);
    (out, want)
}

#[test]
fn the_repositorys_sops_yaml_edited_reads_back() {
    let (text, config) = repo_config();
    let (_, dev_new) = sops::generate_identity();
    let (_, local_new) = sops::generate_identity();
    let (out, want) = edited(&text, &config, &dev_new, &local_new);
    // Comments, blank lines, the `---` marker and the other rules: byte for byte.
    assert_eq!(out, want);
    let back = Config::parse(&out).unwrap();
    assert_eq!(back.rules.len(), config.rules.len());
    let dev = back.rule_index_naming("clusters/dev/").unwrap();
    let local = back.rule_index_naming("clusters/local/").unwrap();
    let mut dev_want = config.rules[dev].age.clone();
    dev_want.push(dev_new.clone());
    assert_eq!(back.rules[dev].age, dev_want);
    assert_eq!(back.rules[local].age, vec![local_new.clone()]);
    // The catch-all rule lists the new local recipient in the old one's place.
    let old_local = &config.rules[local].age[0];
    for (before, after) in config.rules.iter().zip(&back.rules) {
        if before.age.contains(old_local) {
            assert!(after.age.contains(&local_new) && !after.age.contains(old_local));
        }
    }
}

#[test]
fn real_sops_encrypts_for_the_edited_recipients() {
    let Some(sops_bin) = common::tool("sops") else {
        return;
    };
    let (text, config) = repo_config();
    let dir = tempfile::tempdir().unwrap();
    let (dev_secret, dev_new) = sops::generate_identity();
    let (local_secret, local_new) = sops::generate_identity();
    let (out, _) = edited(&text, &config, &dev_new, &local_new);
    std::fs::write(dir.path().join(".sops.yaml"), &out).unwrap();
    let dev_old = config.rules[config.rule_index_naming("clusters/dev/").unwrap()]
        .age
        .clone();
    let cases = [
        (
            "clusters/dev/app.enc.yaml",
            vec![dev_old[0].clone(), dev_new.clone()],
            &dev_secret,
        ),
        (
            "clusters/local/app.enc.yaml",
            vec![local_new.clone()],
            &local_secret,
        ),
    ];
    for (rel, recipients, secret) in cases {
        let file = dir.path().join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, SECRET).unwrap();
        Cmd::new(&sops_bin)
            .args(["--encrypt", "--in-place", rel])
            .dir(dir.path())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY", "")
            .env("XDG_CONFIG_HOME", dir.path())
            .run()
            .unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let mut got = sops::recipients(&bytes, Format::Yaml).unwrap();
        let mut want = recipients;
        got.sort();
        want.sort();
        assert_eq!(got, want, "{rel}");
        // The new key opens what sops wrote.
        let ids = Identities::from_keys_text(secret).unwrap();
        let plain = sops::decrypt(&bytes, Format::Yaml, &ids, DecryptOptions::default()).unwrap();
        // (sops re-indents by four: compare the documents.)
        let plain: serde_yaml::Value = serde_yaml::from_slice(&plain).unwrap();
        let want: serde_yaml::Value = serde_yaml::from_str(SECRET).unwrap();
        assert_eq!(plain, want, "{rel}");
    }
}

#[test]
fn real_sops_reads_every_form_the_editor_writes() {
    let Some(sops_bin) = common::tool("sops") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<(String, String)> = (0..4).map(|_| sops::generate_identity()).collect();
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| keys[i].1.clone());
    // A quoted comma string with spaces, a flow list and a block list.
    let text = format!(
        "creation_rules:\n  - path_regex: ^clusters/str/\n    age: \"{a}, {b}\"\n  - path_regex: ^clusters/flow/\n    age: [{a}, {b}]\n  - path_regex: ^clusters/block/\n    age:\n      - {a}\n"
    );
    let mut out = text.clone();
    for env in ["str", "flow", "block"] {
        out = add_recipient(&out, &format!("clusters/{env}/"), &c).unwrap();
    }
    let out = replace_recipients(&out, std::slice::from_ref(&a), std::slice::from_ref(&d)).unwrap();
    std::fs::write(dir.path().join(".sops.yaml"), &out).unwrap();
    for (env, want) in [
        ("str", vec![&d, &b, &c]),
        ("flow", vec![&d, &b, &c]),
        ("block", vec![&d, &c]),
    ] {
        let rel = format!("clusters/{env}/s.enc.yaml");
        let file = dir.path().join(&rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, SECRET).unwrap();
        Cmd::new(&sops_bin)
            .args(["--encrypt", "--in-place", &rel])
            .dir(dir.path())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY", "")
            .env("XDG_CONFIG_HOME", dir.path())
            .run()
            .unwrap();
        let mut got = sops::recipients(&std::fs::read(&file).unwrap(), Format::Yaml).unwrap();
        let mut want: Vec<String> = want.into_iter().cloned().collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{env}: {out}");
    }
}
