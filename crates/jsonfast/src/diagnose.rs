//! A second look at a document simd-json rejected, on the error path only:
//! a plain scan of the JSON grammar that names what was expected where it
//! was missing (simd-json says "unexpected character" for most errors, and
//! places trailing data and unterminated strings elsewhere). It keeps its
//! own stack on the heap, so any nesting is safe.

/// A grammar error: its byte offset and what was expected there.
type Found = (usize, &'static str);

/// The first grammar error of `s`; `None` when the grammar holds
/// (simd-json rejected the document for another reason: depth, UTF-8, a
/// surrogate, a number beyond `f64`).
pub(crate) fn diagnose(s: &[u8]) -> Option<Found> {
    scan(s).err()
}

fn scan(s: &[u8]) -> Result<(), Found> {
    // `true`: an object is open, `false`: an array.
    let mut open: Vec<bool> = Vec::new();
    let mut i = ws(s, 0);
    loop {
        // A value starts at `i`.
        match s.get(i) {
            None => return Err((i, "expected a value")),
            Some(b'{') => {
                i = ws(s, i + 1);
                if s.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    open.push(true);
                    i = member(s, i)?;
                    continue;
                }
            }
            Some(b'[') => {
                i = ws(s, i + 1);
                if s.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    open.push(false);
                    continue;
                }
            }
            Some(b'"') => i = string(s, i)?,
            Some(b't') => i = literal(s, i, b"true")?,
            Some(b'f') => i = literal(s, i, b"false")?,
            Some(b'n') => i = literal(s, i, b"null")?,
            Some(b'-' | b'0'..=b'9') => i = number(s, i)?,
            Some(_) => return Err((i, "expected a value")),
        }
        // A value ended at `i`: close what it ends, up to the next value.
        loop {
            i = ws(s, i);
            match open.last() {
                None if i < s.len() => return Err((i, "trailing characters after the document")),
                None => return Ok(()),
                Some(false) => match s.get(i) {
                    Some(b',') => {
                        i = ws(s, i + 1);
                        break;
                    }
                    Some(b']') => {
                        open.pop();
                        i += 1;
                    }
                    _ => return Err((i, "expected `,` or `]`")),
                },
                Some(true) => match s.get(i) {
                    Some(b',') => {
                        i = member(s, ws(s, i + 1))?;
                        break;
                    }
                    Some(b'}') => {
                        open.pop();
                        i += 1;
                    }
                    _ => return Err((i, "expected `,` or `}`")),
                },
            }
        }
    }
}

/// The offset after white space from `i`.
fn ws(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// An object member's key and `:` at `i`: the offset of its value.
fn member(s: &[u8], i: usize) -> Result<usize, Found> {
    if s.get(i) != Some(&b'"') {
        return Err((i, "expected a string key"));
    }
    let after = ws(s, string(s, i)?);
    if s.get(after) != Some(&b':') {
        return Err((after, "expected `:`"));
    }
    Ok(ws(s, after + 1))
}

/// The string opening at `start`: the offset after its closing quote.
fn string(s: &[u8], start: usize) -> Result<usize, Found> {
    let mut i = start + 1;
    loop {
        match s.get(i) {
            None => return Err((start, "unterminated string")),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match s.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = s
                        .get(i + 2..i + 6)
                        .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
                    if hex.is_none() {
                        return Err((i, "invalid \\u escape"));
                    }
                    i += 6;
                }
                _ => return Err((i, "invalid escape")),
            },
            Some(&b) if b < 0x20 => return Err((i, "control character in a string")),
            Some(_) => i += 1,
        }
    }
}

/// The literal `word` at `i`: the offset after it.
fn literal(s: &[u8], i: usize, word: &[u8]) -> Result<usize, Found> {
    if s.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err((i, "expected a value"))
    }
}

/// The number at `i`: the offset after it.
fn number(s: &[u8], mut i: usize) -> Result<usize, Found> {
    let digits = |s: &[u8], mut i: usize| {
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i > start)
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(s, i).0,
        _ => return Err((i, "invalid number")),
    }
    if s.get(i) == Some(&b'.') {
        let (end, any) = digits(s, i + 1);
        if !any {
            return Err((end, "invalid number"));
        }
        i = end;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let (end, any) = digits(s, i);
        if !any {
            return Err((end, "invalid number"));
        }
        i = end;
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::diagnose;

    #[test]
    fn names_what_was_expected_where() {
        for (doc, at, what) in [
            (&b"[1 2]"[..], 3, "expected `,` or `]`"),
            (b"{\"a\":1 \"b\":2}", 7, "expected `,` or `}`"),
            (b"[1] x", 4, "trailing characters after the document"),
            (b"  \"abc", 2, "unterminated string"),
            (b"{\"a\" 1}", 5, "expected `:`"),
            (b"{1:2}", 1, "expected a string key"),
            (b"{\"a\":1,}", 7, "expected a string key"),
            (b"[tru]", 1, "expected a value"),
            (b"[1,]", 3, "expected a value"),
            (b"[01]", 2, "expected `,` or `]`"),
            (b"[1.]", 3, "invalid number"),
            (b"[-]", 2, "invalid number"),
            (b"[\"a\\x\"]", 3, "invalid escape"),
            (b"[\"\\u12g4\"]", 2, "invalid \\u escape"),
            (b"[\"a\nb\"]", 3, "control character in a string"),
            (b"", 0, "expected a value"),
            (b"[[[", 3, "expected a value"),
        ] {
            assert_eq!(
                diagnose(doc),
                Some((at, what)),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn finds_nothing_in_valid_json() {
        for doc in [
            &b"{\"a\": [1, -2.5e-3, true, false, null, \"\\u00e9\\n\"], \"b\": {}}"[..],
            b" [ ] ",
            b"0",
            b"1e400",
            &[b'['; 10_000],
        ] {
            if doc[0] == b'[' && doc.len() == 10_000 {
                // Unclosed: an error at the end, not a stack overflow.
                assert_eq!(diagnose(doc), Some((10_000, "expected a value")));
            } else {
                assert_eq!(diagnose(doc), None, "{}", String::from_utf8_lossy(doc));
            }
        }
    }
}
