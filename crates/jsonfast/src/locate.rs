//! Where an error of the typed decoding, or a breach of a length limit, is
//! in the document: the path of the value (`.users[3].email`) and its byte
//! offset. The tape keeps no offsets, so on the error path the document's
//! text is walked along the path. The document parsed, so the walk can
//! trust its grammar.

use simd_json::Node;

use crate::diagnose::ws;

/// A step of a path into a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The element of an array at this index.
    Index(usize),
    /// The member of an object with this key.
    Key(String),
    /// An enum's variant: the member with this key when the value is an
    /// object (`{"Variant": ...}`), the value itself when it is a string.
    Variant(String),
    /// A step serde does not name (a map's key being decoded).
    Unknown,
}

/// The steps of a serde_path_to_error path.
pub(crate) fn steps_of(path: &serde_path_to_error::Path) -> Vec<Step> {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|segment| match segment {
            Segment::Seq { index } => Step::Index(*index),
            Segment::Map { key } => Step::Key(key.clone()),
            Segment::Enum { variant } => Step::Variant(variant.clone()),
            _ => Step::Unknown,
        })
        .collect()
}

/// The path written as `.users[3].email`; a key that is not a plain name
/// (empty, or with other characters than letters, digits, `_` and `-`) is
/// written as a JSON string in brackets: `.a["b.c"][""]`. `None` for the
/// document itself.
pub(crate) fn write_path(steps: &[Step]) -> Option<String> {
    if steps.is_empty() {
        return None;
    }
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Key(name) | Step::Variant(name) => {
                let plain = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
                if plain {
                    out.push('.');
                    out.push_str(name);
                } else {
                    out.push('[');
                    quote(name, &mut out);
                    out.push(']');
                }
            }
            Step::Unknown => out.push_str(".?"),
        }
    }
    Some(out)
}

/// `s` as a JSON string.
fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The byte offset of the value at `steps` in `json` (a document that
/// parsed), or of the deepest value on the way that the document has
/// (serde's path can name what the text does not: a flattened struct, an
/// internally tagged enum; a key repeated on the way, which the path does
/// not tell apart), and whether that is the value at the end of the path.
pub(crate) fn find(json: &[u8], steps: &[Step]) -> (usize, bool) {
    let mut at = ws(json, 0);
    for step in steps {
        match step_into(json, at, step) {
            Some(next) => at = next,
            None => return (at, false),
        }
    }
    (at, true)
}

/// The value at `at`, in words for an error message: `` the number `300` ``,
/// `a string`, `` `true` ``.
pub(crate) fn describe_value(json: &[u8], at: usize) -> Option<String> {
    let words = match json.get(at)? {
        b'"' => "a string".to_string(),
        b'[' => "an array".to_string(),
        b'{' => "an object".to_string(),
        b't' => "`true`".to_string(),
        b'f' => "`false`".to_string(),
        b'n' => "`null`".to_string(),
        b'-' | b'0'..=b'9' => {
            let text = json.get(at..skip_value(json, at))?;
            let text = std::str::from_utf8(text).ok()?;
            if text.len() > 40 {
                format!("the number `{}...`", &text[..40])
            } else {
                format!("the number `{text}`")
            }
        }
        _ => return None,
    };
    Some(words)
}

/// The offset of the value that `step` leads to from the value at `at`.
fn step_into(json: &[u8], at: usize, step: &Step) -> Option<usize> {
    match (step, json.get(at)?) {
        (Step::Index(index), b'[') => {
            let mut i = ws(json, at + 1);
            for _ in 0..*index {
                if json.get(i) == Some(&b']') {
                    return None;
                }
                i = ws(json, skip_value(json, i));
                if json.get(i) != Some(&b',') {
                    return None;
                }
                i = ws(json, i + 1);
            }
            (json.get(i) != Some(&b']')).then_some(i)
        }
        (Step::Key(name) | Step::Variant(name), b'{') => {
            // The member with that key; none when the key is repeated (the
            // path does not say which of them failed).
            let mut found = None;
            let mut i = ws(json, at + 1);
            while json.get(i) == Some(&b'"') {
                let end = string_end(json, i);
                let key = unescape(json.get(i + 1..end.checked_sub(1)?)?);
                i = ws(json, ws(json, end) + 1);
                if key.as_deref() == Some(name.as_str()) {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(i);
                }
                i = ws(json, skip_value(json, i));
                if json.get(i) != Some(&b',') {
                    break;
                }
                i = ws(json, i + 1);
            }
            found
        }
        // A unit variant written as a string: the string is the value.
        (Step::Variant(_), b'"') => Some(at),
        _ => None,
    }
}

/// The byte offset of node `target` of the tape of `json`: the tape holds a
/// node for each value and each key, in document order, so it is the
/// `target`-th of them in the text (of a repeated key too).
pub(crate) fn offset_of_node(json: &[u8], target: usize) -> usize {
    let mut node = 0;
    let mut i = 0;
    loop {
        match json.get(i) {
            None => return json.len(),
            Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b']' | b'}') => i += 1,
            Some(&b) => {
                if node == target {
                    return i;
                }
                node += 1;
                i = match b {
                    b'[' | b'{' => i + 1,
                    b'"' => string_end(json, i),
                    // A number or a literal.
                    _ => skip_value(json, i).max(i + 1),
                };
            }
        }
    }
}

