//! `Decoder::ndjson` on arbitrary bytes: no panic, no hang, and exactly one
//! result per non-blank line or line past `max_input` (no record lost or
//! doubled), with a small `max_input` so that long lines are skipped too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prodkit_jsonfast::{Decoder, Limits};
use serde::de::IgnoredAny;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(Limits {
        max_input: 64,
        max_depth: 16,
        ..Limits::default()
    })
    .expect("valid limits");
    let expected = data
        .split(|&b| b == b'\n')
        .filter(|line| {
            // A line past the limit is an error whatever it holds.
            if line.strip_suffix(b"\r").unwrap_or(line).len() > 64 {
                return true;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            !line.iter().all(u8::is_ascii_whitespace)
        })
        .count();
    let mut got = 0;
    let mut last_line = 0;
    for result in decoder.ndjson::<IgnoredAny, _>(data) {
        if let Err(e) = &result {
            let line = e.record().expect("a record's line");
            assert!(line > last_line, "lines go forward");
            last_line = line;
        }
        got += 1;
    }
    assert_eq!(got, expected);
});
