//! Snapshots: a consistent copy of every table as Arrow IPC files, the catalog, and a manifest written last.
//!
//! ## Taking one
//! `Engine::checkpoint_cut` copies every table's chunk list and reads the log position while it holds the lanes
//! for an instant; the files are written afterwards from those copies while the lanes run on. Loading with the same
//! lane count streams each file, a record batch at a time, straight into its lane's store and then builds the
//! indexes in one pass (no per-row
//! transaction, no view maintenance: the views' rows are in the snapshot too); with another lane count, base rows
//! are inserted through their lanes by key and the views rebuild as they arrive. Once the manifest is
//! durable, log segments wholly at or before its position are deleted and only the newest `snapshots_kept`
//! snapshots stay.
//!
//! ## Layout
//! ```text
//!   <data dir>/snapshots/<log sequence, 20 digits>/
//!       catalog.log         the catalog history: every invocation that changed the catalog, in order, as command-log
//!                           records (segment header, then records numbered from 1); replayed on an empty database
//!                           it rebuilds tables, partitioning, indexes, views, SQL procedures, users and grants
//!       <n>.arrow           Arrow IPC file of one table or materialized view on one lane (replicated: one copy)
//!       manifest            written last
//! ```
//! The manifest is text, one item per line:
//! ```text
//!   lanedb-snapshot 1
//!   log_sequence <the last log record the snapshot holds>
//!   next_transaction <procedure transaction ids start here after a restart>
//!   lanes <the lane count it was taken with>
//!   file <name> <bytes> <CRC-32C, hex>          one line per other file of the snapshot
//!   table <file name> <lane or -> <table name>  which table (or view) and lane an Arrow file holds; - for the one
//!                                               copy of a replicated table
//!   crc <CRC-32C, hex, of every byte before this line>
//! ```
//! It is written as `manifest.tmp`, fsynced, renamed to `manifest`, and the directory fsynced: a snapshot without a
//! manifest is incomplete (the process stopped while writing it) and is ignored and removed. A manifest that does
//! not parse or check, or a file that is missing or fails its size or CRC, stops start-up with the file named.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use lanedb_engine::io::Directory;
use lanedb_engine::log::{encode_header, encode_record, read_segment};
use lanedb_engine::{Error, Result, SqlState, TableId};

use crate::Database;

pub const MANIFEST: &str = "manifest";
const MANIFEST_TMP: &str = "manifest.tmp";
const CATALOG_FILE: &str = "catalog.log";
const FORMAT_LINE: &str = "lanedb-snapshot 1";
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// What a snapshot's manifest says.
#[derive(Debug)]
pub struct Manifest {
    pub log_sequence: u64,
    pub next_transaction: u64,
    /// Name, bytes, CRC-32C.
    pub files: Vec<(String, u64, u32)>,
    /// Lanes of the database the snapshot was taken from.
    pub lanes: usize,
    /// Arrow file, lane (`None`: a replicated table's one copy), table name.
    pub tables: Vec<(String, Option<usize>, String)>,
}

/// What writing a snapshot did.
#[derive(Debug)]
pub struct Written {
    pub name: String,
    pub log_sequence: u64,
    pub rows: u64,
    pub bytes: u64,
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    let code = if e.raw_os_error() == Some(28) {
        SqlState::DISK_FULL
    } else {
        SqlState::IO_ERROR
    };
    Error::new(code, format!("snapshot: {what}: {e}"))
}

fn corrupt(what: String) -> Error {
    Error::new(
        SqlState::DATA_CORRUPTED,
        format!(
            "{what}. Move this snapshot directory out of the data directory to start from the previous snapshot \
             (if the log since it is still there), or restore from a backup"
        ),
    )
}

/// The directory name of a snapshot at `log_sequence`.
pub fn snapshot_name(log_sequence: u64) -> String {
    format!("{log_sequence:020}")
}

