//! `validate --server` (issue 28): the real kube-apiserver's verdict on every
//! rendered object. On the repository's tree it finds nothing; a custom
//! resource that breaks its CRD's `x-kubernetes-validations` rule is refused
//! with the rule's message, at the object's file and line. (That it agrees
//! with the oracle on every object of the rules corpus is shown in
//! `validate_rules_corpus`.)
//!
//! Needs etcd and kube-apiserver built (`cargo xtask e2e --build-only`),
//! kubectl, kustomize and `.schemas/`; skips with a notice when they are
//! missing, unless XTASK_REQUIRE_TOOLS=1.

use std::io::Write as _;

use xtask::validate::{self, Check, Options};

use crate::common;

#[test]
fn the_repository_tree_passes_the_api_server() {
    let _one = crate::control_plane::exclusive();
    let Some(_) = crate::validate_oracle::oracle_prerequisites() else {
        return;
    };
    let root = common::root();
    let mut opts = Options::new(&root);
    opts.identities = None;
    opts.server = Some(root.clone());
    let report = validate::run(&opts).unwrap();
    let server = report.server.clone().expect("--server ran");
    let refused: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.check == Check::Server)
        .map(|f| format!("{}:{}: {}", f.file, f.line.unwrap_or(0), f.text()))
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "validate --server on the tree: {} objects, {} CRDs, {} refused, {:.1} s (offline and server together {:.1} s)",
        server.objects,
        server.crds,
        server.rejected,
        server.seconds,
        report.elapsed.as_secs_f64()
    );
    assert!(server.objects > 20, "{server:?}");
    assert!(
        refused.is_empty(),
        "the API server refuses:\n{}",
        refused.join("\n")
    );
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: scalers.example.devantler.tech
spec:
  group: example.devantler.tech
  scope: Namespaced
  names: {kind: Scaler, plural: scalers, singular: scaler, listKind: ScalerList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-validations:
                - rule: self.minReplicas <= self.maxReplicas
                  message: minReplicas must not exceed maxReplicas
              properties:
                minReplicas: {type: integer}
                maxReplicas: {type: integer}
"#;

#[test]
fn a_cel_rule_of_a_crd_refuses_its_instance() {
    let _one = crate::control_plane::exclusive();
    let Some(_) = crate::validate_oracle::oracle_prerequisites() else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = tree.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - object.yaml\n";
    write("apps/crd/object.yaml", CRD);
    write("apps/crd/kustomization.yaml", kustomization);
    let scaler = |name: &str, min: u32, max: u32| {
        format!(
            "apiVersion: example.devantler.tech/v1\nkind: Scaler\nmetadata:\n  name: {name}\n  namespace: team-a\nspec:\n  minReplicas: {min}\n  maxReplicas: {max}\n"
        )
    };
    write("apps/good/object.yaml", &scaler("good", 1, 3));
    write("apps/good/kustomization.yaml", kustomization);
    write("apps/bad/object.yaml", &scaler("bad", 5, 2));
    write("apps/bad/kustomization.yaml", kustomization);

    let mut opts = Options::new(tree.path());
    opts.identities = None;
    opts.schema_locations = vec![common::root().join(".schemas").display().to_string()];
    opts.server = Some(common::root());
    let report = validate::run(&opts).unwrap();
    let server: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.check == Check::Server)
        .collect();
    assert_eq!(server.len(), 1, "{:#?}", report.findings);
    let f = server[0];
    assert_eq!(f.file, "apps/bad/object.yaml");
    assert_eq!(f.line, Some(1));
    assert!(
        f.message
            .contains("minReplicas must not exceed maxReplicas"),
        "{}",
        f.message
    );
    // The offline checks cannot evaluate CEL: only the server sees it.
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.check == Check::Schema && f.file == "apps/bad/object.yaml"),
        "{:#?}",
        report.findings
    );
    let s = report.server.expect("--server ran");
    assert_eq!((s.objects, s.rejected), (3, 1), "{s:?}");
}
