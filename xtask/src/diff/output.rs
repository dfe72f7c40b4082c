//! How a [`DiffReport`] is printed: text for a terminal, markdown for a PR
//! comment, JSON for tools.

use std::fmt::Write as _;

use super::{ChangeKind, ClusterDiff, DiffReport, ObjectChange};

/// GitHub's limit on the body of an issue or PR comment.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;
/// Room kept for the truncation note, closing tags and the workflow's marker.
const MARKDOWN_RESERVE: usize = 1_536;
/// Lines of one object's diff shown before it is cut.
const MAX_DIFF_LINES: usize = 200;

fn sign(kind: ChangeKind) -> char {
    match kind {
        ChangeKind::Added => '+',
        ChangeKind::Removed => '-',
        ChangeKind::Changed => '~',
    }
}

fn word(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Changed => "changed",
    }
}

fn capped(diff: &str, max_lines: usize) -> (String, usize) {
    let total = diff.lines().count();
    if total <= max_lines {
        return (diff.to_string(), 0);
    }
    let kept: String = diff
        .lines()
        .take(max_lines)
        .map(|l| format!("{l}\n"))
        .collect();
    (kept, total - max_lines)
}

fn cluster_summary(c: &ClusterDiff) -> String {
    format!(
        "{} added, {} removed, {} changed",
        c.count(ChangeKind::Added),
        c.count(ChangeKind::Removed),
        c.count(ChangeKind::Changed)
    )
}

/// Plain text, indented by cluster, group and object.
pub fn text(report: &DiffReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "base: {}", base_label(report));
    for c in &report.clusters {
        let _ = writeln!(out, "\ncluster {}: {}", c.cluster, cluster_summary(c));
        for note in &c.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        for g in &c.groups {
            let _ = writeln!(out, "  {}", g.group);
            for change in &g.changes {
                let _ = writeln!(
                    out,
                    "    {} {} ({})",
                    sign(change.change),
                    change.key,
                    word(change.change)
                );
                let (diff, more) = capped(&change.diff, MAX_DIFF_LINES);
                for line in diff.lines() {
                    let _ = writeln!(out, "        {line}");
                }
                if more > 0 {
                    let _ = writeln!(out, "        ... {more} more lines");
                }
            }
        }
    }
    let _ = writeln!(out, "\n{} object(s) differ", report.changes());
    out
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// `NAME (commit)`, or the commit alone when the name is (part of) it.
fn base_label(report: &DiffReport) -> String {
    let commit = short(&report.base_commit);
    if report.base_commit.is_empty() {
        report.base.clone()
    } else if report.base_commit.starts_with(&report.base) || report.base.starts_with(commit) {
        commit.to_string()
    } else {
        format!("{} ({commit})", report.base)
    }
}

/// One object's markdown: a bullet, and its diff in a fenced block.
fn markdown_change(change: &ObjectChange, with_diff: bool) -> String {
    let mut out = format!("- **{}** `{}`\n", word(change.change), change.key);
    if with_diff && !change.diff.is_empty() {
        let (diff, more) = capped(&change.diff, MAX_DIFF_LINES);
        let fence = if diff.contains("```") { "~~~~" } else { "```" };
        let _ = write!(out, "\n  {fence}diff\n");
        for line in diff.lines() {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out, "  {fence}");
        if more > 0 {
            let _ = writeln!(out, "  _... {more} more lines_");
        }
        out.push('\n');
    }
    out
}

/// Markdown for a PR comment: one collapsible section per cluster, cut with a
/// note before GitHub's comment limit.
pub fn markdown(report: &DiffReport) -> String {
    markdown_limited(report, GITHUB_COMMENT_LIMIT)
}

/// [`markdown`] with a chosen size limit (in bytes).
pub fn markdown_limited(report: &DiffReport, limit: usize) -> String {
    let budget = limit.saturating_sub(MARKDOWN_RESERVE);
    let mut out = String::new();
    let _ = writeln!(out, "### `cargo xtask diff`\n");
    let _ = writeln!(
        out,
        "Against **{}**: {} object(s) differ across {} cluster(s).\n",
        base_label(report),
        report.changes(),
        report
            .clusters
            .iter()
            .filter(|c| !c.groups.is_empty())
            .count()
    );
    let mut omitted = 0usize;
    let mut diffs_dropped = 0usize;
    for c in &report.clusters {
        if c.groups.is_empty() && c.notes.is_empty() {
            let _ = writeln!(out, "- cluster **{}**: no differences\n", c.cluster);
            continue;
        }
        let mut section = String::new();
        let _ = writeln!(
            section,
            "<details><summary>cluster <b>{}</b>: {}</summary>\n",
            c.cluster,
            cluster_summary(c)
        );
        for note in &c.notes {
            let _ = writeln!(section, "> {note}\n");
        }
        for g in &c.groups {
            let _ = writeln!(section, "#### {}\n", g.group);
            for change in &g.changes {
                let full = markdown_change(change, true);
                // The closing tag of this section must still fit.
                if out.len() + section.len() + full.len() + 16 <= budget {
                    section.push_str(&full);
                    continue;
                }
                let bare = markdown_change(change, false);
                if out.len() + section.len() + bare.len() + 16 <= budget {
                    section.push_str(&bare);
                    diffs_dropped += 1;
                } else {
                    omitted += 1;
                }
            }
            section.push('\n');
        }
        section.push_str("</details>\n\n");
        out.push_str(&section);
    }
    if omitted > 0 || diffs_dropped > 0 {
        let _ = writeln!(
            out,
            "> [!NOTE]\n> Truncated to fit GitHub's comment limit: {diffs_dropped} diff(s) left out and {omitted} object(s) not listed. Run `cargo xtask diff --base {} --all` locally for the whole diff.",
            report.base
        );
    }
    out
}

/// JSON: the report as data.
pub fn json(report: &DiffReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(base: &str) -> DiffReport {
        DiffReport {
            base: base.into(),
            base_commit: "0123456789abcdef0123456789abcdef01234567".into(),
            clusters: Vec::new(),
            elapsed: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn the_base_commit_is_printed_once() {
        assert!(
            text(&report("merge-base with origin/main"))
                .starts_with("base: merge-base with origin/main (0123456789ab)\n")
        );
        assert!(text(&report("0123456")).starts_with("base: 0123456789ab\n"));
        assert!(
            markdown(&report("HEAD~")).contains("Against **HEAD~ (0123456789ab)**:"),
            "{}",
            markdown(&report("HEAD~"))
        );
    }
}
