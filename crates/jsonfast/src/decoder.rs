//! The reusable decoder: simd-json's working memory, the padded input copy
//! and the tape, kept from one decode to the next.

use std::io::Read;

use serde::de::{Deserialize, DeserializeOwned};
use simd_json::{Buffers, Deserializer, ErrorType, INPUT_PADDING, Node, Tape};

use crate::error::{Error, ErrorKind, Location};
use crate::limits::Limits;
use crate::locate;
use crate::stack::{self, Depth, PER_LEVEL, PER_LEVEL_TRACKED};
use crate::{LimitsError, Validate};

/// A JSON decoder that reuses all of its memory: simd-json's buffers, the
/// padded copy of the input that the parser works in, and the tape it
/// builds. After a few documents of a kind, a decode allocates only what
/// the decoded value owns. `Send`, so it can move between threads; one
/// per thread, or [`with_decoder`](crate::with_decoder)'s.
///
/// ```
/// use prodkit_jsonfast::Decoder;
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Point { x: f64, y: f64 }
///
/// let mut decoder = Decoder::default();
/// for _ in 0..3 {
///     let p: Point = decoder.decode(br#"{"x": 1.5, "y": -2}"#)?;
///     assert_eq!(p, Point { x: 1.5, y: -2.0 });
/// }
/// # Ok::<(), prodkit_jsonfast::Error>(())
/// ```
pub struct Decoder {
    limits: Limits,
    parser: Parser,
    /// A document read from a reader, or an NDJSON record.
    pub(crate) raw: Vec<u8>,
}

/// simd-json's state, apart from the limits and the raw input.
struct Parser {
    buffers: Buffers,
    /// The padded copy of the input the parser works in (it unescapes
    /// strings in place).
    input: Vec<u8>,
    /// Empty between decodes; `None` only while one runs.
    tape: Option<Tape<'static>>,
    /// The largest input parsed since the last `shrink`: simd-json's
    /// string buffer (and, for `decode_borrowed`, its input copy) is as
    /// large.
    largest: usize,
    /// Finds how deep a tape nests, for the stack its decoding needs.
    depth: Depth,
}

impl Default for Decoder {
    /// A decoder with the default [`Limits`].
    fn default() -> Decoder {
        Decoder::new(Limits::default()).expect("the default limits are valid")
    }
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder with `limits`, once they are valid.
    ///
    /// ```
    /// use prodkit_jsonfast::{Decoder, Limits};
    ///
    /// let decoder = Decoder::new(Limits { max_input: 1 << 20, ..Limits::default() })?;
    /// assert_eq!(decoder.limits().max_input, 1 << 20);
    /// # Ok::<(), prodkit_jsonfast::LimitsError>(())
    /// ```
    pub fn new(limits: Limits) -> Result<Decoder, LimitsError> {
        limits.validate()?;
        Ok(Decoder {
            parser: Parser::new(&limits),
            limits,
            raw: Vec::new(),
        })
    }

    /// Frees the memory kept for reuse; the next decode allocates it
    /// again, as large as its document needs.
    ///
    /// ```
    /// use prodkit_jsonfast::Decoder;
    ///
    /// let mut decoder = Decoder::default();
    /// let big = format!("[{}]", vec!["1"; 100_000].join(","));
    /// let _: Vec<u8> = decoder.decode(big.as_bytes())?;
    /// assert!(decoder.kept_bytes() >= big.len());
    /// decoder.shrink();
    /// assert_eq!(decoder.kept_bytes(), 0);
    /// # Ok::<(), prodkit_jsonfast::Error>(())
    /// ```
    pub fn shrink(&mut self) {
        self.parser = Parser::new(&self.limits);
        self.raw = Vec::new();
    }

