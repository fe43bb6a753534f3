#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod decoder;
mod diagnose;
mod error;
mod limits;
mod locate;
mod ndjson;
mod stack;

use std::cell::RefCell;

pub use decoder::Decoder;
pub use error::{Error, ErrorKind, Location};
pub use limits::{Limits, LimitsError, MAX_DEPTH_LIMIT, MAX_INPUT_LIMIT};
pub use ndjson::NdJson;

/// A check run after decoding (the seed's `processUser`), by
/// [`Decoder::decode_valid`]; its failure reports as
/// [`ErrorKind::Invalid`], with its path.
///
/// ```
/// use prodkit_jsonfast::{Invalid, Validate};
///
/// struct Age(u8);
/// impl Validate for Age {
///     fn validate(&self) -> Result<(), Invalid> {
///         if self.0 <= 150 { Ok(()) } else { Err(Invalid::new("not a human age")) }
///     }
/// }
/// assert!(Age(200).validate().is_err());
/// ```
pub trait Validate {
    /// `Ok` when the value is acceptable.
    fn validate(&self) -> Result<(), Invalid>;
}

/// Why a value failed its [`Validate`] check, and in which field.
///
/// ```
/// use prodkit_jsonfast::Invalid;
///
/// let i = Invalid::at(".users[3].email", "no @");
/// assert_eq!(i.to_string(), "no @ at .users[3].email");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub(crate) path: Option<String>,
    pub(crate) message: String,
}

impl Invalid {
    /// A failure of the value as a whole.
    ///
    /// ```
    /// use prodkit_jsonfast::Invalid;
    ///
    /// assert_eq!(Invalid::new("empty").to_string(), "empty");
    /// ```
    pub fn new(message: impl Into<String>) -> Invalid {
        Invalid {
            path: None,
            message: message.into(),
        }
    }

    /// A failure of the field at `path` (written as `.users[3].email`).
    ///
    /// ```
    /// use prodkit_jsonfast::Invalid;
    ///
    /// assert_eq!(Invalid::at(".id", "zero").to_string(), "zero at .id");
    /// ```
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            path: Some(path.into()),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(path) = self.path.as_deref().filter(|p| !p.is_empty()) {
            write!(f, " at {path}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

thread_local! {
    static DECODER: RefCell<Option<Decoder>> = const { RefCell::new(None) };
}

/// Memory ([`Decoder::kept_bytes`]) a thread's decoder keeps between calls
/// of [`with_decoder`], at most: what a larger document left is freed
/// after its call.
///
/// ```
/// use prodkit_jsonfast::{THREAD_DECODER_KEEPS, with_decoder};
///
/// let big = format!("[{}]", vec!["1"; THREAD_DECODER_KEEPS / 2].join(","));
/// let n = with_decoder(|d| d.decode::<Vec<u8>>(big.as_bytes()).map(|v| v.len()))?;
/// assert_eq!(n, THREAD_DECODER_KEEPS / 2);
/// assert_eq!(with_decoder(|d| d.kept_bytes()), 0);
/// # Ok::<(), prodkit_jsonfast::Error>(())
/// ```
pub const THREAD_DECODER_KEEPS: usize = 4 << 20;

/// Runs `f` with this thread's decoder (default limits), made on first
/// use and kept for the thread's life, so that callers need not carry one.
/// After a call that leaves it keeping more than [`THREAD_DECODER_KEEPS`]
/// bytes, it frees them ([`Decoder::shrink`]), also when `f` panics: a
/// caller of large documents keeps a [`Decoder`] of its own. Re-entered (from inside `f`), or while the
/// thread exits, it hands `f` a new decoder instead.
///
/// ```
/// let n: Vec<u16> = prodkit_jsonfast::with_decoder(|d| d.decode(b"[1, 2, 3]"))?;
/// assert_eq!(n, [1, 2, 3]);
/// # Ok::<(), prodkit_jsonfast::Error>(())
/// ```
pub fn with_decoder<R>(f: impl FnOnce(&mut Decoder) -> R) -> R {
    let mut f = Some(f);
    let out = DECODER.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let f = f.take()?;
        let kept = Trimmed(slot.get_or_insert_with(Decoder::default));
        Some(f(kept.0))
    });
    match (out, f) {
        (Ok(Some(out)), _) => out,
        (_, Some(f)) => f(&mut Decoder::default()),
        (_, None) => unreachable!("`f` ran or is still here"),
    }
}

/// The thread's decoder while `with_decoder` lends it: at the end of the
/// call, a panic in it included, what it keeps above
/// [`THREAD_DECODER_KEEPS`] is freed.
struct Trimmed<'a>(&'a mut Decoder);

impl Drop for Trimmed<'_> {
    fn drop(&mut self) {
        if self.0.kept_bytes() > THREAD_DECODER_KEEPS {
            self.0.shrink();
        }
    }
}

/// Decodes `json` with this thread's decoder ([`with_decoder`]).
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Ping { seq: u32 }
///
/// let p: Ping = prodkit_jsonfast::decode(br#"{"seq": 7}"#)?;
/// assert_eq!(p.seq, 7);
/// # Ok::<(), prodkit_jsonfast::Error>(())
/// ```
pub fn decode<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, Error> {
    with_decoder(|d| d.decode(json))
}
