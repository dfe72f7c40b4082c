//! Storage: claims, volumes and classes
//! (k8s.io/kubernetes/pkg/apis/{core,storage}/validation).

use serde_json::Value;

use super::common::{one_of, quantity, strings, unsupported};
use super::{Out, at, is_qualified_name, obj, str_at};
use k8s_schema::Gvk;

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// `validatePersistentVolumeAccessModes`-style checks shared by claims and
/// volumes: at least one mode, known modes, ReadWriteOncePod alone.
fn access_modes(spec: &Value, path: &str, out: &mut Out) {
    let modes = strings(spec, "accessModes");
    let mp = format!("{path}.accessModes");
    if modes.is_empty() {
        out.add(
            mp.clone(),
            "Required value: at least 1 access mode is required",
        );
    }
    for m in &modes {
        if !ACCESS_MODES.contains(m) {
            out.add(mp.clone(), unsupported(m, &ACCESS_MODES));
        }
    }
    if modes.contains(&"ReadWriteOncePod") && modes.len() > 1 {
        out.add(
            mp,
            "Forbidden: may not use ReadWriteOncePod with other access modes",
        );
    }
}

/// `ValidatePersistentVolumeClaimSpec`: access modes, a positive storage
/// request, the volume mode.
pub(super) fn claim_spec(spec: &Value, path: &str, out: &mut Out) {
    access_modes(spec, path, out);
    let rp = format!("{path}.resources.requests");
    match spec.pointer("/resources/requests/storage") {
        None | Some(Value::Null) => {
            out.add(format!("{rp}[\"storage\"]"), "Required value");
        }
        Some(q) => {
            if let Some(v) = quantity(q)
                && v <= 0.0
            {
                out.add(
                    format!("{rp}[\"storage\"]"),
                    format!("Invalid value {q}: must be greater than zero"),
                );
            }
        }
    }
    one_of(
        str_at(spec, "volumeMode"),
        &["Block", "Filesystem"],
        &format!("{path}.volumeMode"),
        out,
    );
}

pub(super) fn pvc(_: &Gvk, object: &Value, out: &mut Out) {
    let empty = Value::Object(Default::default());
    claim_spec(at(object, "spec").unwrap_or(&empty), "spec", out);
}

/// The fields of a PersistentVolumeSpec that are not its volume source.
const PV_META: [&str; 8] = [
    "accessModes",
    "capacity",
    "claimRef",
    "mountOptions",
    "nodeAffinity",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "volumeMode",
];

/// `ValidatePersistentVolumeSpec`: capacity with storage, access modes,
/// exactly one source, the reclaim policy, node affinity for local volumes.
pub(super) fn pv(_: &Gvk, object: &Value, out: &mut Out) {
    let empty = Value::Object(Default::default());
    let spec = at(object, "spec").unwrap_or(&empty);
    access_modes(spec, "spec", out);
    match obj(spec, "capacity") {
        None => out.add("spec.capacity", "Required value"),
        Some(cap) => {
            if !cap.contains_key("storage") {
                out.add("spec.capacity[\"storage\"]", "Required value");
            }
            for (k, v) in cap {
                if k != "storage" {
                    out.add(
                        format!("spec.capacity[{k:?}]"),
                        unsupported(k, &["storage"]),
                    );
                } else if let Some(q) = quantity(v)
                    && q <= 0.0
                {
                    out.add(
                        "spec.capacity[\"storage\"]",
                        format!("Invalid value {v}: must be greater than zero"),
                    );
                }
            }
        }
    }
    let sources: Vec<&String> = spec
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| !PV_META.contains(&k.as_str()) && !v.is_null())
        .map(|(k, _)| k)
        .collect();
    match sources.len() {
        0 => out.add("spec", "Required value: must specify a volume type"),
        1 => {}
        _ => out.add(
            format!("spec.{}", sources[1]),
            "Forbidden: may not specify more than 1 volume type",
        ),
    }
    if sources.iter().any(|s| *s == "local") && spec.get("nodeAffinity").is_none_or(Value::is_null)
    {
        out.add(
            "spec.nodeAffinity",
            "Required value: Local volume requires node affinity",
        );
    }
    one_of(
        str_at(spec, "persistentVolumeReclaimPolicy"),
        &["Delete", "Recycle", "Retain"],
        "spec.persistentVolumeReclaimPolicy",
        out,
    );
    one_of(
        str_at(spec, "volumeMode"),
        &["Block", "Filesystem"],
        "spec.volumeMode",
        out,
    );
}

/// `ValidateStorageClass` (storage): a qualified provisioner, the reclaim
/// policy (no Recycle) and the binding mode.
pub(super) fn storage_class(_: &Gvk, object: &Value, out: &mut Out) {
    match str_at(object, "provisioner") {
        None | Some("") => out.add("provisioner", "Required value"),
        Some(p) if !is_qualified_name(&p.to_lowercase()) => out.add(
            "provisioner",
            format!("Invalid value {p:?}: must be a qualified name"),
        ),
        _ => {}
    }
    one_of(
        str_at(object, "reclaimPolicy"),
        &["Delete", "Retain"],
        "reclaimPolicy",
        out,
    );
    one_of(
        str_at(object, "volumeBindingMode"),
        &["Immediate", "WaitForFirstConsumer"],
        "volumeBindingMode",
        out,
    );
    if let Some(params) = obj(object, "parameters")
        && params.len() > 512
    {
        out.add("parameters", "Too many: must have at most 512 parameters");
    }
}