    /// Bytes the decoder keeps for reuse, about: its copy of the input, its
    /// read buffer, the tape (24 bytes a value, so a document of tiny
    /// values like `[1,1,...]` keeps 12 times its size in tape alone) and
    /// simd-json's buffers (4 bytes a structural character, and a string
    /// buffer as large as the largest input).
    ///
    /// ```
    /// use prodkit_jsonfast::Decoder;
    ///
    /// let mut decoder = Decoder::default();
    /// assert_eq!(decoder.kept_bytes(), 0);
    /// let doc = format!("[{}]", vec!["1"; 10_000].join(","));
    /// let _: Vec<u8> = decoder.decode(doc.as_bytes())?;
    /// assert!(decoder.kept_bytes() > 12 * doc.len());
    /// # Ok::<(), prodkit_jsonfast::Error>(())
    /// ```
    pub fn kept_bytes(&self) -> usize {
        let parser = &self.parser;
        let tape = parser
            .tape
            .as_ref()
            .map_or(0, |t| t.0.capacity() * size_of::<Node<'_>>());
        parser.input.capacity()
            + self.raw.capacity()
            + tape
            + size_of_val(parser.buffers.structural_indexes())
            + parser.largest
            + parser.depth.kept_bytes()
    }

    /// The limits.
    ///
    /// ```
    /// use prodkit_jsonfast::Decoder;
    ///
    /// assert_eq!(Decoder::default().limits().max_depth, 128);
    /// ```
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Decodes one document into an owned `T`. A failure of the typed
    /// decoding is decoded again to find the field's path (errors cost a
    /// second pass; successes none).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use prodkit_jsonfast::Decoder;
    ///
    /// let mut decoder = Decoder::default();
    /// let m: HashMap<String, Vec<u32>> = decoder.decode(br#"{"a": [1, 2]}"#)?;
    /// assert_eq!(m["a"], [1, 2]);
    /// # Ok::<(), prodkit_jsonfast::Error>(())
    /// ```
    pub fn decode<T: DeserializeOwned>(&mut self, json: &[u8]) -> Result<T, Error> {
        self.parser.decode(&self.limits, json)
    }

    /// Decodes one document and runs its [`Validate`] check, whose failure
    /// reports as [`ErrorKind::Invalid`] with its path.
    ///
    /// ```
    /// use prodkit_jsonfast::{Decoder, ErrorKind, Invalid, Validate};
    ///
    /// #[derive(serde::Deserialize, Debug)]
    /// struct User { email: String }
    ///
    /// impl Validate for User {
    ///     fn validate(&self) -> Result<(), Invalid> {
    ///         if self.email.contains('@') { Ok(()) } else { Err(Invalid::at(".email", "not an address")) }
    ///     }
    /// }
    ///
    /// let err = Decoder::default().decode_valid::<User>(br#"{"email": "nobody"}"#).unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::Invalid(_)));
    /// assert_eq!(err.to_string(), "not an address at .email");
    /// ```
    pub fn decode_valid<T: DeserializeOwned + Validate>(
        &mut self,
        json: &[u8],
    ) -> Result<T, Error> {
        let value: T = self.decode(json)?;
        value.validate().map_err(Error::invalid)?;
        Ok(value)
    }

    /// Reads a whole document from `reader`, at most `max_input` bytes
    /// (one more is [`ErrorKind::TooLarge`], and nothing more is read), and
    /// decodes it. The read buffer is kept for the next call.
    ///
    /// ```
    /// use prodkit_jsonfast::{Decoder, ErrorKind, Limits};
    ///
    /// let mut decoder = Decoder::new(Limits { max_input: 8, ..Limits::default() })?;
    /// let v: Vec<u8> = decoder.decode_reader(&b"[1, 2]"[..]).unwrap();
    /// assert_eq!(v, [1, 2]);
    /// let err = decoder.decode_reader::<Vec<u8>>(&b"[1, 2, 3, 4]"[..]).unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::TooLarge { limit: 8 }));
    /// # Ok::<(), prodkit_jsonfast::LimitsError>(())
    /// ```
    pub fn decode_reader<T: DeserializeOwned>(&mut self, reader: impl Read) -> Result<T, Error> {
        let limit = self.limits.max_input;
        self.raw.clear();
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut self.raw)
            .map_err(|e| Error::new(ErrorKind::Io(e)))?;
        if self.raw.len() > limit {
            // Kept nothing: the read buffer may have doubled past the limit.
            self.raw = Vec::new();
            return Err(Error::new(ErrorKind::TooLarge { limit }));
        }
        // What `read_to_end`'s doubling left above the limit is not kept.
        self.raw.shrink_to(limit);
        self.parser.decode(&self.limits, &self.raw)
    }

