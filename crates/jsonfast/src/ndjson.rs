//! NDJSON (JSON Lines): one record per line, each decoded on its own.

use std::io::{self, BufRead};
use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::Decoder;
use crate::error::{Error, ErrorKind};

/// The records of an NDJSON stream, decoded one by one: a bad line (bad
/// JSON, the wrong shape, longer than `max_input`) yields an error with its
/// line number, and the stream goes on with the next line. Blank lines are
/// skipped (but a line longer than `max_input` is an error whatever it
/// holds: it is not kept to look at); a `\r` before the `\n` is dropped. An I/O error ends the
/// stream after it is yielded. Made by [`Decoder::ndjson`].
///
/// ```
/// use prodkit_jsonfast::Decoder;
///
/// #[derive(serde::Deserialize, Debug)]
/// struct Event { id: u64 }
///
/// let input = b"{\"id\": 1}\n\n{\"id\": \"two\"}\r\n{\"id\": 3}";
/// let mut decoder = Decoder::default();
/// let results: Vec<_> = decoder.ndjson::<Event, _>(&input[..]).collect();
/// assert_eq!(results.len(), 3);
/// assert_eq!(results[0].as_ref().unwrap().id, 1);
/// assert_eq!(results[1].as_ref().unwrap_err().record(), Some(3));
/// assert_eq!(results[2].as_ref().unwrap().id, 3);
/// ```
pub struct NdJson<'d, T, R> {
    decoder: &'d mut Decoder,
    reader: R,
    line: u64,
    done: bool,
    _records: PhantomData<fn() -> T>,
}

impl<T, R> std::fmt::Debug for NdJson<'_, T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdJson")
            .field("line", &self.line)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// The records of the NDJSON stream `reader`, each at most `max_input`
    /// bytes; see [`NdJson`].
    ///
    /// ```
    /// use prodkit_jsonfast::Decoder;
    ///
    /// let mut decoder = Decoder::default();
    /// let sum: u64 = decoder.ndjson::<u64, _>(&b"1\n2\n3\n"[..]).map(|r| r.unwrap()).sum();
    /// assert_eq!(sum, 6);
    /// ```
    pub fn ndjson<T: DeserializeOwned, R: BufRead>(&mut self, reader: R) -> NdJson<'_, T, R> {
        NdJson {
            decoder: self,
            reader,
            line: 0,
            done: false,
            _records: PhantomData,
        }
    }
}

/// What reading a line gave.
enum Line {
    Eof,
    Read,
    TooLong,
}

/// Reads up to the next `\n` into `out` (without it and without a `\r`
/// before it), keeping at most `limit` bytes: a longer line is read to its
/// end and dropped.
fn read_line(reader: &mut impl BufRead, out: &mut Vec<u8>, limit: usize) -> io::Result<Line> {
    let (mut any, mut too_long) = (false, false);
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(if any {
                finish(out, limit, too_long)
            } else {
                Line::Eof
            });
        }
        any = true;
        let (chunk, used, end) = match memchr::memchr(b'\n', buf) {
            Some(at) => (&buf[..at], at + 1, true),
            None => (buf, buf.len(), false),
        };
        if !too_long {
            // One byte more than the limit: a `\r` that goes.
            if out.len() + chunk.len() > limit.saturating_add(1) {
                too_long = true;
                out.clear();
            } else {
                out.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if end {
            return Ok(finish(out, limit, too_long));
        }
    }
}

/// A whole line read: its `\r` dropped, then held to the limit.
fn finish(out: &mut Vec<u8>, limit: usize, too_long: bool) -> Line {
    if out.last() == Some(&b'\r') {
        out.pop();
    }
    if too_long || out.len() > limit {
        out.clear();
        Line::TooLong
    } else {
        Line::Read
    }
}

impl<T: DeserializeOwned, R: BufRead> Iterator for NdJson<'_, T, R> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Result<T, Error>> {
        while !self.done {
            self.line += 1;
            let line = self.line;
            let limit = self.decoder.limits().max_input;
            // A line whole in the reader's buffer is decoded from there.
            let buf = loop {
                match self.reader.fill_buf() {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let buf = match buf {
                Ok(buf) => buf,
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::new(ErrorKind::Io(e)).in_record(line)));
                }
            };
            if let Some(at) = memchr::memchr(b'\n', buf) {
                let text = &buf[..at];
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                let out = if text.len() > limit {
                    Some(Err(
                        Error::new(ErrorKind::TooLarge { limit }).in_record(line)
                    ))
                } else {
                    record(self.decoder, text, line)
                };
                self.reader.consume(at + 1);
                if out.is_some() {
                    return out;
                }
                continue;
            }
            // Else it is gathered in `raw`, in pieces.
            let mut raw = std::mem::take(&mut self.decoder.raw);
            raw.clear();
            let read = read_line(&mut self.reader, &mut raw, limit);
            let out = match read {
                Err(e) => {
                    self.done = true;
                    Some(Err(Error::new(ErrorKind::Io(e)).in_record(line)))
                }
                Ok(Line::Eof) => {
                    self.done = true;
                    None
                }
                Ok(Line::TooLong) => Some(Err(
                    Error::new(ErrorKind::TooLarge { limit }).in_record(line)
                )),
                Ok(Line::Read) => record(self.decoder, &raw, line),
            };
            self.decoder.raw = raw;
            if out.is_some() {
                return out;
            }
        }
        None
    }
}

/// The record on line `line` (its text without the line end): `None` when
/// it is blank.
fn record<T: DeserializeOwned>(
    decoder: &mut Decoder,
    text: &[u8],
    line: u64,
) -> Option<Result<T, Error>> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(decoder.decode(text).map_err(|e| e.in_record(line)))
}