/// Takes a snapshot of `db` into `root/snapshots`, then drops what it makes unnecessary (see the module docs).
pub(crate) fn write(db: &Database, root: &dyn Directory, keep: usize) -> Result<Written> {
    let started = Instant::now();
    let engine = db.sql.engine();
    let cut = engine.checkpoint_cut();
    let snapshots = root
        .open_dir(SNAPSHOTS_DIR)
        .map_err(|e| io_error("cannot open the snapshots directory", e))?;
    let name = snapshot_name(cut.log_sequence);
    let mut written = Written {
        name: name.clone(),
        log_sequence: cut.log_sequence,
        rows: 0,
        bytes: 0,
    };
    let dir = snapshots.open_dir(&name).map_err(|e| io_error(&name, e))?;
    if dir
        .list()
        .map_err(|e| io_error(&name, e))?
        .iter()
        .any(|f| f == MANIFEST)
    {
        // Nothing was logged since that snapshot: it is this one.
        return Ok(written);
    }
    let mut manifest = String::new();
    let mut put = |file: &str, bytes: &[u8], written: &mut Written| -> Result<()> {
        dir.write(file, bytes).map_err(|e| io_error(file, e))?;
        writeln!(
            manifest,
            "file {file} {} {:08x}",
            bytes.len(),
            crc32c::crc32c(bytes)
        )
        .expect("writing to a string");
        written.bytes += bytes.len() as u64;
        Ok(())
    };
    let mut catalog = encode_header(1).to_vec();
    for (i, payload) in cut.catalog_history.iter().enumerate() {
        encode_record(&mut catalog, i as u64 + 1, payload)?;
    }
    put(CATALOG_FILE, &catalog, &mut written)?;
    let lane_count = engine.lane_count();
    let tables = write_tables(&cut.snapshot, lane_count, &mut put, &mut written)?;
    let mut text = format!(
        "{FORMAT_LINE}\nlog_sequence {}\nnext_transaction {}\nlanes {lane_count}\n{manifest}{tables}",
        cut.log_sequence,
        db.procedures.next_transaction()
    );
    let crc = crc32c::crc32c(text.as_bytes());
    writeln!(text, "crc {crc:08x}").expect("writing to a string");
    dir.write(MANIFEST_TMP, text.as_bytes())
        .map_err(|e| io_error(MANIFEST_TMP, e))?;
    dir.rename(MANIFEST_TMP, MANIFEST)
        .map_err(|e| io_error(MANIFEST, e))?;
    dir.sync().map_err(|e| io_error(&name, e))?;
    tracing::info!(
        "snapshot {name}: {} rows, {} bytes in {:.2} s",
        written.rows,
        written.bytes,
        started.elapsed().as_secs_f64()
    );
    prune(root, snapshots.as_ref(), keep, cut.log_sequence)?;
    Ok(written)
}

/// Writes one Arrow IPC file per table (and view) per lane through `put`; returns the manifest's `table` lines.
fn write_tables(
    snapshot: &lanedb_engine::Snapshot,
    lane_count: usize,
    put: &mut impl FnMut(&str, &[u8], &mut Written) -> Result<()>,
    written: &mut Written,
) -> Result<String> {
    let mut tables = String::new();
    let mut n = 0;
    for def in snapshot.catalog.tables() {
        let parts = snapshot.tables.get(&def.id).map_or(&[][..], |p| &p[..]);
        for (lane, part) in parts.iter().enumerate() {
            if part.row_count() == 0 {
                continue;
            }
            // One copy of a replicated table (loaded into every lane), else the lane the rows live on.
            let lane = if parts.len() == lane_count {
                lane.to_string()
            } else {
                "-".to_string()
            };
            n += 1;
            let file = format!("{n}.arrow");
            let failed = |e: arrow_schema::ArrowError| {
                Error::internal(format!("snapshot of {}: {e}", def.name))
            };
            let mut bytes = Vec::new();
            let mut writer =
                arrow_ipc::writer::FileWriter::try_new(&mut bytes, &part.schema).map_err(failed)?;
            for batch in part.batches() {
                written.rows += batch.num_rows() as u64;
                writer.write(&batch).map_err(failed)?;
            }
            writer.finish().map_err(failed)?;
            drop(writer);
            put(&file, &bytes, written)?;
            writeln!(tables, "table {file} {lane} {}", escape(&def.name))
                .expect("writing to a string");
        }
    }
    Ok(tables)
}

