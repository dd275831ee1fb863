//! The command log's on-disk format, and the storage trait every byte of it goes through.
//!
//! This module is the format: encoding records, and reading a log directory back for recovery with torn tails told
//! apart from corruption. The writer (group commit, segment rotation, failures) is `command_log`; what a payload
//! holds is `invocation`.
//!
//! ## Segment files
//!
//! A log is a sequence of segment files named `log-<first sequence, 20 digits>.seg`. Every integer is
//! little-endian.
//!
//! ```text
//!   segment header (32 bytes)
//!     0   8  magic            "LANEDBLG"
//!     8   4  format version   1
//!    12   4  reserved         0
//!    16   8  first sequence   sequence number of the segment's first record
//!    24   4  header CRC-32C   over bytes 0..24
//!    28   4  reserved         0
//!   records, back to back
//!     0   4  payload length   n (at most RECORD_BYTES_MAX); the top bit is the *continued* flag
//!     4   4  CRC-32C          over bytes 8..16+n (sequence and payload); for a continued part, over a byte 1
//!                             after them too, so that the flag is checked as well
//!     8   8  sequence         one more than the previous record's
//!    16   n  payload
//! ```
//!
//! A payload larger than `RECORD_BYTES_MAX` (the rows of a big COPY) is split over consecutive records: every part
//! but the last has the continued flag, and the reader joins them into one payload that carries the last part's
//! sequence. The parts are appended together, in one batch, so they never span two segments. A log that ends inside
//! such a chain ends in a torn write: the payload was never acknowledged (its transaction waits for the last part),
//! and the reader cuts the log back to where the chain starts.
//!
//! A segment's file may be longer than its records: the writer extends it with zeros ahead of use (see
//! `command_log`), so that syncing a write does not also have to make a new file length durable. Zeros from a
//! record boundary to the end of the file are unused space, not damage.
//!
//! ## Reading back
//!
//! A record that is cut short or fails its CRC in the last segment, with no intact later record after it, is a torn
//! write (the process died mid-append): the reader stops there and reports the offset, so the caller can truncate
//! and warn. The same damage anywhere else — followed by an intact record, in an earlier segment, or a sequence gap —
//! is corruption: an error naming the file and offset, never a silent skip. Looking for that intact later record
//! checks a CRC only where the bytes look like a record in place, and only up to a bound; past it the reader says
//! it cannot tell, also an error (see `later_record`).

use std::borrow::Cow;

use crate::command_log::Tail;
use crate::error::{Error, Result, SqlState};
use crate::io::Directory;

pub const SEGMENT_MAGIC: &[u8; 8] = b"LANEDBLG";
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_BYTES: usize = 32;
pub const RECORD_HEADER_BYTES: usize = 16;
/// Largest payload of one record; a bigger one is refused when written and is corruption when read. Bigger payloads
/// are split over several records (`encode_payload`).
pub const RECORD_BYTES_MAX: usize = 64 << 20;
/// The length field's flag for "the payload continues in the next record".
const CONTINUED: u32 = 1 << 31;
/// The most CRC work, in bytes, spent looking for an intact record after damage in the newest segment (see
/// `later_record`).
const LATER_SCAN_CRC_BYTES_MAX: usize = 1 << 30;

/// The file name of the segment whose first record has `sequence`.
pub fn segment_name(first_sequence: u64) -> String {
    format!("log-{first_sequence:020}.seg")
}

