//! Which values keys a chart knows: helm ignores a key that no template
//! reads, so a misspelled one (`replicaCont`) deploys the default in silence.
//!
//! A key is known when the chart's `values.yaml` has it at that place, or its
//! `values.schema.json` lists it under `properties`. Below a place the chart
//! leaves open (an empty map such as `podAnnotations: {}`, a schema object
//! without `properties` or with `additionalProperties`), every key is
//! accepted, as are `global` and the keys named after subcharts (their own
//! values are not looked into). A schema with `additionalProperties: false`
//! closes a place even where `values.yaml` leaves it empty.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::{HelmError, io_error};

/// What a chart declares about its values.
#[derive(Debug, Clone, Default)]
pub struct ChartKeys {
    /// `values.yaml`, as JSON.
    pub defaults: Value,
    /// `values.schema.json`, when the chart has one.
    pub schema: Option<Value>,
    /// Subchart names and aliases (`charts/*`, `dependencies`).
    pub subcharts: BTreeSet<String>,
    /// Whether the chart (or a subchart) keeps CRDs in `crds/`, the only
    /// CRDs helm-controller's `install.crds`/`upgrade.crds` policy governs.
    pub has_crds_dir: bool,
}

/// A values key the chart does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// Dotted path of the key (`config.oidc.secrt`).
    pub path: String,
    /// The last segment of `path`.
    pub key: String,
    /// The known sibling closest to `key`, when one is close enough.
    pub closest: Option<String>,
}

impl UnknownKey {
    /// The warning text.
    pub fn message(&self) -> String {
        let mut m = format!(
            "values key `{}` is not in the chart's values.yaml or values.schema.json: helm ignores it",
            self.path
        );
        if let Some(c) = &self.closest {
            let parent = self.path.rsplit_once('.').map(|(p, _)| p);
            let full = match parent {
                Some(p) => format!("{p}.{c}"),
                None => c.clone(),
            };
            m.push_str(&format!("; did you mean `{full}`?"));
        }
        m
    }
}

impl ChartKeys {
    /// Reads `values.yaml`, `values.schema.json` and the subchart names of a
    /// packaged chart (`.tgz`).
    pub fn of_archive(archive: &Path) -> Result<Self, HelmError> {
        let file = std::fs::File::open(archive).map_err(io_error(archive))?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut keys = ChartKeys::default();
        let mut chart_yaml = None;
        for entry in tar.entries().map_err(io_error(archive))? {
            let mut entry = entry.map_err(io_error(archive))?;
            let path = entry.path().map_err(io_error(archive))?.into_owned();
            let parts: Vec<String> = path
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            // `<chart>/values.yaml`, `<chart>/charts/<sub>/...`.
            let rel: Vec<&str> = parts.iter().skip(1).map(String::as_str).collect();
            match rel.as_slice() {
                ["values.yaml"] => {
                    let text = read_text(&mut entry, archive)?;
                    let v: Value = serde_yaml::from_str(&text)?;
                    keys.defaults = if v.is_null() {
                        Value::Object(Default::default())
                    } else {
                        v
                    };
                }
                ["values.schema.json"] => {
                    let text = read_text(&mut entry, archive)?;
                    keys.schema = Some(serde_json::from_str(&text)?);
                }
                ["Chart.yaml"] => chart_yaml = Some(read_text(&mut entry, archive)?),
                ["crds", _, ..] | ["charts", _, "crds", _, ..] => keys.has_crds_dir = true,
                ["charts", sub, ..] => {
                    let name = sub.strip_suffix(".tgz").unwrap_or(sub);
                    // `charts/<name>-<version>.tgz`: the name is what precedes the version.
                    let name = match name.rsplit_once('-') {
                        Some((n, v))
                            if sub.ends_with(".tgz")
                                && v.starts_with(|c: char| c.is_ascii_digit()) =>
                        {
                            n
                        }
                        _ => name,
                    };
                    keys.subcharts.insert(name.to_string());
                }
                _ => {}
            }
        }
        if let Some(text) = chart_yaml {
            let chart: Value = serde_yaml::from_str(&text)?;
            for d in chart
                .get("dependencies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for k in ["name", "alias"] {
                    if let Some(n) = d.get(k).and_then(Value::as_str) {
                        keys.subcharts.insert(n.to_string());
                    }
                }
            }
        }
        Ok(keys)
    }

    /// Every key of `values` (a release's composed values) that the chart
    /// does not know, in the order they are written.
    pub fn unknown(&self, values: &Value) -> Vec<UnknownKey> {
        let mut out = Vec::new();
        if let Value::Object(map) = values {
            for (k, v) in map {
                if k == "global" || self.subcharts.contains(k) {
                    continue;
                }
                walk(
                    k,
                    v,
                    Some(&self.defaults),
                    self.schema.as_ref(),
                    &mut String::new(),
                    &mut out,
                );
            }
        }
        out
    }
}

