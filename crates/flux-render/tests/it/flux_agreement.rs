//! The real flux CLI is the oracle for `build`: a corpus of small Flux
//! Kustomizations (every spec field the render honours, every envsubst
//! function and escape, the type and quoting cases) plus every Kustomization
//! of every cluster of the real tree is rendered by us and by
//! `flux build kustomization --dry-run`, and compared object by object.
//!
//! `--dry-run` reads no ConfigMap or Secret from a cluster, so the variables
//! are inlined into `spec.postBuild.substitute` as Flux would merge them (the
//! render reports that merge); that merge itself is checked like for like,
//! flux reading the Secrets and ConfigMaps from a kube-apiserver, in
//! xtask's `flux_substitute` test. `--strict-substitute` matches our strictness
//! (an undefined variable without a default is an error; where both succeed,
//! strict and lax output are the same).
//!
//! Known, intended differences, all here:
//! - flux masks SOPS-encrypted Secrets in its display (`**SOPS**` for every
//!   data/stringData value, and drops the `sops` field): we keep the
//!   encrypted values, which is what the controller decrypts. The comparison
//!   applies flux's mask to our side first ([`flux_display_mask`]).

use crate::common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use exec::runner::Cmd;
use flux_render::{RenderOptions, yaml11};
use rayon::prelude::*;
use serde_json::{Value, json};
pub(crate) use testkit::flux_compare::compare;

/// One corpus entry: the files of `app/` and the spec fields besides path
/// and source (YAML, indented for `spec:`).
struct Case {
    name: &'static str,
    files: Vec<(&'static str, String)>,
    spec: &'static str,
    /// Both tools must refuse it.
    fails: bool,
}

fn case(name: &'static str, files: &[(&'static str, &str)], spec: &'static str) -> Case {
    Case {
        name,
        files: files.iter().map(|(p, t)| (*p, t.to_string())).collect(),
        spec,
        fails: false,
    }
}

fn failing(name: &'static str, files: &[(&'static str, &str)], spec: &'static str) -> Case {
    Case {
        fails: true,
        ..case(name, files, spec)
    }
}

const KUSTOMIZATION: &str =
    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - cm.yaml\n";
const DEPLOY_KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - cm.yaml\n  - deploy.yaml\n";
const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.25\n        - name: side\n          image: busybox\n";

/// A ConfigMap whose data holds `body` (YAML lines indented by 2).
fn cm(body: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: apps\ndata:\n{body}"
    )
}

/// A one-ConfigMap case with inline variables.
fn sub_case(name: &'static str, body: &str, spec: &'static str) -> Case {
    case(
        name,
        &[
            ("kustomization.yaml", KUSTOMIZATION),
            ("cm.yaml", &cm(body)),
        ],
        spec,
    )
}

fn sub_failing(name: &'static str, body: &str, spec: &'static str) -> Case {
    failing(
        name,
        &[
            ("kustomization.yaml", KUSTOMIZATION),
            ("cm.yaml", &cm(body)),
        ],
        spec,
    )
}