/// A table name on one manifest line: backslashes and line breaks escaped (a quoted identifier may hold either).
fn escape(name: &str) -> String {
    name.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// Keeps the newest `keep` complete snapshots, drops incomplete ones, and deletes log segments the newest holds.
fn prune(root: &dyn Directory, snapshots: &dyn Directory, keep: usize, newest: u64) -> Result<()> {
    let names = snapshots
        .list_dirs()
        .map_err(|e| io_error("cannot list snapshots", e))?;
    let mut complete = 0;
    for name in names.iter().rev() {
        let dir = snapshots.open_dir(name).map_err(|e| io_error(name, e))?;
        let has_manifest = dir
            .list()
            .map_err(|e| io_error(name, e))?
            .iter()
            .any(|f| f == MANIFEST);
        if has_manifest && complete < keep.max(1) {
            complete += 1;
            continue;
        }
        snapshots.remove_dir(name).map_err(|e| io_error(name, e))?;
    }
    let log = root
        .open_dir("log")
        .map_err(|e| io_error("cannot open the log directory", e))?;
    lanedb_engine::log::remove_segments_through(log.as_ref(), newest)
        .map_err(|e| io_error("cannot remove old log segments", e))?;
    Ok(())
}

/// Parses and checks a manifest.
fn parse_manifest(text: &[u8], path: &str) -> Result<Manifest> {
    let bad = |what: &str| corrupt(format!("snapshot manifest {path} {what}"));
    let text = std::str::from_utf8(text).map_err(|_| bad("is not text"))?;
    let body_end = text.rfind("crc ").ok_or_else(|| bad("has no crc line"))?;
    let crc = u32::from_str_radix(text[body_end + 4..].trim(), 16)
        .map_err(|_| bad("has a bad crc line"))?;
    if crc32c::crc32c(&text.as_bytes()[..body_end]) != crc {
        return Err(bad("fails its CRC"));
    }
    let mut lines = text[..body_end].lines();
    if lines.next() != Some(FORMAT_LINE) {
        return Err(bad("is not a version 1 LaneDB snapshot manifest"));
    }
    let mut manifest = Manifest {
        log_sequence: 0,
        next_transaction: 1,
        lanes: 0,
        files: Vec::new(),
        tables: Vec::new(),
    };
    for line in lines {
        let (key, rest) = line.split_once(' ').ok_or_else(|| bad("has a bad line"))?;
        let number = |s: &str| s.parse::<u64>().map_err(|_| bad("has a bad number"));
        match key {
            "log_sequence" => manifest.log_sequence = number(rest)?,
            "next_transaction" => manifest.next_transaction = number(rest)?,
            "file" => {
                let parts: Vec<&str> = rest.split(' ').collect();
                let [name, bytes, crc] = parts[..] else {
                    return Err(bad("has a bad file line"));
                };
                let crc = u32::from_str_radix(crc, 16).map_err(|_| bad("has a bad file CRC"))?;
                manifest.files.push((name.to_string(), number(bytes)?, crc));
            }
            "lanes" => manifest.lanes = number(rest)? as usize,
            "table" => {
                let mut parts = rest.splitn(3, ' ');
                let (Some(file), Some(lane), Some(table)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad("has a bad table line"));
                };
                let lane = match lane {
                    "-" => None,
                    n => Some(number(n)? as usize),
                };
                let table = unescape(table);
                manifest.tables.push((file.to_string(), lane, table));
            }
            _ => return Err(bad(&format!("has an unknown line {key}"))),
        }
    }
    Ok(manifest)
}

/// A complete snapshot found in the data directory.
pub(crate) struct Found {
    dir: Arc<dyn Directory>,
    name: String,
    pub manifest: Manifest,
}

/// The newest complete snapshot in `root`, checked; incomplete ones are removed.
pub(crate) fn newest(root: &dyn Directory) -> Result<Option<Found>> {
    let snapshots = root
        .open_dir(SNAPSHOTS_DIR)
        .map_err(|e| io_error("cannot open the snapshots directory", e))?;
    let names = snapshots
        .list_dirs()
        .map_err(|e| io_error("cannot list snapshots", e))?;
    for name in names.iter().rev() {
        let dir = snapshots.open_dir(name).map_err(|e| io_error(name, e))?;
        let files = dir.list().map_err(|e| io_error(name, e))?;
        if !files.iter().any(|f| f == MANIFEST) {
            tracing::warn!("removing incomplete snapshot {SNAPSHOTS_DIR}/{name} (no manifest)");
            snapshots.remove_dir(name).map_err(|e| io_error(name, e))?;
            continue;
        }
        let path = format!("{SNAPSHOTS_DIR}/{name}/{MANIFEST}");
        let text = dir.read(MANIFEST).map_err(|e| io_error(&path, e))?;
        let manifest = parse_manifest(&text, &path)?;
        return Ok(Some(Found {
            dir,
            name: name.clone(),
            manifest,
        }));
    }
    Ok(None)
}

