//! `PooledBuf` as a `bytes::BufMut` (feature `bytes`): its unsafe
//! forwarding, exercised through every path, also under miri
//! (`cargo +nightly miri test -p prodkit-bufpool --features bytes --test it bufmut`).

use bytes::BufMut;
use prodkit_bufpool::BufPool;

#[test]
fn bufmut_writes_what_vec_would() {
    let pool = BufPool::default();
    let mut buf = pool.get(8);
    let mut reference: Vec<u8> = Vec::new();
    fn fill(b: &mut impl BufMut) {
        b.put_u8(1);
        b.put_u32(0x0203_0405);
        b.put_slice(b"slice");
        // Through the uninitialised chunk, as codecs write.
        let chunk = b.chunk_mut();
        let n = chunk.len().min(3);
        for i in 0..n {
            chunk.write_byte(i, b'x');
        }
        // SAFETY: the first `n` bytes of the chunk were written just above.
        unsafe {
            b.advance_mut(n);
        }
        b.put_bytes(9, 2000); // grows past the first class
    }
    fill(&mut buf);
    fill(&mut reference);
    assert_eq!(&buf[..], &reference[..]);
    assert!(buf.remaining_mut() > 0);
    drop(buf);
    assert_eq!(pool.stats().returns, 1);
}
