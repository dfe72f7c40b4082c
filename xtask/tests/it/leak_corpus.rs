//! The leak corpus: shapes that each ship a plaintext Secret value, read the
//! way kustomize and Flux read them. Every case is a small change to one
//! checkout of the `basic` fixture (its Secret encrypted by the real sops),
//! and each must be refused by `publish`, `package`, `validate` and
//! `secrets check` with a
//! message naming the file (or the rendered object) and the fix, while the
//! registry receives nothing and every file stays byte-identical. gitleaks,
//! a second scanner, runs over the real tree's shipped files.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use exec::runner::Cmd;

use crate::registry::Registry;
use crate::secrets_gate::{SECRET_FILE, Tree, text};

/// One leak: what it changes in the tree, the file or place the refusal
/// must name, and what it must say there.
struct Case {
    name: &'static str,
    setup: fn(&Path, &Tree),
    names: &'static str,
    says: &'static str,
    /// Why gitleaks, which judges text by pattern and entropy, does not
    /// report this shape; `None` when it does.
    gitleaks_misses: Option<&'static str>,
}

/// The plaintext every case leaks: a password as a password manager makes
/// it (gitleaks skips a low-entropy word such as `hunter2` by design). The
/// cases spell it `hunter2`; files get this.
const SECRET: &str = "Xk9mQ2vL8pR4nZ7tW3yB";

fn with_secret(text: &str) -> String {
    text.replace("hunter2", SECRET)
}

fn write(root: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = bytes.as_ref();
    match std::str::from_utf8(bytes) {
        Ok(text) => std::fs::write(path, with_secret(text)).unwrap(),
        Err(_) => std::fs::write(path, bytes).unwrap(),
    }
}

/// Adds `resource` to the `resources` of `dir`'s kustomization.yaml.
fn add_resource(root: &Path, dir: &str, resource: &str) {
    let path = root.join(dir).join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace("resources:\n", &format!("resources:\n  - {resource}\n"));
    std::fs::write(path, text).unwrap();
}

/// Appends `text` to `dir`'s kustomization.yaml.
fn extend_kustomization(root: &Path, dir: &str, text: &str) {
    let path = root.join(dir).join("kustomization.yaml");
    let mut old = std::fs::read_to_string(&path).unwrap();
    old.push_str(&with_secret(text));
    std::fs::write(path, old).unwrap();
}

const LEAK: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\n  namespace: web\nstringData:\n  password: hunter2\n";
const LEAK_JSON: &str = "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Secret\",\n\t\"metadata\": {\"name\": \"leak\"},\n\t\"stringData\": {\"password\": \"hunter2\"}\n}\n";
const WEB: &str = "apps/web";
/// Where the render's refusals point: the folder and Kustomization.
const APPS: &str = "apps (cluster demo, Kustomization flux-system/apps)";

fn secret_with(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\n  namespace: web\nstringData:\n  password: \"{value}\"\n"
    )
}

