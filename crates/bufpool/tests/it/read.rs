//! `read_to_pooled`: the whole body up to the limit, a clear error past
//! it, and nothing kept on failure.

use std::io::{self, Read};

use prodkit_bufpool::{BufPool, ReadError, read_to_pooled};

/// Gives `data` a few bytes at a time, with an `Interrupted` between reads.
struct Dribble<'a> {
    data: &'a [u8],
    interrupt: bool,
}

impl Read for Dribble<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = out.len().min(self.data.len()).min(7);
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn a_body_up_to_the_limit_is_read_whole_and_one_byte_more_is_refused() {
    let pool = BufPool::default();
    let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let read = read_to_pooled(
        &pool,
        Dribble {
            data: &body,
            interrupt: false,
        },
        body.len(),
    )
    .unwrap();
    assert_eq!(&read[..], &body[..]);
    drop(read);
    let err = read_to_pooled(&pool, &body[..], body.len() - 1).unwrap_err();
    assert!(
        matches!(err, ReadError::TooLarge { limit } if limit == body.len() - 1),
        "{err}"
    );
    let empty = read_to_pooled(&pool, io::empty(), 0).unwrap();
    assert!(empty.is_empty());
    let err = read_to_pooled(&pool, io::repeat(1), 10).unwrap_err();
    assert!(matches!(err, ReadError::TooLarge { limit: 10 }));
}

#[test]
fn a_failing_reader_gives_its_error_and_the_buffer_goes_back() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
        }
    }
    let pool = BufPool::default();
    let err = read_to_pooled(&pool, Failing, 1 << 20).unwrap_err();
    assert!(
        matches!(&err, ReadError::Io(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "{err}"
    );
    let s = pool.stats();
    assert_eq!((s.gets, s.returns), (1, 1), "{s:?}");
}