fn corpus() -> Vec<Case> {
    let deploy = [
        ("kustomization.yaml", DEPLOY_KUSTOMIZATION),
        (
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n",
        ),
        ("deploy.yaml", DEPLOY),
    ];
    let s = "  postBuild:\n    substitute:\n      s: Hello-World.tar.gz\n      p: a/b/c.txt\n      n: \"12345678\"\n      e: \"\"\n";
    vec![
        // ---- spec fields ----
        case("target-namespace", &deploy, "  targetNamespace: team-a\n"),
        case(
            "target-namespace-overrides",
            &[
                (
                    "kustomization.yaml",
                    "resources:\n  - cm.yaml\nnamespace: old\n",
                ),
                ("cm.yaml", &cm("  a: b\n")),
            ],
            "  targetNamespace: new\n",
        ),
        case("name-prefix", &deploy, "  namePrefix: pre-\n"),
        case("name-suffix", &deploy, "  nameSuffix: -suf\n"),
        case(
            "prefix-suffix-override-the-folder",
            &[
                (
                    "kustomization.yaml",
                    "resources:\n  - cm.yaml\nnamePrefix: inner-\n",
                ),
                ("cm.yaml", &cm("  a: b\n")),
            ],
            "  namePrefix: outer-\n  nameSuffix: -x\n",
        ),
        case(
            "patch-strategic-merge-with-target",
            &deploy,
            "  patches:\n    - patch: |\n        apiVersion: apps/v1\n        kind: Deployment\n        metadata:\n          name: not-used\n        spec:\n          replicas: 4\n      target:\n        kind: Deployment\n        name: web\n",
        ),
        case(
            "patch-strategic-merge-by-name",
            &deploy,
            "  patches:\n    - patch: |\n        apiVersion: v1\n        kind: ConfigMap\n        metadata:\n          name: cm\n        data:\n          added: \"yes\"\n",
        ),
        case(
            "patch-json6902",
            &deploy,
            "  patches:\n    - patch: |\n        - op: replace\n          path: /spec/template/spec/containers/0/image\n          value: nginx:1.27\n        - op: add\n          path: /metadata/annotations\n          value: {a: \"1\"}\n      target:\n        group: apps\n        version: v1\n        kind: Deployment\n        name: web\n",
        ),
        case(
            "patch-label-selector",
            &deploy,
            "  patches:\n    - patch: |\n        - op: add\n          path: /metadata/labels/patched\n          value: \"true\"\n      target:\n        labelSelector: app=web\n",
        ),
        case(
            "patch-appended-to-folder-patches",
            &[
                (
                    "kustomization.yaml",
                    "resources:\n  - cm.yaml\n  - deploy.yaml\npatches:\n  - patch: |\n      - op: add\n        path: /data/first\n        value: one\n    target:\n      kind: ConfigMap\n",
                ),
                (
                    "cm.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n",
                ),
                ("deploy.yaml", DEPLOY),
            ],
            "  patches:\n    - patch: |\n        - op: add\n          path: /data/second\n          value: two\n      target:\n        kind: ConfigMap\n",
        ),
        case(
            "images-new-tag",
            &deploy,
            "  images:\n    - name: nginx\n      newTag: \"1.27\"\n",
        ),
        case(
            "images-new-name-and-digest",
            &deploy,
            "  images:\n    - name: busybox\n      newName: registry.local/busybox\n      digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
        ),
        case(
            "images-merge-with-folder-images",
            &[
                (
                    "kustomization.yaml",
                    "resources:\n  - deploy.yaml\nimages:\n  - name: nginx\n    newName: mirror/nginx\n    newTag: \"1.0\"\n",
                ),
                ("deploy.yaml", DEPLOY),
            ],
            "  images:\n    - name: nginx\n      newTag: \"2.0\"\n    - name: busybox\n      newTag: \"1.36\"\n",
        ),
        case(
            "components",
            &[
                ("kustomization.yaml", KUSTOMIZATION),
                ("cm.yaml", &cm("  a: b\n")),
                (
                    "comp/kustomization.yaml",
                    "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonLabels:\n  component: enabled\n",
                ),
            ],
            "  components:\n    - comp\n",
        ),
        case(
            "components-ignore-missing",
            &[
                ("kustomization.yaml", KUSTOMIZATION),
                ("cm.yaml", &cm("  a: b\n")),
                (
                    "comp/kustomization.yaml",
                    "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnamePrefix: c-\n",
                ),
            ],
            "  components:\n    - comp\n    - missing\n  ignoreMissingComponents: true\n",
        ),
        case(
            "common-metadata",
            &deploy,
            "  commonMetadata:\n    labels:\n      team: platform\n      kustomize.toolkit.fluxcd.io/name: overridden\n    annotations:\n      owner: \"yes\"\n",
        ),
        case(
            "no-kustomization-file",
            &[
                (
                    "a.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a2\n",
                ),
                (
                    "nested/b.yml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
                ),
                ("notes.txt", "not yaml"),
                (
                    "sub/kustomization.yaml",
                    "resources:\n  - c.yaml\nnamePrefix: sub-\n",
                ),
                (
                    "sub/c.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
                ),
            ],
            "  targetNamespace: gen\n",
        ),
        case(
            "kustomization-without-resources-gets-origin-annotations",
            &[(
                "kustomization.yaml",
                "configMapGenerator:\n  - name: gen\n    literals:\n      - a=b\ngeneratorOptions:\n  disableNameSuffixHash: true\n",
            )],
            "",
        ),
        case(
            "file-outside-the-folder",
            &[
                ("kustomization.yaml", "resources:\n  - ../shared/cm.yaml\n"),
                ("../shared/cm.yaml", &cm("  shared: \"true\"\n")),
            ],
            "",
        ),
        case(
            "folder-without-manifests",
            &[("notes.md", "nothing to apply")],
            "",
        ),
        case(
            "build-metadata",
            &deploy,
            "  buildMetadata:\n    - originAnnotations\n",
        ),
        // ---- postBuild ----
        sub_case(
            "strategy-always-without-variables",
            "  a: ${x:=fallback}\n  b: ${y:-7}\n",
            "  postBuild:\n    substituteStrategy: Always\n",
        ),
        sub_case(
            "strategy-with-variables-without-variables",
            "  a: ${x:=fallback}\n",
            "  postBuild:\n    substituteStrategy: WithVariables\n",
        ),
        case(
            "substitution-disabled",
            &[
                (
                    "kustomization.yaml",
                    "resources:\n  - a.yaml\n  - b.yaml\n  - c.yaml\n",
                ),
                (
                    "a.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  v: ${x}\n",
                ),
                (
                    "b.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  v: ${x}\n",
                ),
                (
                    "c.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: ${x}\n",
                ),
            ],
            "  postBuild:\n    substitute:\n      x: done\n",
        ),
        sub_case(
            "newlines-in-values-are-removed",
            "  a: ${x}\n",
            "  postBuild:\n    substitute:\n      x: |\n        one\n        two\n",
        ),
        // ---- envsubst ----
        sub_case(
            "plain",
            "  a: ${x}\n  b: pre-${x}-post\n",
            "  postBuild:\n    substitute:\n      x: v\n",
        ),
        sub_case(
            "defaults",
            "  a: ${unset:=d1}\n  b: ${empty:-d2}\n  c: ${unset=d3}\n  d: ${set:=no}\n  e: ${unset:?d5}\n  f: ${unset:+d6}\n",
            "  postBuild:\n    substitute:\n      set: yes-set\n      empty: \"\"\n",
        ),
        sub_case(
            "nested-default",
            "  a: ${unset:=pre-${x}-suf}\n",
            "  postBuild:\n    substitute:\n      x: mid\n",
        ),
        sub_case(
            "default-with-braces",
            "  a: \"${unset:=x{y}z}\"\n",
            "  postBuild:\n    substitute:\n      x: v\n",
        ),
        sub_case(
            "dollar-escapes",
            "  a: $${x}\n  b: cost $$5 and $$$\n  c: echo $HOME $ 5$\n  d: $${x:=d}\n",
            "  postBuild:\n    substitute:\n      x: v\n",
        ),
        sub_case(
            "case-functions",
            "  a: ${s^^}\n  b: ${s,,}\n  c: ${s,}\n  d: ${p^}\n",
            s,
        ),
        sub_case("length", "  a: ${#s}\n  b: ${#e}\n", s),
        sub_case(
            "substrings",
            "  a: ${n:2}\n  b: ${n:2:3}\n  c: ${n:1:-1}\n  d: ${n:20}\n  e: ${n:x}\n  f: ${n:5:100}\n",
            s,
        ),
        sub_case(
            "trim-prefix",
            "  a: ${s#*.}\n  b: ${s##*.}\n  c: ${p##*/}\n  d: ${s#Hello}\n",
            s,
        ),
        sub_case(
            "trim-suffix",
            "  a: ${s%.*}\n  b: ${s%%.*}\n  c: ${s%gz}\n",
            s,
        ),
        sub_case(
            "replace",
            "  a: ${s/o/0}\n  b: ${s//o/0}\n  c: ${s/o/}\n",
            s,
        ),
        sub_case(
            "replace-anchored",
            "  a: ${s/#Hello/Bye}\n  b: ${s/%gz/xz}\n  d: ${s/#x/y}\n",
            s,
        ),
        sub_case("replace-escapes", "  a: ${p/\\//_}\n  b: ${p//\\//:}\n", s),
        sub_case("unicode-name-with-default", "  a: ${café:=latte}\n", s),
        sub_case(
            "defaults-edge-cases",
            "  a: ${unset:=a$$b}\n  b: ${unset=}\n  c: ${unset:=$${s}}\n  d: ${unset:=${s^^}}\n  e: ${s:1:2}x${#p}\n",
            s,
        ),
        sub_failing(
            "default-arguments-are-expanded-first",
            "  a: ${s:=${nope}}\n",
            s,
        ),
        sub_failing("remove-without-pattern", "  a: ${s#}\n", s),
        sub_failing("question-without-colon", "  a: ${s?x}\n", s),
        sub_failing("dash-default-is-not-an-operator", "  a: ${s-d}\n", s),
        sub_failing("dash-in-name", "  a: ${my-var}\n", s),
        sub_failing("replace-empty-pattern", "  a: ${s/#/pre-}\n", s),
        failing(
            "component-label-read-as-a-yaml-1-1-bool",
            &[
                ("kustomization.yaml", KUSTOMIZATION),
                ("cm.yaml", &cm("  a: b\n")),
                (
                    "comp/kustomization.yaml",
                    "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonLabels:\n  component: on\n",
                ),
            ],
            "  components:\n    - comp\n",
        ),
        sub_failing("undefined-variable", "  a: ${nope}\n", s),
        sub_failing("undefined-in-function", "  a: ${nope^^}\n", s),
        sub_failing("empty-braces", "  a: x${}\n", s),
        sub_failing("unterminated", "  a: ${s\n", s),
        // ---- types after substitution ----
        sub_case(
            "yaml11-numbers",
            "  a: ${z7}\n  b: ${oct}\n  c: ${under}\n  d: ${one}\n  e: ${half}\n  f: ${eight}\n  g: ${hex}\n  h: ${exp}\n",
            "  postBuild:\n    substitute:\n      z7: \"007\"\n      oct: \"0755\"\n      under: \"1_000\"\n      one: \"1.0\"\n      half: \"1.5\"\n      eight: \"08\"\n      hex: \"0x1F\"\n      exp: \"1e3\"\n",
        ),
        sub_case(
            "yaml11-bools-and-null",
            "  a: ${y1}\n  b: ${y2}\n  c: ${y3}\n  d: ${n1}\n  e: ${nul}\n  f: ${tilde}\n",
            "  postBuild:\n    substitute:\n      y1: \"yes\"\n      y2: \"on\"\n      y3: \"y\"\n      n1: \"Off\"\n      nul: \"null\"\n      tilde: \"~\"\n",
        ),
        sub_case(
            "quotes-kustomize-drops-do-not-protect",
            "  a: \"${z7}\"\n  b: '${y1}'\n  c: \"v${z7}\"\n  d: \"${z7} x\"\n",
            "  postBuild:\n    substitute:\n      z7: \"007\"\n      y1: \"yes\"\n",
        ),
        sub_case(
            "strings-that-look-typed",
            "  a: ${ts}\n  b: ${sexa}\n  c: ${ver}\n  d: ${big}\n  e: ${neg}\n",
            "  postBuild:\n    substitute:\n      ts: \"2001-12-14\"\n      sexa: \"1:20\"\n      ver: \"1.2.3\"\n      big: \"18446744073709551615\"\n      neg: \"-0b11\"\n",
        ),
        case(
            "typed-fields",
            &deploy,
            "  postBuild:\n    substitute:\n      r: \"5\"\n  patches:\n    - patch: |\n        - op: replace\n          path: /spec/replicas\n          value: ${r}\n      target:\n        kind: Deployment\n",
        ),
        case(
            "replicas-from-variable",
            &[
                ("kustomization.yaml", "resources:\n  - deploy.yaml\n"),
                (
                    "deploy.yaml",
                    &DEPLOY.replace("replicas: 1", "replicas: ${r}"),
                ),
            ],
            "  postBuild:\n    substitute:\n      r: \"3\"\n",
        ),
        sub_case(
            "comment-in-value-truncates",
            "  a: ${hash}\n  b: \"${hash}\"\n",
            "  postBuild:\n    substitute:\n      hash: \"foo #bar\"\n",
        ),
        sub_failing(
            "mapping-injected-into-scalar",
            "  a: ${colon}\n",
            "  postBuild:\n    substitute:\n      colon: \"a: b\"\n",
        ),
        sub_case(
            "variable-in-key",
            "  ${k}: v\n  k-${k}: w\n",
            "  postBuild:\n    substitute:\n      k: key\n",
        ),
        sub_case(
            "block-scalar-with-variables",
            "  script: |\n    echo ${x}\n    echo $${HOME} $$USER\n",
            "  postBuild:\n    substitute:\n      x: \"007\"\n",
        ),
        sub_case(
            "flow-sequence-from-variable",
            "  a: ${list}\n",
            "  postBuild:\n    substitute:\n      list: \"[a, b]\"\n",
        ),
        // ---- quoting of strings that are not substituted ----
        sub_case(
            "quoted-strings-stay-strings",
            "  a: \"yes\"\n  b: \"on\"\n  c: \"y\"\n  d: \"1_000\"\n  e: \"0755\"\n  f: \"2001-12-14\"\n  g: \"1e3\"\n  h: \"0o17\"\n  i: \"1:20\"\n  j: \"~\"\n  k: \"\"\n  l: \"08\"\n",
            "",
        ),
        sub_case(
            "plain-yaml11-values-in-source",
            "  a: yes\n  b: 0755\n  c: 1_000\n  d: 1.0\n  e: off\n",
            "",
        ),
        sub_case(
            "odd-strings",
            "  a: \"- dash\"\n  b: \"a: b\"\n  c: \"x #y\"\n  d: \" lead\"\n  e: \"trail \"\n  f: \"tab\\there\"\n  g: \"bell\\a\"\n  h: \"café ☕\"\n  i: \"multi\\nline\\n\"\n  j: \"keep\\n\\n\"\n  k: \"  indented\\nblock\"\n  l: \"'single'\"\n  m: \"\\\"double\\\"\"\n  n: \"*star\"\n  o: \"{brace}\"\n",
            "",
        ),
        sub_case(
            "odd-keys",
            "  \"yes\": a\n  \"1\": b\n  \"a: b\": c\n  \"\": d\n",
            "",
        ),
        sub_case("numbers-in-source", "  note: x\nbinaryData: {}\n", ""),
        case(
            "ints-floats-bools-in-spec",
            &[
                ("kustomization.yaml", "resources:\n  - cr.yaml\n"),
                (
                    "cr.yaml",
                    "apiVersion: example.com/v1\nkind: Thing\nmetadata:\n  name: t\nspec:\n  i: 3\n  f: 1.5\n  g: 2.0\n  b: true\n  n: null\n  big: 1e300\n  list: [1, \"2\", three]\n  empty: {}\n  none: []\n",
                ),
            ],
            "  postBuild:\n    substitute:\n      x: \"1\"\n",
        ),
        // ---- sources merged the way Flux merges them ----
        case(
            "substitute-from-merge-order",
            &[
                ("kustomization.yaml", "resources:\n  - cm.yaml\n"),
                ("cm.yaml", &cm("  a: ${a}\n  b: ${b}\n  c: ${c}\n")),
            ],
            "  postBuild:\n    substitute:\n      c: inline\n    substituteFrom:\n      - kind: ConfigMap\n        name: vars-1\n      - kind: Secret\n        name: vars-2\n      - kind: ConfigMap\n        name: absent\n        optional: true\n",
        ),
    ]
}

