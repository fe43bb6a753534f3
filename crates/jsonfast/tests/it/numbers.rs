//! Numbers: integers never lose precision silently; floats are correctly
//! rounded.

use prodkit_jsonfast::{Decoder, ErrorKind};

use crate::data;

#[test]
fn integers_decode_as_the_type_allows_or_fail_clearly() {
    let mut d = Decoder::default();
    assert_eq!(d.decode::<u64>(b"18446744073709551615").unwrap(), u64::MAX);
    assert_eq!(d.decode::<i64>(b"-9223372036854775808").unwrap(), i64::MIN);
    for (doc, what) in [
        (&b"18446744073709551616"[..], "2^64 into u64"),
        (b"-9223372036854775809", "below i64::MIN into i64"),
        (b"1.5", "a fraction into u64"),
        (b"1e3", "an exponent into u64"),
        (b"123456789012345678901234567890", "30 digits into u64"),
    ] {
        let err = d.decode::<u64>(doc).expect_err(what);
        assert!(matches!(err.kind(), ErrorKind::Data(_)), "{what}: {err}");
    }
    assert!(d.decode::<u8>(b"256").is_err());
    assert!(d.decode::<i8>(b"-129").is_err());
    // Into f64 they decode, rounded as `str::parse` does.
    assert_eq!(
        d.decode::<f64>(b"123456789012345678901234567890").unwrap(),
        "123456789012345678901234567890".parse::<f64>().unwrap()
    );
    // A float beyond f64: an error, not infinity.
    let err = d.decode::<f64>(b"1e400").expect_err("1e400 is beyond f64");
    assert!(matches!(err.kind(), ErrorKind::Syntax(_)), "{err}");
}

#[test]
fn every_float_of_canada_is_rounded_as_str_parse_rounds_it() {
    let Some(path) = data("json/canada.json") else {
        return;
    };
    let text = std::fs::read_to_string(path).expect("readable");
    // The coordinates, in document order.
    #[derive(serde::Deserialize)]
    struct Canada {
        features: Vec<Feature>,
    }
    #[derive(serde::Deserialize)]
    struct Feature {
        geometry: Geometry,
    }
    #[derive(serde::Deserialize)]
    struct Geometry {
        coordinates: Vec<Vec<Vec<f64>>>,
    }
    let ours: Canada = Decoder::default().decode(text.as_bytes()).expect("decodes");
    let ours: Vec<f64> = ours
        .features
        .iter()
        .flat_map(|f| f.geometry.coordinates.iter().flatten().flatten().copied())
        .collect();
    // The reference: each number's text, parsed by the standard library.
    let reference: Vec<f64> = text
        .split(|c: char| !(c.is_ascii_digit() || "-+.eE".contains(c)))
        .filter_map(|t| t.parse().ok())
        .collect();
    assert_eq!(ours.len(), 111_126);
    assert_eq!(ours.len(), reference.len());
    let differ = ours
        .iter()
        .zip(&reference)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(differ, 0);
}
