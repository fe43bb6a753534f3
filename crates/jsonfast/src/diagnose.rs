//! A second look at a document simd-json rejected, on the error path only.
//! simd-json says "unexpected character" for most errors and places some
//! at byte 0 or at the start of a string; this plain scan walks the JSON
//! grammar (RFC 8259) plus what this crate rejects beyond it (invalid UTF-8,
//! lone surrogates, numbers beyond `f64`) in document order, and reports the
//! first error: where it is and what was expected there. It keeps its own
//! stack on the heap, so any nesting is safe.
//!
//! Where an error is placed: at the byte where the input stops being the
//! start of a valid document, except that an unterminated string is placed
//! at its opening quote, an escape error and a lone surrogate at the escape's
//! `\`, invalid UTF-8 at the first byte of the bad sequence, and a number
//! beyond `f64` at its first byte: the start of what is wrong.

/// An error: its byte offset and what was expected there.
type Found = (usize, &'static str);

/// What is reported for nesting deeper than `max_depth`: the caller makes
/// it a depth error.
pub(crate) const TOO_DEEP: &str = "nesting deeper than max_depth";

/// The first error of `s`, nesting deeper than `max_depth` included;
/// `None` when there is none.
pub(crate) fn diagnose(s: &[u8], max_depth: usize) -> Option<Found> {
    scan(s, max_depth).err()
}

fn scan(s: &[u8], max_depth: usize) -> Result<(), Found> {
    // `true`: an object is open, `false`: an array.
    let mut open: Vec<bool> = Vec::new();
    let mut i = ws(s, 0);
    loop {
        // A value starts at `i`.
        if matches!(s.get(i), Some(b'{' | b'[')) && open.len() >= max_depth {
            return Err((i, TOO_DEEP));
        }
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
            Some(b't') => i = literal(s, i, b"true", "expected `true`")?,
            Some(b'f') => i = literal(s, i, b"false", "expected `false`")?,
            Some(b'n') => i = literal(s, i, b"null", "expected `null`")?,
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
pub(crate) fn ws(s: &[u8], mut i: usize) -> usize {
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

const LONE_SURROGATE: &str = "invalid unicode code point (a lone surrogate)";

/// The string opening at `start`: the offset after its closing quote.
pub(crate) fn string(s: &[u8], start: usize) -> Result<usize, Found> {
    let mut i = start + 1;
    loop {
        match s.get(i) {
            None => return Err((start, "unterminated string")),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match s.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let unit = hex4(s, i + 2).ok_or((i, "invalid \\u escape"))?;
                    match unit {
                        0xD800..=0xDBFF => {
                            // A high surrogate: a low one must follow.
                            if s.get(i + 6..i + 8) != Some(&b"\\u"[..]) {
                                return Err((i, LONE_SURROGATE));
                            }
                            // Anything but a low one, a broken escape
                            // included, leaves it alone.
                            let low = hex4(s, i + 8);
                            if !low.is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)) {
                                return Err((i, LONE_SURROGATE));
                            }
                            i += 12;
                        }
                        0xDC00..=0xDFFF => return Err((i, LONE_SURROGATE)),
                        _ => i += 6,
                    }
                }
                _ => return Err((i, "invalid escape")),
            },
            Some(&b) if b < 0x20 => return Err((i, "control character in a string")),
            Some(&b) if b < 0x80 => i += 1,
            Some(&b) => i += utf8_char(s, i, b).ok_or((i, "invalid UTF-8"))?,
        }
    }
}

/// The four hex digits at `i`, as a number.
fn hex4(s: &[u8], i: usize) -> Option<u16> {
    let digits = s.get(i..i + 4)?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// The length of the UTF-8 sequence that starts with `lead` at `i`, if it
/// is a valid one.
fn utf8_char(s: &[u8], i: usize, lead: u8) -> Option<usize> {
    let len = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    std::str::from_utf8(s.get(i..i + len)?).ok().map(|_| len)
}

/// The literal `word` at `i`: the offset after it, or the first byte where
/// it differs.
fn literal(s: &[u8], i: usize, word: &[u8], what: &'static str) -> Result<usize, Found> {
    for (k, &expected) in word.iter().enumerate() {
        if s.get(i + k) != Some(&expected) {
            return Err((i + k, what));
        }
    }
    Ok(i + word.len())
}

/// The number at `start`: the offset after it.
fn number(s: &[u8], start: usize) -> Result<usize, Found> {
    let digits = |s: &[u8], mut i: usize| {
        let first = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i > first)
    };
    let mut i = start;
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
    // JSON's number grammar is a subset of what `f64::from_str` takes.
    let text = std::str::from_utf8(&s[start..i]).map_err(|_| (start, "invalid number"))?;
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(i),
        _ => Err((start, "number out of range (beyond f64)")),
    }
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
            (b"[tru]", 4, "expected `true`"),
            (b"[trUe]", 3, "expected `true`"),
            (b"nul", 3, "expected `null`"),
            (b"[1,]", 3, "expected a value"),
            (b"[01]", 2, "expected `,` or `]`"),
            (b"[1.]", 3, "invalid number"),
            (b"[-]", 2, "invalid number"),
            (b"[1e400 1]", 1, "number out of range (beyond f64)"),
            (b"[\"a\\x\"]", 3, "invalid escape"),
            (b"[\"\\u12g4\"]", 2, "invalid \\u escape"),
            (b"\"\\u04\"", 1, "invalid \\u escape"),
            (
                b"[\"\\ud800\"]",
                2,
                "invalid unicode code point (a lone surrogate)",
            ),
            (
                b"[\"\\udc00\"]",
                2,
                "invalid unicode code point (a lone surrogate)",
            ),
            (
                b"[\"\\ud800\\u0041\"]",
                2,
                "invalid unicode code point (a lone surrogate)",
            ),
            (
                b"[\"\\ud800\\u00zz\"]",
                2,
                "invalid unicode code point (a lone surrogate)",
            ),
            (
                b"[\"\\ud800\\x\"]",
                2,
                "invalid unicode code point (a lone surrogate)",
            ),
            (b"[\"a\nb\"]", 3, "control character in a string"),
            (b"[\"\xc3\"\"]", 2, "invalid UTF-8"),
            (b"[\"\xed\xa0\x80\"]", 2, "invalid UTF-8"),
            (b"[x, \"\xff\"]", 1, "expected a value"),
            (b"\xef\xbb\xbf[]", 0, "expected a value"),
            (b"", 0, "expected a value"),
            (b"[[[", 3, "expected a value"),
        ] {
            assert_eq!(
                diagnose(doc, 128),
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
            b"1e-400",
            b"[\"\\ud83d\\ude00 \xf0\x9f\x98\x80 \xc3\xa9\"]",
            b"-0.0E+0",
        ] {
            assert_eq!(diagnose(doc, 128), None, "{}", String::from_utf8_lossy(doc));
        }
        // Unclosed: an error at the end, not a stack overflow.
        assert_eq!(
            diagnose(&[b'['; 100_000], usize::MAX),
            Some((100_000, "expected a value"))
        );
        // Deeper than the limit before any other error: the depth.
        let mut doc = vec![b'['; 129];
        doc.extend_from_slice(b"\"abc");
        assert_eq!(diagnose(&doc, 128), Some((128, super::TOO_DEEP)));
        assert_eq!(diagnose(b"[[]]", 1), Some((1, super::TOO_DEEP)));
        assert_eq!(diagnose(b"[x, [[]]]", 1), Some((1, "expected a value")));
    }
}
