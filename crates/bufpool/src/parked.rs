//! The buffers a thread cache holds for one class, kept as pointer and
//! capacity in two arrays.
//!
//! A `Vec` in a slot is three words that the compiler moves in pieces of
//! its choosing: stored as 16 + 8 bytes and loaded back as 8 + 16, the
//! load straddles two stores and the CPU's store-to-load forwarding fails,
//! which cost 11 ns a get and put (16.3 ns with `Option<Vec<u8>>` slots,
//! 5.3 ns with these, in a bare loop on AMD EPYC). Here every
//! access is one 8-byte load or store, and a length, always 0 here, is not
//! kept at all.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::stats::MAX_SLOTS;

/// Up to `MAX_SLOTS` empty buffers, owned: each non-`None` pointer is the
/// allocation of a `Vec<u8>` of the capacity beside it, which no one else
/// frees.
pub(crate) struct Parked {
    ptrs: [Option<NonNull<u8>>; MAX_SLOTS],
    caps: [usize; MAX_SLOTS],
}

impl Parked {
    pub(crate) const EMPTY: Parked = Parked {
        ptrs: [None; MAX_SLOTS],
        caps: [0; MAX_SLOTS],
    };

    /// Keeps `buf` (cleared) at slot `at`, leaving `buf` empty, if the slot
    /// is free and `buf` has an allocation; else `false`, `buf` untouched.
    /// Cannot panic, allocates nothing, drops nothing.
    #[inline(always)]
    pub(crate) fn put(&mut self, at: usize, buf: &mut Vec<u8>) -> bool {
        let (Some(ptr), Some(cap)) = (self.ptrs.get_mut(at), self.caps.get_mut(at)) else {
            return false;
        };
        if ptr.is_some() || buf.capacity() == 0 {
            return false;
        }
        let mut owned = ManuallyDrop::new(std::mem::take(buf));
        *cap = owned.capacity();
        *ptr = NonNull::new(owned.as_mut_ptr());
        true
    }

    /// The buffer at slot `at`, if any, leaving the slot free. Cannot
    /// panic, allocates nothing, drops nothing.
    #[inline(always)]
    pub(crate) fn take(&mut self, at: usize) -> Option<Vec<u8>> {
        let ptr = self.ptrs.get_mut(at)?.take()?;
        let cap = *self.caps.get(at)?;
        #[allow(unsafe_code, reason = "see the module docs")]
        // SAFETY: a pointer in `ptrs` was stored only by `put`, from a
        // `Vec<u8>` of capacity `caps[at]` (above 0, so a real allocation
        // of the global allocator with `u8`'s alignment and `cap` bytes)
        // that `put` then kept from dropping; the slot owned it alone, and
        // gives it up here (`take` left `None`), so it is rebuilt once.
        // Length 0 needs no byte initialised. Nothing between the two
        // lines can panic or unwind.
        Some(unsafe { Vec::from_raw_parts(ptr.as_ptr(), 0, cap) })
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        for at in 0..MAX_SLOTS {
            drop(self.take(at));
        }
    }
}
