//! Differential property tests against serde_json: for generated values of
//! several typed shapes, jsonfast decodes what serde_json decodes (the
//! value that was encoded), and the two reject the same mutated inputs.

use std::collections::BTreeMap;

use prodkit_jsonfast::Decoder;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Shape {
    id: u64,
    delta: i32,
    ratio: f64,
    name: String,
    counts: Vec<u16>,
    inner: Option<Box<Inner>>,
    flags: BTreeMap<String, bool>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Inner {
    pair: (u8, String),
    kind: Kind,
    scores: Vec<f32>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Kind {
    Unit,
    New(i64),
    Struct { x: i16, label: String },
}

fn text() -> impl Strategy<Value = String> {
    // Escapes, non-ASCII, astral characters (surrogate pairs when escaped).
    prop_oneof![
        "[a-z]{0,8}",
        "[ -~]{0,12}",
        "[\\u{0}-\\u{1f}\"\\\\é€😀]{0,6}",
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Unit),
        any::<i64>().prop_map(Kind::New),
        (any::<i16>(), text()).prop_map(|(x, label)| Kind::Struct { x, label }),
    ]
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        (-1e6f64..1e6),
        Just(0.0),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    let inner = (
        (any::<u8>(), text()),
        kind(),
        prop::collection::vec(any::<f32>().prop_filter("finite", |f| f.is_finite()), 0..4),
    )
        .prop_map(|(pair, kind, scores)| Inner { pair, kind, scores });
    (
        any::<u64>(),
        any::<i32>(),
        finite_f64(),
        text(),
        prop::collection::vec(any::<u16>(), 0..6),
        prop::option::of(inner.prop_map(Box::new)),
        prop::collection::btree_map(text(), any::<bool>(), 0..4),
    )
        .prop_map(|(id, delta, ratio, name, counts, inner, flags)| Shape {
            id,
            delta,
            ratio,
            name,
            counts,
            inner,
            flags,
        })
}

/// `a` and `b` equal but for floats a few ulps apart (serde_json's default
/// parsing is not correctly rounded; `decodes_what_serde_json_decodes`
/// holds ours to the exact value).
fn close(a: &Shape, b: &Shape) -> bool {
    fn ulp64(x: f64, y: f64) -> bool {
        x == y || (x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f64::EPSILON
    }
    fn ulp32(x: f32, y: f32) -> bool {
        x == y || (x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f32::EPSILON
    }
    let inner = match (&a.inner, &b.inner) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            x.pair == y.pair
                && x.kind == y.kind
                && x.scores.len() == y.scores.len()
                && x.scores.iter().zip(&y.scores).all(|(p, q)| ulp32(*p, *q))
        }
        _ => false,
    };
    a.id == b.id
        && a.delta == b.delta
        && ulp64(a.ratio, b.ratio)
        && a.name == b.name
        && a.counts == b.counts
        && a.flags == b.flags
        && inner
}

/// A change to a document: delete, insert or replace one byte.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Insert(usize, u8),
    Replace(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop::sample::select(b"{}[],:\"\\ 0-1.eE+tfnu\x01\xff\xc3".to_vec());
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        (any::<usize>(), byte).prop_map(|(at, b)| Mutation::Replace(at, b)),
    ]
}

fn apply(doc: &mut Vec<u8>, m: &Mutation) {
    let n = doc.len();
    match *m {
        Mutation::Delete(at) if n > 0 => {
            doc.remove(at % n);
        }
        Mutation::Insert(at, b) => doc.insert(at % (n + 1), b),
        Mutation::Replace(at, b) if n > 0 => doc[at % n] = b,
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decodes_what_serde_json_decodes(value in shape()) {
        let doc = serde_json::to_vec(&value).expect("serialisable");
        let ours: Shape = Decoder::default().decode(&doc).expect("jsonfast decodes it");
        // The value encoded, floats included: they are correctly rounded
        // (serde_json's default parsing is not, so it only has to accept).
        prop_assert_eq!(&ours, &value);
        prop_assert!(serde_json::from_slice::<Shape>(&doc).is_ok());
        // Pretty-printed (whitespace, newlines) too.
        let pretty = serde_json::to_vec_pretty(&value).expect("serialisable");
        let ours: Shape = Decoder::default().decode(&pretty).expect("jsonfast decodes it");
        prop_assert_eq!(&ours, &value);
    }

    #[test]
    fn rejects_the_mutated_inputs_serde_json_rejects(
        value in shape(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut doc = serde_json::to_vec(&value).expect("serialisable");
        for m in &mutations {
            apply(&mut doc, m);
        }
        let ours = Decoder::default().decode::<Shape>(&doc);
        let theirs = serde_json::from_slice::<Shape>(&doc);
        // Stricter on purpose: what serde_json accepts only because the
        // type skips it (invalid UTF-8, a lone surrogate, a number beyond
        // f64) is rejected; serde_json rejects it too as a document.
        let expected =
            theirs.is_ok() && serde_json::from_slice::<serde_json::Value>(&doc).is_ok();
        prop_assert_eq!(
            ours.is_ok(),
            expected,
            "{}: jsonfast {:?}, serde_json {:?}",
            String::from_utf8_lossy(&doc),
            ours.as_ref().err().map(ToString::to_string),
            theirs.as_ref().err().map(ToString::to_string)
        );
        if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
            // The same, but for serde_json's float rounding.
            prop_assert!(close(&ours, &theirs), "{:?} against {:?}", ours, theirs);
        }
    }
}
