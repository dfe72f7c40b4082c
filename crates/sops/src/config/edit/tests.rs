//! The `.sops.yaml` editor on inline texts: every form of `age`, bytes kept
//! outside the edited values, and the result read back by `Config`.

use super::{add_recipient, replace_recipients};
use crate::{Config, SopsError};

/// A config in the repository's shape: comments, a blank line, a document
/// marker, one rule per environment and a catch-all listing them all.
const CFG: &str = "---
# First matching rule wins.
creation_rules:
  # local: development key.
  - path_regex: ^clusters/local/.+\\.enc\\.ya?ml$
    encrypted_regex: ^(data|stringData)$
    age: age1local

  # dev
  - path_regex: ^clusters/dev/.+\\.enc\\.ya?ml$
    encrypted_regex: ^(data|stringData)$
    age: age1dev # the dev key
  # fallback: readable by every environment.
  - path_regex: \\.enc\\.ya?ml$
    age:
      - age1local # local
      # dev below
      - age1dev
";

fn ages(text: &str) -> Vec<Vec<String>> {
    Config::parse(text)
        .expect("the edited text parses")
        .rules
        .into_iter()
        .map(|r| r.age)
        .collect()
}

fn v(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

#[test]
fn add_to_dev_only_touches_devs_value() {
    let out = add_recipient(CFG, "clusters/dev/", "age1two").unwrap();
    assert_eq!(
        out,
        CFG.replace(
            "    age: age1dev # the dev key\n",
            "    age: age1dev,age1two # the dev key\n"
        )
    );
    assert_eq!(
        ages(&out),
        vec![
            v(&["age1local"]),
            v(&["age1dev", "age1two"]),
            v(&["age1local", "age1dev"])
        ]
    );
}

#[test]
fn add_twice_is_add_once() {
    let once = add_recipient(CFG, "clusters/dev/", "age1two").unwrap();
    let twice = add_recipient(&once, "clusters/dev/", "age1two").unwrap();
    assert_eq!(once, twice);
    // A recipient the rule already lists changes nothing.
    assert_eq!(add_recipient(CFG, "clusters/dev/", "age1dev").unwrap(), CFG);
}

#[test]
fn add_to_comma_string_keeps_quotes_and_separator() {
    let cfg = "creation_rules:\n  - path_regex: ^clusters/dev/\n    age: \"age1a, age1b\"\n";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    assert_eq!(
        out,
        "creation_rules:\n  - path_regex: ^clusters/dev/\n    age: \"age1a, age1b, age1c\"\n"
    );
    assert_eq!(ages(&out), vec![v(&["age1a", "age1b", "age1c"])]);
    let cfg = "creation_rules:\n  - path_regex: ^clusters/dev/\n    age: 'age1a'\n";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    assert!(out.ends_with("    age: 'age1a,age1c'\n"), "{out}");
    assert_eq!(ages(&out), vec![v(&["age1a", "age1c"])]);
}

#[test]
fn add_to_flow_list_stays_flow() {
    let cfg = "creation_rules:\n  - {path_regex: x}\n  - path_regex: ^clusters/dev/ # dev\n    age: [age1a, \"age1b\"] # both\n";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    assert_eq!(
        out,
        cfg.replace("[age1a, \"age1b\"]", "[age1a, \"age1b\", age1c]")
    );
    assert_eq!(ages(&out), vec![v(&[]), v(&["age1a", "age1b", "age1c"])]);
    let cfg = "creation_rules:\n  - path_regex: ^clusters/dev/\n    age: []\n";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    assert!(out.ends_with("    age: [age1c]\n"), "{out}");
}

#[test]
fn add_to_block_list_uses_the_items_indentation() {
    let cfg = "creation_rules:\n- path_regex: ^clusters/dev/\n  age:\n  - age1a # first\n  # between\n  - 'age1b'\n# after the list\n- path_regex: other\n  age: age1z\n";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    assert_eq!(
        out,
        cfg.replace("  - 'age1b'\n", "  - 'age1b'\n  - 'age1c'\n")
    );
    assert_eq!(
        ages(&out),
        vec![v(&["age1a", "age1b", "age1c"]), v(&["age1z"])]
    );
    // The last line of a file without a final newline.
    let cfg = "creation_rules:\n  - path_regex: ^clusters/dev/\n    age:\n        - age1a";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    assert_eq!(out, format!("{cfg}\n        - age1c"));
    assert_eq!(ages(&out), vec![v(&["age1a", "age1c"])]);
}

#[test]
fn add_where_there_is_no_recipient_yet() {
    let cfg = "creation_rules:\n  - path_regex: ^clusters/dev/\n    age:\n  - path_regex: x\n    age: age1z\n";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    assert_eq!(out, cfg.replacen("    age:\n", "    age: age1c\n", 1));
    let cfg = "creation_rules:\n  - path_regex: ^clusters/dev/\n    encrypted_regex: ^data$\n  # next\n  - path_regex: x\n    age: age1z\n";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    assert_eq!(out, cfg.replace("^data$\n", "^data$\n    age: age1c\n"));
    assert_eq!(ages(&out), vec![v(&["age1c"]), v(&["age1z"])]);
}

#[test]
fn add_into_a_single_key_group() {
    let cfg = "creation_rules:\n  - path_regex: ^clusters/dev/\n    key_groups:\n      - age:\n          - age1a\n";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    assert_eq!(out, format!("{cfg}          - age1c\n"));
    assert_eq!(ages(&out), vec![v(&["age1a", "age1c"])]);
}

#[test]
fn replace_local_everywhere_keeps_the_rest() {
    let out = replace_recipients(CFG, &v(&["age1local"]), &v(&["age1new"])).unwrap();
    assert_eq!(
        out,
        CFG.replace("    age: age1local\n", "    age: age1new\n")
            .replace("      - age1local # local\n", "      - age1new # local\n")
    );
    assert_eq!(
        ages(&out),
        vec![v(&["age1new"]), v(&["age1dev"]), v(&["age1new", "age1dev"])]
    );
    // Nothing old is left: a second run is a no-op.
    assert_eq!(
        replace_recipients(&out, &v(&["age1local"]), &v(&["age1new"])).unwrap(),
        out
    );
}

#[test]
fn replace_in_every_form() {
    let cfg = "# head\ncreation_rules:\n  - path_regex: a\n    age: \"age1old, age1keep\"\n  - path_regex: b\n    age: [age1keep, age1old]\n  - path_regex: c\n    age:\n      - age1old\n      - age1old2 # gone\n      - age1keep\n  - path_regex: d\n    key_groups:\n      - age: [age1old]\n  - path_regex: e\n    age: age1other\n";
    let old = v(&["age1old", "age1old2"]);
    let out = replace_recipients(cfg, &old, &v(&["age1n1", "age1n2"])).unwrap();
    assert_eq!(
        out,
        "# head\ncreation_rules:\n  - path_regex: a\n    age: \"age1n1, age1n2, age1keep\"\n  - path_regex: b\n    age: [age1keep, age1n1, age1n2]\n  - path_regex: c\n    age:\n      - age1n1\n      - age1n2\n      - age1keep\n  - path_regex: d\n    key_groups:\n      - age: [age1n1, age1n2]\n  - path_regex: e\n    age: age1other\n"
    );
    assert_eq!(
        ages(&out),
        vec![
            v(&["age1n1", "age1n2", "age1keep"]),
            v(&["age1keep", "age1n1", "age1n2"]),
            v(&["age1n1", "age1n2", "age1keep"]),
            v(&["age1n1", "age1n2"]),
            v(&["age1other"]),
        ]
    );
    // A new recipient the list already holds is not written twice.
    let out = replace_recipients(cfg, &v(&["age1old"]), &v(&["age1keep"])).unwrap();
    assert_eq!(
        ages(&out)[..3],
        [
            v(&["age1keep"]),
            v(&["age1keep"]),
            v(&["age1old2", "age1keep"])
        ]
    );
    assert!(
        out.contains("      - age1old2 # gone\n      - age1keep\n"),
        "{out}"
    );
}

#[test]
fn unknown_env_is_an_error() {
    let err = add_recipient(CFG, "clusters/qa/", "age1x").unwrap_err();
    assert!(
        matches!(&err, SopsError::NoRuleFor { path } if path == "clusters/qa/"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "no creation rule in .sops.yaml has a path_regex for clusters/qa/"
    );
}

#[test]
fn not_a_mapping_with_creation_rules_is_an_error() {
    for text in [
        "",
        "- a\n- b\n",
        "stores: {}\n",
        "creation_rules: age1x\n",
        "creation_rules:\n  - age1x\n",
    ] {
        let err = add_recipient(text, "x", "age1x").unwrap_err();
        assert!(
            matches!(err, SopsError::NotCreationRules { .. }),
            "{text:?}: {err}"
        );
        let err = replace_recipients(text, &v(&["age1a"]), &v(&["age1x"])).unwrap_err();
        assert!(
            matches!(err, SopsError::NotCreationRules { .. }),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn what_cannot_be_edited_is_refused() {
    let block =
        "creation_rules:\n  - path_regex: ^clusters/dev/\n    age: >-\n      age1a,\n      age1b\n";
    let err = add_recipient(block, "clusters/dev/", "age1c").unwrap_err();
    assert!(matches!(err, SopsError::Unsupported { .. }), "{err}");
    let err = add_recipient(CFG, "clusters/dev/", "age1 x: y").unwrap_err();
    assert!(matches!(err, SopsError::Keys { .. }), "{err}");
    let err = replace_recipients(CFG, &v(&["age1local"]), &[]).unwrap_err();
    assert!(matches!(err, SopsError::NoRecipients), "{err}");
}

#[test]
fn flow_style_rules_are_edited_in_place() {
    let cfg = "creation_rules: [{path_regex: ^clusters/dev/, age: age1a}, {path_regex: x, age: [age1a]}]\n";
    let out = add_recipient(cfg, "clusters/dev/", "age1c").unwrap();
    // A plain comma would end the value inside `{...}`: the string gets quoted.
    assert_eq!(out, cfg.replacen("age: age1a}", "age: \"age1a,age1c\"}", 1));
    let out = replace_recipients(&out, &v(&["age1a"]), &v(&["age1n"])).unwrap();
    assert_eq!(
        out,
        "creation_rules: [{path_regex: ^clusters/dev/, age: \"age1n,age1c\"}, {path_regex: x, age: [age1n]}]\n"
    );
    assert_eq!(ages(&out), vec![v(&["age1n", "age1c"]), v(&["age1n"])]);
}

#[test]
fn a_config_sops_would_reject_is_an_error() {
    let cfg = "creation_rules:\n  - path_regex: ^clusters/dev/(\n    age: age1a\n";
    let err = add_recipient(cfg, "clusters/dev/", "age1c").unwrap_err();
    assert!(
        matches!(&err, SopsError::InvalidConfig(reason) if reason.to_string().contains("path_regex")),
        "{err}"
    );
}
