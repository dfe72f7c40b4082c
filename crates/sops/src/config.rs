//! `.sops.yaml`: creation rules and their matching.

pub mod edit;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;

use super::SopsError;
use super::tree::Selection;

/// One `creation_rules` entry, as far as this engine uses it.
#[derive(Clone, Debug)]
pub struct CreationRule {
    pub path_regex: Option<String>,
    /// age recipients (`age:` string/list, or the single key group's `age`).
    pub age: Vec<String>,
    pub selection: Selection,
    pub mac_only_encrypted: bool,
    /// Why this engine cannot use the rule (pgp/kms only, Shamir, ...); it is
    /// still matched, and using it is an error.
    pub unsupported: Option<String>,
}

impl CreationRule {
    /// A rule for the given recipients and selection (tests, tools).
    pub fn new(age: Vec<String>, selection: Selection) -> Self {
        CreationRule {
            path_regex: None,
            age,
            selection,
            mac_only_encrypted: false,
            unsupported: None,
        }
    }
}

/// Why a `.sops.yaml` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Read(std::io::Error),
    #[error(transparent)]
    Yaml(#[from] serde_yaml::Error),
    #[error(
        "creation rule {rule}: only one of unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex may be set"
    )]
    SeveralSelections { rule: usize },
    #[error("creation rule {rule}: invalid {field}: {source}")]
    Regex {
        rule: usize,
        field: &'static str,
        #[source]
        source: Box<regex_syntax::Error>,
    },
}

/// A rule's `path_regex`: its syntax is checked when the config is read,
/// and it is compiled on first use (a run that matches no path, such as a
/// gate whose verdicts are all kept, compiles none).
#[derive(Clone, Debug)]
struct PathRegex {
    pattern: String,
    compiled: OnceLock<Result<Regex, regex::Error>>,
}

impl PathRegex {
    fn new(rule: usize, pattern: String) -> Result<Self, ConfigError> {
        check_syntax(rule, "path_regex", &pattern)?;
        Ok(Self {
            pattern,
            compiled: OnceLock::new(),
        })
    }

    /// Whether `path` matches; a pattern that parses but is too large to
    /// compile (the only way left for it to fail) is an error.
    fn is_match(&self, path: &str) -> Result<bool, SopsError> {
        match self.compiled.get_or_init(|| Regex::new(&self.pattern)) {
            Ok(re) => Ok(re.is_match(path)),
            Err(e) => Err(SopsError::Unsupported {
                what: format!("the path_regex {:?} ({e})", self.pattern),
            }),
        }
    }
}

/// Parses `pattern` as the regex crate would, without compiling it.
fn check_syntax(rule: usize, field: &'static str, pattern: &str) -> Result<(), ConfigError> {
    regex_syntax::Parser::new()
        .parse(pattern)
        .map(|_| ())
        .map_err(|source| ConfigError::Regex {
            rule,
            field,
            source: Box::new(source),
        })
}

/// A parsed `.sops.yaml` (`Default`: no rules, for files opened without one).
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub rules: Vec<CreationRule>,
    regexes: Vec<Option<PathRegex>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrList {
    Str(String),
    List(Vec<String>),
}

