//! Every limit is a typed error, and the decoder goes on after it.

use prodkit_jsonfast::{Decoder, ErrorKind, Limits};
use serde::de::IgnoredAny;

/// Whether an error is the one expected.
type IsKind = fn(&ErrorKind) -> bool;

fn decoder(limits: Limits) -> Decoder {
    Decoder::new(limits).expect("valid limits")
}

#[test]
fn each_limit_is_a_typed_error_and_the_decoder_goes_on() {
    let mut d = decoder(Limits {
        max_input: 64,
        max_depth: 3,
        max_string: 5,
        max_collection: 4,
    });
    let cases: [(&[u8], IsKind); 5] = [
        (&[b' '; 65], |k| {
            matches!(k, ErrorKind::TooLarge { limit: 64 })
        }),
        (b"[[[[1]]]]", |k| {
            matches!(k, ErrorKind::TooDeep { limit: 3 })
        }),
        (br#"["abcdef"]"#, |k| {
            matches!(k, ErrorKind::StringTooLong { limit: 5 })
        }),
        (br#"{"abcdef": 1}"#, |k| {
            matches!(k, ErrorKind::StringTooLong { limit: 5 })
        }),
        (b"[1, 2, 3, 4, 5]", |k| {
            matches!(k, ErrorKind::CollectionTooLong { limit: 4 })
        }),
    ];
    for (doc, is) in cases {
        let err = d.decode::<IgnoredAny>(doc).unwrap_err();
        assert!(is(err.kind()), "{}: {err}", String::from_utf8_lossy(doc));
        d.decode::<IgnoredAny>(b"[[1], [2], 3]")
            .expect("the decoder goes on");
    }
    // At each limit exactly: accepted.
    d.decode::<IgnoredAny>(br#"[[["abcde"]], 2, 3, 4]"#)
        .expect("every limit met exactly");
    // Escapes count after unescaping: 5 bytes.
    d.decode::<IgnoredAny>(br#"["\n\n\n\n\n"]"#)
        .expect("5 bytes");
}

#[test]
fn a_reader_is_read_up_to_the_limit_and_no_further() {
    struct Endless(u64);
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b' ');
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
    }
    let mut d = decoder(Limits {
        max_input: 1 << 16,
        ..Limits::default()
    });
    let mut endless = Endless(0);
    let err = d.decode_reader::<IgnoredAny>(&mut endless).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::TooLarge { limit: 65536 }));
    assert!(endless.0 <= (1 << 16) + 8192, "read {} bytes", endless.0);
    let v: Vec<u8> = d.decode_reader(&b"[7]"[..]).expect("then a small one");
    assert_eq!(v, [7]);
}

