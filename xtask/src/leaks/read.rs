//! Reading a file the way kustomize reads it: whatever its encoding (UTF-8
//! with or without a byte-order mark, UTF-16 either way), as JSON or as a
//! YAML stream split at every line that starts with `---` (kustomize's own
//! separator rule: `---#` and `---<tab>` split too), with `List` kinds
//! unpacked into their items.

use serde_json::Value;

/// One object of a file: the line its document starts on (1-based) and,
/// for an item of a List, which item.
#[derive(Debug, Clone)]
pub struct Object {
    pub line: usize,
    pub value: Value,
    /// `items[2]` for the third item of a List, nested ones joined.
    pub item: Option<String>,
}

/// A document that could not be read, at its first line.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub line: usize,
    pub message: String,
}

/// The text of a file, decoded as kustomize's reader would see it. `None`
/// for bytes that are no text at all (binary).
pub fn decode(bytes: &[u8]) -> Option<String> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return Some(String::from_utf8_lossy(rest).into_owned());
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return Some(utf16(rest, u16::from_le_bytes));
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return Some(utf16(rest, u16::from_be_bytes));
    }
    // UTF-16 without a mark: ASCII text has a zero in every other byte
    // (valid UTF-8 too, so this comes first; text has no NUL otherwise).
    if bytes.len() >= 4 && bytes.len().is_multiple_of(2) && bytes.contains(&0) {
        let zeros_odd = bytes.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
        let zeros_even = bytes.iter().step_by(2).filter(|b| **b == 0).count();
        let half = bytes.len() / 2;
        if zeros_odd * 10 >= half * 9 {
            return Some(utf16(bytes, u16::from_le_bytes));
        }
        if zeros_even * 10 >= half * 9 {
            return Some(utf16(bytes, u16::from_be_bytes));
        }
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Some(text.to_string());
    }
    // Mostly text with a few bad bytes is still read; a binary is not.
    let text = String::from_utf8_lossy(bytes);
    let bad = text.chars().filter(|c| *c == '\u{FFFD}').count();
    (bad * 20 < text.chars().count().max(1)).then(|| text.into_owned())
}

fn utf16(bytes: &[u8], word: fn([u8; 2]) -> u16) -> String {
    let words: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| word([pair[0], pair[1]]))
        .collect();
    String::from_utf16_lossy(&words)
}

/// Every object of the text, Lists unpacked, and the documents that could
/// not be read.
pub fn objects(text: &str) -> (Vec<Object>, Vec<Unreadable>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON (kustomize accepts it), which may indent with tabs YAML refuses.
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            let line = text.len() - trimmed.len();
            let line = text[..line].matches('\n').count() + 1;
            unpack(value, line, None, &mut out);
            return (out, bad);
        }
    }
    for (start, chunk) in documents(text) {
        match flux_render::yaml_value::parse_document(&chunk) {
            Ok(None) => {}
            Ok(Some(value)) => unpack(value, start, None, &mut out),
            Err(e) => bad.push(Unreadable {
                line: start,
                message: e.to_string(),
            }),
        }
    }
    (out, bad)
}

/// The documents of a YAML stream with their first line: split at every
/// line that starts with `---` (kustomize splits there, whatever follows)
/// and at `...`.
pub fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (idx, line) in text.split('\n').enumerate() {
        let bare = line.trim_end_matches('\r');
        if bare.starts_with("---") || bare == "..." {
            docs.push((start, std::mem::take(&mut current)));
            start = idx + 2;
            // `--- key: value` starts a document on the marker's line.
            let rest = bare[3.min(bare.len())..].trim_start();
            if bare.starts_with("---") && !rest.is_empty() && !rest.starts_with('#') {
                current.push_str(rest);
                current.push('\n');
                start = idx + 1;
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((start, current));
    docs.retain(|(_, d)| !d.trim().is_empty());
    docs
}

/// A `*List` with `items` becomes its items, as kustomize unpacks them.
fn unpack(value: Value, line: usize, item: Option<String>, out: &mut Vec<Object>) {
    match value {
        Value::Array(values) => {
            // A JSON array of objects: each is read on its own.
            for (i, v) in values.into_iter().enumerate() {
                let at = join(&item, &format!("[{i}]"));
                unpack(v, line, Some(at), out);
            }
        }
        Value::Object(ref map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            let Value::Object(mut map) = value else {
                unreachable!("matched an object")
            };
            let Some(Value::Array(items)) = map.remove("items") else {
                unreachable!("matched items")
            };
            for (i, v) in items.into_iter().enumerate() {
                let at = join(&item, &format!("items[{i}]"));
                unpack(v, line, Some(at), out);
            }
        }
        value => out.push(Object { line, value, item }),
    }
}

fn join(prefix: &Option<String>, part: &str) -> String {
    match prefix {
        Some(p) => format!("{p}.{part}"),
        None => part.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        let (objects, bad) = objects(text);
        assert!(bad.is_empty(), "{bad:?}");
        objects
            .iter()
            .map(|o| o.value["kind"].as_str().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn every_separator_kustomize_splits_at_splits_here() {
        for sep in ["---", "--- ", "---\t", "---#x", "--- # x", "---\r"] {
            let text = format!("kind: A\n{sep}\nkind: Secret\n");
            assert_eq!(kinds(&text), ["A", "Secret"], "{sep:?}");
        }
        let (objects, _) = objects("kind: A\n--- {kind: Secret}\n");
        assert_eq!(objects[1].value["kind"], "Secret");
        assert_eq!(objects[1].line, 2);
    }

    #[test]
    fn lists_are_unpacked_however_deep() {
        let text = "kind: List\nitems:\n- kind: SecretList\n  items:\n  - kind: Secret\n";
        let (objects, _) = objects(text);
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].value["kind"], "Secret");
        assert_eq!(objects[0].item.as_deref(), Some("items[0].items[0]"));
        assert_eq!(
            kinds("{\"kind\":\"List\",\"items\":[{\"kind\":\"Secret\"}]}"),
            ["Secret"]
        );
        assert_eq!(kinds("{\n\t\"kind\": \"Secret\"\n}"), ["Secret"]);
    }

    #[test]
    fn encodings_are_decoded() {
        let text = "kind: Secret\n";
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode(&bom).unwrap(), text);
        for (mark, word) in [
            (Some([0xFF, 0xFE]), u16::to_le_bytes as fn(u16) -> [u8; 2]),
            (Some([0xFE, 0xFF]), u16::to_be_bytes),
            (None, u16::to_le_bytes),
            (None, u16::to_be_bytes),
        ] {
            let mut bytes: Vec<u8> = mark.map(|m| m.to_vec()).unwrap_or_default();
            bytes.extend(text.encode_utf16().flat_map(word));
            assert_eq!(decode(&bytes).unwrap(), text, "{mark:?}");
        }
        assert!(decode(&[0x89, b'P', b'N', b'G', 0xFF, 0xFE, 0x00, 0x81, 0x9F]).is_none());
    }
}
