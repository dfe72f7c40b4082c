//! `cargo xtask secrets` end to end on temp copies: tampering, wrong keys,
//! check, edit, rotate, updatekeys, keygen + regenerate. Secret values are
//! compared, never printed.

use crate::common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use sops::{self, DecryptOptions, Format, Identities};

struct Repo {
    dir: tempfile::TempDir,
    keys: PathBuf,
    recipient: String,
    other_secret: String,
    other_recipient: String,
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app # the app\n  namespace: default\n# the data\nstringData:\n  password: hunter2-very-secret\n  token: tok-123456\n";

fn repo() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let (secret, recipient) = sops::generate_identity();
    let (other_secret, other_recipient) = sops::generate_identity();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let keys = home.join("keys.txt");
    std::fs::write(&keys, format!("{secret}\n")).unwrap();
    let r = dir.path().join("repo");
    std::fs::create_dir_all(r.join("clusters/local")).unwrap();
    std::fs::write(
        r.join(".sops.yaml"),
        format!("# rules\ncreation_rules:\n  # local\n  - path_regex: ^clusters/local/.+\\.enc\\.ya?ml$\n    encrypted_regex: ^(data|stringData)$\n    age: {recipient}\n"),
    )
    .unwrap();
    std::fs::write(r.join("clusters/local/app.enc.yaml"), SECRET).unwrap();
    Repo {
        dir,
        keys,
        recipient,
        other_secret,
        other_recipient,
    }
}

impl Repo {
    fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn file(&self) -> PathBuf {
        self.root().join("clusters/local/app.enc.yaml")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("xtask").unwrap();
        c.arg("secrets")
            .args(args)
            .current_dir(self.root())
            .env("SOPS_AGE_KEY_FILE", &self.keys)
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_CONFIG")
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("HOME", self.dir.path().join("home"));
        c
    }
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
    fn ids(&self) -> Identities {
        Identities::from_keys_text(&std::fs::read_to_string(&self.keys).unwrap()).unwrap()
    }
    fn plain(&self, p: &Path) -> serde_yaml::Value {
        let out = sops::decrypt(
            &std::fs::read(p).unwrap(),
            Format::Yaml,
            &self.ids(),
            DecryptOptions::default(),
        )
        .unwrap();
        serde_yaml::from_slice(&out).unwrap()
    }
}

fn encrypted(r: &Repo) -> Vec<u8> {
    let (ok, err) = r.run(&["encrypt"]);
    assert!(ok, "encrypt failed: {err}");
    std::fs::read(r.file()).unwrap()
}

