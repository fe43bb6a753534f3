//! Decoding errors, with where they happened.

use std::fmt;
use std::io;

/// A failed decode: what went wrong, where in the input, and in which field.
///
/// ```
/// use prodkit_jsonfast::{Decoder, ErrorKind};
///
/// #[derive(serde::Deserialize, Debug)]
/// struct User { id: u32, email: String }
///
/// let mut decoder = Decoder::default();
/// let err = decoder
///     .decode::<Vec<User>>(br#"[{"id": 1, "email": "a@b"}, {"id": "2", "email": "c@d"}]"#)
///     .unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::Data(_)));
/// assert_eq!(err.path(), Some("[1].id"));
/// assert_eq!(
///     err.to_string(),
///     "expected an unsigned integer that fits the field's type, found a string at [1].id (line 1 column 36, byte 35)"
/// );
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    at: Option<Location>,
    path: Option<String>,
    record: Option<u64>,
}

/// Where in the input an error was found.
///
/// ```
/// use prodkit_jsonfast::Decoder;
///
/// let err = Decoder::default().decode::<Vec<u32>>(b"[1,\n 2,, 3]").unwrap_err();
/// let at = err.location().unwrap();
/// assert_eq!((at.offset, at.line, at.column), (7, 2, 4));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Location {
    /// Bytes from the start of the document (of the record, in NDJSON).
    pub offset: usize,
    /// Line, from 1.
    pub line: usize,
    /// Column in bytes, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` of `input`.
    pub(crate) fn of(input: &[u8], offset: usize) -> Location {
        let offset = offset.min(input.len());
        let before = &input[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        Location {
            offset,
            line,
            column: offset - start + 1,
        }
    }
}