    /// Decodes a document that the caller keeps, so that `T` can borrow
    /// from it: `&'a str` fields, escaped strings included, since the
    /// parser unescapes strings in place (`json` is changed). A syntax error
    /// or a length breach is located and described as by
    /// [`decode`](Decoder::decode) (from a copy of the input, which costs a
    /// `memcpy`); a data error has no path or location (finding them would
    /// decode `T` again, from the original, which is gone).
    ///
    /// ```
    /// use prodkit_jsonfast::Decoder;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Msg<'a> { user: &'a str, text: &'a str }
    ///
    /// let mut body = br#"{"user": "ada", "text": "line\nbreak"}"#.to_vec();
    /// let mut decoder = Decoder::default();
    /// let msg: Msg<'_> = decoder.decode_borrowed(&mut body)?;
    /// assert_eq!((msg.user, msg.text), ("ada", "line\nbreak"));
    /// # Ok::<(), prodkit_jsonfast::Error>(())
    /// ```
    pub fn decode_borrowed<'a, T: Deserialize<'a>>(
        &mut self,
        json: &'a mut [u8],
    ) -> Result<T, Error> {
        let limits = &self.limits;
        if json.len() > limits.max_input {
            return Err(Error::new(ErrorKind::TooLarge {
                limit: limits.max_input,
            }));
        }
        let parser = &mut self.parser;
        let mut tape: Tape<'a> = parser.tape.take().map_or_else(empty_tape, Tape::reset);
        let len = json.len();
        // simd-json copies it into its own aligned buffer, and has a string
        // buffer as large.
        parser.largest = parser.largest.max(len.saturating_mul(2));
        // The parser rewrites escaped strings in `json` as it goes: a copy
        // as it came locates a syntax error as `decode` does.
        parser.input.clear();
        parser.input.extend_from_slice(json);
        let out = match simd_json::fill_tape(json, &mut parser.buffers, &mut tape) {
            Err(e) => Err(parse_error(&e, limits)),
            Ok(()) => {
                let text = &parser.input[..len];
                let (out, back) = typed(&mut parser.depth, tape, limits, text, PER_LEVEL, |de| {
                    T::deserialize(de).map_err(|e| data_error(&e))
                });
                tape = back;
                out
            }
        };
        parser.tape = Some(tape.reset());
        out.map_err(|(e, offset)| match offset {
            Some(offset) => located(e, offset, &parser.input[..len], limits),
            None => e,
        })
    }
}

/// An error, and the byte offset where the parser found it.
type Located = (Error, Option<usize>);

fn empty_tape<'a>() -> Tape<'a> {
    Tape::null().reset()
}

impl Parser {
    fn new(limits: &Limits) -> Parser {
        Parser {
            buffers: Buffers::with_max_depth(0, limits.max_depth),
            input: Vec::new(),
            tape: None,
            largest: 0,
            depth: Depth::default(),
        }
    }

    fn decode<T: DeserializeOwned>(&mut self, limits: &Limits, json: &[u8]) -> Result<T, Error> {
        match self.run(limits, json, PER_LEVEL, |de| {
            T::deserialize(de).map_err(|e| data_error(&e))
        }) {
            Ok(value) => Ok(value),
            Err((e, Some(offset))) => Err(located(e, offset, json, limits)),
            Err((e, None)) if matches!(e.kind(), ErrorKind::Data(_)) => {
                Err(self.with_path::<T>(limits, json).unwrap_or(e))
            }
            Err((e, None)) => Err(e),
        }
    }

