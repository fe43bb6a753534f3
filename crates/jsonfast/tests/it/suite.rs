//! JSONTestSuite's `test_parsing` files, and nesting a parser must survive.

use serde::de::IgnoredAny;

use prodkit_jsonfast::{Decoder, ErrorKind, Limits, MAX_DEPTH_LIMIT};

use crate::data;

#[test]
fn json_test_suite_accepts_every_y_rejects_every_n_and_survives_every_i() {
    let Some(dir) = data("json/JSONTestSuite-test_parsing") else {
        return;
    };
    let mut decoder = Decoder::default();
    let (mut wrong, mut counted) = (Vec::new(), [0; 3]);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the suite folder is readable")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).expect("a suite file is readable");
        let ok = decoder.decode::<IgnoredAny>(&bytes).is_ok();
        match name.as_bytes()[0] {
            b'y' => {
                counted[0] += 1;
                if !ok {
                    wrong.push(format!("{name}: rejected"));
                }
            }
            b'n' => {
                counted[1] += 1;
                if ok {
                    wrong.push(format!("{name}: accepted"));
                }
            }
            _ => counted[2] += 1,
        }
    }
    assert!(counted[0] > 90 && counted[1] > 180, "{counted:?}");
    assert!(wrong.is_empty(), "{} wrong: {wrong:#?}", wrong.len());
}

#[test]
fn nesting_100_000_deep_is_the_depth_error() {
    let mut decoder = Decoder::default();
    for open in [b'[', b'{'] {
        let deep: Vec<u8> = if open == b'[' {
            vec![b'['; 100_000]
        } else {
            b"{\"a\":".repeat(100_000)
        };
        let err = decoder.decode::<IgnoredAny>(&deep).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::TooDeep { limit: 128 }),
            "{err}"
        );
    }
}

/// A value as deep as it comes: what a recursive typed decoding does.
#[derive(serde::Deserialize, Debug)]
#[allow(dead_code, reason = "only decoded")]
struct Nest(Vec<Nest>);

#[test]
fn the_deepest_accepted_document_decodes_on_a_256_kib_stack() {
    // 128 levels (the default limit) into a recursive type and into
    // IgnoredAny, on a thread with a 256 KiB stack; 129 levels, and
    // 100,000, are the depth error there too.
    let worker = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let mut decoder = Decoder::default();
            let doc = |depth: usize| {
                let mut d = "[".repeat(depth).into_bytes();
                d.extend(std::iter::repeat_n(b']', depth));
                d
            };
            decoder
                .decode::<Nest>(&doc(128))
                .expect("128 levels decode");
            decoder
                .decode::<IgnoredAny>(&doc(128))
                .expect("128 levels decode");
            for depth in [129, 100_000] {
                let err = decoder.decode::<Nest>(&doc(depth)).unwrap_err();
                assert!(matches!(err.kind(), ErrorKind::TooDeep { .. }), "{err}");
            }
        })
        .expect("a thread starts");
    worker.join().expect("no stack overflow, no panic");
}

#[test]
fn the_deepest_document_the_limits_allow_decodes_on_a_2_mib_stack() {
    // MAX_DEPTH_LIMIT levels into a recursive type and into IgnoredAny on
    // a thread with the default 2 MiB stack.
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let limit = prodkit_jsonfast::MAX_DEPTH_LIMIT;
            let mut decoder = Decoder::new(prodkit_jsonfast::Limits {
                max_depth: limit,
                ..prodkit_jsonfast::Limits::default()
            })
            .expect("valid");
            let mut doc = "[".repeat(limit).into_bytes();
            doc.extend(std::iter::repeat_n(b']', limit));
            decoder.decode::<Nest>(&doc).expect("decodes");
            decoder.decode::<IgnoredAny>(&doc).expect("decodes");
        })
        .expect("a thread starts");
    worker.join().expect("no stack overflow, no panic");
}

/// A struct of options, as the review's stack test wrote it: larger frames
/// a level than `Nest`.
#[derive(serde::Deserialize, Debug)]
#[allow(dead_code, reason = "only decoded")]
struct Chain {
    a: Option<Box<Chain>>,
    b: Option<u8>,
}

/// A level that holds a large array by value: its frames are 10 to 30 KiB
/// a level (the second review's follow-up found 8.8 KiB and more
/// overflowing the stack the decoder allocated).
#[derive(serde::Deserialize, Debug)]
#[allow(dead_code, reason = "only decoded")]
struct Heavy {
    a: Option<Box<Heavy>>,
    b: Option<u8>,
    pad: Option<[[u64; 32]; 8]>,
}

/// `depth` levels of `Chain`, the innermost with `b` set to `last`.
fn chain(depth: usize, last: u32) -> Vec<u8> {
    let mut doc = r#"{"a":"#.repeat(depth - 1);
    doc.push_str(&format!(r#"{{"b":{last}}}"#));
    doc.push_str(&"}".repeat(depth - 1));
    doc.into_bytes()
}

/// Runs `f` on a thread with a `stack`-byte stack, under a watchdog.
fn on_stack(stack: usize, f: impl FnOnce() + Send + 'static) {
    prodkit_testkit::watchdog(std::time::Duration::from_secs(120), move || {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(f)
            .expect("a thread starts")
            .join()
            .expect("no stack overflow, no panic");
    });
}

#[test]
fn deep_documents_decode_and_fail_with_their_path_on_small_stacks() {
    // Found by the second review: in a debug build, 128 levels of `Chain`
    // overflowed a 256 KiB stack, and a data error at the bottom did also
    // in release (the decode that finds the path takes 2-2.5 times the
    // stack), as did 1,024 levels on 2 MiB. A stack overflow aborts this
    // test binary: it cannot pass by accident.
    for (stack, depth) in [(256 << 10, 128), (2 << 20, MAX_DEPTH_LIMIT)] {
        on_stack(stack, move || {
            let limits = Limits {
                max_depth: depth,
                ..Limits::default()
            };
            let mut decoder = Decoder::new(limits).expect("valid");
            decoder
                .decode::<Chain>(&chain(depth, 3))
                .expect("decodes at the limit");
            let err = decoder.decode::<Chain>(&chain(depth, 300)).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::Data(_)), "{err}");
            let path = err.path().expect("a path");
            assert_eq!(path, format!("{}.b", ".a".repeat(depth - 1)));
            let mut doc = chain(depth, 3);
            decoder
                .decode_borrowed::<Chain>(&mut doc)
                .expect("decodes borrowed");
            let err = decoder.decode::<Chain>(&chain(depth + 1, 3)).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::TooDeep { .. }), "{err}");
            decoder
                .decode::<Heavy>(&chain(depth, 3))
                .expect("large frames decode at the limit");
            let err = decoder.decode::<Heavy>(&chain(depth, 300)).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::Data(_)), "{err}");
        });
    }
}