#[test]
fn invalid_limits_are_refused() {
    for limits in [
        Limits {
            max_input: 0,
            ..Limits::default()
        },
        Limits {
            max_depth: 0,
            ..Limits::default()
        },
        Limits {
            max_input: usize::MAX,
            ..Limits::default()
        },
    ] {
        assert!(Decoder::new(limits).is_err());
    }
    // 0 is a usable `max_string` and `max_collection` (the second review
    // found them refused as "nothing could be decoded"): empty ones pass.
    let mut d = decoder(Limits {
        max_string: 0,
        max_collection: 0,
        ..Limits::default()
    });
    assert!(d.decode::<IgnoredAny>(br#"[]"#).is_ok());
    assert!(d.decode::<String>(br#""""#).is_ok());
    assert!(d.decode::<IgnoredAny>(br#"{}"#).is_ok());
    assert!(d.decode::<IgnoredAny>(br#"[1]"#).is_err());
    assert!(d.decode::<String>(br#""a""#).is_err());
}

#[test]
fn a_decoder_is_send_and_borrowed_decoding_borrows() {
    fn send<T: Send>(_: &T) {}
    let mut d = Decoder::default();
    send(&d);
    #[derive(serde::Deserialize)]
    struct Msg<'a> {
        user: &'a str,
    }
    let mut body = br#"{"user": "ada"}"#.to_vec();
    let start = body.as_ptr() as usize;
    let msg: Msg<'_> = d.decode_borrowed(&mut body).expect("decodes");
    let at = msg.user.as_ptr() as usize;
    assert!(
        at > start && at < start + 15,
        "the str points into the body"
    );
    let mut bad = b"[1,,2]".to_vec();
    let err = d.decode_borrowed::<Vec<u8>>(&mut bad).unwrap_err();
    assert_eq!(err.location().map(|l| l.offset), Some(3));
}

#[test]
fn max_depth_is_capped_so_that_no_valid_limit_overflows_the_stack() {
    // Found by review: a max_depth of 10,000,000 let 100,000 levels reach
    // the typed decoding, which overflowed the stack.
    let too_deep = Limits {
        max_depth: prodkit_jsonfast::MAX_DEPTH_LIMIT + 1,
        ..Limits::default()
    };
    assert_eq!(Decoder::new(too_deep).unwrap_err().field(), "max_depth");
}

#[test]
fn a_rejected_body_leaves_nothing_kept_and_a_read_keeps_at_most_the_limit() {
    // Found by review: reading max_input + 1 bytes doubled the read
    // buffer, and the decoder kept twice max_input.
    let limit = 1 << 20;
    let mut d = decoder(Limits {
        max_input: limit,
        ..Limits::default()
    });
    let body = vec![b' '; limit + 1];
    assert!(d.decode_reader::<IgnoredAny>(&body[..]).is_err());
    assert_eq!(d.kept_bytes(), 0);
    let mut doc = vec![b' '; limit - 1];
    doc.push(b'1');
    let n: u8 = d.decode_reader(&doc[..]).expect("at the limit");
    assert_eq!(n, 1);
    // The read buffer and the input copy, each about the limit, and
    // simd-json's string buffer.
    assert!(d.kept_bytes() <= 4 * limit, "{}", d.kept_bytes());
}

#[test]
fn kept_bytes_counts_the_tape_and_the_thread_decoder_frees_it() {
    // Found by review: 4 MB of `[1,1,...]` kept 136 MiB in the per-thread
    // decoder, whose cap counted the input copy only.
    let doc = format!("[{}]", vec!["1"; 1_000_000].join(","));
    let mut d = Decoder::default();
    let _: IgnoredAny = d.decode(doc.as_bytes()).expect("decodes");
    // A value of 24 bytes on the tape for each 2 bytes of input.
    assert!(d.kept_bytes() >= 12 * doc.len(), "{}", d.kept_bytes());
    std::thread::spawn(move || {
        prodkit_jsonfast::with_decoder(|d| {
            let _: IgnoredAny = d.decode(doc.as_bytes()).expect("decodes");
        });
        let kept = prodkit_jsonfast::with_decoder(|d| d.kept_bytes());
        assert!(kept <= prodkit_jsonfast::THREAD_DECODER_KEEPS, "{kept}");
        // Found by the second review: a call that panicked left all of it
        // kept until the thread's next call.
        let kept = std::panic::catch_unwind(|| {
            prodkit_jsonfast::with_decoder(|d| {
                let _: IgnoredAny = d.decode(doc.as_bytes()).expect("decodes");
                panic!("the caller's code panics");
            })
        });
        assert!(kept.is_err());
        // Read inside the next call, before that call trims anything.
        let kept = prodkit_jsonfast::with_decoder(|d| d.kept_bytes());
        assert!(kept <= prodkit_jsonfast::THREAD_DECODER_KEEPS, "{kept}");
    })
    .join()
    .expect("no panic");
}

#[test]
fn a_length_breach_says_where() {
    // Found by the second review: `max_string` and `max_collection` errors
    // had neither a path nor a location.
    let mut d = decoder(Limits {
        max_string: 3,
        max_collection: 2,
        ..Limits::default()
    });
    let cases: [(&[u8], &str, &str, usize); 6] = [
        (
            br#"{"a": [1, {"bb": "long"}]}"#,
            "string longer",
            ".a[1].bb",
            17,
        ),
        (b"[\"ok\",\n \"a\\u0041xx\"]", "string longer", "[1]", 8),
        // A key: its member's path, and the key's own place.
        (
            br#"{"a": {"toolong": 1}}"#,
            "string longer",
            ".a.toolong",
            7,
        ),
        // After a repeated key: the long string itself (found by the
        // second review's follow-up at the first one's place).
        (
            br#"{"": 427.1, "": "1z0_01"}"#,
            "string longer",
            r#"[""]"#,
            16,
        ),
        (
            br#"{"a": [[1], [1, 2, 3]]}"#,
            "longer than max_collection",
            ".a[1]",
            12,
        ),
        (
            br#"{"x": {"a": 1, "b": 2, "c": 3}}"#,
            "longer than max_collection",
            ".x",
            6,
        ),
    ];
    for (doc, what, path, offset) in cases {
        let shown = String::from_utf8_lossy(doc);
        let err = d.decode::<IgnoredAny>(doc).unwrap_err();
        assert!(err.to_string().contains(what), "{shown}: {err}");
        assert_eq!(err.path(), Some(path), "{shown}: {err}");
        assert_eq!(
            err.location().expect("located").offset,
            offset,
            "{shown}: {err}"
        );
        let mut copy = doc.to_vec();
        let borrowed = d.decode_borrowed::<IgnoredAny>(&mut copy).unwrap_err();
        assert_eq!(borrowed.to_string(), err.to_string(), "{shown}");
    }
}
