//! Typed JSON decoding, in interleaved rounds (see `prodkit_benches::rounds`).
//!
//! - `jsonfast/typed/{twitter,citm_catalog,canada}`, MB/s of the original
//!   bytes, each decoded into owned typed structs (`prodkit_benches::json_types`,
//!   as serde-rs/json-benchmark defines them), the value dropped after each
//!   decode. `prodkit`: a `Decoder` reused; `serde_json`: `from_slice`;
//!   `simd_json`: `serde::from_slice` on a fresh copy each time (simd-json
//!   parses in place), as it is used plainly; `simd_json_reused`: simd-json's
//!   fully reused path written out (padded input, buffers and tape kept,
//!   `fill_tape_padded` + `Deserializer::from_tape`), what `prodkit` builds
//!   on; `sonic_rs`: `from_slice`; `floor`: simd-json's parse alone on
//!   reused buffers, the tape without the value: the cost no typed decoder
//!   on it avoids.
//! - `jsonfast/small-docs`: twitter's statuses as single documents (4-5 KB
//!   each), decoded one at a time, ns per document.
//! - `jsonfast/ndjson`: 100,000 small records, MB/s: `prodkit` (`ndjson`),
//!   `serde_json` (`StreamDeserializer`), and `prodkit_one_document`, the
//!   same records as one JSON array: NDJSON's cost per record.
//!
//! Built for the default x86-64 target (what users ship); simd-json and
//! prodkit pick their SIMD code at run time, sonic-rs at build time (a run
//! with `RUSTFLAGS="-C target-cpu=native"` gives its best figures).
//! Allocations and page faults per decode come from `jsonfast_allocs`.

use std::hint::black_box;
use std::path::Path;

use prodkit_benches::json_types::{canada::Canada, citm::CitmCatalog, twitter::Twitter};
use prodkit_benches::rounds::{Imp, imp, measure, measure_rate, one_thread};
use prodkit_benches::{Figures, data_dir};
use prodkit_jsonfast::Decoder;
use serde::de::DeserializeOwned;
use simd_json::{Buffers, Deserializer, INPUT_PADDING, Tape};

/// simd-json's fully reused path: what a careful user of simd-json writes.
struct Reused {
    buffers: Buffers,
    input: Vec<u8>,
    tape: Option<Tape<'static>>,
}

impl Reused {
    fn new() -> Reused {
        Reused {
            buffers: Buffers::default(),
            input: Vec::new(),
            tape: Some(Tape::null().reset()),
        }
    }

    /// Parses `json` into the tape and, with `decode`, into a `T`.
    fn run<T: DeserializeOwned>(&mut self, json: &[u8], decode: bool) -> Option<T> {
        self.input.clear();
        self.input.extend_from_slice(json);
        self.input.resize(json.len() + INPUT_PADDING, b' ');
        let mut tape = self.tape.take().expect("kept between runs").reset();
        simd_json::fill_tape_padded(&mut self.input, json.len(), &mut self.buffers, &mut tape)
            .expect("valid JSON");
        let out = if decode {
            let mut de = Deserializer::from_tape(tape);
            let out = T::deserialize(&mut de).expect("fits the type");
            tape = de.into_tape();
            Some(out)
        } else {
            black_box(&tape);
            None
        };
        self.tape = Some(tape.reset());
        out
    }
}

fn typed<T: DeserializeOwned + 'static>(figures: &mut Figures, name: &str, json: Vec<u8>) {
    let json: &'static [u8] = json.leak();
    let mut decoder = Decoder::default();
    let mut reused = Reused::new();
    let mut floor = Reused::new();
    let imps: Vec<Imp> = vec![
        imp(
            "prodkit",
            one_thread(move || drop(black_box(decoder.decode::<T>(json).expect("decodes")))),
        ),
        imp(
            "serde_json",
            one_thread(move || {
                drop(black_box(
                    serde_json::from_slice::<T>(json).expect("decodes"),
                ))
            }),
        ),
        imp(
            "simd_json",
            one_thread(move || {
                let mut copy = json.to_vec();
                drop(black_box(
                    simd_json::serde::from_slice::<T>(&mut copy).expect("decodes"),
                ));
            }),
        ),
        imp(
            "simd_json_reused",
            one_thread(move || drop(black_box(reused.run::<T>(json, true)))),
        ),
        imp(
            "sonic_rs",
            one_thread(move || drop(black_box(sonic_rs::from_slice::<T>(json).expect("decodes")))),
        ),
        imp(
            "floor",
            one_thread(move || drop(black_box(floor.run::<T>(json, false)))),
        ),
    ];
    measure_rate(
        figures,
        &format!("jsonfast/typed/{name}"),
        "MB/s",
        json.len() as f64,
        1e6,
        imps,
    );
}

