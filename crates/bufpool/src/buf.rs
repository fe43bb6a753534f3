//! The buffer handed out: a `Vec<u8>` that goes back to its pool on drop.

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};

use crate::BufPool;

/// A byte buffer from a [`BufPool`]: a `Vec<u8>` (through `Deref`) that
/// goes back to the pool when dropped, to the class of its capacity, also
/// after it grew. [`into_vec`](Self::into_vec) keeps it instead.
///
/// ```
/// use std::io::Write;
/// use prodkit_bufpool::BufPool;
///
/// let pool = BufPool::default();
/// let mut buf = pool.get(64);
/// buf.extend_from_slice(b"head ");
/// buf.write_all(b"and body")?;
/// assert_eq!(&buf[..], b"head and body");
/// let owned: Vec<u8> = buf.into_vec(); // not returned
/// # let _ = owned;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PooledBuf<'p> {
    buf: Vec<u8>,
    /// `None` once detached by `into_vec`.
    pool: Option<&'p BufPool>,
}

impl<'p> PooledBuf<'p> {
    #[inline(always)]
    pub(crate) fn new(buf: Vec<u8>, pool: &'p BufPool) -> PooledBuf<'p> {
        PooledBuf {
            buf,
            pool: Some(pool),
        }
    }

    /// The `Vec`, kept by the caller: it does not go back to the pool.
    ///
    /// ```
    /// use prodkit_bufpool::BufPool;
    ///
    /// let pool = BufPool::default();
    /// let v = pool.get(10).into_vec();
    /// assert!(v.capacity() >= 10);
    /// assert_eq!(pool.stats().returns, 0);
    /// ```
    pub fn into_vec(mut self) -> Vec<u8> {
        self.pool = None;
        std::mem::take(&mut self.buf)
    }
}

impl Drop for PooledBuf<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(pool) = self.pool {
            pool.give_back(&mut self.buf);
        }
    }
}

impl Deref for PooledBuf<'_> {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for PooledBuf<'_> {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PooledBuf<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl AsMut<[u8]> for PooledBuf<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl fmt::Debug for PooledBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.buf.len())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

impl io::Write for PooledBuf<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "bytes")]
#[cfg_attr(docsrs, doc(cfg(feature = "bytes")))]
#[allow(
    unsafe_code,
    reason = "BufMut is an unsafe trait; every method forwards to Vec<u8>'s"
)]
// SAFETY: every method forwards to `Vec<u8>`'s `BufMut`, which upholds the
// trait's contract; `PooledBuf` adds no state the contract concerns (the
// pool reference is not part of the buffer). No call here can unwind out
// of a half-updated state of ours: the only state is the `Vec`, updated by
// its own methods.
unsafe impl bytes::BufMut for PooledBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.buf.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise (`cnt` bytes of `chunk_mut` were
        // initialised) is passed on to `Vec<u8>`'s `advance_mut`, whose
        // `chunk_mut` this type's is.
        unsafe { self.buf.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.buf.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.buf.extend_from_slice(src);
    }
}