    /// Decodes `json` again with serde_path_to_error, for the path of the
    /// error the first decode met, and the location of the value there.
    #[cold]
    fn with_path<T: DeserializeOwned>(&mut self, limits: &Limits, json: &[u8]) -> Option<Error> {
        let again = self.run(limits, json, PER_LEVEL_TRACKED, |de| {
            serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
                let steps = locate::steps_of(e.path());
                let (offset, whole) = locate::find(json, &steps);
                let (mut err, _) = data_error(e.inner());
                // simd-json's "expected a string" says what was expected; the
                // text says what was found.
                if whole
                    && expects_a_type(e.inner().error())
                    && let Some(found) = locate::describe_value(json, offset)
                    && let ErrorKind::Data(what) = err.kind()
                {
                    err = Error::new(ErrorKind::Data(format!("{what}, found {found}")));
                }
                let at = Location::of(json, offset);
                (err.with_steps(&steps).at(at), None)
            })
        });
        again.err().map(|(e, _)| e)
    }

    /// Parses `json` into the tape and runs `decode` on it, with the stack
    /// that `per_level` bytes a level of its nesting need.
    fn run<T>(
        &mut self,
        limits: &Limits,
        json: &[u8],
        per_level: usize,
        decode: impl for<'de> FnOnce(&mut Deserializer<'de>) -> Result<T, Located>,
    ) -> Result<T, Located> {
        if json.len() > limits.max_input {
            return Err((
                Error::new(ErrorKind::TooLarge {
                    limit: limits.max_input,
                }),
                None,
            ));
        }
        let len = json.len();
        self.largest = self.largest.max(len);
        self.input.clear();
        self.input.reserve(len + INPUT_PADDING);
        self.input.extend_from_slice(json);
        self.input.resize(len + INPUT_PADDING, b' ');
        let mut tape = self.tape.take().map_or_else(empty_tape, Tape::reset);
        let out =
            match simd_json::fill_tape_padded(&mut self.input, len, &mut self.buffers, &mut tape) {
                Err(e) => Err(parse_error(&e, limits)),
                Ok(()) => {
                    let (out, back) = typed(&mut self.depth, tape, limits, json, per_level, decode);
                    tape = back;
                    out
                }
            };
        self.tape = Some(tape.reset());
        out
    }
}

/// The typed decoding of a parsed `tape` (of the document `text`): its
/// length limits checked, then `decode` run with the stack that
/// `per_level` bytes a level of its nesting need. The tape comes back.
fn typed<'de, T>(
    depth: &mut Depth,
    tape: Tape<'de>,
    limits: &Limits,
    text: &[u8],
    per_level: usize,
    decode: impl FnOnce(&mut Deserializer<'de>) -> Result<T, Located>,
) -> (Result<T, Located>, Tape<'de>) {
    if let Err(e) = check_lengths(&tape, limits, text) {
        return (Err(e), tape);
    }
    let need = depth.need(&tape, limits.max_depth, per_level);
    let mut de = Deserializer::from_tape(tape);
    let out = stack::with_stack(need, || decode(&mut de));
    (out, de.into_tape())
}

/// An error the parser met at `offset` of `json`, as this crate reports
/// it: [`precise`], with the byte found there and its line and column.
fn located(e: Error, offset: usize, json: &[u8], limits: &Limits) -> Error {
    let (e, offset) = precise(e, offset, json, limits);
    e.found(json.get(offset).copied())
        .at(Location::of(json, offset))
}

/// A syntax error as it is: simd-json says "unexpected character" for most
/// errors and places some at byte 0 or at a string's start; the scan of
/// [`diagnose`](crate::diagnose) finds the first error in document order
/// and says what was expected there (a nesting deeper than `max_depth`
/// before it is the depth error: simd-json finds some syntax errors in a
/// first pass, before it counts depth). simd-json's own word stands only
/// when the scan finds nothing.
fn precise(e: Error, offset: usize, json: &[u8], limits: &Limits) -> (Error, usize) {
    if !matches!(e.kind(), ErrorKind::Syntax(_)) {
        return (e, offset);
    }
    match crate::diagnose::diagnose(json, limits.max_depth) {
        Some((at, crate::diagnose::TOO_DEEP)) => (
            Error::new(ErrorKind::TooDeep {
                limit: limits.max_depth,
            }),
            at,
        ),
        Some((at, what)) => (Error::new(ErrorKind::Syntax(what.to_string())), at),
        None => (e, offset),
    }
}

/// Checks `max_string` and `max_collection` over the tape, when an input
/// within `max_input` could breach them.
fn check_lengths(tape: &Tape<'_>, limits: &Limits, json: &[u8]) -> Result<(), Located> {
    if !limits.checks_lengths() {
        return Ok(());
    }
    for (at, node) in tape.0.iter().enumerate() {
        let kind = match node {
            Node::String(s) if s.len() > limits.max_string => ErrorKind::StringTooLong {
                limit: limits.max_string,
            },
            Node::Array { len, .. } | Node::Object { len, .. } if *len > limits.max_collection => {
                ErrorKind::CollectionTooLong {
                    limit: limits.max_collection,
                }
            }
            _ => continue,
        };
        return Err(breach(kind, tape, at, json));
    }
    Ok(())
}