#[derive(Deserialize, Default)]
struct RawGroup {
    #[serde(default)]
    age: Vec<String>,
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
struct RawRule {
    path_regex: Option<String>,
    age: Option<StrOrList>,
    #[serde(default)]
    key_groups: Vec<RawGroup>,
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<String>,
    encrypted_regex: Option<String>,
    unencrypted_comment_regex: Option<String>,
    encrypted_comment_regex: Option<String>,
    #[serde(default)]
    mac_only_encrypted: bool,
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    creation_rules: Vec<RawRule>,
}

impl Config {
    /// Searches `.sops.yaml` from `start` upward (SOPS_CONFIG overrides).
    pub fn find(start: &Path) -> Result<Option<(PathBuf, Config)>, SopsError> {
        if let Some(p) = std::env::var_os("SOPS_CONFIG") {
            let p = PathBuf::from(p);
            let c = Config::load(&p)?;
            return Ok(Some((p, c)));
        }
        let start = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        let mut dir = if start.is_file() {
            start.parent().map(Path::to_path_buf)
        } else {
            Some(start)
        };
        let mut n = 0;
        while let Some(d) = dir {
            let cand = d.join(".sops.yaml");
            if cand.is_file() {
                let c = Config::load(&cand)?;
                return Ok(Some((cand, c)));
            }
            n += 1;
            if n > 100 {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(None)
    }

    pub fn load(path: &Path) -> Result<Config, SopsError> {
        let config = std::fs::read_to_string(path)
            .map_err(ConfigError::Read)
            .and_then(|text| Config::parse(&text));
        config.map_err(|source| SopsError::Config {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_yaml::from_str(text)?;
        let mut rules = Vec::new();
        let mut regexes = Vec::new();
        for (i, r) in raw.creation_rules.into_iter().enumerate() {
            let mut age: Vec<String> = match r.age {
                Some(StrOrList::Str(s)) => s
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect(),
                Some(StrOrList::List(l)) => l.into_iter().map(|x| x.trim().to_string()).collect(),
                None => Vec::new(),
            };
            let mut unsupported = None;
            if r.key_groups.len() > 1 {
                unsupported = Some("several key_groups (Shamir secret sharing)".to_string());
            }
            let mut other_keys: Vec<String> = Vec::new();
            for g in r.key_groups {
                age.extend(g.age.into_iter().map(|x| x.trim().to_string()));
                other_keys.extend(g.other.into_keys());
            }
            other_keys.extend(r.other.into_keys().filter(|k| {
                [
                    "pgp",
                    "kms",
                    "gcp_kms",
                    "hckms",
                    "azure_keyvault",
                    "hc_vault_transit_uri",
                ]
                .contains(&k.as_str())
            }));
            if unsupported.is_none() && !other_keys.is_empty() {
                unsupported = Some(format!(
                    "key types other than age ({})",
                    other_keys.join(", ")
                ));
            }
            if r.unencrypted_comment_regex.is_some() || r.encrypted_comment_regex.is_some() {
                unsupported = Some("comment regex rules".to_string());
            }
            let mut sels = Vec::new();
            if let Some(x) = r.unencrypted_suffix {
                sels.push(Selection::UnencryptedSuffix(x))
            }
            if let Some(x) = r.encrypted_suffix {
                sels.push(Selection::EncryptedSuffix(x))
            }
            if let Some(x) = r.unencrypted_regex {
                sels.push(Selection::UnencryptedRegex(x))
            }
            if let Some(x) = r.encrypted_regex {
                sels.push(Selection::EncryptedRegex(x))
            }
            if sels.len() > 1 {
                return Err(ConfigError::SeveralSelections { rule: i });
            }
            let selection = sels
                .pop()
                .unwrap_or(Selection::UnencryptedSuffix("_unencrypted".into()));
            if let Selection::EncryptedRegex(x) | Selection::UnencryptedRegex(x) = &selection {
                check_syntax(i, "regex", x)?;
            }
            let re = match &r.path_regex {
                Some(p) if !p.is_empty() => Some(PathRegex::new(i, p.clone())?),
                _ => None,
            };
            regexes.push(re);
            rules.push(CreationRule {
                path_regex: r.path_regex,
                age,
                selection,
                mac_only_encrypted: r.mac_only_encrypted,
                unsupported,
            });
        }
        Ok(Config { rules, regexes })
    }

    /// The first rule whose `path_regex` matches `file` relative to `config_dir`.
    pub fn rule_for(&self, config_dir: &Path, file: &Path) -> Result<&CreationRule, SopsError> {
        let rel = relative_to(config_dir, file);
        for (rule, re) in self.rules.iter().zip(&self.regexes) {
            let hit = match re {
                None => true,
                Some(re) => re.is_match(&rel)?,
            };
            if hit {
                if let Some(why) = &rule.unsupported {
                    return Err(SopsError::Unsupported {
                        what: format!("the creation rule for {rel} uses {why}"),
                    });
                }
                return Ok(rule);
            }
        }
        Err(SopsError::NoMatchingCreationRule {
            file: file.to_path_buf(),
        })
    }

    /// The index of the first rule whose `path_regex` names `path`, e.g.
    /// `clusters/dev/` in `^clusters/dev/.+\.enc\.ya?ml$` (backslash escapes
    /// ignored): how an environment's rule is found.
    pub fn rule_index_naming(&self, path: &str) -> Result<usize, SopsError> {
        self.rules
            .iter()
            .position(|r| {
                r.path_regex
                    .as_deref()
                    .is_some_and(|p| p.replace('\\', "").contains(path))
            })
            .ok_or_else(|| SopsError::NoRuleFor {
                path: path.to_string(),
            })
    }

    /// The first matching rule, even one this engine cannot use.
    pub fn matching_rule(&self, config_dir: &Path, file: &Path) -> Option<&CreationRule> {
        let rel = relative_to(config_dir, file);
        self.rules
            .iter()
            .zip(&self.regexes)
            .find(|(_, re)| {
                re.as_ref()
                    .is_none_or(|re| re.is_match(&rel).unwrap_or(false))
            })
            .map(|(r, _)| r)
    }

    /// True when some rule's `path_regex` matches (used to list the managed files).
    pub fn matches(&self, config_dir: &Path, file: &Path) -> bool {
        self.rule_for(config_dir, file).is_ok()
    }
}

/// `file` relative to `dir` with `/` separators; absolute when outside.
pub(crate) fn relative_to(dir: &Path, file: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (d, f) = (abs(dir), abs(file));
    match f.strip_prefix(&d) {
        Ok(r) => r.to_string_lossy().replace('\\', "/"),
        Err(_) => f.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_pattern_is_refused_when_read_and_a_good_one_matches_when_used() {
        for (field, yaml) in [
            (
                "path_regex",
                "creation_rules:\n  - path_regex: '(unclosed'\n",
            ),
            (
                "regex",
                "creation_rules:\n  - path_regex: x\n    encrypted_regex: '[z-a]'\n",
            ),
        ] {
            let err = Config::parse(yaml).unwrap_err();
            assert!(
                matches!(err, ConfigError::Regex { rule: 0, field: f, .. } if f == field),
                "{err}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("creation rule 0: invalid {field}: "))
            );
        }
        let config = Config::parse(
            "creation_rules:\n  - path_regex: ^dev/.+\\.enc\\.yaml$\n    age: age1x\n  - age: age1y\n",
        )
        .unwrap();
        let dir = Path::new("/repo");
        let first = config
            .rule_for(dir, Path::new("/repo/dev/a.enc.yaml"))
            .unwrap();
        assert_eq!(first.age, ["age1x"]);
        let fallback = config
            .rule_for(dir, Path::new("/repo/prod/a.enc.yaml"))
            .unwrap();
        assert_eq!(fallback.age, ["age1y"]);
    }
}