fn utf16(text: &str, bom: [u8; 2], word: fn(u16) -> [u8; 2]) -> Vec<u8> {
    let mut bytes = bom.to_vec();
    bytes.extend(with_secret(text).encode_utf16().flat_map(word));
    bytes
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a pasted `kubectl get -o yaml` List",
            setup: |r, _| {
                let list = format!(
                    "apiVersion: v1\nkind: List\nitems:\n- {}",
                    LEAK.replace('\n', "\n  ").trim_end()
                );
                write(r, "apps/web/dump.yaml", list);
                add_resource(r, WEB, "dump.yaml");
            },
            names: "apps/web/dump.yaml:1",
            gitleaks_misses: None,
            says: "Secret web/leak (at items[0]) holds plaintext values (stringData.password)",
        },
        Case {
            name: "a List inside a SecretList",
            setup: |r, _| {
                let nested = format!(
                    "kind: List\nitems:\n- kind: SecretList\n  items:\n  - {}",
                    LEAK.replace('\n', "\n    ").trim_end()
                );
                write(r, "apps/web/nested.yaml", nested);
            },
            names: "apps/web/nested.yaml:1",
            gitleaks_misses: None,
            says: "(at items[0].items[0]) holds plaintext values",
        },
        Case {
            name: "a `---#` separator",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/hash.yaml",
                    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---#\n{LEAK}"),
                );
            },
            names: "apps/web/hash.yaml:6",
            gitleaks_misses: None,
            says: "Secret web/leak holds plaintext values",
        },
        Case {
            name: "a `---<tab>` separator",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/tab.yaml",
                    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\t\n{LEAK}"),
                );
                add_resource(r, WEB, "tab.yaml");
            },
            names: "apps/web/tab.yaml:6",
            gitleaks_misses: None,
            says: "Secret web/leak holds plaintext values",
        },
        Case {
            name: "a document on the marker's line",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/inline.yaml",
                    "--- {apiVersion: v1, kind: Secret, metadata: {name: leak}, stringData: {password: hunter2}}\n",
                );
            },
            names: "apps/web/inline.yaml:1",
            gitleaks_misses: Some(
                "its generic rule does not read a value in a YAML flow mapping on the `---` line",
            ),
            says: "Secret leak holds plaintext values",
        },
        Case {
            name: "a kustomization named `Kustomization`",
            setup: |r, _| {
                write(
                    r,
                    "apps/extra/Kustomization",
                    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nsecretGenerator:\n  - name: gen\n    literals:\n      - password=hunter2\n",
                );
            },
            names: "apps/extra/Kustomization:1",
            gitleaks_misses: None,
            says: "secretGenerator gen has plaintext literal(s) (password)",
        },
        Case {
            name: "a kustomization.yml with a literal",
            setup: |r, _| {
                write(
                    r,
                    "apps/other/kustomization.yml",
                    "secretGenerator:\n  - name: gen\n    literals: [\"password=hunter2\"]\n",
                );
            },
            names: "apps/other/kustomization.yml:1",
            gitleaks_misses: None,
            says: "secretGenerator gen has plaintext literal(s)",
        },
        Case {
            name: "a generator literal in a referenced kustomization",
            setup: |r, _| {
                extend_kustomization(
                    r,
                    WEB,
                    "secretGenerator:\n  - name: gen\n    literals:\n      - password=hunter2\n",
                );
            },
            names: "apps/web/kustomization.yaml:1",
            gitleaks_misses: None,
            says: "secretGenerator gen has plaintext literal(s) (password)",
        },
        Case {
            name: "generator files: [./pw.txt]",
            setup: |r, _| {
                write(r, "apps/web/pw.txt", "hunter2\n");
                extend_kustomization(
                    r,
                    WEB,
                    "secretGenerator:\n  - name: gen\n    files:\n      - ./pw.txt\n",
                );
            },
            names: "apps/web/kustomization.yaml:1",
            gitleaks_misses: Some(
                "the file holds the bare value, with no keyword (password, secret, token, ...) for its generic rule to anchor on",
            ),
            says: "reads plaintext from apps/web/pw.txt",
        },
        Case {
            name: "generator files: [key=../x/pw.txt]",
            setup: |r, _| {
                write(r, "apps/x/pw.txt", "hunter2\n");
                extend_kustomization(
                    r,
                    WEB,
                    "secretGenerator:\n  - name: gen\n    files:\n      - password=../x/pw.txt\n",
                );
            },
            names: "apps/web/kustomization.yaml:1",
            gitleaks_misses: Some(
                "the file holds the bare value, with no keyword for its generic rule to anchor on",
            ),
            says: "reads plaintext from apps/x/pw.txt",
        },
        Case {
            name: "a generator's env file",
            setup: |r, _| {
                write(r, "apps/web/app.env", "PASSWORD=hunter2\n");
                extend_kustomization(
                    r,
                    WEB,
                    "secretGenerator:\n  - name: gen\n    envs:\n      - app.env\n",
                );
            },
            names: "apps/web/kustomization.yaml:1",
            gitleaks_misses: None,
            says: "reads plaintext from apps/web/app.env",
        },
        Case {
            name: "a generator file behind a symlink",
            setup: |r, _| {
                write(r, "outside/pw.txt", "hunter2\n");
                std::os::unix::fs::symlink("../../outside/pw.txt", r.join("apps/web/pw.txt"))
                    .unwrap();
                extend_kustomization(
                    r,
                    WEB,
                    "secretGenerator:\n  - name: gen\n    files:\n      - pw.txt\n",
                );
            },
            names: "apps/web/kustomization.yaml:1",
            gitleaks_misses: Some(
                "the symlink does not ship, and the file it points at holds the bare value, with no keyword",
            ),
            says: "apps/web/pw.txt is a symlink",
        },
        Case {
            name: "a literal default ${db_password:=hunter2}",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/default.yaml",
                    secret_with("${db_password:=hunter2}"),
                )
            },
            names: "apps/web/default.yaml:1",
            gitleaks_misses: Some(
                "the value hides in a `${var:=default}` expression, which its generic rule does not read as a value",
            ),
            says: "holds plaintext values (stringData.password)",
        },
        Case {
            name: "a literal default ${db_password:-hunter2}",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/default.yaml",
                    secret_with("${db_password:-hunter2}"),
                )
            },
            names: "apps/web/default.yaml:1",
            gitleaks_misses: Some(
                "the value hides in a `${var:-default}` expression, which its generic rule does not read as a value",
            ),
            says: "holds plaintext values (stringData.password)",
        },
        Case {
            name: "literal text around a variable",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/url.yaml",
                    secret_with("postgres://app:hunter2@db/${token}"),
                )
            },
            names: "apps/web/url.yaml:1",
            gitleaks_misses: Some(
                "the value is a password inside a connection URL, which its generic rule does not read as a value",
            ),
            says: "holds plaintext values (stringData.password)",
        },
        Case {
            name: "sops -e --encrypted-regex '^data$' on a stringData Secret",
            setup: |r, tree| {
                let file = "clusters/demo/variables/extra.enc.yaml";
                write(r, file, LEAK);
                let sops = common::tool("sops").expect("sops");
                Cmd::new(sops)
                    .args(["--encrypt", "--in-place", "--encrypted-regex", "^data$"])
                    .args(["--age", &tree.recipient, file])
                    .dir(r)
                    .env("SOPS_DISABLE_VERSION_CHECK", "1")
                    .read()
                    .expect("sops --encrypt");
            },
            names: "clusters/demo/variables/extra.enc.yaml:",
            gitleaks_misses: None,
            says: "`stringData.password` should be encrypted but is plaintext: the .sops.yaml rule for this path (encrypted_regex ^(data|stringData)$) says encrypted",
        },
        Case {
            name: "a file a rule governs, not encrypted",
            setup: |r, _| write(r, "clusters/demo/variables/new.enc.yaml", LEAK),
            names: "clusters/demo/variables/new.enc.yaml",
            gitleaks_misses: None,
            says: "not SOPS-encrypted",
        },
        Case {
            name: "a patch file that adds stringData",
            setup: |r, _| {
                write(r, "apps/web/secret.yaml", secret_with("${token}"));
                add_resource(r, WEB, "secret.yaml");
                write(
                    r,
                    "apps/web/patch.yaml",
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\nstringData:\n  extra: hunter2\n",
                );
                extend_kustomization(r, WEB, "patches:\n  - path: patch.yaml\n");
            },
            names: "apps/web/patch.yaml:1",
            gitleaks_misses: Some(
                "the key (`extra`) is none of its keywords; we judge the Secret by kind, not by key name",
            ),
            says: "Secret leak holds plaintext values (stringData.extra)",
        },
        Case {
            name: "a JSON 6902 patch that adds stringData",
            setup: |r, _| {
                write(r, "apps/web/secret.yaml", secret_with("${token}"));
                add_resource(r, WEB, "secret.yaml");
                extend_kustomization(
                    r,
                    WEB,
                    "patches:\n  - target:\n      kind: Secret\n      name: leak\n    patch: |-\n      - op: add\n        path: /stringData/extra\n        value: hunter2\n",
                );
            },
            names: APPS,
            gitleaks_misses: Some(
                "the value sits under `value:` in a patch operation; only the render shows that it lands in a Secret",
            ),
            says: "Flux would apply Secret web/leak with plaintext values (stringData.extra)",
        },
        Case {
            name: "an inline strategic-merge patch",
            setup: |r, _| {
                write(r, "apps/web/secret.yaml", secret_with("${token}"));
                add_resource(r, WEB, "secret.yaml");
                extend_kustomization(
                    r,
                    WEB,
                    "patches:\n  - patch: |-\n      apiVersion: v1\n      kind: Secret\n      metadata:\n        name: leak\n      stringData:\n        extra: hunter2\n",
                );
            },
            names: "apps/web/kustomization.yaml:1",
            gitleaks_misses: Some(
                "the key (`extra`) is none of its keywords, inside a block scalar",
            ),
            says: "an inline patch: Secret leak holds plaintext values (stringData.extra)",
        },
        Case {
            name: "a component that adds a Secret",
            setup: |r, _| {
                write(
                    r,
                    "components/leak/kustomization.yaml",
                    "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n  - secret.yaml\n",
                );
                write(r, "components/leak/secret.yaml", LEAK);
                extend_kustomization(r, WEB, "components:\n  - ../../components/leak\n");
            },
            names: "components/leak/secret.yaml:1",
            gitleaks_misses: None,
            says: "Secret web/leak holds plaintext values (stringData.password)",
        },
        Case {
            name: "substitution from a ConfigMap",
            setup: |r, _| {
                write(r, "apps/web/secret.yaml", secret_with("${domain}"));
                add_resource(r, WEB, "secret.yaml");
            },
            names: APPS,
            gitleaks_misses: Some(
                "no file holds a secret-shaped text: a ConfigMap value becomes a Secret value only when Flux substitutes it",
            ),
            says: "Flux would apply Secret web/leak with plaintext values (stringData.password)",
        },
        Case {
            name: "substitution from postBuild.substitute",
            setup: |r, _| {
                write(r, "apps/web/secret.yaml", secret_with("${tier}"));
                add_resource(r, WEB, "secret.yaml");
            },
            names: APPS,
            gitleaks_misses: Some(
                "no file holds a secret-shaped text: the inline value becomes a Secret value only when Flux substitutes it",
            ),
            says: "Flux would apply Secret web/leak with plaintext values (stringData.password)",
        },
        Case {
            name: "HelmRelease valuesFrom a plaintext Secret",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/values.yaml",
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-values\nstringData:\n  values.yaml: \"adminPassword: hunter2\"\n",
                );
                write(
                    r,
                    "apps/web/release.yaml",
                    "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\nspec:\n  interval: 1h\n  chart:\n    spec:\n      chart: web\n      version: 1.0.0\n      sourceRef:\n        kind: HelmRepository\n        name: web\n  valuesFrom:\n    - kind: Secret\n      name: web-values\n",
                );
                add_resource(r, WEB, "values.yaml");
                add_resource(r, WEB, "release.yaml");
            },
            names: APPS,
            gitleaks_misses: None,
            says: "HelmRelease web/web takes values from Secret web/web-values, which holds plaintext values",
        },
        Case {
            name: "a JSON List",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/dump.json",
                    format!(
                        "{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{LEAK_JSON}]}}"
                    ),
                );
            },
            names: "apps/web/dump.json:1",
            gitleaks_misses: None,
            says: "Secret leak (at items[0]) holds plaintext values",
        },
        Case {
            name: "a JSON Secret indented with tabs",
            setup: |r, _| write(r, "apps/web/leak.json", LEAK_JSON),
            names: "apps/web/leak.json:1",
            gitleaks_misses: None,
            says: "Secret leak holds plaintext values",
        },
        Case {
            name: "a .yml file",
            setup: |r, _| write(r, "apps/web/leak.yml", LEAK),
            names: "apps/web/leak.yml:1",
            gitleaks_misses: None,
            says: "Secret web/leak holds plaintext values",
        },
        Case {
            name: "a .YAML file",
            setup: |r, _| write(r, "apps/web/LEAK.YAML", LEAK),
            names: "apps/web/LEAK.YAML:1",
            gitleaks_misses: None,
            says: "Secret web/leak holds plaintext values",
        },
        Case {
            name: "an unreferenced plaintext file",
            setup: |r, _| write(r, "notes/old-secret.yaml", LEAK),
            names: "notes/old-secret.yaml:1",
            gitleaks_misses: None,
            says: "Secret web/leak holds plaintext values",
        },
        Case {
            name: "a byte-order mark",
            setup: |r, _| write(r, "apps/web/bom.yaml", format!("\u{feff}{LEAK}")),
            names: "apps/web/bom.yaml:1",
            gitleaks_misses: None,
            says: "Secret web/leak holds plaintext values",
        },
        Case {
            name: "UTF-16LE with a mark",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/u16.yaml",
                    utf16(LEAK, [0xFF, 0xFE], u16::to_le_bytes),
                )
            },
            names: "apps/web/u16.yaml:1",
            gitleaks_misses: Some(
                "it reads UTF-16 as bytes with NULs between the letters, where no pattern matches",
            ),
            says: "Secret web/leak holds plaintext values",
        },
        Case {
            name: "UTF-16BE with a mark",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/u16be.yaml",
                    utf16(LEAK, [0xFE, 0xFF], u16::to_be_bytes),
                )
            },
            names: "apps/web/u16be.yaml:1",
            gitleaks_misses: Some(
                "it reads UTF-16 as bytes with NULs between the letters, where no pattern matches",
            ),
            says: "Secret web/leak holds plaintext values",
        },
        Case {
            name: "base64 data",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/data.yaml",
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\ndata:\n  password: WGs5bVEydkw4cFI0blo3dFczeUI= # base64 of the secret\n",
                )
            },
            names: "apps/web/data.yaml:1",
            gitleaks_misses: None,
            says: "holds plaintext values (data.password)",
        },
        Case {
            name: "a number value",
            setup: |r, _| {
                write(
                    r,
                    "apps/web/pin.yaml",
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\nstringData:\n  pin: 1234\n",
                )
            },
            names: "apps/web/pin.yaml:1",
            gitleaks_misses: Some("a four-digit PIN has too little entropy for its generic rule"),
            says: "holds plaintext values (stringData.pin)",
        },
        Case {
            name: "a decrypted copy",
            setup: |r, _| write(r, "clusters/demo/variables/creds.dec.yml", LEAK),
            names: "clusters/demo/variables/creds.dec.yml",
            gitleaks_misses: None,
            says: "a decrypted copy of a secret",
        },
        Case {
            name: "the temp file of a killed write",
            setup: |r, _| {
                write(
                    r,
                    "clusters/demo/variables/.xtask-creds.enc.yaml.999999.a1B2c3.tmp",
                    LEAK,
                )
            },
            names: "clusters/demo/variables/.xtask-creds.enc.yaml.999999.a1B2c3.tmp",
            gitleaks_misses: None,
            says: "a temp file left by an interrupted write",
        },
        Case {
            name: "an age private key",
            setup: |r, _| {
                let (identity, _) = sops::generate_identity();
                write(r, "apps/web/backup.txt", format!("keys:\n{identity}\n"));
            },
            names: "apps/web/backup.txt:2",
            gitleaks_misses: None,
            says: "holds an age private key",
        },
    ]
}