/// A segment header.
pub fn encode_header(first_sequence: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_sequence.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Appends one record to `out`.
pub fn encode_record(out: &mut Vec<u8>, sequence: u64, payload: &[u8]) -> Result<()> {
    if payload.len() > RECORD_BYTES_MAX {
        return Err(Error::new(
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            format!(
                "a log record of {} bytes is larger than {RECORD_BYTES_MAX}",
                payload.len()
            ),
        ));
    }
    put_record(out, sequence, payload, false);
    Ok(())
}

/// Appends `payload` as records numbered from `sequence`: one record, or a chain of them when it is larger than
/// `RECORD_BYTES_MAX` (see the module docs). Returns how many records it took.
pub fn encode_payload(out: &mut Vec<u8>, sequence: u64, payload: &[u8]) -> u64 {
    encode_payload_in(out, sequence, payload, RECORD_BYTES_MAX)
}

fn encode_payload_in(out: &mut Vec<u8>, sequence: u64, payload: &[u8], part_bytes: usize) -> u64 {
    let parts = payload.len().div_ceil(part_bytes).max(1);
    out.reserve(payload.len() + parts * RECORD_HEADER_BYTES);
    for i in 0..parts {
        let part = &payload[i * part_bytes..((i + 1) * part_bytes).min(payload.len())];
        put_record(out, sequence + i as u64, part, i + 1 < parts);
    }
    parts as u64
}

fn put_record(out: &mut Vec<u8>, sequence: u64, payload: &[u8], continued: bool) {
    debug_assert!(payload.len() <= RECORD_BYTES_MAX);
    let start = out.len();
    let length = payload.len() as u32 | if continued { CONTINUED } else { 0 };
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = record_crc(&out[start + 8..], continued);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The CRC of a record's sequence and payload, covering the continued flag too (see the module docs).
fn record_crc(body: &[u8], continued: bool) -> u32 {
    let crc = crc32c::crc32c(body);
    if continued {
        crc32c::crc32c_append(crc, &[1])
    } else {
        crc
    }
}

/// A record read back: one payload, which a chain of records joins into one (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The sequence of the (last) record.
    pub sequence: u64,
    /// The payload: in the segment's bytes, or joined from a chain.
    pub payload: Cow<'a, [u8]>,
    /// The bytes it takes in the segment, headers included.
    pub stored_bytes: u64,
}

/// One record as stored: a whole payload, or a part of a chain.
struct Part<'a> {
    sequence: u64,
    payload: &'a [u8],
    continued: bool,
}

/// What reading a segment found.
#[derive(Debug, PartialEq, Eq)]
pub struct SegmentRead<'a> {
    pub records: Vec<Record<'a>>,
    /// Where the records end: the next record goes here.
    pub end: u64,
    /// A torn tail: the offset where the valid bytes end (the file should be truncated there).
    pub torn_at: Option<u64>,
}

fn corrupt(name: &str, offset: usize, what: &str) -> Error {
    Error::new(
        SqlState("XX001"),
        format!(
            "command log segment {name} is corrupt at byte {offset}: {what}. Restore the data directory from a \
             snapshot backup, or move this segment and the later ones away to start from the last good record"
        ),
    )
}

/// Reads one segment. `last`: whether it is the newest segment, where a damaged final record is a torn write.
/// `expected`: the sequence its first record must have, when known.
pub fn read_segment<'a>(
    name: &str,
    bytes: &'a [u8],
    last: bool,
    expected: Option<u64>,
) -> Result<SegmentRead<'a>> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        if last {
            return Ok(SegmentRead {
                records: vec![],
                end: 0,
                torn_at: Some(0),
            });
        }
        return Err(corrupt(name, 0, "the segment header is cut short"));
    }
    let header = &bytes[..SEGMENT_HEADER_BYTES];
    let header_crc = u32::from_le_bytes(header[24..28].try_into().expect("4 bytes"));
    if &header[0..8] != SEGMENT_MAGIC || crc32c::crc32c(&header[0..24]) != header_crc {
        return Err(corrupt(name, 0, "bad segment header"));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(corrupt(
            name,
            8,
            &format!("unknown format version {version}"),
        ));
    }
    let first = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    if expected.is_some_and(|e| e != first) {
        return Err(corrupt(
            name,
            16,
            "its first sequence does not follow the previous segment",
        ));
    }
    let mut records = Vec::new();
    // A chain of parts being joined: where its first part starts, and the payload so far.
    let mut chain: Option<(usize, Vec<u8>)> = None;
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut next = first;
    let mut torn = false;
    while offset < bytes.len() {
        match decode_record(&bytes[offset..], next) {
            Ok(Some((part, used))) => {
                offset += used;
                next += 1;
                let (start, payload) = match (chain.take(), part.continued) {
                    (None, false) => (offset - used, Cow::Borrowed(part.payload)),
                    (None, true) => {
                        chain = Some((offset - used, part.payload.to_vec()));
                        continue;
                    }
                    (Some((start, mut joined)), continued) => {
                        joined.extend_from_slice(part.payload);
                        if continued {
                            chain = Some((start, joined));
                            continue;
                        }
                        (start, Cow::Owned(joined))
                    }
                };
                records.push(Record {
                    sequence: part.sequence,
                    payload,
                    stored_bytes: (offset - start) as u64,
                });
            }
            // Space written ahead of use (an all-zero header is never a record: its CRC would not match).
            _ if bytes[offset..].iter().all(|&b| b == 0) => break,
            damaged => {
                if last {
                    match later_record(bytes, offset, next) {
                        Some(false) => {
                            torn = true;
                            break;
                        }
                        Some(true) => {}
                        None => {
                            return Err(corrupt(
                                name,
                                offset,
                                "a damaged record, and after it too many bytes that look like records to tell a \
                                 torn write from damage",
                            ))
                        }
                    }
                }
                let what = match damaged {
                    Err(what) => what,
                    _ => "a record is cut short",
                };
                return Err(corrupt(name, offset, what));
            }
        }
    }
    // A chain the segment ends inside was never acknowledged: in the newest segment a torn write, cut back to where
    // the chain starts; in an earlier one, damage.
    if let Some((start, _)) = chain {
        if !last {
            return Err(corrupt(name, start, "a chain of records is cut short"));
        }
        offset = start;
        torn = true;
    }
    Ok(SegmentRead {
        records,
        end: offset as u64,
        torn_at: torn.then_some(offset as u64),
    })
}