/// Reads a snapshot file and checks it against the manifest.
fn read_checked(
    dir: &dyn Directory,
    snapshot: &str,
    manifest: &Manifest,
    file: &str,
) -> Result<Vec<u8>> {
    let listed = Listed::find(snapshot, manifest, file)?;
    let data = dir.read(file).map_err(|e| listed.open_error(e))?;
    if data.len() as u64 != listed.bytes || crc32c::crc32c(&data) != listed.crc {
        return Err(listed.mismatch());
    }
    Ok(data)
}

/// A snapshot file as its manifest lists it, with the errors reading it can end in.
struct Listed {
    /// Where it is in the data directory, for messages.
    path: String,
    bytes: u64,
    crc: u32,
}

impl Listed {
    fn find(snapshot: &str, manifest: &Manifest, file: &str) -> Result<Listed> {
        let path = format!("{SNAPSHOTS_DIR}/{snapshot}/{file}");
        match manifest.files.iter().find(|(n, ..)| n == file) {
            Some((_, bytes, crc)) => Ok(Listed {
                path,
                bytes: *bytes,
                crc: *crc,
            }),
            None => Err(corrupt(format!(
                "snapshot manifest names {path} as a table but not as a file"
            ))),
        }
    }

    fn open_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            corrupt(format!("snapshot file {} is missing", self.path))
        } else {
            io_error(&self.path, e)
        }
    }

    fn mismatch(&self) -> Error {
        corrupt(format!(
            "snapshot file {} does not match its manifest (size or CRC)",
            self.path
        ))
    }
}

/// One table file to load: file name, lane (`None` for a replicated table), table id and name.
type TableFile<'a> = (&'a str, Option<usize>, TableId, &'a str);