/// A breach of a length limit by node `at` of the tape, with its path (for
/// a key, its member's) and the offset of the node itself.
#[cold]
fn breach(kind: ErrorKind, tape: &Tape<'_>, at: usize, json: &[u8]) -> Located {
    let steps = locate::steps_to_node(&tape.0, at);
    let offset = locate::offset_of_node(json, at);
    (Error::new(kind).with_steps(&steps), Some(offset))
}

/// An error of the parser (stage 1 or 2), at its byte offset.
fn parse_error(e: &simd_json::Error, limits: &Limits) -> Located {
    let kind = match e.error() {
        ErrorType::DepthLimitExceeded => ErrorKind::TooDeep {
            limit: limits.max_depth,
        },
        ErrorType::InputTooLarge => ErrorKind::TooLarge {
            limit: limits.max_input,
        },
        other => ErrorKind::Syntax(describe(other)),
    };
    (Error::new(kind), Some(e.index()))
}

/// An error of the typed decoding: no byte offset (the tape keeps none).
fn data_error(e: &simd_json::Error) -> Located {
    let what = match e.error() {
        ErrorType::Serde(msg) => msg.clone(),
        // The tape's numbers parsed already: this is a map's key.
        ErrorType::InvalidNumber => {
            "expected a map key that is a number of the key's type".to_string()
        }
        other => describe(other),
    };
    (Error::new(ErrorKind::Data(what)), None)
}

/// Whether simd-json's error says only which type was expected.
fn expects_a_type(e: &ErrorType) -> bool {
    matches!(
        e,
        ErrorType::ExpectedUnsigned
            | ErrorType::ExpectedSigned
            | ErrorType::ExpectedInteger
            | ErrorType::ExpectedFloat
            | ErrorType::ExpectedNumber
            | ErrorType::ExpectedString
            | ErrorType::ExpectedBoolean
            | ErrorType::ExpectedNull
            | ErrorType::ExpectedArray
            | ErrorType::ExpectedMap
            | ErrorType::ExpectedEnum
    )
}

/// simd-json's error types, in words.
fn describe(e: &ErrorType) -> String {
    let s = match e {
        ErrorType::InvalidUnicodeCodepoint => "invalid unicode code point (a lone surrogate)",
        ErrorType::InvalidUtf8 => "invalid UTF-8",
        ErrorType::InvalidEscape => "invalid escape",
        ErrorType::InvalidUnicodeEscape => "invalid \\u escape",
        ErrorType::InvalidNumber | ErrorType::InvalidExponent => "invalid number",
        ErrorType::UnterminatedString => "unterminated string",
        ErrorType::TrailingData => "data after the document",
        ErrorType::Eof => "unexpected end of input",
        ErrorType::ExpectedObjectColon => "expected `:`",
        ErrorType::ExpectedArrayComma | ErrorType::ExpectedMapComma => "expected `,`",
        ErrorType::ExpectedMapEnd => "expected `}`",
        ErrorType::KeyMustBeAString | ErrorType::ExpectedObjectKey | ErrorType::BadKeyType => {
            "expected a string key"
        }
        ErrorType::ExpectedUnsigned => "expected an unsigned integer that fits the field's type",
        ErrorType::ExpectedSigned => "expected an integer that fits the field's type",
        ErrorType::ExpectedInteger => "expected an integer",
        ErrorType::ExpectedFloat | ErrorType::ExpectedNumber => "expected a number",
        ErrorType::ExpectedString => "expected a string",
        ErrorType::ExpectedBoolean => "expected a boolean",
        ErrorType::ExpectedNull => "expected null",
        ErrorType::ExpectedArray => "expected an array",
        ErrorType::ExpectedMap => "expected an object",
        ErrorType::ExpectedEnum => "expected an enum",
        ErrorType::Unexpected(expected, found) => {
            return format!(
                "expected {}, found {}",
                expected.map_or("a value".to_string(), |t| format!("{t:?}").to_lowercase()),
                found.map_or("nothing".to_string(), |t| format!("{t:?}").to_lowercase())
            );
        }
        _ => "unexpected character",
    };
    s.to_string()
}