/// Whether an intact record with a sequence after `next` starts anywhere after the damaged one at `damaged`: if one
/// does, the damage is not a torn tail but corruption (a flipped length must not make the reader drop good records).
///
/// Every byte offset is a candidate, so the scan keeps to what a real record would look like before it computes a
/// CRC: a sequence past `next` by at most the records that fit between the damage and it (a header's worth of
/// bytes each), a length that fits, and after it the end of the data, zeros, or a header with the next sequence.
/// What a torn tail holds (the payload of a big COPY cut short, say) seldom looks like that, and the CRC work for
/// what does is bounded by `LATER_SCAN_CRC_BYTES_MAX`: `None` when the bound is reached first (the reader cannot
/// tell, and says so).
fn later_record(bytes: &[u8], damaged: usize, next: u64) -> Option<bool> {
    let mut budget = LATER_SCAN_CRC_BYTES_MAX;
    for at in damaged + 1..bytes.len().saturating_sub(RECORD_HEADER_BYTES - 1) {
        let rest = &bytes[at..];
        let sequence = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
        let most = next.saturating_add(((at - damaged) / RECORD_HEADER_BYTES) as u64);
        if sequence <= next || sequence > most {
            continue;
        }
        let length = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        let len = (length & !CONTINUED) as usize;
        if len > RECORD_BYTES_MAX || RECORD_HEADER_BYTES + len > rest.len() {
            continue;
        }
        let after = &rest[RECORD_HEADER_BYTES + len..];
        let followed = after.len() < RECORD_HEADER_BYTES
            || after[..RECORD_HEADER_BYTES].iter().all(|&b| b == 0)
            || after[8..16] == (sequence + 1).to_le_bytes();
        if !followed {
            continue;
        }
        budget = budget.checked_sub(len + 8)?;
        if matches!(decode_record(rest, sequence), Ok(Some(_))) {
            return Some(true);
        }
    }
    Some(false)
}

/// One record at the start of `bytes`, and the bytes it takes: `None` if cut short, `Err` if damaged.
fn decode_record(
    bytes: &[u8],
    expected: u64,
) -> std::result::Result<Option<(Part<'_>, usize)>, &'static str> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Ok(None);
    }
    let length = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let continued = length & CONTINUED != 0;
    let len = (length & !CONTINUED) as usize;
    if len > RECORD_BYTES_MAX {
        return Err("a record length is past the limit");
    }
    if bytes.len() < RECORD_HEADER_BYTES + len {
        return Ok(None);
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if record_crc(&bytes[8..RECORD_HEADER_BYTES + len], continued) != crc {
        return Err("a record fails its CRC");
    }
    let sequence = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if sequence != expected {
        return Err("a record is out of sequence");
    }
    Ok(Some((
        Part {
            sequence,
            payload: &bytes[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len],
            continued,
        },
        RECORD_HEADER_BYTES + len,
    )))
}

