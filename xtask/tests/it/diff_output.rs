//! The diff report's renderings: markdown sized for a PR comment, JSON as data.

use std::time::Duration;

use xtask::diff::output::{self, GITHUB_COMMENT_LIMIT};
use xtask::diff::{ChangeKind, ClusterDiff, DiffReport, GroupDiff, ObjectChange, ObjectKey};

fn report(objects: usize, diff_lines: usize) -> DiffReport {
    let diff: String = (0..diff_lines)
        .map(|i| format!("-  line{i}: old value\n+  line{i}: new value\n"))
        .collect();
    let changes: Vec<ObjectChange> = (0..objects)
        .map(|i| ObjectChange {
            key: ObjectKey {
                kind: "ConfigMap".into(),
                namespace: "demo".into(),
                name: format!("cm-{i}"),
            },
            change: ChangeKind::Changed,
            diff: format!("@@ -1,{diff_lines} +1,{diff_lines} @@\n{diff}"),
        })
        .collect();
    DiffReport {
        base: "origin/main".into(),
        base_commit: "0123456789abcdef".into(),
        clusters: ["dev", "local", "prod"]
            .iter()
            .map(|c| ClusterDiff {
                cluster: c.to_string(),
                groups: vec![GroupDiff {
                    group: "Kustomization apps".into(),
                    changes: changes.clone(),
                }],
                notes: vec![],
                errors: vec![],
            })
            .collect(),
        elapsed: Duration::ZERO,
    }
}

#[test]
fn small_markdown_has_a_collapsible_section_per_cluster_and_no_note() {
    let md = output::markdown(&report(2, 3));
    assert_eq!(md.matches("<details>").count(), 3);
    assert_eq!(md.matches("</details>").count(), 3);
    assert!(md.contains("```diff\n"));
    assert!(md.contains("cluster <b>local</b>: 0 added, 0 removed, 2 changed"));
    assert!(!md.contains("Truncated"));
}

#[test]
fn large_markdown_is_cut_below_githubs_limit_with_a_note_and_balanced_tags() {
    let md = output::markdown(&report(400, 60));
    assert!(md.len() <= GITHUB_COMMENT_LIMIT, "{}", md.len());
    assert!(md.contains("Truncated to fit GitHub's comment limit"));
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
    assert_eq!(md.matches("```").count() % 2, 0);
}

#[test]
fn json_carries_every_change() {
    let json: serde_json::Value = serde_json::from_str(&output::json(&report(2, 1))).unwrap();
    assert_eq!(json["clusters"].as_array().unwrap().len(), 3);
    assert_eq!(
        json["clusters"][0]["groups"][0]["changes"][1]["name"],
        "cm-1"
    );
    assert_eq!(
        json["clusters"][0]["groups"][0]["changes"][1]["change"],
        "changed"
    );
}
