//! What a run found and how it is shown: findings with their check and
//! severity, the report, and its text, JSON and GitHub annotation forms.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Which check produced a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Yaml,
    Kustomize,
    Schema,
    Flux,
    Secrets,
    Helm,
    Address,
    Policy,
    /// The real API server's verdict (`--server`).
    Server,
}

impl Check {
    pub fn name(self) -> &'static str {
        match self {
            Check::Yaml => "yaml",
            Check::Kustomize => "kustomize",
            Check::Schema => "schema",
            Check::Flux => "flux",
            Check::Secrets => "secrets",
            Check::Helm => "helm",
            Check::Address => "address",
            Check::Policy => "policy",
            Check::Server => "server",
        }
    }
}

/// One problem, where it is, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub check: Check,
    /// Relative to the root, with `/`.
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// `Kind namespace/name` of the object concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// JSON path inside the object (schema findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn error(check: Check, file: &str, line: Option<usize>, message: String) -> Self {
        Self {
            severity: Severity::Error,
            check,
            file: file.to_string(),
            line,
            column: None,
            object: None,
            path: None,
            message,
        }
    }

    pub fn with_object(mut self, object: String) -> Self {
        self.object = Some(object);
        self
    }

    /// `object: path: message` as printed.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if let Some(o) = &self.object {
            s.push_str(o);
            s.push_str(": ");
        }
        if let Some(p) = &self.path {
            s.push_str(p);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        s
    }
}

/// Everything a run found, plus counts for the summary.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub files: usize,
    pub kustomize_builds: usize,
    /// kustomize processes run (builds not served by the cache).
    #[serde(skip)]
    pub kustomize_runs: usize,
    /// Distinct objects judged in this run (the others' verdicts were kept).
    #[serde(skip)]
    pub objects_judged: usize,
    pub clusters: Vec<String>,
    pub flux_kustomizations: usize,
    pub objects_checked: usize,
    /// Objects with no schema (apiVersion kind → count).
    pub missing_schemas: BTreeMap<String, usize>,
    /// What `--server` asked: objects sent, refused, and how long it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSummary>,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// The `--server` part of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSummary {
    pub objects: usize,
    pub rejected: usize,
    pub crds: usize,
    pub seconds: f64,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }

    pub fn summary(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        format!(
            "validate: {} checked ({}, {}, {}): {}, {} in {:.2}s",
            plural(self.objects_checked, "object"),
            plural(self.files, "file"),
            plural(self.kustomize_builds, "kustomize build"),
            plural(self.clusters.len(), "cluster"),
            plural(self.errors(), "error"),
            plural(self.warnings(), "warning"),
            self.elapsed.as_secs_f64()
        )
    }

    /// Findings grouped by file, then the summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
        for f in &self.findings {
            by_file.entry(&f.file).or_default().push(f);
        }
        for (file, list) in by_file {
            out.push_str(if file.is_empty() { "(tree)" } else { file });
            out.push('\n');
            for f in list {
                let pos = match (f.line, f.column) {
                    (Some(l), Some(c)) => format!("{l}:{c}"),
                    (Some(l), None) => format!("{l}"),
                    _ => "-".into(),
                };
                let sev = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                out.push_str(&format!(
                    "  {pos:>7}  {sev:<7}  {:<9}  {}\n",
                    f.check.name(),
                    f.text()
                ));
            }
        }
        if !self.missing_schemas.is_empty() {
            out.push_str("objects without a schema:\n");
            for (k, n) in &self.missing_schemas {
                out.push_str(&format!("  {k}: {n}\n"));
            }
        }
        if let Some(s) = &self.server {
            out.push_str(&format!(
                "server: {} objects sent to kube-apiserver (dry-run, strict) after {} CRDs: {} refused in {:.1}s\n",
                s.objects, s.crds, s.rejected, s.seconds
            ));
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    pub fn render_json(&self) -> String {
        let v = serde_json::json!({
            "findings": self.findings,
            "summary": {
                "files": self.files,
                "kustomize_builds": self.kustomize_builds,
                "clusters": self.clusters,
                "flux_kustomizations": self.flux_kustomizations,
                "objects_checked": self.objects_checked,
                "errors": self.errors(),
                "warnings": self.warnings(),
                "missing_schemas": self.missing_schemas,
                "seconds": self.elapsed.as_secs_f64(),
                "server": self.server,
            }
        });
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    }

    /// GitHub Actions workflow commands, one per finding.
    pub fn github_annotations(&self) -> String {
        let esc = |s: &str| {
            s.replace('%', "%25")
                .replace('\r', "%0D")
                .replace('\n', "%0A")
        };
        let esc_prop = |s: &str| esc(s).replace(':', "%3A").replace(',', "%2C");
        let mut out = String::new();
        for f in &self.findings {
            let cmd = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let mut props = vec![format!("file={}", esc_prop(&f.file))];
            if let Some(l) = f.line {
                props.push(format!("line={l}"));
            }
            if let Some(c) = f.column {
                props.push(format!("col={c}"));
            }
            props.push(format!(
                "title={}",
                esc_prop(&format!("validate {}", f.check.name()))
            ));
            out.push_str(&format!(
                "::{cmd} {}::{}\n",
                props.join(","),
                esc(&f.text())
            ));
        }
        out
    }
}

/// Per-check counts of a report, for tests and the bench.
pub fn counts(report: &Report) -> HashMap<Check, usize> {
    let mut m = HashMap::new();
    for f in &report.findings {
        *m.entry(f.check).or_default() += 1;
    }
    m
}
