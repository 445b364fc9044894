//! Mutations of real inputs: the generated cases of [`crate::fuzz`]. Random bytes rarely get past
//! a format's first check; a real file with a few bytes changed reaches the deep parts of a parser.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;

/// One edit of an input; positions are fractions of the input's length ([`Index`]), so the same
/// mutation applies to inputs of any size and shrinks towards the start.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flip one bit.
    Flip(Index, u8),
    /// Overwrite bytes at a position with a value that parsers treat specially (0, 0xff, the
    /// extremes of signed bytes, huge little-endian lengths).
    Interesting(Index, &'static [u8]),
    /// Cut the input here.
    Truncate(Index),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Remove up to this many bytes.
    Remove(Index, usize),
    /// Repeat a range of up to this many bytes right after itself.
    Duplicate(Index, usize),
}

const INTERESTING: &[&[u8]] = &[
    &[0],
    &[0xff],
    &[0x7f],
    &[0x80],
    &[0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0, 0, 0, 0x80],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0, 0, 0, 0, 0, 0, 0, 0x40],
    &[0, 0, 0, 0],
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<Index>(), prop::sample::select(INTERESTING))
            .prop_map(|(i, v)| Mutation::Interesting(i, v)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

/// `input` with `mutations` applied in order.
///
/// ```
/// use lmsoftmax_fuzz::apply;
/// assert_eq!(apply(b"abc", &[]), b"abc"); // no mutation: the input itself
/// ```
pub fn apply(input: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut v = input.to_vec();
    for m in mutations {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        match m {
            Mutation::Flip(i, bit) if !v.is_empty() => {
                let k = at(i, v.len());
                v[k] ^= 1 << bit;
            }
            Mutation::Interesting(i, value) if !v.is_empty() => {
                let k = at(i, v.len());
                for (j, b) in value.iter().enumerate() {
                    if let Some(slot) = v.get_mut(k + j) {
                        *slot = *b;
                    }
                }
            }
            Mutation::Truncate(i) => {
                let k = at(i, v.len());
                v.truncate(k);
            }
            Mutation::Insert(i, bytes) => {
                let k = at(i, v.len() + 1);
                v.splice(k..k, bytes.iter().copied());
            }
            Mutation::Remove(i, n) if !v.is_empty() => {
                let k = at(i, v.len());
                let end = (k + n).min(v.len());
                v.drain(k..end);
            }
            Mutation::Duplicate(i, n) if !v.is_empty() => {
                let k = at(i, v.len());
                let end = (k + n).min(v.len());
                let copy = v[k..end].to_vec();
                v.splice(end..end, copy);
            }
            _ => {}
        }
    }
    v
}

/// The generated inputs: mostly one of `bases` with up to eight mutations, sometimes random
/// bytes of up to `max_len`.
pub fn inputs(bases: Vec<Vec<u8>>, max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let bases = Arc::new(bases);
    let n = bases.len();
    prop_oneof![
        6 => (0..n, prop::collection::vec(mutation(), 0..8))
            .prop_map(move |(i, ms)| apply(&bases[i], &ms)),
        1 => prop::collection::vec(any::<u8>(), 0..max_len.min(4096)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    fn index(f: f64) -> Index {
        // an Index maps to `f * len`; build one through its strategy's value tree
        let mut runner = TestRunner::deterministic();
        loop {
            let i = any::<Index>().new_tree(&mut runner).unwrap().current();
            let k = i.index(1000) as f64;
            if k >= f * 1000.0 && k < f * 1000.0 + 10.0 {
                return i;
            }
        }
    }

    #[test]
    fn each_mutation_does_what_it_says() {
        let s = b"0123456789";
        assert_eq!(apply(s, &[Mutation::Truncate(index(0.3))]), b"012");
        assert_eq!(apply(s, &[Mutation::Remove(index(0.0), 2)]), b"23456789");
        assert_eq!(
            apply(s, &[Mutation::Duplicate(index(0.8), 5)]),
            b"012345678989"
        );
        assert_eq!(
            apply(s, &[Mutation::Insert(index(0.0), vec![b'x'])]),
            b"x0123456789"
        );
        assert_eq!(apply(s, &[Mutation::Flip(index(0.0), 0)]), b"1123456789");
        assert_eq!(
            apply(
                s,
                &[Mutation::Interesting(
                    index(0.85),
                    &[0xff, 0xff, 0xff, 0xff]
                )]
            ),
            b"01234567\xff\xff"
        );
        // nothing panics on an empty input
        for m in [
            Mutation::Flip(index(0.5), 3),
            Mutation::Remove(index(0.5), 3),
            Mutation::Duplicate(index(0.5), 3),
            Mutation::Interesting(index(0.5), &[0]),
        ] {
            assert!(apply(b"", &[m]).is_empty());
        }
    }
}
