//! Reading a whole body into a pooled buffer, under a size limit.

use std::fmt;
use std::io::{self, Read};

use crate::{BufPool, PooledBuf};

/// Why [`read_to_pooled`] returned no body. Whatever was read is dropped
/// (its buffer goes back to the pool): no partial body comes out.
///
/// ```
/// use prodkit_bufpool::{read_to_pooled, BufPool, ReadError};
///
/// let pool = BufPool::default();
/// let err = read_to_pooled(&pool, &[0u8; 100][..], 10).unwrap_err();
/// assert!(matches!(err, ReadError::TooLarge { limit: 10 }));
/// assert_eq!(err.to_string(), "the body is larger than its limit of 10 bytes");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The body is longer than `limit` bytes.
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The reader failed.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::TooLarge { limit } => {
                write!(f, "the body is larger than its limit of {limit} bytes")
            }
            ReadError::Io(e) => write!(f, "reading the body: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            ReadError::TooLarge { .. } => None,
        }
    }
}

/// Reads `reader` to its end into a buffer from `pool`, at most `limit`
/// bytes (the seed read a body with a single `read`, which may return any
/// part of it). It starts from the pool's calibrated size, or `limit` if
/// smaller, and reads at most one byte past `limit` to tell a body of
/// exactly `limit` bytes from a larger one.
///
/// ```
/// use prodkit_bufpool::{read_to_pooled, BufPool};
///
/// let pool = BufPool::default();
/// let body = read_to_pooled(&pool, &b"a whole body"[..], 1 << 20)?;
/// assert_eq!(&body[..], b"a whole body");
/// # Ok::<(), prodkit_bufpool::ReadError>(())
/// ```
pub fn read_to_pooled<'p>(
    pool: &'p BufPool,
    reader: impl Read,
    limit: usize,
) -> Result<PooledBuf<'p>, ReadError> {
    let mut buf = pool.get(pool.calibrated_size().min(limit.saturating_add(1)));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut limited = reader.take(cap);
    loop {
        match limited.read_to_end(&mut buf) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    if buf.len() > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(buf)
}