/// The cluster folder of a corpus tree: the variables that
/// `substitute-from-merge-order` reads, and the Kustomization.
fn cluster_files(case: &Case) -> Vec<(String, String)> {
    let ks = format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {}\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./app\n  prune: true\n  sourceRef:\n    kind: OCIRepository\n    name: flux-system\n{}",
        case.name, case.spec
    );
    let vars = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: vars-1\n  namespace: flux-system\ndata:\n  a: from-cm\n  b: from-cm\n  c: from-cm\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: vars-2\n  namespace: flux-system\nstringData:\n  b: from-secret\n";
    vec![
        (
            "clusters/t/kustomization.yaml".into(),
            "resources:\n  - vars.yaml\n  - ks.yaml\n".into(),
        ),
        ("clusters/t/vars.yaml".into(), vars.into()),
        ("clusters/t/ks.yaml".into(), ks),
    ]
}

/// Our objects, and what the YAML we write reads back as with a YAML 1.1
/// and a YAML 1.2 reader (which must both be the same objects).
pub(crate) fn check_written(name: &str, objects: &[Value]) -> Vec<String> {
    let text = flux_render::to_yaml_stream(objects);
    let as_11 = yaml11::parse_stream(&text).unwrap_or_default();
    let as_12 = flux_render::parse_stream(&text).unwrap_or_default();
    let mut diffs = Vec::new();
    if as_11 != objects {
        diffs.push(format!(
            "{name}: our output reads differently with a YAML 1.1 reader:\n{text}"
        ));
    }
    if as_12 != objects {
        diffs.push(format!(
            "{name}: our output reads differently with a YAML 1.2 reader:\n{text}"
        ));
    }
    diffs
}

