//! Detached closures small enough to live in the queue entry itself. They cost
//! no allocation, hence no free on another thread: with glibc's allocator a block
//! allocated on the submitting thread and freed on a worker cost about 300 ns on
//! the machine of the README's figures, several times the rest of a job's trip.

use std::any::TypeId;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit, align_of, size_of};

/// Three words: a closure capturing a few integers, references or `Arc`s.
type Storage = MaybeUninit<[usize; 3]>;

/// A type-erased `FnOnce() + Send + 'static` stored in place.
pub(crate) struct InlineJob {
    storage: Storage,
    vtable: &'static VTable,
}

struct VTable {
    call: unsafe fn(*mut u8),
    drop: unsafe fn(*mut u8),
    boxed: unsafe fn(*mut u8) -> Box<dyn FnOnce() + Send>,
    type_id: fn() -> TypeId,
}

// SAFETY: an `InlineJob` is only made from an `F: Send` (see `new`), and it owns
// its closure as a `Box<F>` would.
unsafe impl Send for InlineJob {}

impl InlineJob {
    /// Stores `func` in place if it fits, or gives it back.
    pub(crate) fn new<F: FnOnce() + Send + 'static>(func: F) -> Result<InlineJob, F> {
        if size_of::<F>() > size_of::<Storage>() || align_of::<F>() > align_of::<Storage>() {
            return Err(func);
        }
        let mut storage = Storage::uninit();
        // SAFETY: `F` fits the storage in size and alignment (checked above), and
        // the storage is fresh: writing initialises it without dropping anything.
        unsafe { storage.as_mut_ptr().cast::<F>().write(func) };
        Ok(InlineJob {
            storage,
            vtable: VTable::of::<F>(),
        })
    }

    /// Calls the closure. If it panics, the panic unwinds out of here with the
    /// closure already moved out: nothing is dropped twice.
    pub(crate) fn run(self) {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: the storage holds the `F` the vtable was made for, and `me` is
        // never dropped: `call` moves the closure out exactly once.
        unsafe { (me.vtable.call)(me.storage.as_mut_ptr().cast()) }
    }

    /// The closure, boxed (for `shutdown_now`'s `UnstartedJob`).
    pub(crate) fn into_box(self) -> Box<dyn FnOnce() + Send> {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: as in `run`: the closure is moved out once and `me` not dropped.
        unsafe { (me.vtable.boxed)(me.storage.as_mut_ptr().cast()) }
    }

    /// The closure as the type it was made from, or `None` for another type.
    pub(crate) fn into_typed<F: 'static>(self) -> Option<F> {
        if (self.vtable.type_id)() != TypeId::of::<F>() {
            return None;
        }
        let me = ManuallyDrop::new(self);
        // SAFETY: the storage holds an `F` (the type ids match), moved out once
        // here; `me` is not dropped.
        Some(unsafe { me.storage.as_ptr().cast::<F>().read() })
    }
}

impl Drop for InlineJob {
    fn drop(&mut self) {
        // SAFETY: an `InlineJob` that is dropped still holds its closure: every
        // method that moves it out wraps `self` in `ManuallyDrop` first.
        unsafe { (self.vtable.drop)(self.storage.as_mut_ptr().cast()) }
    }
}

impl VTable {
    fn of<F: FnOnce() + Send + 'static>() -> &'static VTable {
        struct Of<F>(PhantomData<F>);
        impl<F: FnOnce() + Send + 'static> Of<F> {
            const VTABLE: VTable = VTable {
                call: call::<F>,
                drop: drop_in_place::<F>,
                boxed: boxed::<F>,
                type_id: TypeId::of::<F>,
            };
        }
        // A constant of function pointers: promoted to a `'static`.
        &Of::<F>::VTABLE
    }
}

/// # Safety
/// `p` points to an initialised `F` that the caller gives up.
unsafe fn call<F: FnOnce()>(p: *mut u8) {
    // SAFETY: the caller's contract.
    let func = unsafe { p.cast::<F>().read() };
    func();
}

/// # Safety
/// `p` points to an initialised `F` that is not used again.
unsafe fn drop_in_place<F>(p: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { p.cast::<F>().drop_in_place() }
}

/// # Safety
/// `p` points to an initialised `F` that the caller gives up.
unsafe fn boxed<F: FnOnce() + Send + 'static>(p: *mut u8) -> Box<dyn FnOnce() + Send> {
    // SAFETY: the caller's contract.
    Box::new(unsafe { p.cast::<F>().read() })
}

#[cfg(test)]
mod tests {
    //! Run under miri too (`cargo xtask ci`): every way an inline job ends.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::InlineJob;
    use crate::task::DropCounter as Counted;

    #[test]
    fn miri_each_way_out_drops_the_closure_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let make = || {
            let (c, d) = (Arc::clone(&calls), Counted(Arc::clone(&drops)));
            move || {
                let _d = d;
                c.fetch_add(1, Ordering::SeqCst);
            }
        };
        InlineJob::new(make()).ok().unwrap().run();
        drop(InlineJob::new(make()).ok().unwrap());
        (InlineJob::new(make()).ok().unwrap().into_box())();
        roundtrip(make())();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(drops.load(Ordering::SeqCst), 4);
    }

    /// Stores `f` and takes it back as its own type.
    fn roundtrip<F: FnOnce() + Send + 'static>(f: F) -> F {
        InlineJob::new(f).ok().unwrap().into_typed::<F>().unwrap()
    }

    #[test]
    fn miri_a_panicking_closure_is_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = Counted(Arc::clone(&drops));
        let job = InlineJob::new(move || {
            let _d = d;
            panic!("inline");
        })
        .ok()
        .unwrap();
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run())).is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn miri_big_or_overaligned_closures_are_refused() {
        let big = [7u64; 4];
        assert!(InlineJob::new(move || assert_eq!(big[3], 7)).is_err());
        #[repr(align(16))]
        struct Wide(u8);
        let wide = Wide(1);
        // Captured whole (a field access would capture only the field).
        assert!(
            InlineJob::new(move || {
                let w = &wide;
                assert_eq!(w.0, 1);
            })
            .is_err()
        );
        let typed = InlineJob::new(|| ()).ok().unwrap();
        assert!(
            typed.into_typed::<u32>().is_none(),
            "another type is refused"
        );
    }
}