/// validate's text groups findings under their file: one `file:line: ...`
/// line per finding, as the gate prints them.
fn per_line(report: &str) -> String {
    let mut file = "";
    let mut out = String::new();
    for line in report.lines() {
        match line.strip_prefix("  ") {
            Some(finding) => {
                let finding = finding.trim_start();
                let (pos, rest) = finding.split_once(' ').unwrap_or((finding, ""));
                out.push_str(&format!("{file}:{pos}: {}\n", rest.trim_start()));
            }
            None => {
                file = line;
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The files `root` would ship, copied into `into` (only those: gitleaks
/// sees what the artifact carries, not the Rust workspace or `.git`).
fn copy_shipped(root: &Path, into: &Path) {
    for e in oci_artifact::tree::collect(root).unwrap() {
        if matches!(e.kind, oci_artifact::tree::Kind::File { .. }) {
            let to = into.join(&e.name);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&e.path, to).unwrap();
        }
    }
}

/// What gitleaks reports over the files `root` would ship: `(file, rule)`.
fn gitleaks(bin: &Path, root: &Path) -> Vec<(String, String)> {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("shipped");
    copy_shipped(root, &dir);
    let report = scratch.path().join("report.json");
    Cmd::new(bin)
        .args([
            "dir",
            "--no-banner",
            "--exit-code",
            "0",
            "--report-format",
            "json",
        ])
        .arg("--report-path")
        .arg(&report)
        .arg(&dir)
        .read()
        .expect("gitleaks dir");
    let found: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mut out: Vec<(String, String)> = found
        .iter()
        .map(|f| {
            let file = f["File"].as_str().unwrap_or("");
            let file = Path::new(file)
                .strip_prefix(&dir)
                .map_or(file.into(), |p| p.display().to_string());
            (file, f["RuleID"].as_str().unwrap_or("").to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A second scanner agrees on the real tree: gitleaks finds nothing in what
/// it ships.
#[test]
fn gitleaks_finds_nothing_in_what_the_real_tree_ships() {
    let Some(bin) = common::tool("gitleaks") else {
        return;
    };
    let found = gitleaks(&bin, &common::root());
    assert!(found.is_empty(), "gitleaks reports {found:?}");
}

/// Every file of the checkout (not `.git`) and its bytes.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            let kind = entry.file_type().unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if kind.is_dir() {
                walk(root, &path, out);
            } else if kind.is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&path)
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                );
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn every_leak_shape_is_refused_by_publish_package_validate_and_secrets_check() {
    let Some(tree) = Tree::new() else { return };
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let repo = tree.repo();
    let out_dir = tree.dir.path().join("oci");
    let package = |tree: &Tree| {
        tree.xtask(
            &[
                "package",
                "--root",
                repo.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
            ],
            true,
        )
    };
    // The clean tree ships and validates.
    common::assert_success(&tree.validate());
    common::assert_success(&package(&tree));
    std::fs::remove_dir_all(&out_dir).unwrap();
    let cases = cases();
    assert_eq!(cases.len(), 37);
    let stored = registry.stored_files();
    // gitleaks on the same trees, for the shapes where the two disagree.
    let scanner = common::tool("gitleaks");
    let clean = scanner.as_ref().map(|bin| gitleaks(bin, &repo));
    for case in &cases {
        (case.setup)(&repo, &tree);
        let before = snapshot(&repo);
        for (verb, out) in [
            (
                "publish",
                tree.publish(&registry, &["--allow-dirty", "--tag", "leak"]),
            ),
            ("package", package(&tree)),
            ("validate", tree.validate()),
            ("secrets check", tree.xtask(&["secrets", "check"], true)),
        ] {
            let msg = if verb == "validate" {
                per_line(&text(&out))
            } else {
                text(&out)
            };
            assert!(
                !out.status.success(),
                "{}: {verb} passed:\n{msg}",
                case.name
            );
            let said = msg
                .lines()
                .any(|l| l.contains(case.names) && l.contains(case.says));
            assert!(
                said,
                "{}: {verb} does not say {:?} at {:?}:\n{msg}",
                case.name, case.says, case.names
            );
            assert!(
                !msg.contains(SECRET),
                "{}: {verb} printed the value",
                case.name
            );
        }
        assert!(!out_dir.exists(), "{}: package wrote a layout", case.name);
        assert_eq!(
            registry.stored_files(),
            stored,
            "{}: the registry was written to",
            case.name
        );
        assert!(snapshot(&repo) == before, "{}: a file changed", case.name);
        if let (Some(bin), Some(clean)) = (&scanner, &clean) {
            let found: Vec<_> = gitleaks(bin, &repo)
                .into_iter()
                .filter(|f| !clean.contains(f))
                .collect();
            match case.gitleaks_misses {
                None => assert!(
                    !found.is_empty(),
                    "{}: gitleaks was expected to report it too",
                    case.name
                ),
                Some(why) => assert!(
                    found.is_empty(),
                    "{}: gitleaks reports {found:?}, though we noted it misses it because {why}",
                    case.name
                ),
            }
        }
        // Back to the clean commit for the next case.
        tree.git(&["checkout", "-q", "--", "."]);
        tree.git(&["clean", "-q", "-f", "-d"]);
    }
    assert!(snapshot(&repo).contains_key(SECRET_FILE));
}