/// Runs `flux build kustomization --dry-run` for one Kustomization, with the
/// variables inlined. `Err` holds flux's stderr.
pub(crate) fn flux_build(
    flux: &Path,
    cwd: &Path,
    object: &Value,
    variables: &BTreeMap<String, String>,
    path: &Path,
) -> Result<Vec<Value>, String> {
    let mut object = object.clone();
    if let Some(post_build) = object
        .pointer_mut("/spec/postBuild")
        .and_then(Value::as_object_mut)
    {
        post_build.remove("substituteFrom");
        if !variables.is_empty() {
            post_build.insert("substitute".into(), json!(variables));
        }
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), flux_render::to_yaml_stream(&[object.clone()])).unwrap();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let out = Cmd::new(flux)
        .dir(cwd)
        .args([
            "build",
            "kustomization",
            name,
            "--dry-run",
            "--strict-substitute",
            "--in-memory-build",
        ])
        .arg("--path")
        .arg(path)
        .arg("--kustomization-file")
        .arg(file.path())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    yaml11::parse_stream(&String::from_utf8_lossy(&out.stdout)).map_err(|e| e.to_string())
}

/// One Kustomization of the real tree: label, declared object, merged
/// variables, folder, and our objects.
type RealJob<'a> = (
    String,
    &'a Value,
    &'a BTreeMap<String, String>,
    PathBuf,
    &'a [Value],
);

