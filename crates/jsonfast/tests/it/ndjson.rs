//! NDJSON: a bad line is an error with its line number, and the stream
//! goes on.

use prodkit_jsonfast::{Decoder, ErrorKind, Limits};

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Rec {
    id: u32,
}

#[test]
fn bad_lines_are_errors_with_their_number_and_the_stream_goes_on() {
    let long = format!("{{\"id\": 5, \"pad\": \"{}\"}}", "x".repeat(200));
    let input = format!(
        "{{\"id\": 1}}\n\nnot json\n{{\"id\": \"3\"}}\r\n{long}\n{{\"id\": 6}}\n{{\"id\": 7}}"
    );
    let mut d = Decoder::new(Limits {
        max_input: 100,
        ..Limits::default()
    })
    .expect("valid");
    let summary = |got: Vec<Result<Rec, prodkit_jsonfast::Error>>| {
        got.into_iter()
            .map(|r| {
                r.map(|rec| rec.id).map_err(|e| {
                    let kind = match e.kind() {
                        ErrorKind::Syntax(_) => "syntax",
                        ErrorKind::Data(_) => "data",
                        ErrorKind::TooLarge { .. } => "too large",
                        _ => "other",
                    };
                    (e.record().expect("a record's line"), e.to_string(), kind)
                })
            })
            .collect::<Vec<_>>()
    };
    let whole = summary(d.ndjson::<Rec, _>(input.as_bytes()).collect());
    let kinds: Vec<Result<u32, (u64, &str)>> = whole
        .iter()
        .map(|r| r.clone().map_err(|(line, _, kind)| (line, kind)))
        .collect();
    assert_eq!(
        kinds,
        vec![
            Ok(1),
            Err((3, "syntax")),
            Err((4, "data")),
            Err((5, "too large")),
            Ok(6),
            Ok(7),
        ]
    );
    // A line is decoded from the reader's buffer when it is whole there,
    // else gathered in pieces: through buffers of 1 to 300 bytes, the
    // records and errors are the same.
    for capacity in (1..=40).chain([64, 100, 101, 102, 300]) {
        let reader = std::io::BufReader::with_capacity(capacity, input.as_bytes());
        let got = summary(d.ndjson::<Rec, _>(reader).collect());
        assert_eq!(got, whole, "a buffer of {capacity} bytes");
    }
}

#[test]
fn an_io_error_is_yielded_once_and_ends_the_stream() {
    struct Failing(bool);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 {
                return Err(std::io::Error::other("cut"));
            }
            self.0 = true;
            buf[..10].copy_from_slice(b"{\"id\": 1}\n");
            Ok(10)
        }
    }
    let mut d = Decoder::default();
    let got: Vec<_> = d
        .ndjson::<Rec, _>(std::io::BufReader::new(Failing(false)))
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].as_ref().unwrap(), &Rec { id: 1 });
    assert!(matches!(
        got[1].as_ref().unwrap_err().kind(),
        ErrorKind::Io(_)
    ));
}

#[test]
fn a_line_past_the_limit_is_an_error_even_when_blank() {
    // Found by fuzzing: the fuzz target's count of records and the
    // iterator disagreed on a line of 70 `\r`.
    let input = format!("1\n{}\n2\n   \n", "\r".repeat(70));
    let mut d = Decoder::new(Limits {
        max_input: 64,
        ..Limits::default()
    })
    .expect("valid");
    let got: Vec<_> = d.ndjson::<u8, _>(input.as_bytes()).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(*got[0].as_ref().unwrap(), 1);
    assert!(matches!(
        got[1].as_ref().unwrap_err().kind(),
        ErrorKind::TooLarge { limit: 64 }
    ));
    assert_eq!(got[1].as_ref().unwrap_err().record(), Some(2));
    assert_eq!(*got[2].as_ref().unwrap(), 2);
}

#[test]
fn a_record_at_the_limit_fits_also_with_crlf() {
    // Found by review: the `\r` of a CRLF line counted toward max_input.
    let mut d = Decoder::new(Limits {
        max_input: 5,
        ..Limits::default()
    })
    .expect("valid");
    for input in [
        &b"[1,2]\r\n[3,4]\n"[..],
        b"[1,2]\n[3,4]\r",
        b"[1,2]\r\n[3,4]",
    ] {
        let got: Vec<Vec<u8>> = d
            .ndjson::<Vec<u8>, _>(input)
            .map(|r| r.expect("at the limit"))
            .collect();
        assert_eq!(got, [vec![1, 2], vec![3, 4]]);
    }
    let too_long = d.ndjson::<Vec<u8>, _>(&b"[1,22]\r\n"[..]).next();
    assert!(matches!(
        too_long.expect("a record").unwrap_err().kind(),
        ErrorKind::TooLarge { limit: 5 }
    ));
}