/// What `release`'s chart declares and the values the release gives it
/// (its `valuesFrom` and `spec.values`, composed as helm-controller does).
/// The chart is fetched as for rendering (from the cache when it is there).
pub fn release_chart_keys(
    release: &Value,
    objects: &[&Value],
    opts: &super::HelmOptions,
) -> Result<(ChartKeys, Value), HelmError> {
    let request = super::chart_request(release, objects)?;
    let values = super::values::compose(release, objects, opts.decryptor.as_ref())?;
    let archive = super::chart::fetch(&opts.helm_bin()?, &request, &opts.cache_dir)?;
    Ok((ChartKeys::of_archive(&archive)?, values))
}

/// The CRD policies (`spec.install.crds`, `spec.upgrade.crds`) a release
/// sets to create or replace CRDs although its chart has no `crds/` folder:
/// they do nothing (CRDs that are templates are applied like any object).
pub fn idle_crd_policies(release: &Value, chart: &ChartKeys) -> Vec<String> {
    if chart.has_crds_dir {
        return Vec::new();
    }
    ["install", "upgrade"]
        .into_iter()
        .filter(|action| {
            release
                .pointer(&format!("/spec/{action}/crds"))
                .and_then(Value::as_str)
                .is_some_and(|p| p != "Skip")
        })
        .map(|action| format!("spec.{action}.crds"))
        .collect()
}

fn read_text(entry: &mut impl std::io::Read, archive: &Path) -> Result<String, HelmError> {
    let mut text = String::new();
    entry.read_to_string(&mut text).map_err(io_error(archive))?;
    Ok(text)
}

/// How a place (a map of values) treats keys.
enum Place<'a> {
    /// Any key, not looked into.
    Open,
    /// These keys (from values.yaml and the schema), and only these.
    Closed(BTreeSet<&'a str>),
}

/// What `defaults` (the values.yaml value at this place) and `schema` (the
/// schema of this place) say. A schema that lists `properties` is taken as
/// the list of keys (JSON Schema would allow others unless
/// `additionalProperties: false`, but a chart that lists them means them).
fn place<'a>(defaults: Option<&'a Value>, schema: Option<&'a Value>) -> Place<'a> {
    let props = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    let additional = schema.and_then(|s| s.get("additionalProperties"));
    let default_map = defaults.and_then(Value::as_object);
    let mut known: BTreeSet<&str> = BTreeSet::new();
    if let Some(m) = default_map {
        known.extend(m.keys().map(String::as_str));
    }
    if let Some(p) = props {
        known.extend(p.keys().map(String::as_str));
    }
    if additional == Some(&Value::Bool(false)) {
        return Place::Closed(known);
    }
    let schema_open =
        additional.is_some() || schema.is_some_and(|s| s.get("patternProperties").is_some());
    if schema_open {
        return Place::Open;
    }
    if props.is_some() || default_map.is_some_and(|m| !m.is_empty()) {
        return Place::Closed(known);
    }
    Place::Open
}

