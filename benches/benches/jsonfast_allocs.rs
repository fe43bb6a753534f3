//! `jsonfast/allocs-per-decode/{file}` and `jsonfast/faults-per-decode/{file}`:
//! heap allocations and minor page faults per decode of each corpus file
//! into its typed structs, after warm-up (non-time figures, counted by this
//! program's global allocator). `floor` is what the decoded value owns: the
//! allocations of a clone of it.

use std::hint::black_box;

use prodkit_benches::alloc::{Counting, allocations};
use prodkit_benches::json_types::{canada::Canada, citm::CitmCatalog, twitter::Twitter};
use prodkit_benches::pages::minor_faults;
use prodkit_benches::{Better, Figures, data_dir};
use prodkit_jsonfast::Decoder;
use serde::de::DeserializeOwned;

#[global_allocator]
static A: Counting = Counting;

/// Allocations and page faults per call of `decode`, over `n` calls after
/// 3 of warm-up.
fn per_call(n: u32, mut decode: impl FnMut()) -> (f64, f64) {
    for _ in 0..3 {
        decode();
    }
    let (allocs, faults) = (allocations(), minor_faults());
    for _ in 0..n {
        decode();
    }
    (
        (allocations() - allocs) as f64 / f64::from(n),
        (minor_faults() - faults) as f64 / f64::from(n),
    )
}

/// One implementation's decode of the file, its value dropped.
type Decode<'a> = Box<dyn FnMut() + 'a>;

fn file<T: DeserializeOwned + Clone>(figures: &mut Figures, name: &str, json: &[u8]) {
    let mut decoder = Decoder::default();
    let value: T = decoder.decode(json).expect("decodes");
    let mut imps: Vec<(&str, Decode<'_>)> = vec![
        (
            "prodkit",
            Box::new(|| drop(black_box(decoder.decode::<T>(json).expect("decodes")))),
        ),
        (
            "serde_json",
            Box::new(|| {
                drop(black_box(
                    serde_json::from_slice::<T>(json).expect("decodes"),
                ))
            }),
        ),
        (
            "simd_json",
            Box::new(|| {
                let mut copy = json.to_vec();
                drop(black_box(
                    simd_json::serde::from_slice::<T>(&mut copy).expect("decodes"),
                ));
            }),
        ),
        (
            "sonic_rs",
            Box::new(|| drop(black_box(sonic_rs::from_slice::<T>(json).expect("decodes")))),
        ),
        ("floor", Box::new(|| drop(black_box(value.clone())))),
    ];
    // A first pass over every implementation grows the heap to what the
    // largest needs, so that no implementation's count depends on running
    // before the others (the first one measured took the heap's growth:
    // 1 or 2 faults in 100 decodes); the second pass is recorded.
    let mut rows = Vec::new();
    for pass in 0..2 {
        rows.clear();
        for (imp, decode) in &mut imps {
            let counts = per_call(if pass == 0 { 10 } else { 100 }, decode);
            rows.push((*imp, counts));
        }
    }
    for (imp, (allocs, faults)) in rows {
        figures.record(
            &format!("jsonfast/allocs-per-decode/{name}"),
            imp,
            allocs,
            "allocations",
            Better::Lower,
        );
        figures.record(
            &format!("jsonfast/faults-per-decode/{name}"),
            imp,
            faults,
            "faults",
            Better::Lower,
        );
    }
}

fn main() {
    let mut figures = Figures::new("jsonfast_allocs");
    let dir = data_dir().join("json");
    let read = |f: &str| std::fs::read(dir.join(f)).ok();
    match (
        read("twitter.json"),
        read("citm_catalog.json"),
        read("canada.json"),
    ) {
        (Some(twitter), Some(citm), Some(canada)) => {
            file::<Twitter>(&mut figures, "twitter", &twitter);
            file::<CitmCatalog>(&mut figures, "citm_catalog", &citm);
            file::<Canada>(&mut figures, "canada", &canada);
        }
        _ => figures.note(&format!(
            "the JSON corpus is not in {}: skipped (set PRODKIT_DATA to the folder holding json/)",
            dir.display()
        )),
    }
    figures.write().expect("the report folder is writable");
}