/// What went wrong.
///
/// ```
/// use prodkit_jsonfast::{Decoder, ErrorKind, Limits};
///
/// let mut decoder = Decoder::new(Limits { max_depth: 2, ..Limits::default() })?;
/// let err = decoder.decode::<serde::de::IgnoredAny>(b"[[[1]]]").unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::TooDeep { limit: 2 }));
/// # Ok::<(), prodkit_jsonfast::LimitsError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The document (or record) is larger than `max_input`.
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Arrays and objects nest deeper than `max_depth`.
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A string is longer than `max_string`.
    StringTooLong {
        /// The limit.
        limit: usize,
    },
    /// An array or object has more than `max_collection` elements.
    CollectionTooLong {
        /// The limit.
        limit: usize,
    },
    /// The input is not JSON (invalid UTF-8 and lone surrogates included).
    Syntax(String),
    /// The JSON does not fit the target type: a wrong type, a missing or
    /// duplicate field, a number out of the type's range.
    Data(String),
    /// The decoded value failed its [`Validate`](crate::Validate) check.
    Invalid(String),
    /// Reading the input failed.
    Io(io::Error),
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error {
            kind,
            at: None,
            path: None,
            record: None,
        }
    }

    pub(crate) fn at(mut self, at: Location) -> Error {
        self.at = Some(at);
        self
    }

    /// The path of `steps` (`.users[3].email`).
    pub(crate) fn with_steps(mut self, steps: &[crate::locate::Step]) -> Error {
        self.path = crate::locate::write_path(steps);
        self
    }

    /// A syntax error's message with the byte found where it was met.
    pub(crate) fn found(mut self, byte: Option<u8>) -> Error {
        if let ErrorKind::Syntax(what) = &mut self.kind {
            match byte {
                Some(b) if b.is_ascii_graphic() => {
                    what.push_str(&format!(", found `{}`", b as char))
                }
                Some(b) => what.push_str(&format!(", found byte 0x{b:02x}")),
                None => what.push_str(", found the end of the input"),
            }
        }
        self
    }

    /// A [`Validate`](crate::Validate) failure.
    pub(crate) fn invalid(invalid: crate::Invalid) -> Error {
        let mut e = Error::new(ErrorKind::Invalid(invalid.message));
        e.path = invalid.path.filter(|p| !p.is_empty());
        e
    }

    pub(crate) fn in_record(mut self, line: u64) -> Error {
        self.record = Some(line);
        self
    }

    /// What went wrong.
    ///
    /// ```
    /// use prodkit_jsonfast::{Decoder, ErrorKind};
    ///
    /// let err = Decoder::default().decode::<u8>(b"300").unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::Data(_)));
    /// ```
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Where in the input: for a syntax error, the byte where it is; for a
    /// breach of `max_string` or `max_collection` and an error of the typed
    /// decoding, the start of the value at its [`path`](Self::path) (or of
    /// the deepest value on the way that the document has, where serde's
    /// path names what the text does not: a flattened struct). `None` for
    /// `TooLarge`, `Io`, a [`Validate`](crate::Validate) failure, and a
    /// data error of [`decode_borrowed`](crate::Decoder::decode_borrowed).
    ///
    /// ```
    /// use prodkit_jsonfast::Decoder;
    ///
    /// let err = Decoder::default().decode::<Vec<u8>>(b"[1 2]").unwrap_err();
    /// assert_eq!(err.location().unwrap().line, 1);
    /// ```
    pub fn location(&self) -> Option<Location> {
        self.at
    }

    /// The field being decoded, as `.users[3].email` (`[3]` an array
    /// index, `.name` an object member, `["a.b"]` a member whose key is not
    /// a plain name of letters, digits, `_` and `-`, written as a JSON
    /// string); also the value that breached `max_string` or
    /// `max_collection`. `None` at the top level or for syntax errors.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use prodkit_jsonfast::Decoder;
    ///
    /// let err = Decoder::default()
    ///     .decode::<BTreeMap<String, Vec<u8>>>(br#"{"a": [1, 2, -3]}"#)
    ///     .unwrap_err();
    /// assert_eq!(err.path(), Some(".a[2]"));
    /// ```
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The NDJSON line of the record, from 1; `None` for a single document.
    ///
    /// ```
    /// use prodkit_jsonfast::Decoder;
    ///
    /// let mut decoder = Decoder::default();
    /// let mut lines = decoder.ndjson::<u8, _>(&b"1\nx\n3\n"[..]);
    /// assert_eq!(lines.next().unwrap().unwrap(), 1);
    /// assert_eq!(lines.next().unwrap().unwrap_err().record(), Some(2));
    /// assert_eq!(lines.next().unwrap().unwrap(), 3);
    /// ```
    pub fn record(&self) -> Option<u64> {
        self.record
    }
}

/// `n` bytes, in words: "1 byte", "2 bytes".
fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".to_string()
    } else {
        format!("{n} bytes")
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::TooLarge { limit } => {
                write!(f, "input larger than max_input ({})", bytes(*limit))
            }
            ErrorKind::TooDeep { limit } => write!(f, "nesting deeper than max_depth ({limit})"),
            ErrorKind::StringTooLong { limit } => {
                write!(f, "string longer than max_string ({})", bytes(*limit))
            }
            ErrorKind::CollectionTooLong { limit } => {
                write!(f, "array or object longer than max_collection ({limit})")
            }
            ErrorKind::Syntax(what) => write!(f, "invalid JSON: {what}"),
            ErrorKind::Data(what) | ErrorKind::Invalid(what) => f.write_str(what),
            ErrorKind::Io(e) => write!(f, "reading the input: {e}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(line) = self.record {
            write!(f, " in record on line {line}")?;
        }
        match (&self.path, self.at) {
            (Some(path), Some(at)) => write!(
                f,
                " at {path} (line {} column {}, byte {})",
                at.line, at.column, at.offset
            ),
            (Some(path), None) => write!(f, " at {path}"),
            (None, Some(at)) => write!(
                f,
                " at line {} column {} (byte {})",
                at.line, at.column, at.offset
            ),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