fn walk(
    key: &str,
    value: &Value,
    parent_defaults: Option<&Value>,
    parent_schema: Option<&Value>,
    path: &mut String,
    out: &mut Vec<UnknownKey>,
) {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    match place(parent_defaults, parent_schema) {
        Place::Open => {}
        Place::Closed(known) if !known.contains(key) => {
            out.push(UnknownKey {
                path: path.clone(),
                key: key.to_string(),
                closest: closest(key, &known),
            });
        }
        Place::Closed(_) => {
            if let Value::Object(children) = value {
                let defaults = parent_defaults.and_then(|d| d.get(key));
                let schema = parent_schema
                    .and_then(|s| s.get("properties"))
                    .and_then(|p| p.get(key));
                // A place values.yaml does not describe as a map and the
                // schema does not describe at all is the chart's to read freely.
                if defaults.is_some_and(Value::is_object) || schema.is_some() {
                    for (k, v) in children {
                        walk(k, v, defaults, schema, path, out);
                    }
                }
            }
        }
    }
    path.truncate(len);
}

/// The known key closest to `key` by edit distance (case-insensitive), when
/// it is within a third of the key's length (at least 2 edits).
fn closest(key: &str, known: &BTreeSet<&str>) -> Option<String> {
    let limit = (key.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (distance(&key.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k.to_string())
}

/// Levenshtein distance, with a swap of two neighbours counting as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chart(defaults: Value, schema: Option<Value>) -> ChartKeys {
        ChartKeys {
            defaults,
            schema,
            subcharts: ["sub".to_string()].into(),
            has_crds_dir: false,
        }
    }

    #[test]
    fn misspelled_keys_are_found_with_the_closest_known_one() {
        let c = chart(
            json!({"replicaCount": 1, "config": {"oidc": {"secret": {"create": true}}},
                   "podAnnotations": {}, "image": {"tag": ""}}),
            None,
        );
        let found = c.unknown(&json!({
            "replicaCont": 2,
            "config": {"oidc": {"secrt": {"create": false}}},
            "podAnnotations": {"any": "thing"},
            "image": {"tag": "1", "registry": "x"},
            "global": {"whatever": 1},
            "sub": {"anything": true},
            "completelyDifferent": 1
        }));
        let got: Vec<(String, Option<String>)> = found
            .iter()
            .map(|u| (u.path.clone(), u.closest.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("replicaCont".to_string(), Some("replicaCount".to_string())),
                ("config.oidc.secrt".to_string(), Some("secret".to_string())),
                ("image.registry".to_string(), None),
                ("completelyDifferent".to_string(), None),
            ]
        );
        assert_eq!(
            found[1].message(),
            "values key `config.oidc.secrt` is not in the chart's values.yaml or values.schema.json: helm ignores it; did you mean `config.oidc.secret`?"
        );
    }

    #[test]
    fn the_schema_adds_keys_and_can_close_an_empty_place() {
        let schema = json!({"type": "object", "properties": {
            "extra": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": false, "properties": {"team": {}}},
            "free": {"type": "object", "additionalProperties": {"type": "string"}}
        }});
        let c = chart(json!({"labels": {}, "free": {}}), Some(schema));
        let found = c.unknown(
            &json!({"extra": "x", "labels": {"team": "a", "tem": "b"}, "free": {"k": "v"}}),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "labels.tem");
        assert_eq!(found[0].closest.as_deref(), Some("team"));
    }

    #[test]
    fn crd_policies_are_idle_without_a_crds_folder() {
        let release =
            json!({"spec": {"install": {"crds": "CreateReplace"}, "upgrade": {"crds": "Skip"}}});
        let mut c = chart(json!({}), None);
        assert_eq!(idle_crd_policies(&release, &c), ["spec.install.crds"]);
        c.has_crds_dir = true;
        assert_eq!(idle_crd_policies(&release, &c), Vec::<String>::new());
        assert_eq!(
            idle_crd_policies(&json!({"spec": {}}), &chart(json!({}), None)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn distance_counts_a_swap_as_one_edit() {
        assert_eq!(distance("replicaCount", "replicaCont"), 1);
        assert_eq!(distance("secret", "secert"), 1);
        assert_eq!(distance("abc", "xyz"), 3);
    }
}
