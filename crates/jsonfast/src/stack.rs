//! Enough stack for the typed decoding of a deep document. serde decodes a
//! nested value by recursion, a few frames a level, and how large those
//! frames are depends on the target type and on the build (an unoptimized
//! build's are several times larger). The parser bounds the depth
//! (`max_depth`); this bounds the stack: the decoding runs on the thread's
//! own stack when enough of it is left, else on a stack allocated for the
//! call, on the same thread (`stacker`, rust-lang's crate, as rustc uses it).

use simd_json::{Node, Tape};

/// Stack a level of nesting takes in the typed decoding, at most, with
/// room to spare: a struct of options took 3.6 KiB a level in a debug
/// build, 0.6 KiB optimized (measured by review, at 128 levels).
pub(crate) const PER_LEVEL: usize = 8 << 10;

/// The same in the second decode that finds an error's path, which adds
/// serde_path_to_error's frames to each level (2 to 2.5 times the stack of
/// the first, measured by review).
pub(crate) const PER_LEVEL_TRACKED: usize = 24 << 10;

/// Stack for the frames above the first level.
const BASE: usize = 64 << 10;

/// A stack allocated for a call gives each level this much: it is address
/// space, of which only the pages the decoding touches are ever used, so
/// it is generous (a type whose levels hold large arrays by value took 13
/// to 31 KiB a level, measured by review).
const GROWN_PER_LEVEL: usize = 64 << 10;

/// The stack a decoding needs: when the thread has `left` bytes, it runs
/// there; else on a stack of `grown` bytes allocated for the call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Need {
    left: usize,
    grown: usize,
}

/// Runs `f` with the stack `need` says: on this thread's stack when it has
/// enough left, else on a stack allocated for the call. A panic in `f`
/// goes on unwinding from here.
pub(crate) fn with_stack<R>(need: Need, f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(need.left, need.grown, f)
}

/// The deepest nesting of a tape, found with a stack kept for reuse.
#[derive(Default)]
pub(crate) struct Depth {
    /// The tape index where each open array or object ends.
    ends: Vec<usize>,
}

impl Depth {
    /// The stack the typed decoding of `tape` needs at `per_level` a level.
    /// When the thread has what the deepest document `max_depth` allows
    /// would need, that (the tape is not looked at: the common case costs
    /// a read of the stack pointer); else what the tape's own depth needs.
    pub(crate) fn need(&mut self, tape: &Tape<'_>, max_depth: usize, per_level: usize) -> Need {
        let worst = BASE + max_depth * per_level;
        if stacker::remaining_stack().is_some_and(|left| left >= worst) {
            return Need {
                left: worst,
                grown: worst,
            };
        }
        let depth = self.of(tape);
        Need {
            left: BASE + depth * per_level,
            grown: BASE + depth * GROWN_PER_LEVEL.max(per_level),
        }
    }

    /// The deepest nesting of arrays and objects in `tape`.
    fn of(&mut self, tape: &Tape<'_>) -> usize {
        self.ends.clear();
        let mut deepest = 0;
        for (at, node) in tape.0.iter().enumerate() {
            while self.ends.last().is_some_and(|&end| end <= at) {
                self.ends.pop();
            }
            if let Node::Array { count, .. } | Node::Object { count, .. } = node {
                // `count` nodes follow it inside it.
                self.ends.push(at + 1 + count);
                deepest = deepest.max(self.ends.len());
            }
        }
        deepest
    }

    /// Bytes kept for reuse.
    pub(crate) fn kept_bytes(&self) -> usize {
        self.ends.capacity() * size_of::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::Depth;
    use simd_json::{Buffers, Tape};

    fn depth(json: &str) -> usize {
        let mut input = json.as_bytes().to_vec();
        let mut tape = Tape::null().reset();
        simd_json::fill_tape(&mut input, &mut Buffers::default(), &mut tape).expect("valid");
        Depth::default().of(&tape)
    }

    #[test]
    fn the_depth_of_a_tape_is_its_deepest_nesting() {
        for (json, want) in [
            ("1", 0),
            ("[]", 1),
            ("{}", 1),
            ("[1, [2, [3]], 4]", 3),
            ("[[1], [[2]], 3]", 3),
            (r#"{"a": {"b": []}, "c": [[[[]]]]}"#, 5),
            (r#"[{"k": "v"}, {"k": {"x": 1}}, [], 7]"#, 3),
        ] {
            assert_eq!(depth(json), want, "{json}");
        }
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(depth(&deep), 1000);
    }
}
