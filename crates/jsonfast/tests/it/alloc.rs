//! After warm-up, a decode allocates only what the decoded value owns:
//! counted by this test binary's global allocator, against a count
//! written from the value's definition.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use prodkit_jsonfast::Decoder;
use serde::Deserialize;

/// Forwards to `System`, counting each thread's allocations.
pub(crate) struct Counting;

thread_local! {
    // `const`: reading it never allocates, also from inside the allocator.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call forwards to `System` with the same arguments; the
// counter is a `const` thread-local, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is the one `System` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which got it from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[derive(Deserialize)]
struct Order {
    id: u64,
    customer: String,
    lines: Vec<Line>,
    note: Option<String>,
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct Line {
    sku: String,
    qty: u32,
    price: f64,
}

/// The heap blocks an `Order` owns, by definition: each non-empty `String`
/// and `Vec` one.
fn owned(o: &Order) -> u64 {
    let s = |s: &String| u64::from(s.capacity() > 0);
    let v = |n: usize| u64::from(n > 0);
    s(&o.customer)
        + o.note.as_ref().map_or(0, s)
        + v(o.lines.len())
        + o.lines.iter().map(|l| s(&l.sku)).sum::<u64>()
        + v(o.tags.len())
        + o.tags.iter().map(s).sum::<u64>()
}

fn document(lines: usize) -> Vec<u8> {
    let lines: Vec<String> = (0..lines)
        .map(|i| format!(r#"{{"sku": "SKU-{i}", "qty": {i}, "price": {i}.25}}"#))
        .collect();
    format!(
        r#"{{"id": 7, "customer": "Ada \"the\" Lovelace", "lines": [{}], "note": "gift\nwrap", "tags": ["a", "b", "c"]}}"#,
        lines.join(", ")
    )
    .into_bytes()
}

#[test]
fn after_warm_up_a_decode_allocates_only_what_the_value_owns() {
    let mut decoder = Decoder::default();
    for lines in [1, 10, 200] {
        let doc = document(lines);
        // Warm-up: the decoder's buffers grow to this size of document.
        let _: Order = decoder.decode(&doc).expect("decodes");
        let before = allocations();
        let order: Order = decoder.decode(&doc).expect("decodes");
        let made = allocations() - before;
        assert_eq!(order.id, 7);
        assert_eq!(order.lines.len(), lines);
        assert_eq!(order.lines[lines - 1].qty as usize, lines - 1);
        assert!((order.lines[0].price - 0.25).abs() < 1e-12);
        assert_eq!(made, owned(&order), "{lines} lines");
        drop(order);
    }
    // NDJSON records too, after the first.
    let record = document(3);
    let mut stream = Vec::new();
    for _ in 0..20 {
        stream.extend_from_slice(&record);
        stream.push(b'\n');
    }
    let mut records = decoder.ndjson::<Order, _>(&stream[..]);
    let first = records.next().expect("a record").expect("decodes");
    let each = owned(&first);
    for _ in 1..20 {
        let before = allocations();
        let order = records.next().expect("a record").expect("decodes");
        assert_eq!(allocations() - before, each);
        drop(order);
    }
}
