//! Index keys and their canonical, order-preserving byte encoding.
//!
//! A key over one integer column is kept as `Key::Int` (no allocation, the common primary key). Any other key is the
//! concatenation of each column's encoding: a tag byte (0x01 for a value), then big-endian bytes with the sign bit
//! flipped for integers, the IEEE bits flipped for floats, and for text and bytes the bytes with 0x00 escaped as
//! 0x00 0xFF and terminated by 0x00 0x00. Comparing encodings byte-wise compares keys, so the same encoding serves hash
//! and ordered indexes and partition routing. Keys containing NULL are never indexed (NULLs never compare equal).
//! An encoding of up to 22 bytes (two integers, or an integer and a short string) is kept inline in the key, longer
//! ones on the heap.

use crate::value::Value;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Int(i64),
    Bytes(KeyBytes),
}

/// Encoded key bytes that fit inline: two integers, or an integer and a short string.
const KEY_INLINE_BYTES: usize = 22;

/// An encoded key: inline up to `KEY_INLINE_BYTES` (no allocation to build it, no pointer to follow when an index
/// compares it), on the heap beyond. Equality, order and hash are those of the bytes, whichever form holds them.
#[derive(Clone)]
pub enum KeyBytes {
    Inline {
        len: u8,
        bytes: [u8; KEY_INLINE_BYTES],
    },
    Heap(Box<[u8]>),
}

impl KeyBytes {
    pub fn new(encoded: &[u8]) -> KeyBytes {
        if encoded.len() > KEY_INLINE_BYTES {
            return KeyBytes::Heap(encoded.into());
        }
        let mut bytes = [0; KEY_INLINE_BYTES];
        bytes[..encoded.len()].copy_from_slice(encoded);
        KeyBytes::Inline {
            len: encoded.len() as u8,
            bytes,
        }
    }
}

impl std::ops::Deref for KeyBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, bytes } => &bytes[..*len as usize],
            KeyBytes::Heap(b) => b,
        }
    }
}

impl PartialEq for KeyBytes {
    fn eq(&self, other: &KeyBytes) -> bool {
        **self == **other
    }
}

impl Eq for KeyBytes {}

impl std::hash::Hash for KeyBytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl PartialOrd for KeyBytes {
    fn partial_cmp(&self, other: &KeyBytes) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyBytes {
    fn cmp(&self, other: &KeyBytes) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

pub fn encode_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    out.push(1);
    if let Some(v) = value.as_i64() {
        out.extend_from_slice(&encode_i64(v));
        return;
    }
    match value {
        Value::Null => {
            out.pop();
            out.push(0);
        }
        Value::Boolean(b) => out.push(*b as u8),
        Value::Real(f) => out.extend_from_slice(&encode_f64(*f as f64)),
        Value::Double(f) => out.extend_from_slice(&encode_f64(*f)),
        Value::Decimal(m, _) => out.extend_from_slice(&((*m as u128) ^ (1 << 127)).to_be_bytes()),
        Value::Text(s) => encode_bytes(s.as_bytes(), out),
        Value::Bytes(b) => encode_bytes(b, out),
        Value::Timestamp(t) => out.extend_from_slice(&encode_i64(*t)),
        Value::Date(d) => out.extend_from_slice(&encode_i64(*d as i64)),
        Value::TimestampTz(t) | Value::Time(t) => out.extend_from_slice(&encode_i64(*t)),
        Value::Array(elements) => {
            // Elements one after another, then a tag below every value's: arrays order element-wise.
            elements.iter().for_each(|e| encode_value(e, out));
            out.push(0);
        }
        Value::Interval { .. } => out.extend_from_slice(
            &((crate::datetime::interval_span(value) as u128) ^ (1 << 127)).to_be_bytes(),
        ),
        Value::SmallInt(_) | Value::Integer(_) | Value::BigInt(_) => {
            unreachable!("integers handled above")
        }
    }
}

fn encode_f64(f: f64) -> [u8; 8] {
    let f = if f == 0.0 { 0.0 } else { f };
    let bits = f.to_bits();
    let bits = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    bits.to_be_bytes()
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for b in bytes {
        out.push(*b);
        if *b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The index key of `values`, or `None` if any is NULL.
pub fn make_key<'a>(values: impl ExactSizeIterator<Item = &'a Value>) -> Option<Key> {
    let mut values = values.peekable();
    if values.len() == 1 {
        let v = values.peek().expect("one value");
        if v.is_null() {
            return None;
        }
        if let Some(i) = v.as_i64() {
            return Some(Key::Int(i));
        }
    }
    thread_local! {
        /// Where keys are encoded before they are copied into their `KeyBytes`: built without an allocation.
        static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    ENCODED.with_borrow_mut(|out| {
        out.clear();
        for v in values {
            if v.is_null() {
                return None;
            }
            encode_value(v, out);
        }
        Some(Key::Bytes(KeyBytes::new(out)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(v, &mut out);
        out
    }

    #[test]
    fn encoding_preserves_order() {
        let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in ints.windows(2) {
            assert!(enc(&Value::BigInt(w[0])) < enc(&Value::BigInt(w[1])));
        }
        let floats = [f64::NEG_INFINITY, -2.5, -0.0, 0.5, 3.0, f64::INFINITY];
        for w in floats.windows(2) {
            assert!(enc(&Value::Double(w[0])) <= enc(&Value::Double(w[1])));
        }
        let texts = ["", "a", "a\0", "ab", "b"];
        for w in texts.windows(2) {
            assert!(enc(&Value::Text(w[0].into())) < enc(&Value::Text(w[1].into())));
        }
    }

    #[test]
    fn a_key_compares_and_hashes_by_its_bytes_inline_or_not() {
        use std::hash::{BuildHasher, RandomState};
        let short = make_key([Value::Integer(3), Value::Text("CA".into())].iter()).unwrap();
        let long_text = "a state name longer than the inline bytes";
        let long = make_key([Value::Integer(3), Value::Text(long_text.into())].iter()).unwrap();
        let (Key::Bytes(s), Key::Bytes(l)) = (&short, &long) else {
            panic!("composite keys are bytes")
        };
        assert!(matches!(s, KeyBytes::Inline { .. }));
        assert!(matches!(l, KeyBytes::Heap(_)));
        let mut encoded = Vec::new();
        encode_value(&Value::Integer(3), &mut encoded);
        encode_value(&Value::Text("CA".into()), &mut encoded);
        assert_eq!(&**s, &encoded[..]);
        let heap = KeyBytes::Heap(encoded.clone().into());
        assert_eq!(*s, heap);
        let hasher = RandomState::new();
        assert_eq!(hasher.hash_one(s), hasher.hash_one(&heap));
        // Order is the bytes' order across both forms: "CA" sorts before the long text.
        assert!(short < long);
        assert!(std::mem::size_of::<Key>() <= 32);
    }

    #[test]
    fn null_keys_are_not_indexed() {
        assert_eq!(make_key([Value::Null].iter()), None);
        assert_eq!(make_key([Value::Integer(1), Value::Null].iter()), None);
        assert_eq!(make_key([Value::Integer(1)].iter()), Some(Key::Int(1)));
    }
}