/// The offset after the value at `at`.
fn skip_value(json: &[u8], at: usize) -> usize {
    let mut open = 0usize;
    let mut i = at;
    loop {
        match json.get(i) {
            None => return i,
            Some(b'"') => {
                i = string_end(json, i);
                if open == 0 {
                    return i;
                }
            }
            Some(b'[' | b'{') => {
                open += 1;
                i += 1;
            }
            Some(b']' | b'}') => {
                if open == 0 {
                    return i;
                }
                open -= 1;
                i += 1;
                if open == 0 {
                    return i;
                }
            }
            Some(b',' | b' ' | b'\t' | b'\n' | b'\r') if open == 0 => return i,
            Some(_) => i += 1,
        }
    }
}

/// The offset after the closing quote of the string opening at `at` (the
/// document parsed, so the scan of a rejected one finds no error in it).
fn string_end(json: &[u8], at: usize) -> usize {
    crate::diagnose::string(json, at).unwrap_or(json.len())
}

/// A string's text between its quotes, unescaped.
fn unescape(raw: &[u8]) -> Option<String> {
    let mut units: Vec<u16> = Vec::new();
    let mut out = String::new();
    let text = std::str::from_utf8(raw).ok()?;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let unescaped = match chars.next()? {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                units.push(u16::from_str_radix(&hex, 16).ok()?);
                // A high surrogate waits for its low half.
                if (0xD800..0xDC00).contains(&units[0]) && units.len() == 1 {
                    continue;
                }
                let c = char::decode_utf16(units.drain(..)).next()?.ok()?;
                out.push(c);
                continue;
            }
            other => other,
        };
        out.push(unescaped);
    }
    Some(out)
}

