//! The pieces of HTTP Structured Fields (RFC 8941) that the `RateLimit-Policy`
//! and `RateLimit` fields need: a String item and Integer parameters.

use crate::error::HeaderError;

/// `name` as a Structured Fields String: quoted, `"` and `\` escaped.
///
/// # Errors
/// [`HeaderError::Name`] when `name` has a character outside printable ASCII
/// (0x20 to 0x7E), which a String cannot carry.
pub(crate) fn sf_string(name: &str) -> Result<String, HeaderError> {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => return Err(HeaderError::Name(name.to_string())),
        }
    }
    out.push('"');
    Ok(out)
}

/// `value` if it fits a Structured Fields Integer (at most 15 digits).
pub(crate) fn sf_integer(value: u128) -> Option<u64> {
    (value <= 999_999_999_999_999).then_some(value as u64)
}

/// Whole seconds, rounded up, for the `t` parameter.
pub(crate) fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_and_escaped() {
        assert_eq!(sf_string("api").unwrap(), r#""api""#);
        assert_eq!(sf_string(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert_eq!(sf_string("").unwrap(), r#""""#);
        assert!(matches!(sf_string("caf\u{e9}"), Err(HeaderError::Name(_))));
        assert!(matches!(sf_string("a\nb"), Err(HeaderError::Name(_))));
    }

    #[test]
    fn integers_have_at_most_15_digits() {
        assert_eq!(sf_integer(999_999_999_999_999), Some(999_999_999_999_999));
        assert_eq!(sf_integer(1_000_000_000_000_000), None);
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(1_000_000_000), 1);
        assert_eq!(ceil_secs(0), 0);
    }
}
