//! `Decoder::decode` and `decode_borrowed` on arbitrary bytes, into several
//! types: no panic, no overflow, no hang; errors locate within the input;
//! whatever jsonfast accepts, serde_json accepts as a document too (jsonfast
//! is only ever stricter); the decoder still works after every error.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use prodkit_jsonfast::{Decoder, Limits};
use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum Any {
    Null(()),
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    Arr(Vec<Any>),
    Obj(BTreeMap<String, Any>),
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Shape {
    id: u64,
    name: Option<String>,
    tags: Vec<String>,
    nested: Option<Box<Shape>>,
}

fn check<T: for<'de> Deserialize<'de>>(decoder: &mut Decoder, data: &[u8]) -> bool {
    match decoder.decode::<T>(data) {
        Ok(_) => true,
        Err(e) => {
            if let Some(at) = e.location() {
                assert!(at.offset <= data.len(), "{e}");
                assert!(at.line >= 1 && at.column >= 1, "{e}");
            }
            let _ = e.to_string();
            false
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(Limits {
        max_input: 1 << 20,
        max_depth: 64,
        ..Limits::default()
    })
    .expect("valid limits");
    let accepted = check::<IgnoredAny>(&mut decoder, data);
    if accepted {
        assert!(
            serde_json::from_slice::<serde_json::Value>(data).is_ok(),
            "jsonfast accepted what serde_json rejects: {:?}",
            String::from_utf8_lossy(data)
        );
    }
    check::<Any>(&mut decoder, data);
    check::<Shape>(&mut decoder, data);
    check::<Vec<String>>(&mut decoder, data);
    let mut copy = data.to_vec();
    let _ = decoder.decode_borrowed::<BTreeMap<&str, IgnoredAny>>(&mut copy);
    // `decode_borrowed` reports an error as `decode` does.
    let plain = decoder.decode::<IgnoredAny>(data).err().map(|e| e.to_string());
    let mut copy = data.to_vec();
    let borrowed = decoder
        .decode_borrowed::<IgnoredAny>(&mut copy)
        .err()
        .map(|e| e.to_string());
    assert_eq!(plain, borrowed);
    // Length breaches are located within the input too.
    let mut tight = Decoder::new(Limits {
        max_input: 1 << 20,
        max_depth: 64,
        max_string: 4,
        max_collection: 3,
    })
    .expect("valid limits");
    check::<IgnoredAny>(&mut tight, data);
    check::<Shape>(&mut tight, data);
    // The decoder goes on after whatever came before.
    let v: Vec<u8> = decoder.decode(b"[1, 2]").expect("a good document");
    assert_eq!(v, [1, 2]);
});