/// The steps to node `target` of a tape: the arrays' indices and the
/// objects' keys on the way. For a key, the steps to its member.
pub(crate) fn steps_to_node(tape: &[Node<'_>], target: usize) -> Vec<Step> {
    struct Open {
        /// The tape index where it ends.
        end: usize,
        object: bool,
        /// An object's next node is a key.
        key_next: bool,
        /// Elements of an array seen so far.
        elements: usize,
        /// The step to its current element or member.
        step: Option<Step>,
    }
    let mut open: Vec<Open> = Vec::new();
    for (at, node) in tape.iter().enumerate().take(target + 1) {
        while open.last().is_some_and(|o| o.end <= at) {
            open.pop();
        }
        if let Some(top) = open.last_mut() {
            if top.object && top.key_next {
                if let Node::String(key) = node {
                    top.step = Some(Step::Key((*key).to_string()));
                }
                top.key_next = false;
                continue;
            }
            if top.object {
                top.key_next = true;
            } else {
                top.step = Some(Step::Index(top.elements));
                top.elements += 1;
            }
        }
        if at == target {
            break;
        }
        if let Node::Array { count, .. } | Node::Object { count, .. } = node {
            open.push(Open {
                end: at + 1 + count,
                object: matches!(node, Node::Object { .. }),
                key_next: true,
                elements: 0,
                step: None,
            });
        }
    }
    open.into_iter().filter_map(|o| o.step).collect()
}

#[cfg(test)]
mod tests {
    use super::{Step, find, steps_to_node, write_path};
    use simd_json::{Buffers, Tape};

    fn key(k: &str) -> Step {
        Step::Key(k.to_string())
    }

    #[test]
    fn a_path_is_written_with_plain_keys_bare_and_others_quoted() {
        let steps = [key("users"), Step::Index(3), key("e-mail_2")];
        assert_eq!(write_path(&steps).as_deref(), Some(".users[3].e-mail_2"));
        let steps = [key("a.b"), key(""), key("x\"\n"), Step::Unknown];
        assert_eq!(
            write_path(&steps).as_deref(),
            Some(r#"["a.b"][""]["x\"\n"].?"#)
        );
        assert_eq!(write_path(&[]), None);
    }

    #[test]
    fn the_text_is_walked_to_the_value_at_a_path() {
        let json = br#" {"a": [1, {"b\u0041": "x", "c": [[], {"d": true}]}], "": 5, "e": "V"}"#;
        for (steps, at) in [
            (vec![], 1),
            (vec![key("a")], 7),
            (vec![key("a"), Step::Index(1)], 11),
            (vec![key("a"), Step::Index(1), key("bA")], 23),
            (
                vec![key("a"), Step::Index(1), key("c"), Step::Index(1), key("d")],
                44,
            ),
            (vec![key("")], 58),
            (vec![key("e"), Step::Variant("V".into())], 66),
            // Not in the text: the deepest value on the way.
            (vec![key("a"), Step::Index(7)], 7),
            (vec![key("nope"), Step::Index(0)], 1),
            (vec![key("a"), Step::Unknown, key("b")], 7),
        ] {
            assert_eq!(find(json, &steps).0, at, "{steps:?}");
        }
        // A repeated key (`x` written twice): which member failed is not
        // known, so the object holding them, and not the whole path.
        let repeated = br#"{"x": {"a": 1}, "\u0078": {"b": 300}}"#;
        assert_eq!(find(repeated, &[key("x"), key("b")]), (0, false));
        assert_eq!(find(repeated, &[]), (0, true));
    }

    #[test]
    fn a_value_is_described_by_its_first_bytes() {
        let json = br#"[300, "s", [], {}, true, false, null, -1.5e3]"#;
        let words: Vec<_> = [1, 6, 11, 15, 19, 25, 32, 38]
            .iter()
            .map(|&at| super::describe_value(json, at).expect("a value"))
            .collect();
        assert_eq!(
            words,
            [
                "the number `300`",
                "a string",
                "an array",
                "an object",
                "`true`",
                "`false`",
                "`null`",
                "the number `-1.5e3`"
            ]
        );
        let long = "9".repeat(50);
        assert_eq!(
            super::describe_value(long.as_bytes(), 0).as_deref(),
            Some(format!("the number `{}...`", "9".repeat(40)).as_str())
        );
    }

    #[test]
    fn a_node_of_the_tape_is_found_in_the_text() {
        let text = br#" {"a": [1, {"b": "x]"}], "a": -2.5, "": [true, null]}"#;
        let mut json = text.to_vec();
        let mut tape = Tape::null().reset();
        simd_json::fill_tape(&mut json, &mut Buffers::default(), &mut tape).expect("valid");
        let starts: Vec<usize> = (0..tape.0.len())
            .map(|k| super::offset_of_node(text, k))
            .collect();
        // {  "a" [  1  {   "b" "x]" "a" -2.5 ""  [   true null
        assert_eq!(starts, [1, 2, 7, 8, 11, 12, 17, 25, 30, 36, 40, 41, 47]);
    }

    #[test]
    fn the_steps_to_a_node_of_the_tape_are_found() {
        let mut json = br#"{"a": [1, {"b": "x", "c": [[], {"d": true}]}], "e": 2}"#.to_vec();
        let mut tape = Tape::null().reset();
        simd_json::fill_tape(&mut json, &mut Buffers::default(), &mut tape).expect("valid");
        let nodes = &tape.0;
        let find = |want: &str| {
            nodes
                .iter()
                .position(|n| matches!(n, simd_json::Node::String(s) if *s == want))
                .expect("on the tape")
        };
        assert_eq!(steps_to_node(nodes, 0), vec![]);
        assert_eq!(
            steps_to_node(nodes, find("x")),
            vec![key("a"), Step::Index(1), key("b")]
        );
        // A key: the steps to its member.
        assert_eq!(steps_to_node(nodes, find("d")), {
            vec![key("a"), Step::Index(1), key("c"), Step::Index(1), key("d")]
        });
        assert_eq!(steps_to_node(nodes, nodes.len() - 1), vec![key("e")]);
    }
}