enum Outcome {
    Agree,
    Differ(Vec<String>),
}

fn run_case(flux: &Path, case: &Case) -> Outcome {
    let tree = tempfile::tempdir().unwrap();
    for (path, text) in case
        .files
        .iter()
        .map(|(p, t)| (format!("app/{p}"), t.clone()))
        .chain(cluster_files(case))
    {
        let file = tree.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let ours = flux_render::render_cluster(tree.path(), "t", &RenderOptions::default())
        .map(|r| r.kustomizations.into_iter().next().unwrap());
    let (object, variables) = match &ours {
        Ok(k) => (k.flux.object.clone(), k.variables.clone()),
        // Without a render, flux gets the declared object and its inline variables.
        Err(_) => {
            let text = std::fs::read_to_string(tree.path().join("clusters/t/ks.yaml")).unwrap();
            let object = flux_render::parse_stream(&text).unwrap().remove(0);
            let vars = object
                .pointer("/spec/postBuild/substitute")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().replace('\n', "")))
                        .collect()
                })
                .unwrap_or_default();
            (object, vars)
        }
    };
    let theirs = flux_build(
        flux,
        tree.path(),
        &object,
        &variables,
        &tree.path().join("app"),
    );
    match (ours, theirs, case.fails) {
        (Err(a), Err(b), true) => {
            eprintln!(
                "  {}: both refuse\n    ours: {a}\n    flux: {}",
                case.name,
                b.trim()
            );
            Outcome::Agree
        }
        (Ok(k), Ok(theirs), false) => {
            let mut diffs = compare(&k.objects, &theirs);
            diffs.extend(check_written(case.name, &k.objects));
            if diffs.is_empty() {
                Outcome::Agree
            } else {
                Outcome::Differ(diffs)
            }
        }
        (ours, theirs, fails) => Outcome::Differ(vec![format!(
            "expected {}; ours: {}; flux: {}",
            if fails {
                "both to fail"
            } else {
                "both to succeed"
            },
            match ours {
                Ok(_) => "rendered".to_string(),
                Err(e) => format!("error: {e}"),
            },
            match theirs {
                Ok(_) => "rendered".to_string(),
                Err(e) => format!("error: {}", e.trim()),
            },
        )]),
    }
}

