//! The work each buffer-pool benchmark does with a buffer: one byte
//! written in each 4 KiB page of its first `size` bytes, so that a buffer
//! the allocator maps fresh pays its page faults, as a real user's would.

/// Writes one byte per 4 KiB page of `buf`'s first `size` bytes of
/// capacity (its spare capacity: no memset, no length change).
pub fn touch(buf: &mut Vec<u8>, size: usize) {
    let spare = buf.spare_capacity_mut();
    let size = size.min(spare.len());
    let mut at = 0;
    while at < size {
        spare[at].write(1);
        at += 4096;
    }
}

/// One operation of the allocator baselines (`system`, `system_mmap`,
/// `mimalloc`): a fresh `Vec` of `size` bytes, its pages touched, freed.
pub fn fresh(size: usize) {
    fresh_touching(size, size);
}

/// A fresh `Vec` of `size` bytes with its first `pages` bytes' pages
/// touched (0: none, the allocator's own cost), freed.
pub fn fresh_touching(size: usize, pages: usize) {
    let mut buf = Vec::with_capacity(size);
    touch(&mut buf, pages);
    std::hint::black_box(&buf);
}

/// Minor page faults of this process so far.
pub fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The fields after the command's closing parenthesis; minflt
            // is the tenth field of the line, the eighth after it.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}
