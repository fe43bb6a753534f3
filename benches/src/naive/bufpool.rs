//! The seed's `BufferPool`: three `sync.Pool`s (1, 16 and 64 KiB), here
//! three vectors behind a mutex each; `put` keeps a buffer only when its
//! capacity is exactly a class size (a buffer that grew is thrown away),
//! and larger requests always allocate. Nothing bounds what it keeps.

use parking_lot::Mutex;

const SMALL: usize = 1 << 10;
const MEDIUM: usize = 16 << 10;
const LARGE: usize = 64 << 10;

/// The seed's pool.
#[derive(Debug, Default)]
pub struct BufferPool {
    small: Mutex<Vec<Vec<u8>>>,
    medium: Mutex<Vec<Vec<u8>>>,
    large: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// A buffer of at least `size` bytes' capacity, empty.
    pub fn get(&self, size: usize) -> Vec<u8> {
        let (class, cap) = match size {
            s if s <= SMALL => (&self.small, SMALL),
            s if s <= MEDIUM => (&self.medium, MEDIUM),
            s if s <= LARGE => (&self.large, LARGE),
            s => return Vec::with_capacity(s),
        };
        class
            .lock()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(cap))
    }

    /// Gives `buf` back: kept if its capacity is exactly a class size.
    pub fn put(&self, mut buf: Vec<u8>) {
        let class = match buf.capacity() {
            SMALL => &self.small,
            MEDIUM => &self.medium,
            LARGE => &self.large,
            _ => return,
        };
        buf.clear();
        class.lock().push(buf);
    }
}