/// Loads a snapshot into `db` (fresh and empty): the catalog history, then every table's rows.
pub(crate) fn load(db: &Database, found: &Found) -> Result<()> {
    let (dir, name, manifest) = (found.dir.as_ref(), found.name.as_str(), &found.manifest);
    let started = Instant::now();
    let catalog = read_checked(dir, name, manifest, CATALOG_FILE)?;
    let path = format!("{SNAPSHOTS_DIR}/{name}/{CATALOG_FILE}");
    for record in read_segment(&path, &catalog, false, Some(1))?.records {
        crate::durability::apply_to_catalog(db, &record.payload)?;
    }
    // With the lane count it was taken with, each file goes straight into its lane's store, views included, one
    // thread per lane; otherwise base rows are routed to their lanes by key and the views rebuild as they arrive.
    let engine = db.sql.engine();
    let bulk = manifest.lanes == engine.lane_count();
    let catalog_now = engine.catalog();
    let mut groups: Vec<Vec<TableFile>> = vec![Vec::new(); engine.lane_count() + 1];
    for (file, lane, table) in &manifest.tables {
        let def = catalog_now.get_table(table).ok_or_else(|| {
            corrupt(format!(
                "snapshot {name} holds rows of table {table}, which its catalog does not create"
            ))
        })?;
        if !bulk && catalog_now.view(table).is_some() {
            continue;
        }
        let group = match lane {
            Some(l) if bulk && *l >= engine.lane_count() => {
                return Err(corrupt(format!(
                    "snapshot {name} names a lane past its lane count"
                )));
            }
            Some(l) if bulk => *l,
            _ => engine.lane_count(),
        };
        groups[group].push((file, *lane, def.id, table));
    }
    let total_bytes: u64 = manifest.files.iter().map(|(_, b, _)| *b).sum();
    let loaded_bytes = std::sync::atomic::AtomicU64::new(0);
    let last_report = parking_lot::Mutex::new(Instant::now());
    let load_group = |files: &[TableFile]| -> Result<(u64, usize)> {
        let (mut rows, mut bytes) = (0, 0);
        let mut buffers = LoadBuffers::default();
        for (file, lane, id, table) in files {
            let mut blocks = TableFileReader::open(dir, name, manifest, file, &mut buffers)?;
            bytes += blocks.size as usize;
            let done = loaded_bytes.fetch_add(blocks.size, std::sync::atomic::Ordering::Relaxed);
            let mut last = last_report.lock();
            if last.elapsed().as_secs() >= 1 {
                *last = Instant::now();
                tracing::info!(
                    "loading snapshot {name}: {:.0}% of {total_bytes} bytes",
                    100.0 * done as f64 / total_bytes.max(1) as f64
                );
            }
            drop(last);
            let mut next = || {
                let batch = blocks.next()?;
                rows += batch.as_ref().map_or(0, |b| b.num_rows() as u64);
                Ok(batch)
            };
            if bulk {
                // A file's batches are indexed together, once all are in.
                engine.load_batches(*id, *lane, &mut next)?;
            } else {
                while let Some(batch) = next()? {
                    db.sql.load_batch(table, &batch)?;
                }
            }
            buffers = blocks.finish();
        }
        Ok((rows, bytes))
    };
    // Replicated tables (and everything, without bulk loading) first, on this thread; then the lanes in parallel.
    let (mut rows, mut bytes) = load_group(&groups[engine.lane_count()])?;
    let per_lane = std::thread::scope(|scope| {
        let handles: Vec<_> = groups[..engine.lane_count()]
            .iter()
            .map(|files| scope.spawn(|| load_group(files)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::internal("a snapshot loader panicked")))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    for (r, b) in per_lane {
        rows += r;
        bytes += b;
    }
    db.procedures.transactions_from(manifest.next_transaction);
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        "loaded snapshot {name}: {rows} rows, {bytes} bytes of Arrow data in {seconds:.2} s ({:.0} MB/s)",
        bytes as f64 / 1e6 / seconds.max(1e-9)
    );
    Ok(())
}

/// Memory a snapshot loader thread reuses from file to file.
#[derive(Default)]
struct LoadBuffers {
    /// Holds a stretch of a file for its CRC.
    chunk: Vec<u8>,
    /// Holds one record batch's block, decoded in place.
    block: Vec<u8>,
}

/// Bytes read at once to check a file's CRC.
const CRC_CHUNK_BYTES: usize = 1 << 20;

/// A snapshot table file (Arrow IPC), read one record batch at a time. The file is never in memory whole: reading
/// a file into a buffer its size first-touched as much new memory as the rows it holds, a third of a load's time.
/// A first pass checks its size and CRC against the manifest through a small buffer; then each block is read into
/// a buffer reused from batch to batch and decoded in place (its arrays are slices of that buffer, no copy), every
/// block bounds-checked against the footer first.
struct TableFileReader {
    file: Box<dyn lanedb_engine::io::ReadFile>,
    path: String,
    size: u64,
    decoder: arrow_ipc::reader::FileDecoder,
    blocks: std::vec::IntoIter<arrow_ipc::Block>,
    buffers: LoadBuffers,
    /// The buffer the last batch was decoded from, taken back once that batch is dropped.
    lent: Option<arrow_buffer::Buffer>,
}

impl TableFileReader {
    fn open(
        dir: &dyn Directory,
        snapshot: &str,
        manifest: &Manifest,
        file: &str,
        buffers: &mut LoadBuffers,
    ) -> Result<TableFileReader> {
        use arrow_ipc::reader::{read_footer_length, FileDecoder};
        let listed = Listed::find(snapshot, manifest, file)?;
        let mut reader = dir.open_read(file).map_err(|e| listed.open_error(e))?;
        let size = reader.size();
        if size != listed.bytes {
            return Err(listed.mismatch());
        }
        let path = listed.path.clone();
        let chunk = &mut buffers.chunk;
        let mut sum = 0;
        let mut at = 0;
        while at < size {
            let n = (size - at).min(CRC_CHUNK_BYTES as u64) as usize;
            chunk.clear();
            reader
                .read_range(at, n, chunk)
                .map_err(|e| io_error(&path, e))?;
            sum = crc32c::crc32c_append(sum, chunk);
            at += n as u64;
        }
        if sum != listed.crc {
            return Err(listed.mismatch());
        }
        let bad = |what: String| corrupt(format!("snapshot file {path}: {what}"));
        let size_usize = usize::try_from(size).map_err(|_| bad("too large".into()))?;
        let trailer_start = size_usize
            .checked_sub(10)
            .ok_or_else(|| bad("shorter than an IPC trailer".into()))?;
        chunk.clear();
        reader
            .read_range(trailer_start as u64, 10, chunk)
            .map_err(|e| io_error(&path, e))?;
        let trailer: [u8; 10] = chunk[..].try_into().expect("10 bytes read");
        let footer_len = read_footer_length(trailer).map_err(|e| bad(e.to_string()))?;
        let footer_start = trailer_start
            .checked_sub(footer_len)
            .ok_or_else(|| bad("footer longer than the file".into()))?;
        chunk.clear();
        reader
            .read_range(footer_start as u64, footer_len, chunk)
            .map_err(|e| io_error(&path, e))?;
        let footer =
            arrow_ipc::root_as_footer(chunk).map_err(|e| bad(format!("unreadable footer: {e}")))?;
        let schema = arrow_ipc::convert::fb_to_schema(
            footer.schema().ok_or_else(|| bad("no schema".into()))?,
        );
        let decoder = FileDecoder::new(Arc::new(schema), footer.version());
        let in_bounds = |block: &arrow_ipc::Block| {
            let offset = usize::try_from(block.offset()).ok()?;
            let len = usize::try_from(block.bodyLength())
                .ok()?
                .checked_add(usize::try_from(block.metaDataLength()).ok()?)?;
            offset.checked_add(len).filter(|end| *end <= footer_start)?;
            Some(())
        };
        let dictionaries: Vec<arrow_ipc::Block> =
            footer.dictionaries().iter().flatten().copied().collect();
        let blocks: Vec<arrow_ipc::Block> =
            footer.recordBatches().iter().flatten().copied().collect();
        if dictionaries
            .iter()
            .chain(&blocks)
            .any(|b| in_bounds(b).is_none())
        {
            return Err(bad("a block past the end of the data".into()));
        }
        let mut reader = TableFileReader {
            file: reader,
            path,
            size,
            decoder,
            blocks: blocks.into_iter(),
            buffers: std::mem::take(buffers),
            lent: None,
        };
        for block in &dictionaries {
            let buffer = reader.read_block(block)?;
            reader
                .decoder
                .read_dictionary(block, &buffer)
                .map_err(|e| corrupt(format!("snapshot file {}: {e}", reader.path)))?;
        }
        Ok(reader)
    }

    /// The next record batch, or `None` after the last.
    fn next(&mut self) -> Result<Option<arrow_array::RecordBatch>> {
        while let Some(block) = self.blocks.next() {
            let buffer = self.read_block(&block)?;
            let batch = self
                .decoder
                .read_record_batch(&block, &buffer)
                .map_err(|e| corrupt(format!("snapshot file {}: {e}", self.path)))?;
            self.lent = Some(buffer);
            if batch.is_some() {
                return Ok(batch);
            }
        }
        Ok(None)
    }

    /// Block `block`'s bytes, in the reused buffer once the batch decoded from it last has been dropped.
    fn read_block(&mut self, block: &arrow_ipc::Block) -> Result<arrow_buffer::Buffer> {
        if let Some(lent) = self.lent.take() {
            if let Ok(block) = lent.into_vec::<u8>() {
                self.buffers.block = block;
            }
        }
        let mut bytes = std::mem::take(&mut self.buffers.block);
        bytes.clear();
        let len = block.bodyLength() as usize + block.metaDataLength() as usize;
        self.file
            .read_range(block.offset() as u64, len, &mut bytes)
            .map_err(|e| io_error(&self.path, e))?;
        Ok(arrow_buffer::Buffer::from_vec(bytes))
    }

    /// The buffers, for the next file.
    fn finish(mut self) -> LoadBuffers {
        if let Some(Ok(block)) = self.lent.take().map(|b| b.into_vec::<u8>()) {
            self.buffers.block = block;
        }
        self.buffers
    }
}

/// Checks the snapshot in `from` (a directory holding a manifest) and copies it into `root/snapshots`, where the
/// next start recovers from it.
pub fn restore(from: &dyn Directory, root: &dyn Directory) -> Result<String> {
    let text = from
        .read(MANIFEST)
        .map_err(|e| io_error("cannot read the manifest", e))?;
    let manifest = parse_manifest(&text, MANIFEST)?;
    let name = snapshot_name(manifest.log_sequence);
    let snapshots = root
        .open_dir(SNAPSHOTS_DIR)
        .map_err(|e| io_error("cannot open the snapshots directory", e))?;
    if !snapshots
        .list_dirs()
        .map_err(|e| io_error("cannot list snapshots", e))?
        .is_empty()
        || !root
            .open_dir("log")
            .and_then(|l| l.list())
            .map_err(|e| io_error("cannot list the log", e))?
            .is_empty()
    {
        return Err(Error::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "restore into a new, empty data directory: this one already holds a snapshot or a log",
        ));
    }
    let dir = snapshots.open_dir(&name).map_err(|e| io_error(&name, e))?;
    for (file, ..) in &manifest.files {
        let data = read_checked(from, &name, &manifest, file)?;
        dir.write(file, &data).map_err(|e| io_error(file, e))?;
    }
    dir.write(MANIFEST_TMP, &text)
        .map_err(|e| io_error(MANIFEST_TMP, e))?;
    dir.rename(MANIFEST_TMP, MANIFEST)
        .map_err(|e| io_error(MANIFEST, e))?;
    dir.sync().map_err(|e| io_error(&name, e))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_survive_a_manifest_line() {
        for name in [
            "plain",
            "with space",
            "line\nbreak",
            "back\\slash\\n",
            "cr\r",
            "trailing\\",
        ] {
            let line = escape(name);
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            assert_eq!(unescape(&line), name);
        }
    }

    #[test]
    fn a_table_file_streams_batch_by_batch_and_a_damaged_one_is_refused() {
        use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
        let batches: Vec<RecordBatch> = [3usize, 1000, 0, 17]
            .iter()
            .enumerate()
            .map(|(b, &n)| {
                let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(
                    (0..n as i64).map(|i| i + 10_000 * b as i64),
                ));
                let notes: ArrayRef = Arc::new(StringArray::from_iter(
                    (0..n).map(|i| (i % 3 != 0).then(|| format!("note {i}"))),
                ));
                RecordBatch::try_from_iter([("id", ids), ("note", notes)]).unwrap()
            })
            .collect();
        let mut bytes = Vec::new();
        let mut writer =
            arrow_ipc::writer::FileWriter::try_new(&mut bytes, &batches[0].schema()).unwrap();
        for batch in &batches {
            writer.write(batch).unwrap();
        }
        writer.finish().unwrap();
        drop(writer);
        let dir = lanedb_engine::io::FaultyDirectory::new();
        dir.put("1.arrow", bytes.clone());
        let manifest = |len: u64, crc: u32| Manifest {
            log_sequence: 1,
            next_transaction: 1,
            files: vec![("1.arrow".into(), len, crc)],
            lanes: 1,
            tables: vec![],
        };
        let good = manifest(bytes.len() as u64, crc32c::crc32c(&bytes));
        let mut buffers = LoadBuffers::default();
        for _ in 0..2 {
            let mut reader =
                TableFileReader::open(&dir, "s", &good, "1.arrow", &mut buffers).unwrap();
            let mut read = Vec::new();
            while let Some(batch) = reader.next().unwrap() {
                read.push(batch);
            }
            let columns =
                |b: &[RecordBatch]| b.iter().map(|b| b.columns().to_vec()).collect::<Vec<_>>();
            assert_eq!(columns(&read), columns(&batches));
            drop(read);
            buffers = reader.finish();
            // The block buffer came back for the next file.
            assert!(buffers.block.capacity() > 0);
        }
        for (bad, what) in [
            (manifest(bytes.len() as u64, 1), "CRC"),
            (manifest(bytes.len() as u64 + 1, 0), "size"),
        ] {
            let e = TableFileReader::open(&dir, "s", &bad, "1.arrow", &mut buffers)
                .err()
                .unwrap();
            assert!(
                e.message.contains("does not match its manifest"),
                "{what}: {}",
                e.message
            );
        }
        let mut listed = manifest(1, 0);
        listed.files[0].0 = "2.arrow".into();
        let e = TableFileReader::open(&dir, "s", &listed, "2.arrow", &mut buffers)
            .err()
            .unwrap();
        assert!(e.message.contains("missing"), "{}", e.message);
        // A footer that points past the data, with a CRC to match: refused, not read out of bounds.
        let mut cut = bytes[..bytes.len() - 10].to_vec();
        let footer_len =
            i32::from_le_bytes(bytes[bytes.len() - 10..bytes.len() - 6].try_into().unwrap());
        cut.extend_from_slice(&(footer_len + 64).to_le_bytes());
        cut.extend_from_slice(b"ARROW1");
        dir.put("1.arrow", cut.clone());
        let e = TableFileReader::open(
            &dir,
            "s",
            &manifest(cut.len() as u64, crc32c::crc32c(&cut)),
            "1.arrow",
            &mut buffers,
        )
        .err()
        .unwrap();
        assert!(e.message.contains("snapshot file"), "{}", e.message);
    }
}