fn small_docs(figures: &mut Figures, twitter: &[u8]) {
    let all: serde_json::Value = serde_json::from_slice(twitter).expect("valid");
    let docs: Vec<Vec<u8>> = all["statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .map(|s| serde_json::to_vec(s).expect("serialisable"))
        .collect();
    let docs: &'static [Vec<u8>] = docs.leak();
    type Status = prodkit_benches::json_types::twitter::Status;
    let cycle = |docs: &'static [Vec<u8>]| {
        let mut at = 0;
        move || {
            at = (at + 1) % docs.len();
            &docs[at][..]
        }
    };
    let mut decoder = Decoder::default();
    let (mut a, mut b, mut c) = (cycle(docs), cycle(docs), cycle(docs));
    let imps = vec![
        imp(
            "prodkit",
            one_thread(move || drop(black_box(decoder.decode::<Status>(a()).expect("decodes")))),
        ),
        imp(
            "serde_json",
            one_thread(move || {
                drop(black_box(
                    serde_json::from_slice::<Status>(b()).expect("decodes"),
                ));
            }),
        ),
        imp(
            "sonic_rs",
            one_thread(move || {
                drop(black_box(
                    sonic_rs::from_slice::<Status>(c()).expect("decodes"),
                ))
            }),
        ),
    ];
    measure(figures, "jsonfast/small-docs", "ns/doc", imps);
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Record {
    id: u64,
    user: String,
    score: f64,
    tags: Vec<String>,
    active: bool,
}

fn ndjson(figures: &mut Figures) {
    let records: Vec<Record> = (0..100_000u64)
        .map(|i| Record {
            id: i,
            user: format!("user-{i}"),
            score: i as f64 * 0.37,
            tags: vec!["a".into(), format!("t{}", i % 7)],
            active: i % 3 == 0,
        })
        .collect();
    let mut lines = Vec::new();
    for r in &records {
        serde_json::to_writer(&mut lines, r).expect("serialisable");
        lines.push(b'\n');
    }
    let array = serde_json::to_vec(&records).expect("serialisable");
    let lines: &'static [u8] = lines.leak();
    let array: &'static [u8] = array.leak();
    let mut decoder = Decoder::default();
    let mut whole = Decoder::default();
    let imps = vec![
        imp(
            "prodkit",
            one_thread(move || {
                let mut n = 0;
                for r in decoder.ndjson::<Record, _>(lines) {
                    black_box(r.expect("decodes"));
                    n += 1;
                }
                assert_eq!(n, 100_000);
            }),
        ),
        imp(
            "serde_json",
            one_thread(move || {
                let mut n = 0;
                for r in serde_json::Deserializer::from_slice(lines).into_iter::<Record>() {
                    black_box(r.expect("decodes"));
                    n += 1;
                }
                assert_eq!(n, 100_000);
            }),
        ),
        imp(
            "prodkit_one_document",
            one_thread(move || {
                drop(black_box(
                    whole.decode::<Vec<Record>>(array).expect("decodes"),
                ))
            }),
        ),
    ];
    measure_rate(
        figures,
        "jsonfast/ndjson",
        "MB/s",
        lines.len() as f64,
        1e6,
        imps,
    );
}

/// A corpus file's bytes, or `None` with a note in the report.
fn corpus(figures: &mut Figures, dir: &Path, file: &str) -> Option<Vec<u8>> {
    match std::fs::read(dir.join(file)) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            figures.note(&format!(
                "{file} not found in {}: its groups skipped (set PRODKIT_DATA to the folder holding json/)",
                dir.display()
            ));
            None
        }
    }
}

fn main() {
    let mut figures = Figures::new("jsonfast");
    let dir = data_dir().join("json");
    if let Some(twitter) = corpus(&mut figures, &dir, "twitter.json") {
        typed::<Twitter>(&mut figures, "twitter", twitter.clone());
        small_docs(&mut figures, &twitter);
    }
    if let Some(citm) = corpus(&mut figures, &dir, "citm_catalog.json") {
        typed::<CitmCatalog>(&mut figures, "citm_catalog", citm);
    }
    if let Some(canada) = corpus(&mut figures, &dir, "canada.json") {
        typed::<Canada>(&mut figures, "canada", canada);
    }
    ndjson(&mut figures);
    figures.write().expect("the report folder is writable");
}
