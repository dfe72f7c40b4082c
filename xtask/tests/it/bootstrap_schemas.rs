//! What `bootstrap` generates and applies to a cluster is checked against the
//! same schemas as `validate` (strict): the sops-age Secret, the
//! local-registry-hosting ConfigMap, and the root sync objects.

use crate::common;

use k8s_schema::{Gvk, Lookup, Registry, RegistryOptions};
use serde_json::Value;
use xtask::cluster::{age_key, bootstrap, registry};

fn registry() -> Option<Registry> {
    let schemas = common::root().join(".schemas");
    if !schemas.join("kubernetes").is_dir() {
        assert!(
            !common::tools_required(),
            ".schemas/ is empty: run `cargo xtask validate --fetch-schemas`"
        );
        eprintln!("SKIP: .schemas/ is empty; `cargo xtask validate --fetch-schemas` fills it");
        return None;
    }
    Some(
        Registry::load(RegistryOptions {
            locations: vec![schemas.display().to_string()],
            base: common::root(),
            kubernetes_version: k8s_schema::DEFAULT_KUBERNETES_VERSION.into(),
            cache_dir: None,
        })
        .unwrap(),
    )
}

fn assert_valid(registry: &Registry, object: &Value) {
    let gvk = Gvk::of(object).expect("apiVersion and kind");
    let Lookup::Found(compiled) = registry.get(&gvk) else {
        panic!("no schema for {gvk:?}");
    };
    let errors = k8s_schema::validate(&compiled, object, true);
    assert!(errors.is_empty(), "{gvk:?}: {errors:?}\n{object:#}");
}

#[test]
fn generated_objects_validate_strictly() {
    let Some(registry) = registry() else {
        return;
    };
    let (key, _) = sops::generate_identity();
    assert_valid(&registry, &age_key::sops_age_secret(&[key]));
    assert_valid(&registry, &registry::local_registry_hosting(5050));
    let sync = bootstrap::root_sync("local", "latest");
    assert_eq!(sync.len(), 2);
    for object in &sync {
        assert_valid(&registry, object);
    }
}

/// A schema violation in a generated object would be caught: the check is not
/// vacuous.
#[test]
fn a_broken_generated_object_is_rejected() {
    let Some(registry) = registry() else {
        return;
    };
    let mut sync = bootstrap::root_sync("local", "latest");
    sync[0]["spec"]["insecure"] = Value::String("yes".into());
    let gvk = Gvk::of(&sync[0]).unwrap();
    let Lookup::Found(compiled) = registry.get(&gvk) else {
        panic!("no schema for {gvk:?}");
    };
    assert!(!k8s_schema::validate(&compiled, &sync[0], true).is_empty());
}
