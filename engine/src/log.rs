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
//!     0   4  payload length   n (at most RECORD_BYTES_MAX)
//!     4   4  CRC-32C          over bytes 8..16+n (sequence and payload)
//!     8   8  sequence         one more than the previous record's
//!    16   n  payload
//! ```
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
//! is corruption: an error naming the file and offset, never a silent skip.

use crate::command_log::Tail;
use crate::error::{Error, Result, SqlState};
use crate::io::Directory;

pub const SEGMENT_MAGIC: &[u8; 8] = b"LANEDBLG";
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_BYTES: usize = 32;
pub const RECORD_HEADER_BYTES: usize = 16;
/// Largest payload of one record; a bigger one is refused when written and is corruption when read.
pub const RECORD_BYTES_MAX: usize = 64 << 20;

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
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub sequence: u64,
    /// The payload, in the segment's bytes.
    pub payload: &'a [u8],
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
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut next = first;
    while offset < bytes.len() {
        match decode_record(&bytes[offset..], next) {
            Ok(Some((record, used))) => {
                records.push(record);
                offset += used;
                next += 1;
            }
            // Space written ahead of use (an all-zero header is never a record: its CRC would not match).
            _ if bytes[offset..].iter().all(|&b| b == 0) => break,
            Ok(None) | Err(_) if last && !later_record(bytes, offset + 1, next) => {
                return Ok(SegmentRead {
                    records,
                    end: offset as u64,
                    torn_at: Some(offset as u64),
                })
            }
            Ok(None) => return Err(corrupt(name, offset, "a record is cut short")),
            Err(what) => return Err(corrupt(name, offset, what)),
        }
    }
    Ok(SegmentRead {
        records,
        end: offset as u64,
        torn_at: None,
    })
}

/// Whether an intact record with a sequence after `next` starts anywhere from `from` on: if one does, the damage
/// before it is not a torn tail but corruption (a flipped length must not make the reader drop good records).
fn later_record(bytes: &[u8], from: usize, next: u64) -> bool {
    (from..bytes.len().saturating_sub(RECORD_HEADER_BYTES - 1)).any(|at| {
        let rest = &bytes[at..];
        let sequence = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
        sequence > next && matches!(decode_record(rest, sequence), Ok(Some(_)))
    })
}

/// One record at the start of `bytes`: `None` if cut short, `Err` if damaged.
fn decode_record(
    bytes: &[u8],
    expected: u64,
) -> std::result::Result<Option<(Record<'_>, usize)>, &'static str> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Ok(None);
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    if len > RECORD_BYTES_MAX {
        return Err("a record length is past the limit");
    }
    if bytes.len() < RECORD_HEADER_BYTES + len {
        return Ok(None);
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[8..RECORD_HEADER_BYTES + len]) != crc {
        return Err("a record fails its CRC");
    }
    let sequence = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if sequence != expected {
        return Err("a record is out of sequence");
    }
    Ok(Some((
        Record {
            sequence,
            payload: &bytes[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len],
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
            progress.bytes_done += (RECORD_HEADER_BYTES + record.payload.len()) as u64;
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
        replayed.tail = Tail {
            segment: Some((name.clone(), *first, read.end)),
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
        let payloads: Vec<&[u8]> = read.records.iter().map(|r| r.payload).collect();
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