/// The first sequence of segment file `name`, if it is one.
pub fn segment_first(name: &str) -> Option<u64> {
    name.strip_prefix("log-")?
        .strip_suffix(".seg")?
        .parse()
        .ok()
}

/// What recovery found in the log directory.
#[derive(Debug)]
pub struct Replayed {
    /// Records passed to the callback.
    pub records: u64,
    /// Where the writer continues.
    pub tail: Tail,
    /// A torn tail that was cut off: segment name and the offset it was cut at.
    pub truncated: Option<(String, u64)>,
}

/// How far replay has come, for progress reports.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Log bytes read up to and including the current record.
    pub bytes_done: u64,
    /// Log bytes to read in all.
    pub bytes_total: u64,
}

/// Reads every record after sequence `after` (the snapshot's position) in order and hands each to `apply`. A torn
/// tail is cut off (and reported in `Replayed::truncated`); anything else damaged or missing is an error naming the
/// file, and so is an error from `apply`.
pub fn replay(
    dir: &dyn Directory,
    after: u64,
    mut apply: impl FnMut(&Record<'_>, Progress) -> Result<()>,
) -> Result<Replayed> {
    let io = |what: &str, e: std::io::Error| {
        Error::new(SqlState::IO_ERROR, format!("could not read {what}: {e}"))
    };
    let segments: Vec<(String, u64)> = dir
        .list()
        .map_err(|e| io("the log directory", e))?
        .into_iter()
        .filter_map(|n| segment_first(&n).map(|first| (n, first)))
        .collect();
    // Segments wholly at or before `after` are not needed; the one holding `after + 1` and later ones are.
    let start = segments
        .iter()
        .rposition(|(_, first)| *first <= after + 1)
        .unwrap_or(0);
    let mut replayed = Replayed {
        records: 0,
        tail: Tail {
            segment: None,
            next_sequence: after + 1,
        },
        truncated: None,
    };
    if let Some((name, first)) = segments.get(start) {
        if *first > after + 1 {
            return Err(corrupt(
                name,
                16,
                &format!("records {} to {} are missing", after + 1, first - 1),
            ));
        }
    }
    let mut progress = Progress {
        bytes_done: 0,
        bytes_total: 0,
    };
    for (name, _) in &segments[start.min(segments.len())..] {
        progress.bytes_total += dir.size(name).map_err(|e| io(name, e))?;
    }
    let mut expected = None;
    for (i, (name, first)) in segments.iter().enumerate().skip(start) {
        let last = i + 1 == segments.len();
        let bytes = dir.read(name).map_err(|e| io(name, e))?;
        let read = read_segment(name, &bytes, last, expected)?;
        for record in &read.records {
            progress.bytes_done += record.stored_bytes;
            if record.sequence > after {
                apply(record, progress).map_err(|e| {
                    Error::new(
                        e.code,
                        format!(
                            "replaying record {} of {name} failed: {}",
                            record.sequence, e.message
                        ),
                    )
                })?;
                replayed.records += 1;
            }
        }
        progress.bytes_done += SEGMENT_HEADER_BYTES as u64;
        let next = read.records.last().map_or(*first, |r| r.sequence + 1);
        expected = Some(next);
        // A snapshot can be at a position the log never made durable (it was taken while the records were being
        // written, and then the process died): the log goes on after the snapshot, in a new segment named by that
        // sequence, since writing it after this segment's last record would leave a gap in the sequence.
        replayed.tail = Tail {
            segment: (next > after).then(|| (name.clone(), *first, read.end)),
            next_sequence: next.max(after + 1),
        };
        if let Some(at) = read.torn_at {
            if at < SEGMENT_HEADER_BYTES as u64 {
                dir.remove(name).map_err(|e| io(name, e))?;
                replayed.tail.segment = None;
            } else {
                dir.truncate(name, at).map_err(|e| io(name, e))?;
            }
            replayed.truncated = Some((name.clone(), at));
        }
    }
    Ok(replayed)
}

/// Removes the segments whose records are all at or before `sequence` (a snapshot holds them), keeping the newest
/// segment, which the writer may still append to.
pub fn remove_segments_through(dir: &dyn Directory, sequence: u64) -> std::io::Result<usize> {
    let firsts: Vec<(String, u64)> = dir
        .list()?
        .into_iter()
        .filter_map(|n| segment_first(&n).map(|first| (n, first)))
        .collect();
    let mut removed = 0;
    for pair in firsts.windows(2) {
        // Segment pair[0] ends just before pair[1] begins.
        if pair[1].1 <= sequence + 1 {
            dir.remove(&pair[0].0)?;
            removed += 1;
        }
    }
    if removed > 0 {
        dir.sync()?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[&[u8]]) -> Vec<u8> {
        let mut bytes = encode_header(7).to_vec();
        for (i, r) in records.iter().enumerate() {
            encode_record(&mut bytes, 7 + i as u64, r).unwrap();
        }
        bytes
    }

    #[test]
    fn records_round_trip() {
        let bytes = segment(&[b"one", b"", b"three"]);
        let read = read_segment("s", &bytes, true, Some(7)).unwrap();
        assert_eq!(read.torn_at, None);
        let payloads: Vec<&[u8]> = read.records.iter().map(|r| &*r.payload).collect();
        assert_eq!(payloads, vec![b"one" as &[u8], b"", b"three"]);
        assert_eq!(read.records[2].sequence, 9);
    }

    #[test]
    fn a_torn_last_record_is_found_at_every_byte_offset() {
        let whole = segment(&[b"first record", b"second record"]);
        let second_at = SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + b"first record".len();
        // Cut right after the first record, the file simply ends there.
        assert_eq!(
            read_segment("s", &whole[..second_at], true, None)
                .unwrap()
                .torn_at,
            None
        );
        for cut in second_at + 1..whole.len() {
            let read = read_segment("s", &whole[..cut], true, None).unwrap();
            assert_eq!(read.records.len(), 1, "cut at {cut}");
            assert_eq!(read.torn_at, Some(second_at as u64), "cut at {cut}");
        }
        // In an earlier segment the same damage is corruption.
        let e = read_segment("s", &whole[..whole.len() - 1], false, None).unwrap_err();
        assert!(e.message.contains("byte"), "{}", e.message);
    }

    /// A segment from sequence 7: `a`, then `big` as a chain of `part`-byte records, then `b`; and where the chain
    /// starts and ends.
    fn segment_with_chain(big: &[u8], part: usize) -> (Vec<u8>, usize, usize) {
        let mut bytes = encode_header(7).to_vec();
        encode_record(&mut bytes, 7, b"a").unwrap();
        let chain_at = bytes.len();
        let parts = encode_payload_in(&mut bytes, 8, big, part);
        let chain_end = bytes.len();
        encode_record(&mut bytes, 8 + parts, b"b").unwrap();
        (bytes, chain_at, chain_end)
    }

    #[test]
    fn a_chain_of_records_reads_back_as_one_payload() {
        let big = pattern_bytes(1000);
        let (bytes, chain_at, chain_end) = segment_with_chain(&big, 300);
        let read = read_segment("s", &bytes, true, Some(7)).unwrap();
        assert_eq!(read.torn_at, None);
        assert_eq!(read.end, bytes.len() as u64);
        let got: Vec<(u64, &[u8], u64)> = read
            .records
            .iter()
            .map(|r| (r.sequence, &*r.payload, r.stored_bytes))
            .collect();
        assert_eq!(
            got,
            vec![
                (7, b"a" as &[u8], (RECORD_HEADER_BYTES + 1) as u64),
                (11, &big[..], (chain_end - chain_at) as u64),
                (12, b"b", (RECORD_HEADER_BYTES + 1) as u64),
            ]
        );
        // Four parts of at most 300 bytes; an exact multiple takes no empty part, and an empty payload one record.
        assert_eq!(chain_end - chain_at, 4 * RECORD_HEADER_BYTES + 1000);
        assert_eq!(encode_payload_in(&mut vec![], 1, &big[..900], 300), 3);
        assert_eq!(encode_payload_in(&mut vec![], 1, b"", 300), 1);
        assert_eq!(encode_payload(&mut vec![], 1, &big), 1);
    }

    #[test]
    fn a_log_that_ends_inside_a_chain_is_cut_back_to_where_the_chain_starts() {
        let big = pattern_bytes(1000);
        let (whole, chain_at, chain_end) = segment_with_chain(&big, 300);
        // Cut at every byte of the chain (after its first byte), with and without zeroed space after the cut.
        for cut in chain_at + 1..chain_end {
            for zeros in [0, 5000] {
                let mut torn = whole[..cut].to_vec();
                torn.resize(cut + zeros, 0);
                let read = read_segment("s", &torn, true, None).unwrap();
                assert_eq!(read.records.len(), 1, "cut at {cut}");
                assert_eq!(read.torn_at, Some(chain_at as u64), "cut at {cut}");
                assert_eq!(read.end, chain_at as u64, "cut at {cut}");
                // In an earlier segment, the same is damage.
                let e = read_segment("s", &torn, false, None).unwrap_err();
                assert!(e.message.contains("byte"), "{}", e.message);
            }
        }
        // Replay cuts the file there, and the next start is clean and goes on at the chain's first sequence.
        let dir = crate::io::FaultyDirectory::new();
        let name = segment_name(7);
        dir.put(&name, whole[..chain_end - 1].to_vec());
        let mut seen = Vec::new();
        let r = replay(&dir, 6, |rec, _| {
            seen.push(rec.sequence);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![7]);
        assert_eq!(r.truncated, Some((name.clone(), chain_at as u64)));
        assert_eq!(r.tail.next_sequence, 8);
        assert_eq!(dir.bytes(&name).unwrap().len(), chain_at);
    }

    #[test]
    fn damage_inside_a_chain_before_the_tail_is_corruption() {
        let big = pattern_bytes(1000);
        let (whole, chain_at, chain_end) = segment_with_chain(&big, 300);
        // A flipped byte in the chain's second part: the intact record after the chain shows it is not a torn tail.
        let mut bad = whole.clone();
        bad[chain_at + 2 * RECORD_HEADER_BYTES + 300 + 5] ^= 0x40;
        assert!(read_segment("s", &bad, true, None).is_err());
        // The continued flag cleared on the first part, or set on the record after the chain: the CRC covers it.
        let mut split = whole.clone();
        split[chain_at + 3] &= 0x7f;
        assert!(read_segment("s", &split, true, None).is_err());
        let mut joined = whole.clone();
        joined[chain_end + 3] |= 0x80;
        assert!(read_segment("s", &joined, false, None).is_err());
    }

    #[test]
    fn a_big_copy_torn_mid_chain_is_found_torn_without_checking_every_offset_s_crc() {
        // A COPY's payload is full of small little-endian lengths, which read as plausible record lengths at many
        // offsets: checking each one's CRC made a restart after a crash mid-COPY run for hours.
        let rows: crate::invocation::CopyRows = (0..300_000)
            .map(|i| vec![Some(i.to_string()), Some("x".repeat(84)), None])
            .collect();
        let mut payload = Vec::new();
        crate::invocation::Invocation::Copy {
            sql: "COPY t FROM STDIN".into(),
            zone: "UTC".into(),
            first_line: 1,
            rows: Cow::Owned(rows),
        }
        .encode(&mut payload);
        assert!(payload.len() > 20 << 20);
        let (whole, chain_at, chain_end) = segment_with_chain(&payload, 16 << 20);
        let second_part = chain_at + RECORD_HEADER_BYTES + (16 << 20);
        for cut in [
            chain_at + 100,
            chain_at + (12 << 20),
            second_part + 10,
            chain_end - 1,
        ] {
            let read = read_segment("s", &whole[..cut], true, None).unwrap();
            assert_eq!(read.torn_at, Some(chain_at as u64), "cut at {cut}");
            assert_eq!(read.records.len(), 1);
        }
    }

    #[test]
    fn damage_over_many_records_near_the_end_of_the_newest_segment_is_corruption() {
        // Twenty records and no zeroed space after them; the first fifteen garbled. The five intact ones after the
        // damage are acknowledged writes: the reader must refuse, not cut them off as a torn tail.
        let payloads: Vec<Vec<u8>> = (0..20).map(|i| format!("r{i:02}").into_bytes()).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
        let mut bytes = segment(&refs);
        let damaged_end = SEGMENT_HEADER_BYTES + 15 * (RECORD_HEADER_BYTES + 3);
        bytes[SEGMENT_HEADER_BYTES..damaged_end].fill(0xaa);
        let e = read_segment("s", &bytes, true, Some(7)).unwrap_err();
        assert!(
            e.message.contains(&format!("byte {SEGMENT_HEADER_BYTES}")),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_tail_made_to_look_like_many_records_is_called_damage_once_the_scan_has_done_enough() {
        // After a torn record, 1 MiB of headers that each claim a 7 MiB record with the next sequence, ending in
        // zeros: each looks like a record in place. Rather than hash terabytes, the reader stops at its bound and
        // says it cannot tell.
        let mut bytes = segment(&[b"first"]);
        let torn_at = bytes.len();
        bytes.extend_from_slice(&[0xff; 20]);
        let mut fake = [0u8; 16];
        fake[0..4].copy_from_slice(&(7u32 << 20).to_le_bytes());
        fake[8..16].copy_from_slice(&9u64.to_le_bytes());
        for _ in 0..(1 << 20) / 16 {
            bytes.extend_from_slice(&fake);
        }
        bytes.resize(bytes.len() + (8 << 20), 0);
        let e = read_segment("s", &bytes, true, Some(7)).unwrap_err();
        assert!(
            e.message.contains(&format!("byte {torn_at}"))
                && e.message.contains("to tell a torn write"),
            "{}",
            e.message
        );
    }

    fn pattern_bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn zeros_after_the_last_record_are_unused_space_and_a_torn_record_before_them_is_a_torn_tail() {
        let whole = segment(&[b"first record", b"second record"]);
        let second_at = SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + b"first record".len();
        let mut padded = whole.clone();
        padded.resize(whole.len() + 1000, 0);
        for last in [true, false] {
            let read = read_segment("s", &padded, last, None).unwrap();
            assert_eq!(read.records.len(), 2);
            assert_eq!((read.end, read.torn_at), (whole.len() as u64, None));
        }
        // A write torn at any byte of the second record, the file's zeroed space after it.
        for cut in second_at + 1..whole.len() {
            let mut torn = whole[..cut].to_vec();
            torn.resize(whole.len() + 1000, 0);
            let read = read_segment("s", &torn, true, None).unwrap();
            assert_eq!(read.records.len(), 1, "cut at {cut}");
            assert_eq!(read.torn_at, Some(second_at as u64), "cut at {cut}");
            assert!(
                read_segment("s", &torn, false, None).is_err(),
                "cut at {cut}"
            );
        }
        // Zeros with a record after them are not unused space.
        let three = segment(&[b"first record", b"second record", b"third"]);
        let mut zeroed = three.clone();
        zeroed[second_at..whole.len()].fill(0);
        assert!(read_segment("s", &zeroed, true, None).is_err());
    }

    #[test]
    fn a_flipped_bit_before_the_tail_is_corruption_and_at_the_tail_a_torn_write() {
        let whole = segment(&[b"first record", b"second record"]);
        let first_payload = SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES;
        let mut bad = whole.clone();
        bad[first_payload + 2] ^= 0x10;
        let e = read_segment("log-1.seg", &bad, true, None).unwrap_err();
        assert!(
            e.message.contains("log-1.seg") && e.message.contains("CRC"),
            "{}",
            e.message
        );
        let mut tail = whole.clone();
        let last = tail.len() - 1;
        tail[last] ^= 0x01;
        let read = read_segment("s", &tail, true, None).unwrap();
        assert_eq!(read.records.len(), 1);
        assert!(read.torn_at.is_some());
        // A flipped length in the first record that seems to reach the end: the intact record after it shows
        // corruption, not a torn tail.
        let mut long = whole.clone();
        long[SEGMENT_HEADER_BYTES + 1] ^= 0x01;
        assert!(read_segment("s", &long, true, None).is_err());
    }

    fn log_dir(records: &[&[u8]]) -> crate::io::FaultyDirectory {
        let dir = crate::io::FaultyDirectory::new();
        // Two segments: records 1..=2 and 3.. .
        let mut a = encode_header(1).to_vec();
        let mut b = encode_header(3).to_vec();
        for (i, r) in records.iter().enumerate() {
            let target = if i < 2 { &mut a } else { &mut b };
            encode_record(target, 1 + i as u64, r).unwrap();
        }
        dir.put(&segment_name(1), a);
        dir.put(&segment_name(3), b);
        dir
    }

    fn replay_all(dir: &dyn Directory, after: u64) -> Result<(Vec<u64>, Replayed)> {
        let mut seen = Vec::new();
        let r = replay(dir, after, |rec, _progress| {
            seen.push(rec.sequence);
            Ok(())
        })?;
        Ok((seen, r))
    }

    #[test]
    fn replay_reads_across_segments_from_a_position_and_cuts_a_torn_tail() {
        let dir = log_dir(&[b"a", b"b", b"c", b"d"]);
        let (seen, r) = replay_all(&dir, 0).unwrap();
        assert_eq!(seen, vec![1, 2, 3, 4]);
        assert_eq!(r.tail.next_sequence, 5);
        assert_eq!(r.tail.segment.as_ref().unwrap().1, 3);
        assert_eq!(
            r.tail.segment.as_ref().unwrap().2,
            dir.bytes(&segment_name(3)).unwrap().len() as u64
        );
        let (seen, _) = replay_all(&dir, 3).unwrap();
        assert_eq!(seen, vec![4]);
        // Tear the last record: it is cut off, the file is truncated, and the next start is clean.
        let name = segment_name(3);
        let mut bytes = dir.bytes(&name).unwrap();
        bytes.pop();
        let cut_at = bytes.len() - RECORD_HEADER_BYTES;
        dir.put(&name, bytes);
        let (seen, r) = replay_all(&dir, 0).unwrap();
        assert_eq!(seen, vec![1, 2, 3]);
        assert_eq!(r.truncated, Some((name.clone(), cut_at as u64)));
        assert_eq!(dir.bytes(&name).unwrap().len(), cut_at);
        assert_eq!(replay_all(&dir, 0).unwrap().1.truncated, None);
    }

    #[test]
    fn a_snapshot_past_the_log_s_durable_end_makes_the_log_go_on_in_a_new_segment() {
        // Records 1..=4 on disk; a snapshot at 10 (taken while 5..=10 were being written, then a crash).
        let dir = log_dir(&[b"a", b"b", b"c", b"d"]);
        let (seen, r) = replay_all(&dir, 10).unwrap();
        assert!(seen.is_empty());
        assert_eq!((r.tail.segment.as_ref(), r.tail.next_sequence), (None, 11));
        let config = crate::command_log::LogConfig::default();
        let log =
            crate::command_log::CommandLog::open(std::sync::Arc::new(dir.clone()), config, r.tail)
                .unwrap();
        log.wait_durable(log.append(b"e").unwrap()).unwrap();
        log.wait_durable(log.append(b"f").unwrap()).unwrap();
        drop(log);
        assert!(dir.list().unwrap().contains(&segment_name(11)));
        // Both come back after the snapshot, and the log continues after them.
        let (seen, r) = replay_all(&dir, 10).unwrap();
        assert_eq!(seen, vec![11, 12]);
        assert_eq!(r.truncated, None);
        assert_eq!(r.tail.next_sequence, 13);
        assert_eq!(r.tail.segment.as_ref().map(|s| s.1), Some(11));
    }

    #[test]
    fn damage_before_the_tail_or_a_missing_segment_stops_replay() {
        let dir = log_dir(&[b"a", b"b", b"c"]);
        dir.flip_bit(
            &segment_name(1),
            SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES,
            0,
        );
        let e = replay_all(&dir, 0).unwrap_err();
        assert!(e.message.contains(&segment_name(1)), "{}", e.message);
        let dir = log_dir(&[b"a", b"b", b"c"]);
        dir.remove(&segment_name(1)).unwrap();
        assert!(replay_all(&dir, 0).unwrap_err().message.contains("missing"));
        assert_eq!(replay_all(&dir, 2).unwrap().0, vec![3]);
        let dir = log_dir(&[b"a", b"b", b"c"]);
        assert_eq!(remove_segments_through(&dir, 2).unwrap(), 1);
        assert_eq!(replay_all(&dir, 2).unwrap().0, vec![3]);
    }

    #[test]
    fn headers_and_sequences_are_checked() {
        let mut bytes = segment(&[b"x"]);
        bytes[0] = b'X';
        assert!(read_segment("s", &bytes, true, None).is_err());
        let bytes = segment(&[b"x"]);
        assert!(read_segment("s", &bytes, true, Some(8)).is_err());
        assert!(encode_record(&mut vec![], 1, &vec![0; RECORD_BYTES_MAX + 1]).is_err());
        assert_eq!(segment_name(42), "log-00000000000000000042.seg");
    }
}
