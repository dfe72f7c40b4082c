//! A small line diff: common prefix and suffix, then an LCS over the middle,
//! printed as unified-diff hunks.

/// One line of a line-level edit script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Equal(&'a str),
    Delete(&'a str),
    Insert(&'a str),
}

/// Above this many cells the middle is shown as a block replace instead of an LCS.
const MAX_LCS_CELLS: usize = 4_000_000;

/// The edit script that turns `a` into `b`, line by line.
pub fn edit_script<'a>(a: &'a str, b: &'a str) -> Vec<Op<'a>> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops: Vec<Op> = a[..prefix].iter().map(|l| Op::Equal(l)).collect();
    if am.len().saturating_mul(bm.len()) <= MAX_LCS_CELLS {
        ops.extend(lcs(am, bm));
    } else {
        ops.extend(am.iter().map(|l| Op::Delete(l)));
        ops.extend(bm.iter().map(|l| Op::Insert(l)));
    }
    ops.extend(a[a.len() - suffix..].iter().map(|l| Op::Equal(l)));
    ops
}

fn lcs<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let (n, m) = (a.len(), b.len());
    // table[i][j] = LCS length of a[i..], b[j..]
    let width = m + 1;
    let mut table = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * width + j] = if a[i] == b[j] {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n && j < m {
        if a[i] == b[j] {
            ops.push(Op::Equal(a[i]));
            i += 1;
            j += 1;
        } else if table[(i + 1) * width + j] >= table[i * width + j + 1] {
            ops.push(Op::Delete(a[i]));
            i += 1;
        } else {
            ops.push(Op::Insert(b[j]));
            j += 1;
        }
    }
    ops.extend(a[i..].iter().map(|l| Op::Delete(l)));
    ops.extend(b[j..].iter().map(|l| Op::Insert(l)));
    ops
}

/// A unified diff of `a` and `b` (hunks only, no file header), with `context`
/// lines around each change. Empty when they are equal.
pub fn unified(a: &str, b: &str, context: usize) -> String {
    let ops = edit_script(a, b);
    // Line numbers (1-based) before each op, in a and b.
    let mut a_no = Vec::with_capacity(ops.len() + 1);
    let mut b_no = Vec::with_capacity(ops.len() + 1);
    let (mut x, mut y) = (1usize, 1usize);
    for op in &ops {
        a_no.push(x);
        b_no.push(y);
        match op {
            Op::Equal(_) => {
                x += 1;
                y += 1;
            }
            Op::Delete(_) => x += 1,
            Op::Insert(_) => y += 1,
        }
    }
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Equal(_)))
        .map(|(i, _)| i)
        .collect();
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(context);
        let mut last = changed[k];
        while k + 1 < changed.len() && changed[k + 1] - last <= 2 * context + 1 {
            k += 1;
            last = changed[k];
        }
        k += 1;
        let end = (last + context + 1).min(ops.len());
        let slice = &ops[start..end];
        let a_len = slice.iter().filter(|o| !matches!(o, Op::Insert(_))).count();
        let b_len = slice.iter().filter(|o| !matches!(o, Op::Delete(_))).count();
        let a_start = if a_len == 0 {
            a_no[start] - 1
        } else {
            a_no[start]
        };
        let b_start = if b_len == 0 {
            b_no[start] - 1
        } else {
            b_no[start]
        };
        out.push_str(&format!("@@ -{a_start},{a_len} +{b_start},{b_len} @@\n"));
        for op in slice {
            let (sign, line) = match op {
                Op::Equal(l) => (' ', l),
                Op::Delete(l) => ('-', l),
                Op::Insert(l) => ('+', l),
            };
            out.push(sign);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_inputs_give_nothing() {
        assert_eq!(unified("a\nb\n", "a\nb\n", 3), "");
    }

    #[test]
    fn one_changed_line_with_context() {
        let a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let b = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified(a, b, 2),
            "@@ -3,5 +3,5 @@\n 3\n 4\n-5\n+five\n 6\n 7\n"
        );
    }

    #[test]
    fn distant_changes_make_two_hunks_and_near_ones_merge() {
        let a: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let b = a.replacen("2\n", "two\n", 1).replace("18\n", "eighteen\n");
        let out = unified(&a, &b, 1);
        assert_eq!(out.matches("@@ -").count(), 2, "{out}");
        let c = a.replacen("5\n", "five\n", 1).replacen("7\n", "seven\n", 1);
        assert_eq!(unified(&a, &c, 1).matches("@@ -").count(), 1);
    }

    #[test]
    fn insertion_into_empty_and_deletion() {
        assert_eq!(unified("", "x\n", 3), "@@ -0,0 +1,1 @@\n+x\n");
        assert_eq!(unified("x\ny\n", "y\n", 3), "@@ -1,2 +1,1 @@\n-x\n y\n");
    }
}