pub(crate) fn flux_cli() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("XTASK_FLUX") {
        return Some(PathBuf::from(p));
    }
    let flux = common::tool("flux")?;
    assert_pinned_flux(&flux);
    Some(flux)
}

/// The oracle is the flux CLI that `cargo xtask test` builds at the Flux
/// release pinned in xtask/tools.toml (`[flux] version`), not whatever flux
/// is first on PATH. It is built from a copy of the module, so its build info
/// says `(devel)`; the stamp next to it records the version.
fn assert_pinned_flux(flux: &std::path::Path) {
    let root = common::root();
    let bin_dir = root.join(".tools/bin");
    assert_eq!(
        flux.parent(),
        Some(bin_dir.as_path()),
        "{} is not the pinned flux CLI in .tools/bin (run `cargo xtask test --install-only`)",
        flux.display()
    );
    let tools = std::fs::read_to_string(root.join("xtask/tools.toml")).unwrap();
    let version = tools
        .split("\n[flux]")
        .nth(1)
        .and_then(|t| t.lines().find_map(|l| l.trim().strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .expect("xtask/tools.toml pins [flux] version");
    let stamp = std::fs::read_to_string(bin_dir.join(".flux.version")).unwrap_or_default();
    assert_eq!(
        stamp.trim(),
        format!("github.com/fluxcd/flux2/v2@{version}"),
        "the flux CLI in .tools/bin is not Flux {version}"
    );
}

pub(crate) fn kustomize_available() -> bool {
    if exec::tools::kustomize().is_ok() {
        return true;
    }
    if common::tools_required() {
        panic!("kustomize is required (XTASK_REQUIRE_TOOLS=1) but not installed");
    }
    eprintln!("SKIP: kustomize not installed");
    false
}

#[test]
fn build_agrees_with_flux_build_kustomization() {
    if !kustomize_available() {
        return;
    }
    let Some(flux) = flux_cli() else {
        return;
    };
    let corpus = corpus();
    let mut failures = Vec::new();
    let outcomes: Vec<(&Case, Outcome)> = corpus
        .par_iter()
        .map(|case| (case, run_case(&flux, case)))
        .collect();
    for (case, outcome) in outcomes {
        if let Outcome::Differ(diffs) = outcome {
            failures.push(format!("case {}:\n{}", case.name, diffs.join("\n")));
        }
    }

    // The real tree: every Kustomization of every cluster.
    let root = common::root();
    let mut real = 0;
    for cluster in flux_render::list_clusters(&root) {
        let rendered = flux_render::render_cluster(&root, &cluster, &RenderOptions::default())
            .unwrap_or_else(|e| panic!("{cluster}: {e}"));
        // The root Kustomization (the cluster folder itself) and the others.
        let root_ks = &rendered.root.object;
        assert_eq!(
            rendered.root.path,
            Path::new("clusters").join(&cluster),
            "{cluster}: the root Kustomization syncs the cluster folder"
        );
        assert!(
            root_ks.pointer("/spec/postBuild/substituteFrom").is_none(),
            "{cluster}: the root Kustomization's substituteFrom would need the merged variables"
        );
        let root_vars: BTreeMap<String, String> = root_ks
            .pointer("/spec/postBuild/substitute")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut jobs: Vec<RealJob> = vec![(
            format!("{cluster}/{}", rendered.root.name),
            root_ks,
            &root_vars,
            root.join("clusters").join(&cluster),
            &rendered.root_objects,
        )];
        for k in &rendered.kustomizations {
            jobs.push((
                format!("{cluster}/{}", k.flux.name),
                &k.flux.object,
                &k.variables,
                k.source_dir.join(&k.flux.path),
                &k.objects,
            ));
        }
        let results: Vec<(String, Vec<String>)> = jobs
            .par_iter()
            .map(|(label, object, variables, path, objects)| {
                let diffs = match flux_build(&flux, &root, object, variables, path) {
                    Ok(theirs) => {
                        let mut d = compare(objects, &theirs);
                        d.extend(check_written(label, objects));
                        d
                    }
                    Err(e) => vec![format!("flux failed: {e}")],
                };
                (label.clone(), diffs)
            })
            .collect();
        for (label, diffs) in results {
            real += 1;
            if !diffs.is_empty() {
                failures.push(format!("real tree {label}:\n{}", diffs.join("\n")));
            }
        }
    }
    // Written to the process's stderr, past the test harness's capture, so
    // that `cargo xtask test` (and CI) show the corpus size.
    let _ = writeln!(
        std::io::stderr(),
        "flux agreement corpus: {} small Kustomizations + {real} Kustomizations of the real tree = {}",
        corpus.len(),
        corpus.len() + real
    );
    assert_eq!(corpus.len(), 69, "the corpus cases");
    // 3 clusters x (flux-system, variables, infrastructure-controllers,
    // infrastructure, apps).
    assert_eq!(real, 15, "every Kustomization of the real tree");
    assert!(
        failures.is_empty(),
        "{} difference(s) with flux:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
