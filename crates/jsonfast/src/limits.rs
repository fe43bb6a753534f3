//! What a decoder accepts at most: every limit a hostile input could push.

use std::fmt;

/// Limits on what a [`Decoder`](crate::Decoder) accepts. A breach is a
/// typed error ([`ErrorKind`](crate::ErrorKind)), never a stack overflow or
/// an allocation the limits do not bound.
///
/// ```
/// use prodkit_jsonfast::Limits;
///
/// let limits = Limits { max_depth: 32, ..Limits::default() };
/// limits.validate()?;
/// assert_eq!(Limits::default().max_depth, 128);
/// # Ok::<(), prodkit_jsonfast::LimitsError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one document (or one NDJSON record), at most: 16 MiB. Also
    /// bounds the decoder's memory, though not to as many bytes: the tape
    /// takes 24 bytes a value, and a document of tiny values (`[1,1,...]`)
    /// took 34 times its size at its peak (measured by review: 2.1 GiB for
    /// 63 MiB), all of it kept for reuse until [`Decoder::shrink`](crate::Decoder::shrink).
    pub max_input: usize,
    /// Nesting of arrays and objects, at most: 128, as serde_json, and
    /// [`MAX_DEPTH_LIMIT`] at most. Checked while parsing, so the typed
    /// decoding that follows never recurses deeper either.
    pub max_depth: usize,
    /// Bytes of one string (after unescaping), at most: no limit beyond
    /// `max_input` by default.
    pub max_string: usize,
    /// Elements of one array or members of one object, at most: no limit
    /// beyond what `max_input` allows by default.
    pub max_collection: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_input: 16 << 20,
            max_depth: 128,
            max_string: usize::MAX,
            max_collection: usize::MAX,
        }
    }
}

/// The largest `max_input`: simd-json indexes its input with 32 bits.
pub const MAX_INPUT_LIMIT: usize = u32::MAX as usize - 64;

/// The largest `max_depth`: the typed decoding recurses once a level, and
/// 1,024 levels of a recursive type fit a thread's default 2 MiB stack
/// (`suite::the_deepest_document_the_limits_allow_decodes_on_a_2_mib_stack`).
pub const MAX_DEPTH_LIMIT: usize = 1024;

impl Limits {
    /// Checks that every limit is usable: `max_input` from 1 to
    /// [`MAX_INPUT_LIMIT`], `max_depth` from 1 to [`MAX_DEPTH_LIMIT`].
    /// `max_string` and `max_collection` may be 0: only empty strings, or
    /// only empty arrays and objects, are accepted then.
    ///
    /// ```
    /// use prodkit_jsonfast::Limits;
    ///
    /// let e = Limits { max_input: 0, ..Limits::default() }.validate().unwrap_err();
    /// assert_eq!(e.field(), "max_input");
    /// assert_eq!(e.to_string(), "max_input is 0: no document could be decoded");
    /// assert!(Limits { max_string: 0, ..Limits::default() }.validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.max_input == 0 {
            return Err(LimitsError {
                field: "max_input",
                reason: "max_input is 0: no document could be decoded".to_string(),
            });
        }
        if self.max_depth == 0 {
            return Err(LimitsError {
                field: "max_depth",
                reason: "max_depth is 0: the parser needs at least 1 (a document of one value)"
                    .to_string(),
            });
        }
        if self.max_depth > MAX_DEPTH_LIMIT {
            return Err(LimitsError {
                field: "max_depth",
                reason: format!(
                    "max_depth ({}) is above {MAX_DEPTH_LIMIT}: the typed decoding recurses once a level, and could overflow the stack",
                    self.max_depth
                ),
            });
        }
        if self.max_input > MAX_INPUT_LIMIT {
            return Err(LimitsError {
                field: "max_input",
                reason: format!(
                    "max_input ({}) is above {MAX_INPUT_LIMIT}: simd-json indexes its input with 32 bits",
                    self.max_input
                ),
            });
        }
        Ok(())
    }

    /// Whether a string or collection limit can be breached by an input
    /// within `max_input` (else the decoder skips checking them).
    pub(crate) fn checks_lengths(&self) -> bool {
        self.max_string < self.max_input || self.max_collection < self.max_input / 2 + 1
    }
}

/// A [`Limits`] value that cannot be used: which field, and why.
///
/// ```
/// use prodkit_jsonfast::Limits;
///
/// let e = Limits { max_input: usize::MAX, ..Limits::default() }.validate().unwrap_err();
/// assert_eq!(e.field(), "max_input");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsError {
    field: &'static str,
    reason: String,
}

impl LimitsError {
    /// The field at fault.
    ///
    /// ```
    /// use prodkit_jsonfast::Limits;
    ///
    /// let e = Limits { max_depth: 0, ..Limits::default() }.validate().unwrap_err();
    /// assert_eq!(e.field(), "max_depth");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for LimitsError {}
