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

pub fn encode_value(value: &Value, out: &mut impl KeyOut) {
    if let Some(v) = value.as_i64() {
        out.put_byte(1);
        out.put(&encode_i64(v));
        return;
    }
    if value.is_null() {
        out.put_byte(0);
        return;
    }
    out.put_byte(1);
    match value {
        Value::Boolean(b) => out.put_byte(*b as u8),
        Value::Real(f) => out.put(&encode_f64(*f as f64)),
        Value::Double(f) => out.put(&encode_f64(*f)),
        Value::Decimal(m, _) => out.put(&((*m as u128) ^ (1 << 127)).to_be_bytes()),
        Value::Text(s) => encode_bytes(s.as_bytes(), out),
        Value::Bytes(b) => encode_bytes(b, out),
        Value::Timestamp(t) => out.put(&encode_i64(*t)),
        Value::Date(d) => out.put(&encode_i64(*d as i64)),
        Value::TimestampTz(t) | Value::Time(t) => out.put(&encode_i64(*t)),
        Value::Array(elements) => {
            // Elements one after another, then a tag below every value's: arrays order element-wise.
            elements.iter().for_each(|e| encode_value(e, out));
            out.put_byte(0);
        }
        Value::Interval { .. } => {
            out.put(&((crate::datetime::interval_span(value) as u128) ^ (1 << 127)).to_be_bytes())
        }
        Value::Null | Value::SmallInt(_) | Value::Integer(_) | Value::BigInt(_) => {
            unreachable!("NULL and integers handled above")
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

fn encode_bytes(bytes: &[u8], out: &mut impl KeyOut) {
    for b in bytes {
        out.put_byte(*b);
        if *b == 0 {
            out.put_byte(0xFF);
        }
    }
    out.put(&[0, 0]);
}

/// The index key of `values`, or `None` if any is NULL. Encoded straight into the key's inline bytes, moving to the
/// heap only past `KEY_INLINE_BYTES`.
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
    let mut out = KeyBuilder::default();
    for v in values {
        if v.is_null() {
            return None;
        }
        encode_value(v, &mut out);
    }
    Some(Key::Bytes(out.finish()))
}

/// Where a key's encoding is written: a `Vec`, or the inline bytes of a key being built.
pub trait KeyOut {
    fn put(&mut self, bytes: &[u8]);
    fn put_byte(&mut self, byte: u8);
}

impl KeyOut for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn put_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

/// Builds a `KeyBytes` in place: the inline array until the encoding outgrows it, then a heap buffer.
#[derive(Default)]
struct KeyBuilder {
    len: u8,
    bytes: [u8; KEY_INLINE_BYTES],
    spilled: Option<Vec<u8>>,
}

impl KeyBuilder {
    fn finish(self) -> KeyBytes {
        match self.spilled {
            Some(heap) => KeyBytes::Heap(heap.into_boxed_slice()),
            None => KeyBytes::Inline {
                len: self.len,
                bytes: self.bytes,
            },
        }
    }
}

impl KeyOut for KeyBuilder {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(heap) = &mut self.spilled {
            heap.extend_from_slice(bytes);
            return;
        }
        let len = self.len as usize;
        if len + bytes.len() <= KEY_INLINE_BYTES {
            // Byte by byte: the pieces are a few bytes long, and a call to `memcpy` per piece cost more.
            for (to, from) in self.bytes[len..].iter_mut().zip(bytes) {
                *to = *from;
            }
            self.len += bytes.len() as u8;
        } else {
            let mut heap = Vec::with_capacity(2 * KEY_INLINE_BYTES + bytes.len());
            heap.extend_from_slice(&self.bytes[..len]);
            heap.extend_from_slice(bytes);
            self.spilled = Some(heap);
        }
    }

    fn put_byte(&mut self, byte: u8) {
        match &mut self.spilled {
            Some(heap) => heap.push(byte),
            None if (self.len as usize) < KEY_INLINE_BYTES => {
                self.bytes[self.len as usize] = byte;
                self.len += 1;
            }
            None => self.put(&[byte]),
        }
    }
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
    fn keys_built_in_place_match_the_encoding_at_every_length() {
        // Text with zero bytes (escaped to two) around the inline limit, after an integer and alone.
        for len in 0..40 {
            let text: String = (0..len)
                .map(|i| if i % 7 == 3 { '\0' } else { 'x' })
                .collect();
            for values in [
                vec![Value::Integer(-9), Value::Text(text.clone())],
                vec![Value::Text(text.clone())],
                vec![
                    Value::Text(text.clone()),
                    Value::BigInt(i64::MAX),
                    Value::Boolean(true),
                ],
            ] {
                let mut encoded = Vec::new();
                values.iter().for_each(|v| encode_value(v, &mut encoded));
                let Some(Key::Bytes(key)) = make_key(values.iter()) else {
                    panic!("a key of bytes")
                };
                assert_eq!(&*key, &encoded[..], "{values:?}");
                let inline = matches!(key, KeyBytes::Inline { .. });
                assert_eq!(inline, encoded.len() <= KEY_INLINE_BYTES, "{values:?}");
            }
        }
    }

    #[test]
    fn null_keys_are_not_indexed() {
        assert_eq!(make_key([Value::Null].iter()), None);
        assert_eq!(make_key([Value::Integer(1), Value::Null].iter()), None);
        assert_eq!(make_key([Value::Integer(1)].iter()), Some(Key::Int(1)));
    }
}