#[test]
fn encrypt_then_decrypt_stdout_and_refuse_in_place_by_default() {
    let r = repo();
    let enc = encrypted(&r);
    let text = String::from_utf8(enc.clone()).unwrap();
    assert!(
        !text.contains("hunter2"),
        "plaintext leaked into the encrypted file"
    );
    assert!(
        text.starts_with("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app # the app\n"),
        "layout not kept"
    );
    assert!(sops::is_encrypted(&enc, Format::Yaml));
    // Encrypting again skips.
    let (ok, err) = r.run(&["encrypt"]);
    assert!(ok && err.contains("already encrypted"), "{err}");
    assert_eq!(std::fs::read(r.file()).unwrap(), enc);
    // Plain `decrypt` is refused and touches nothing.
    let (ok, err) = r.run(&["decrypt"]);
    assert!(!ok && err.contains("refusing"), "{err}");
    assert_eq!(std::fs::read(r.file()).unwrap(), enc);
    let out = r
        .cmd(&["decrypt", "--stdout", "clusters/local/app.enc.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let want: serde_yaml::Value = serde_yaml::from_str(SECRET).unwrap();
    assert!(v == want, "decrypted data differs");
    // The sops CLI agrees.
    if let Some(sops_bin) = common::tool("sops") {
        let out = std::process::Command::new(sops_bin)
            .args(["-d"])
            .arg(r.file())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY_FILE", &r.keys)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sops -d failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
        assert!(v == want, "sops -d data differs");
    }
}

/// Replaces the first `field:<b64>` occurrence inside `stringData.password`'s ENC value.
fn tamper_field(text: &str, field: &str) -> String {
    let line_start = text
        .find("    password: ENC[")
        .or_else(|| text.find("  password: ENC["))
        .unwrap();
    let line_end = line_start + text[line_start..].find('\n').unwrap();
    let line = &text[line_start..line_end];
    let f = line.find(&format!("{field}:")).unwrap() + field.len() + 1;
    let mut bytes = line.as_bytes().to_vec();
    bytes[f] = if bytes[f] == b'A' { b'B' } else { b'A' };
    format!(
        "{}{}{}",
        &text[..line_start],
        String::from_utf8(bytes).unwrap(),
        &text[line_end..]
    )
}

#[test]
fn tampering_fails_with_the_right_error_and_leaves_the_file_identical() {
    let r = repo();
    let enc = String::from_utf8(encrypted(&r)).unwrap();
    // A block wrapping the data key for someone else: swapped recipient.
    let other = {
        let rule = sops::CreationRule::new(
            vec![r.other_recipient.clone()],
            sops::Selection::EncryptedRegex("^(data|stringData)$".into()),
        );
        String::from_utf8(sops::encrypt(SECRET.as_bytes(), Format::Yaml, &rule).unwrap()).unwrap()
    };
    let age_block = |t: &str| {
        let s = t.find("    age:\n").unwrap();
        let e = t.find("    lastmodified:").unwrap();
        t[s..e].to_string()
    };
    let swapped = enc.replace(&age_block(&enc), &age_block(&other));
    let mac_tampered = {
        let i = enc.find("    mac: ENC[AES256_GCM,data:").unwrap()
            + "    mac: ENC[AES256_GCM,data:".len();
        let mut b = enc.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "ciphertext",
            tamper_field(&enc, "data"),
            "authentication failed",
        ),
        ("tag", tamper_field(&enc, "tag"), "authentication failed"),
        ("iv", tamper_field(&enc, "iv"), "authentication failed"),
        ("mac", mac_tampered, "MAC mismatch"),
        (
            "plaintext field",
            enc.replace("name: app # the app", "name: evil # the app"),
            "MAC mismatch",
        ),
        (
            "swapped recipient",
            swapped,
            "no identity can decrypt the data key",
        ),
        ("truncated", enc[..enc.len() / 2].to_string(), "error"),
        ("not yaml", "a: [\n".to_string(), "malformed"),
    ];
    for (name, text, want) in cases {
        std::fs::write(r.file(), &text).unwrap();
        for verb in [
            vec!["decrypt", "--stdout"],
            vec!["rotate"],
            vec!["decrypt", "--in-place"],
        ] {
            let mut args = verb.clone();
            args.push("clusters/local/app.enc.yaml");
            let (ok, err) = r.run(&args);
            assert!(!ok, "{name}/{verb:?}: should fail");
            assert!(
                err.contains(want),
                "{name}/{verb:?}: expected {want:?} in: {err}"
            );
            assert!(
                err.contains("app.enc.yaml"),
                "{name}: error must name the file: {err}"
            );
            assert!(
                !err.contains("hunter2"),
                "{name}: secret leaked in the error"
            );
            assert_eq!(
                std::fs::read_to_string(r.file()).unwrap(),
                text,
                "{name}/{verb:?}: file changed"
            );
        }
    }
    // --ignore-mac lets a MAC-only problem through.
    std::fs::write(
        r.file(),
        enc.replace("name: app # the app", "name: evil # the app"),
    )
    .unwrap();
    let (ok, err) = r.run(&[
        "decrypt",
        "--stdout",
        "--ignore-mac",
        "clusters/local/app.enc.yaml",
    ]);
    assert!(ok, "{err}");
}

#[test]
fn check_reports_plaintext_and_wrong_recipient() {
    let r = repo();
    // Plaintext *.enc.yaml.
    let (ok, err) = r.run(&["check"]);
    assert!(!ok, "check must fail on plaintext");
    assert!(
        err.contains("clusters/local/app.enc.yaml") && err.contains("not SOPS-encrypted"),
        "{err}"
    );
    encrypted(&r);
    let (ok, err) = r.run(&["check"]);
    assert!(ok, "{err}");
    // Encrypted for the wrong recipient.
    let rule = sops::CreationRule::new(
        vec![r.other_recipient.clone()],
        sops::Selection::EncryptedRegex("^(data|stringData)$".into()),
    );
    std::fs::write(
        r.root().join("clusters/local/wrong.enc.yaml"),
        sops::encrypt(SECRET.as_bytes(), Format::Yaml, &rule).unwrap(),
    )
    .unwrap();
    let (ok, err) = r.run(&["check"]);
    assert!(!ok);
    assert!(
        err.contains("clusters/local/wrong.enc.yaml") && err.contains(&r.other_recipient),
        "{err}"
    );
    assert!(
        !err.contains("app.enc.yaml:"),
        "the good file must not be listed: {err}"
    );
}

#[cfg(unix)]
#[test]
fn edit_keeps_unchanged_values_and_skips_unchanged_files() {
    use std::os::unix::fs::PermissionsExt;
    let r = repo();
    let enc = String::from_utf8(encrypted(&r)).unwrap();
    // EDITOR that changes nothing.
    let (ok, err) = r
        .cmd(&["edit", "clusters/local/app.enc.yaml"])
        .env("EDITOR", "true")
        .env_remove("VISUAL")
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(ok && err.contains("no changes"), "{err}");
    assert_eq!(std::fs::read_to_string(r.file()).unwrap(), enc);
    // EDITOR that changes the token only.
    let script = r.dir.path().join("ed.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/tok-123456/tok-changed/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = r
        .cmd(&["edit", "clusters/local/app.enc.yaml"])
        .env("EDITOR", &script)
        .env_remove("VISUAL")
        .output()
        .unwrap();
    common::assert_success(&out);
    let after = std::fs::read_to_string(r.file()).unwrap();
    let pw = |t: &str| {
        t.lines()
            .find(|l| l.contains("password:"))
            .unwrap()
            .to_string()
    };
    let tok = |t: &str| {
        t.lines()
            .find(|l| l.contains("token:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        pw(&after),
        pw(&enc),
        "unchanged value must keep its ciphertext"
    );
    assert_ne!(tok(&after), tok(&enc));
    assert_eq!(
        r.plain(&r.file())["stringData"]["token"].as_str(),
        Some("tok-changed")
    );
}

#[test]
fn rotate_and_updatekeys() {
    let r = repo();
    let enc = String::from_utf8(encrypted(&r)).unwrap();
    let (ok, err) = r.run(&["rotate"]);
    assert!(ok, "{err}");
    let rotated = std::fs::read_to_string(r.file()).unwrap();
    assert_ne!(rotated, enc);
    assert_eq!(
        r.plain(&r.file())["stringData"]["password"].as_str(),
        Some("hunter2-very-secret")
    );
    // Add the other recipient to the rule, then updatekeys.
    let cfg = std::fs::read_to_string(r.root().join(".sops.yaml")).unwrap();
    std::fs::write(
        r.root().join(".sops.yaml"),
        cfg.replace(
            &format!("age: {}", r.recipient),
            &format!("age: {},{}", r.recipient, r.other_recipient),
        ),
    )
    .unwrap();
    let (ok, _) = r.run(&["check"]);
    assert!(!ok, "check must see the missing recipient");
    let (ok, err) = r.run(&["updatekeys"]);
    assert!(ok, "{err}");
    let updated = std::fs::read_to_string(r.file()).unwrap();
    let pw = |t: &str| {
        t.lines()
            .find(|l| l.contains("password:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        pw(&updated),
        pw(&rotated),
        "updatekeys must not re-encrypt values"
    );
    let other = Identities::from_keys_text(&r.other_secret).unwrap();
    let out = sops::decrypt(
        updated.as_bytes(),
        Format::Yaml,
        &other,
        DecryptOptions::default(),
    )
    .unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("hunter2-very-secret")
    );
    let (ok, err) = r.run(&["check"]);
    assert!(ok, "{err}");
}

#[test]
fn keygen_local_regenerates_unreadable_files() {
    let r = repo();
    encrypted(&r);
    // A newcomer: no key at all.
    let newcomer_keys = r.dir.path().join("newcomer/keys.txt");
    // Refused inside the repository.
    let (ok, err) = r.run(&["keygen", "--env", "local", "--keys-file", "inside/keys.txt"]);
    assert!(!ok && err.contains("refusing"), "{err}");
    assert!(!r.root().join("inside/keys.txt").exists());
    let out = r
        .cmd(&["keygen", "--env", "local", "--keys-file"])
        .arg(&newcomer_keys)
        .env("SOPS_AGE_KEY_FILE", &newcomer_keys)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&newcomer_keys)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let cfg = std::fs::read_to_string(r.root().join(".sops.yaml")).unwrap();
    assert!(
        cfg.starts_with("# rules\n") && cfg.contains("  # local\n"),
        "comments lost: {cfg}"
    );
    assert!(
        !cfg.contains(&r.recipient),
        "old local recipient still present"
    );
    let ids =
        Identities::from_keys_text(&std::fs::read_to_string(&newcomer_keys).unwrap()).unwrap();
    let out = sops::decrypt(
        &std::fs::read(r.file()).unwrap(),
        Format::Yaml,
        &ids,
        DecryptOptions::default(),
    )
    .unwrap();
    let v: serde_yaml::Value = serde_yaml::from_slice(&out).unwrap();
    let pw = v["stringData"]["password"].as_str().unwrap();
    assert_eq!(pw.len(), 24);
    assert_ne!(pw, "hunter2-very-secret");
    assert_eq!(v["metadata"]["name"].as_str(), Some("app"));
    let (ok, err) = r
        .cmd(&["check"])
        .env("SOPS_AGE_KEY_FILE", &newcomer_keys)
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(ok, "{err}");
    // The same user runs keygen again: they already hold the local key, so
    // nothing changes (no second key, no re-encryption).
    let keys_before = std::fs::read(&newcomer_keys).unwrap();
    let file_before = std::fs::read(r.file()).unwrap();
    let sops_before = std::fs::read(r.root().join(".sops.yaml")).unwrap();
    let out = r
        .cmd(&["keygen", "--env", "local", "--keys-file"])
        .arg(&newcomer_keys)
        .env("SOPS_AGE_KEY_FILE", &newcomer_keys)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("nothing to do"),
        "{err}"
    );
    assert_eq!(std::fs::read(&newcomer_keys).unwrap(), keys_before);
    assert_eq!(std::fs::read(r.file()).unwrap(), file_before);
    assert_eq!(
        std::fs::read(r.root().join(".sops.yaml")).unwrap(),
        sops_before
    );
    assert_eq!(
        Identities::from_keys_text(&String::from_utf8(keys_before).unwrap())
            .unwrap()
            .len(),
        1
    );
    let (ok, err) = r
        .cmd(&["check"])
        .env("SOPS_AGE_KEY_FILE", &newcomer_keys)
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(ok, "{err}");
}

#[cfg(unix)]
#[test]
fn a_broken_edit_is_kept_and_a_failed_editor_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let r = repo();
    let enc = encrypted(&r);
    let edit_with = |editor: &Path| {
        let out = r
            .cmd(&["edit", "clusters/local/app.enc.yaml"])
            .env("EDITOR", editor)
            .env_remove("VISUAL")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // An editor that leaves invalid YAML (no terminal here): the edit is kept
    // in a private file outside the repository, named, and the file stays.
    let script = r.dir.path().join("break.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/tok-123456/tok-edited/' \"$1\"\nprintf 'broken: [unclosed\\n' >> \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, err) = edit_with(&script);
    assert!(!ok, "{err}");
    assert!(
        err.contains("not saved") && err.contains("is unchanged"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(r.file()).unwrap(),
        enc,
        "the encrypted file changed"
    );
    let kept = err
        .split_whitespace()
        .map(|w| w.trim_end_matches(['.', ',', ':']))
        .find(|w| w.ends_with("app.enc.yaml") && Path::new(w).is_absolute())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("the kept file is not named: {err}"));
    assert!(!kept.starts_with(r.root()), "kept inside the repository");
    let kept_text = std::fs::read_to_string(&kept).unwrap();
    assert!(kept_text.contains("tok-edited"), "the edit was not kept");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::remove_dir_all(kept.parent().unwrap()).unwrap();
    // An editor that fails without changing anything.
    let (ok, err) = edit_with(Path::new("false"));
    assert!(!ok);
    assert!(
        err.contains("the editor `false` failed") && err.contains("is unchanged"),
        "{err}"
    );
    assert!(!err.contains("see its output above"), "{err}");
    assert_eq!(std::fs::read(r.file()).unwrap(), enc);
}

#[test]
fn decrypt_needs_no_sops_yaml() {
    let r = repo();
    let enc = encrypted(&r);
    // A folder with no .sops.yaml anywhere above it, as `sops -d FILE` allows.
    let elsewhere = tempfile::tempdir().unwrap();
    let file = elsewhere.path().join("app.enc.yaml");
    std::fs::write(&file, &enc).unwrap();
    let out = r
        .cmd(&["decrypt", "--stdout"])
        .arg(&file)
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    common::assert_success(&out);
    let v: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stringData"]["token"].as_str(), Some("tok-123456"));
    // Without a file named, the rules are needed to find the files.
    let out = r
        .cmd(&["decrypt", "--stdout"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no .sops.yaml"));
}

#[test]
fn keygen_dev_adds_its_recipient_to_devs_rule_only() {
    let r = repo();
    let cfg = format!(
        "---\n# rules\ncreation_rules:\n  # local\n  - path_regex: ^clusters/local/.+\\.enc\\.ya?ml$\n    age: {}\n\n  # dev\n  - path_regex: ^clusters/dev/.+\\.enc\\.ya?ml$\n    age:\n      - {} # ops\n",
        r.recipient, r.other_recipient
    );
    std::fs::write(r.root().join(".sops.yaml"), &cfg).unwrap();
    let dev_keys = r.dir.path().join("dev/keys.txt");
    let out = r
        .cmd(&["keygen", "--env", "dev", "--keys-file"])
        .arg(&dev_keys)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("added the dev recipient in .sops.yaml")
            && err.contains("run `cargo xtask secrets updatekeys`"),
        "{err}"
    );
    let keys = std::fs::read_to_string(&dev_keys).unwrap();
    let new = keys
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap();
    assert!(err.contains(new) && new.starts_with("age1"), "{err}");
    // Only the dev list grew, by one item at its indentation; the rest is byte for byte.
    assert_eq!(
        std::fs::read_to_string(r.root().join(".sops.yaml")).unwrap(),
        format!("{cfg}      - {new}\n")
    );
    // An environment without a rule is named in the error and changes nothing.
    let (ok, err) = r.run(&["keygen", "--env", "qa", "--keys-file", "/nonexistent/k"]);
    assert!(
        !ok && err.contains("no creation rule in .sops.yaml has a path_regex for clusters/qa/"),
        "{err}"
    );
}
