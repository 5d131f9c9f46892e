//! `modelwatch profile`: folds a training (or validation) dataset, CSV, into one
//! [`WindowSummary`] with the same sketches and the deployment's hash key as production
//! windows, so that it can serve as their baseline (`docs/baseline.md`).
//!
//! Streamed: the file is read a block at a time, so memory is the sketches (bounded per
//! column by the library, see its crate docs), the type-inference sample (at most
//! [`SAMPLE_ROWS`] records and [`SAMPLE_BYTES`] bytes), then 2 × threads + 1 blocks of
//! 256 KiB of whole lines (or chunks of 1,024 records once the data has quotes) passed from
//! the thread that reads to those that split, parse and fold them (one builder each,
//! merged at the end). No String is made per cell: cells are parsed in place, each record
//! checked as UTF-8 once.
//!
//! Column types are decided once per column from the sample, as a careful data scientist
//! would (see [`infer`]); `--type col=string` overrides them. A cell that does not parse as
//! its column's type is logged as what it is (a string in an integer column is counted as a
//! string, which the constraints' type check then sees).

use modelwatch::{Features, Prediction, SummaryBuilder, Value, WindowSummary};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Records held to infer the column types before any is logged.
pub const SAMPLE_ROWS: usize = 10_000;
/// Bytes of records held for the sample at most (the sample stops earlier past them).
pub const SAMPLE_BYTES: usize = 16 << 20;

/// Texts read as missing besides the empty cell: pandas' default `na_values`, the list most
/// training exports were written (and read) with.
pub const MISSING_TOKENS: [&str; 18] = [
    "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// A column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Integers (i64); a float in the column is still logged as a float.
    Int,
    /// Numbers, integers included, logged as floats.
    Float,
    /// `true`/`false` in any case.
    Bool,
    /// Text, whatever it looks like (identifiers, zip codes).
    String,
    /// No evidence in the sample (every cell missing): each cell is logged as what it
    /// parses as.
    Auto,
}

impl ColumnType {
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Bool => "bool",
            ColumnType::String => "string",
            ColumnType::Auto => "auto",
        }
    }

    pub fn parse(text: &str) -> Result<ColumnType, String> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "int" | "integer" => ColumnType::Int,
            "float" | "double" | "number" => ColumnType::Float,
            "bool" | "boolean" => ColumnType::Bool,
            "string" | "str" | "text" | "category" => ColumnType::String,
            "auto" => ColumnType::Auto,
            other => {
                return Err(format!(
                    "unknown type {other:?}: int, float, bool, string or auto"
                ))
            }
        })
    }
}

/// `NAME=TYPE`, for `--type`.
pub fn parse_type_override(text: &str) -> Result<(String, ColumnType), String> {
    let (name, ty) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{text:?}: expected COLUMN=TYPE"))?;
    Ok((name.to_owned(), ColumnType::parse(ty)?))
}

/// What to profile and how.
#[derive(Clone, Debug)]
pub struct Options {
    pub deployment: String,
    /// The column holding the model's prediction (an output, not a feature).
    pub prediction: Option<String>,
    /// The column holding the ground truth (logged as ground truth with the prediction).
    pub label: Option<String>,
    /// The column naming each row's ground-truth segment.
    pub segment: Option<String>,
    /// Columns left out.
    pub exclude: Vec<String>,
    /// Types given by the user, over inference.
    pub types: Vec<(String, ColumnType)>,
    pub hash_key: [u8; 16],
    /// The summary's window start (Unix ms); its length is the profile's whole span.
    pub window_start_ms: i64,
    pub window_ms: u64,
    /// Show a progress bar (on a terminal only; the caller decides).
    pub progress: bool,
    /// Threads that split, parse and fold records (besides the one that reads); default:
    /// the cores. Each has its own builder: a column with fewer than k values (10) in one
    /// thread's share ships only its counts from that share.
    pub threads: usize,
}

impl Options {
    pub fn new(deployment: &str, hash_key: [u8; 16]) -> Options {
        Options {
            deployment: deployment.to_owned(),
            prediction: None,
            label: None,
            segment: None,
            exclude: Vec::new(),
            types: Vec::new(),
            hash_key,
            window_start_ms: 0,
            window_ms: 60_000,
            progress: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        }
    }
}

/// What a profile read, besides the summary: every record or cell not logged as given is
/// counted here, never a panic or a silent loss.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records logged.
    pub rows: u64,
    /// Records the CSV reader rejected (a field count unlike the header's, an I/O error
    /// inside the file); skipped.
    pub bad_rows: u64,
    /// Cells whose bytes were not UTF-8: logged as text with U+FFFD in place of the bad bytes.
    pub invalid_utf8: u64,
    /// Cells that did not parse as their column's type, logged as strings.
    pub mistyped: u64,
}

/// The profile of some files.
pub struct Profile {
    pub summary: WindowSummary,
    pub counts: Counts,
    /// Each column's type, in the order first seen.
    pub types: Vec<(String, ColumnType)>,
}

/// Profiles CSV files (`.gz` ones decompressed) into one summary.
pub fn profile_files(files: &[PathBuf], options: &Options) -> Result<Profile, String> {
    let mut p = Profiler::new(options);
    for f in files {
        let file =
            std::fs::File::open(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bar = progress_bar(options.progress, size, f);
        let reader = ProgressRead {
            inner: file,
            bar: bar.clone(),
        };
        let result = if f.extension().is_some_and(|e| e == "parquet") {
            p.read_parquet(f)
        } else if f.extension().is_some_and(|e| e == "gz") {
            p.read(flate2::read::MultiGzDecoder::new(reader))
        } else {
            p.read(reader)
        };
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        result.map_err(|e| format!("{}: {e}", f.display()))?;
    }
    p.finish()
}

fn progress_bar(show: bool, size: u64, file: &Path) -> Option<indicatif::ProgressBar> {
    // Small files are done before a bar would be read.
    if !show || size < 16 << 20 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(size);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left",
    )
    .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_message(file.display().to_string());
    Some(bar)
}

/// Counts the (compressed) bytes read for the progress bar.
struct ProgressRead<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for ProgressRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

/// What each CSV column is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Feature,
    Prediction,
    Label,
    Segment,
    Excluded,
}

struct Column {
    name: String,
    role: Role,
    ty: ColumnType,
}

/// Folds CSV streams into one summary; the column types are fixed by the first stream that
/// has the column, so that several files of one dataset are read alike.
pub struct Profiler {
    options: Options,
    builder: SummaryBuilder,
    counts: Counts,
    types: Vec<(String, ColumnType)>,
    known: HashMap<String, ColumnType>,
    /// The builders of the other folding threads, merged at the end.
    extra: Vec<(SummaryBuilder, Counts)>,
}

impl Profiler {
    pub fn new(options: &Options) -> Profiler {
        let builder = SummaryBuilder::new(
            &options.deployment,
            options.window_start_ms,
            options.window_ms,
            options.hash_key,
        );
        let known = options.types.iter().cloned().collect();
        Profiler {
            options: options.clone(),
            builder,
            counts: Counts::default(),
            types: Vec::new(),
            known,
            extra: Vec::new(),
        }
    }

    /// Reads one CSV stream with a header row.
    pub fn read(&mut self, input: impl Read + Send) -> Result<(), String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(CSV_BUFFER)
            .from_reader(Recorder::new(input));
        let header = reader
            .byte_headers()
            .map_err(|e| format!("cannot read the header: {e}"))?
            .clone();
        let mut columns = self.columns_of(
            header
                .iter()
                .map(|h| String::from_utf8_lossy(h).into_owned()),
        )?;
        let position = reader.position().byte();
        let (head, input) = reader.into_inner().unread(position)?;
        // The type sample: split as plain lines when its lines have no quote (most files),
        // else by the csv crate; either way the same records, so the same types.
        let (head, input) = match PlainSample::read(head, input, columns.len())? {
            Ok((sample, input)) => {
                self.set_types(&mut columns, &sample.inference);
                if sample.ended {
                    // All of it in the sample: folded here.
                    let with_label = self.options.label.is_some();
                    let block = Batch::Lines(sample.lines);
                    let (builder, counts) = (&mut self.builder, &mut self.counts);
                    fold_batch(
                        builder,
                        counts,
                        &columns,
                        &block,
                        with_label,
                        &mut Vec::new(),
                    );
                    return Ok(());
                }
                let batches = sample_blocks(sample.lines);
                return self.fold_parallel(&columns, batches, sample.rest, input);
            }
            Err(unread) => unread,
        };

        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(CSV_BUFFER)
            .from_reader(Recorder::new(std::io::Cursor::new(head).chain(input)));
        let mut sample = Vec::new();
        let mut inference = vec![Inference::default(); columns.len()];
        let mut bytes = 0;
        let mut record = csv::ByteRecord::new();
        let mut done = false;
        while sample.len() < SAMPLE_ROWS && bytes < SAMPLE_BYTES {
            match reader.read_byte_record(&mut record) {
                Ok(true) if record.len() != columns.len() => self.counts.bad_rows += 1,
                Ok(true) => {
                    bytes += sample_bytes(record.as_slice().len(), record.len());
                    for (i, cell) in inference.iter_mut().zip(record.iter()) {
                        i.see(cell);
                    }
                    sample.push(record.clone());
                }
                Ok(false) => {
                    done = true;
                    break;
                }
                Err(e) => self.bad_record(e)?,
            }
        }
        self.set_types(&mut columns, &inference);
        if done {
            // All of it in the sample: folded here.
            for r in &sample {
                self.log(&columns, r);
            }
            return Ok(());
        }
        let position = reader.position().byte();
        let (buffered, input) = reader.into_inner().unread(position)?;
        let batches = sample
            .chunks(CHUNK)
            .map(|c| Batch::Sample(Sample::Records(c.to_vec())))
            .collect();
        self.fold_parallel(&columns, batches, buffered, input)
    }

    /// Fixes each column's type: given, known from an earlier file, or inferred from the
    /// sample.
    fn set_types(&mut self, columns: &mut [Column], inferred: &[Inference]) {
        for (c, inferred) in columns.iter_mut().zip(inferred) {
            c.ty = match self.known.get(&c.name) {
                Some(t) => *t,
                None => {
                    let t = inferred.column_type();
                    self.known.insert(c.name.clone(), t);
                    t
                }
            };
            if c.role != Role::Excluded && !self.types.iter().any(|(n, _)| n == &c.name) {
                self.types.push((c.name.clone(), c.ty));
            }
        }
    }

    /// Folds the sample's `batches`, then `buffered` and the rest of `input`, in two
    /// stages: one thread reads blocks of whole lines, `folders` threads (this one and
    /// more) split them into cells, parse and fold them, each into its own builder, merged
    /// at the end as a collector merges instances. Splitting lines on commas is exact while
    /// the data has no quote and no lone carriage return; from the first block with one
    /// on, the reader thread splits records with the csv crate (quoted cells may hold
    /// commas and newlines) and sends them instead. Blocks and chunks go back to the reader
    /// to be refilled: no allocation per record, and at most `chunks` in flight.
    fn fold_parallel(
        &mut self,
        columns: &[Column],
        sample: Vec<Batch>,
        buffered: Vec<u8>,
        input: impl Read + Send,
    ) -> Result<(), String> {
        let folders = self.options.threads.max(1);
        let chunks = 2 * folders + 1;
        let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Batch>(chunks);
        for _ in 0..chunks {
            let _ = empty_tx.send(Batch::Lines(Vec::with_capacity(BLOCK)));
        }
        let (mut full_txs, mut full_rxs) = (Vec::new(), Vec::new());
        for _ in 0..folders {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
            full_txs.push(tx);
            full_rxs.push(rx);
        }
        while self.extra.len() + 1 < folders {
            let o = &self.options;
            let b = SummaryBuilder::new(&o.deployment, o.window_start_ms, o.window_ms, o.hash_key);
            self.extra.push((b, Counts::default()));
        }
        let with_label = self.options.label.is_some();
        let read = std::thread::scope(|scope| {
            let splitter = scope.spawn(move || split(sample, buffered, input, empty_rx, full_txs));
            let mut rxs = full_rxs.into_iter();
            let first = rxs.next();
            for ((builder, counts), rx) in self.extra.iter_mut().zip(rxs) {
                let empty_tx = empty_tx.clone();
                scope.spawn(move || {
                    let mut fields = Vec::new();
                    for batch in rx {
                        fold_batch(builder, counts, columns, &batch, with_label, &mut fields);
                        recycle(&empty_tx, batch);
                    }
                });
            }
            let mut fields = Vec::new();
            for batch in first.into_iter().flatten() {
                let (builder, counts) = (&mut self.builder, &mut self.counts);
                fold_batch(builder, counts, columns, &batch, with_label, &mut fields);
                recycle(&empty_tx, batch);
            }
            drop(empty_tx);
            splitter
                .join()
                .unwrap_or_else(|_| Err("the CSV reader thread failed".into()))
        });
        self.counts.bad_rows += read?;
        Ok(())
    }

    /// Reads a Parquet file (needs the `parquet` feature). Column types come from its
    /// schema, not inference: integers, floats, booleans, strings and dictionary-encoded
    /// strings (pandas categoricals); a column of another type must be `--exclude`d.
    #[cfg(feature = "parquet")]
    pub fn read_parquet(&mut self, path: &Path) -> Result<(), String> {
        parquet_input::read(self, path)
    }

    /// Without the `parquet` feature: an error that says how to get it.
    #[cfg(not(feature = "parquet"))]
    pub fn read_parquet(&mut self, _path: &Path) -> Result<(), String> {
        Err("Parquet input needs modelwatch-cli built with `--features parquet` (off by default for its build time); or export CSV".into())
    }

    /// The columns of a header, each with its role; an error for a prediction, label or
    /// segment column missing, or a name given twice.
    fn columns_of(&self, names: impl Iterator<Item = String>) -> Result<Vec<Column>, String> {
        let o = &self.options;
        let columns: Vec<Column> = names
            .map(|name| {
                let is = |c: &Option<String>| c.as_deref() == Some(name.as_str());
                let role = if o.exclude.contains(&name) {
                    Role::Excluded
                } else if is(&o.prediction) {
                    Role::Prediction
                } else if is(&o.label) {
                    Role::Label
                } else if is(&o.segment) {
                    Role::Segment
                } else {
                    Role::Feature
                };
                Column {
                    name,
                    role,
                    ty: ColumnType::Auto,
                }
            })
            .collect();
        // Two columns of one name would be folded into one feature, each row counted twice.
        for (i, c) in columns.iter().enumerate() {
            if c.role != Role::Excluded && columns[..i].iter().any(|d| d.name == c.name) {
                return Err(format!(
                    "two columns are named {:?}: rename one, or --exclude the name",
                    c.name
                ));
            }
        }
        for (what, name) in [
            ("prediction", &o.prediction),
            ("label", &o.label),
            ("segment", &o.segment),
        ] {
            if let Some(name) = name {
                if !columns.iter().any(|c| &c.name == name) {
                    return Err(format!("no {what} column {name:?} in the header"));
                }
            }
        }
        Ok(columns)
    }

    /// A record the reader rejected is skipped and counted; an I/O error ends the stream.
    fn bad_record(&mut self, e: csv::Error) -> Result<(), String> {
        match e.kind() {
            csv::ErrorKind::Io(_) => Err(format!("cannot read: {e}")),
            _ => {
                self.counts.bad_rows += 1;
                Ok(())
            }
        }
    }

    fn log(&mut self, columns: &[Column], record: &csv::ByteRecord) {
        let label = self.options.label.is_some();
        let mut fields = Vec::new();
        fold_record(
            &mut self.builder,
            &mut self.counts,
            columns,
            record,
            label,
            &mut fields,
        );
    }

    /// What was read so far, over every folding thread.
    pub fn counts(&self) -> Counts {
        let mut counts = self.counts.clone();
        for (_, c) in &self.extra {
            counts.rows += c.rows;
            counts.bad_rows += c.bad_rows;
            counts.invalid_utf8 += c.invalid_utf8;
            counts.mistyped += c.mistyped;
        }
        counts
    }

    /// The profile: the folding threads' summaries merged. An error only if a merge
    /// failed, which summaries of one deployment and key never do.
    pub fn finish(mut self) -> Result<Profile, String> {
        let counts = self.counts();
        self.builder
            .log_metadata("modelwatch.profile.rows", &counts.rows.to_string());
        let mut summary = self.builder.build();
        for (b, _) in self.extra {
            summary.merge(&b.build()).map_err(|e| e.to_string())?;
        }
        Ok(Profile {
            summary,
            counts,
            types: self.types,
        })
    }
}

#[cfg(feature = "parquet")]
mod parquet_input {
    use super::{fold_cells, ColumnType, Profiler, Role};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type,
        UInt32Type, UInt64Type, UInt8Type,
    };
    use arrow_array::{Array, ArrayRef, RecordBatchReader};
    use modelwatch::Value;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::path::Path;

    /// One column of a batch, typed once per batch.
    enum Col<'a> {
        I8(&'a arrow_array::Int8Array),
        I16(&'a arrow_array::Int16Array),
        I32(&'a arrow_array::Int32Array),
        I64(&'a arrow_array::Int64Array),
        U8(&'a arrow_array::UInt8Array),
        U16(&'a arrow_array::UInt16Array),
        U32(&'a arrow_array::UInt32Array),
        U64(&'a arrow_array::UInt64Array),
        F32(&'a arrow_array::Float32Array),
        F64(&'a arrow_array::Float64Array),
        Bool(&'a arrow_array::BooleanArray),
        Str(&'a arrow_array::StringArray),
        LargeStr(&'a arrow_array::LargeStringArray),
        View(&'a arrow_array::StringViewArray),
        /// Dictionary-encoded strings: the keys as indexes (`None` for null) and the values.
        Dict(Vec<Option<usize>>, &'a arrow_array::StringArray),
    }

    fn typed(a: &ArrayRef) -> Option<Col<'_>> {
        dictionary(a).or_else(|| other(a))
    }

    fn dictionary(a: &ArrayRef) -> Option<Col<'_>> {
        let d = a.as_any_dictionary_opt()?;
        let values = d.values().as_string_opt::<i32>()?;
        let keys = d.normalized_keys();
        let present: Vec<Option<usize>> = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| (!d.keys().is_null(i)).then_some(k))
            .collect();
        Some(Col::Dict(present, values))
    }

    fn other(a: &ArrayRef) -> Option<Col<'_>> {
        if let Some(x) = a.as_primitive_opt::<Int8Type>() {
            return Some(Col::I8(x));
        }
        if let Some(x) = a.as_primitive_opt::<Int16Type>() {
            return Some(Col::I16(x));
        }
        if let Some(x) = a.as_primitive_opt::<Int32Type>() {
            return Some(Col::I32(x));
        }
        if let Some(x) = a.as_primitive_opt::<Int64Type>() {
            return Some(Col::I64(x));
        }
        if let Some(x) = a.as_primitive_opt::<UInt8Type>() {
            return Some(Col::U8(x));
        }
        if let Some(x) = a.as_primitive_opt::<UInt16Type>() {
            return Some(Col::U16(x));
        }
        if let Some(x) = a.as_primitive_opt::<UInt32Type>() {
            return Some(Col::U32(x));
        }
        if let Some(x) = a.as_primitive_opt::<UInt64Type>() {
            return Some(Col::U64(x));
        }
        if let Some(x) = a.as_primitive_opt::<Float32Type>() {
            return Some(Col::F32(x));
        }
        if let Some(x) = a.as_primitive_opt::<Float64Type>() {
            return Some(Col::F64(x));
        }
        if let Some(x) = a.as_boolean_opt() {
            return Some(Col::Bool(x));
        }
        if let Some(x) = a.as_string_opt::<i32>() {
            return Some(Col::Str(x));
        }
        if let Some(x) = a.as_string_opt::<i64>() {
            return Some(Col::LargeStr(x));
        }
        a.as_string_view_opt().map(Col::View)
    }

    impl Col<'_> {
        fn column_type(&self) -> ColumnType {
            match self {
                Col::I8(_) | Col::I16(_) | Col::I32(_) | Col::I64(_) => ColumnType::Int,
                Col::U8(_) | Col::U16(_) | Col::U32(_) | Col::U64(_) => ColumnType::Int,
                Col::F32(_) | Col::F64(_) => ColumnType::Float,
                Col::Bool(_) => ColumnType::Bool,
                _ => ColumnType::String,
            }
        }

        fn value(&self, i: usize) -> Value<'_> {
            macro_rules! get {
                ($a:expr, $f:expr) => {
                    if $a.is_null(i) {
                        Value::Null
                    } else {
                        $f($a.value(i))
                    }
                };
            }
            match self {
                Col::I8(a) => get!(a, Value::from),
                Col::I16(a) => get!(a, Value::from),
                Col::I32(a) => get!(a, Value::from),
                Col::I64(a) => get!(a, Value::from),
                Col::U8(a) => get!(a, Value::from),
                Col::U16(a) => get!(a, Value::from),
                Col::U32(a) => get!(a, Value::from),
                Col::U64(a) => get!(a, Value::from),
                Col::F32(a) => get!(a, Value::from),
                Col::F64(a) => get!(a, Value::from),
                Col::Bool(a) => get!(a, Value::from),
                Col::Str(a) => get!(a, Value::from),
                Col::LargeStr(a) => get!(a, Value::from),
                Col::View(a) => get!(a, Value::from),
                Col::Dict(keys, values) => match keys.get(i).copied().flatten() {
                    Some(k) if !values.is_null(k) => Value::from(values.value(k)),
                    _ => Value::Null,
                },
            }
        }
    }

    pub(super) fn read(p: &mut Profiler, path: &Path) -> Result<(), String> {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(|e| format!("not a Parquet file this command reads: {e}"))?;
        let schema = reader.schema();
        let mut columns = p.columns_of(schema.fields().iter().map(|f| f.name().clone()))?;
        let with_label = p.options.label.is_some();
        let mut typed_once = false;
        for batch in reader {
            let batch = batch.map_err(|e| format!("cannot read: {e}"))?;
            let mut cols = Vec::with_capacity(columns.len());
            for (c, array) in columns.iter_mut().zip(batch.columns()) {
                if c.role == Role::Excluded {
                    cols.push(None);
                    continue;
                }
                let col = typed(array).ok_or_else(|| {
                    format!(
                        "column {:?} has type {}, which profile does not read: --exclude it",
                        c.name,
                        array.data_type()
                    )
                })?;
                c.ty = col.column_type();
                cols.push(Some(col));
            }
            if !typed_once {
                typed_once = true;
                for c in columns.iter().filter(|c| c.role != Role::Excluded) {
                    if !p.types.iter().any(|(n, _)| n == &c.name) {
                        p.types.push((c.name.clone(), c.ty));
                    }
                }
            }
            for i in 0..batch.num_rows() {
                let cell = |c: usize| cols[c].as_ref().map_or(Value::Null, |col| col.value(i));
                fold_cells(&mut p.builder, &mut p.counts, &columns, with_label, cell);
            }
        }
        Ok(())
    }
}

/// Folds one row given cell by cell (`cell(i)` is column `i`'s value), for inputs that
/// come typed (Parquet).
#[cfg(feature = "parquet")]
fn fold_cells<'a>(
    builder: &mut SummaryBuilder,
    counts: &mut Counts,
    columns: &[Column],
    with_label: bool,
    cell: impl Fn(usize) -> Value<'a>,
) {
    struct Cells<'c, F> {
        columns: &'c [Column],
        cell: F,
    }
    impl<'a, F: Fn(usize) -> Value<'a>> Features for Cells<'_, F> {
        fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
            for (i, c) in self.columns.iter().enumerate() {
                if c.role == Role::Feature {
                    f(&c.name, (self.cell)(i));
                }
            }
        }
    }
    let mut prediction = CellPrediction(Value::Null, false);
    let mut label = Value::Null;
    let mut segment: Option<Cow<'_, str>> = None;
    for (i, c) in columns.iter().enumerate() {
        match c.role {
            Role::Prediction => prediction = CellPrediction(cell(i), true),
            Role::Label => label = cell(i),
            // A segment is a name whatever its type (region 3 is segment "3").
            Role::Segment => {
                segment = match cell(i) {
                    Value::Str(s) => Some(s),
                    Value::Int(n) => Some(Cow::Owned(n.to_string())),
                    Value::Float(x) => Some(Cow::Owned(x.to_string())),
                    Value::Bool(b) => Some(Cow::Owned(b.to_string())),
                    // Missing (a cell is never a vector).
                    _ => None,
                }
            }
            _ => {}
        }
    }
    builder.log_prediction(
        Cells {
            columns,
            cell: &cell,
        },
        &prediction,
    );
    if with_label {
        builder.log_ground_truth(label, prediction.0.borrowed(), segment.as_deref());
    }
    counts.rows += 1;
}

/// The CSV reader's buffer: what it may hold read but not yet split, at most.
const CSV_BUFFER: usize = 1 << 16;
/// Bytes of whole lines per block sent to a folding thread (more for a longer line).
const BLOCK: usize = 1 << 18;
/// Records per chunk once the reader thread splits with the csv crate.
const CHUNK: usize = 1024;

/// Work for a folding thread.
enum Batch {
    /// Whole lines, no quote and no lone carriage return in them.
    Lines(Vec<u8>),
    /// Records split by the csv crate, the first `n` of them filled.
    Records(Vec<csv::ByteRecord>, usize),
    /// Lines or records of the type sample (held to infer the types, then folded like the
    /// rest): dropped once folded, never refilled.
    Sample(Sample),
}

/// The type sample, handed to the folding threads in parts.
enum Sample {
    /// A range of whole lines of the sample's bytes, shared by its parts (held once).
    Lines(Arc<Vec<u8>>, Range<usize>),
    Records(Vec<csv::ByteRecord>),
}

/// Gives a folded batch back to the reader to refill; a sample's is dropped instead (its
/// memory freed: the batches in flight stay as many as the reader made).
fn recycle(empty: &std::sync::mpsc::SyncSender<Batch>, batch: Batch) {
    if !matches!(batch, Batch::Sample(_)) {
        // The reader may have finished: then the batch is dropped here.
        let _ = empty.send(batch);
    }
}

/// Hands the bytes it reads to the CSV reader and keeps the last ones, so that those the
/// reader buffered but did not split yet can be taken back ([`Recorder::unread`]).
struct Recorder<R> {
    inner: R,
    read: u64,
    tail: Vec<u8>,
}

impl<R: Read> Recorder<R> {
    fn new(inner: R) -> Recorder<R> {
        Recorder {
            inner,
            read: 0,
            tail: Vec::new(),
        }
    }

    /// The bytes read past `position` (where the reader's next record starts), and the
    /// stream to read the rest from.
    fn unread(self, position: u64) -> Result<(Vec<u8>, R), String> {
        let ahead = usize::try_from(self.read.saturating_sub(position)).unwrap_or(usize::MAX);
        if ahead > self.tail.len() {
            return Err(format!(
                "the CSV reader holds {ahead} bytes, more than its buffer"
            ));
        }
        Ok((self.tail[self.tail.len() - ahead..].to_vec(), self.inner))
    }
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        // Keep at least the reader's buffer's worth (twice, for its last refill).
        if self.tail.len() > 8 * CSV_BUFFER {
            self.tail.drain(..self.tail.len() - 2 * CSV_BUFFER);
        }
        self.tail.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Reads `input` until `buf` has at least `target` bytes and a newline (or the stream
/// ends); returns whether it ended.
fn fill(buf: &mut Vec<u8>, input: &mut impl Read, target: usize) -> Result<bool, String> {
    let mut target = target;
    let mut scanned = 0;
    loop {
        if buf.len() < target {
            // Into the spare capacity, which `read_to_end` does not zero first.
            let want = (target - buf.len()) as u64;
            let n = input
                .by_ref()
                .take(want)
                .read_to_end(buf)
                .map_err(|e| format!("cannot read: {e}"))?;
            if (n as u64) < want {
                return Ok(true);
            }
        }
        if buf[scanned..].contains(&b'\n') {
            return Ok(false);
        }
        // A line longer than the block: held whole, as the csv reader would.
        scanned = buf.len();
        target = buf.len() + BLOCK;
    }
}

/// What a sample record weighs against [`SAMPLE_BYTES`]: its cells' bytes and a
/// field's bookkeeping, as the csv crate holds it.
fn sample_bytes(cell_bytes: usize, fields: usize) -> usize {
    cell_bytes + 16 * fields
}

/// The type sample read as plain lines: the first [`SAMPLE_ROWS`] records of the header's
/// field count (or fewer, up to [`SAMPLE_BYTES`]), as the csv crate would give them, split
/// with `memchr` and held as the bytes they came in.
struct PlainSample {
    inference: Vec<Inference>,
    /// Whole lines: the sample and what was read with it.
    lines: Vec<u8>,
    /// What follows `lines`: the start of a line.
    rest: Vec<u8>,
    /// Whether the stream ended within `lines`.
    ended: bool,
}

impl PlainSample {
    /// Reads the sample from `head` (read past the header already) and `input`; or gives
    /// both back, as read so far, when the sample has a quote or a lone carriage return.
    #[allow(clippy::type_complexity)]
    fn read<R: Read>(
        mut head: Vec<u8>,
        mut input: R,
        columns: usize,
    ) -> Result<Result<(PlainSample, R), (Vec<u8>, R)>, String> {
        let mut inference = vec![Inference::default(); columns];
        let (mut rows, mut bytes, mut seen) = (0, 0, 0);
        let mut ended = false;
        loop {
            while rows < SAMPLE_ROWS && bytes < SAMPLE_BYTES {
                let line = match memchr::memchr(b'\n', &head[seen..]) {
                    Some(n) => &head[seen..seen + n],
                    // The last line, without its newline.
                    None if ended && seen < head.len() => &head[seen..],
                    None => break,
                };
                seen += line.len() + 1;
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    continue;
                }
                if memchr::memchr_iter(b',', line).count() + 1 != columns {
                    continue;
                }
                rows += 1;
                bytes += sample_bytes(line.len() + 1 - columns, columns);
                for (i, cell) in inference.iter_mut().zip(line.split(|&b| b == b',')) {
                    i.see(cell);
                }
            }
            if rows >= SAMPLE_ROWS || bytes >= SAMPLE_BYTES || ended {
                break;
            }
            let target = head.len() + BLOCK;
            ended = fill(&mut head, &mut input, target)?;
        }
        if !plain(&head) {
            return Ok(Err((head, input)));
        }
        let cut = if ended {
            head.len()
        } else {
            head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        let rest = head[cut..].to_vec();
        head.truncate(cut);
        let sample = PlainSample {
            inference,
            lines: head,
            rest,
            ended,
        };
        Ok(Ok((sample, input)))
    }
}

/// The sample's lines in parts of about [`BLOCK`] bytes, cut at line ends.
fn sample_blocks(lines: Vec<u8>) -> Vec<Batch> {
    let lines = Arc::new(lines);
    let mut blocks = Vec::new();
    let mut from = 0;
    while from < lines.len() {
        let end = from + BLOCK;
        let cut = if end >= lines.len() {
            lines.len()
        } else {
            match memchr::memrchr(b'\n', &lines[from..end]) {
                Some(i) => from + i + 1,
                // A line longer than a block: whole.
                None => memchr::memchr(b'\n', &lines[end..]).map_or(lines.len(), |i| end + i + 1),
            }
        };
        blocks.push(Batch::Sample(Sample::Lines(Arc::clone(&lines), from..cut)));
        from = cut;
    }
    blocks
}

/// Whether `block` can be split on commas and newlines alone: no quote, and every carriage
/// return ends a line (`\r\n`), as the csv crate reads them. A `\r` that ends the block
/// is fine whatever follows it: it ends the file's last line (dropped as the csv crate
/// drops it), or its line is carried to the next block, where the `\n` is seen with it.
/// (Without this, a block cut between a `\r` and its `\n`, which a CRLF file of ~850
/// blocks meets nearly surely, sent the rest of the file through the csv crate.)
fn plain(block: &[u8]) -> bool {
    if memchr::memchr(b'"', block).is_some() {
        return false;
    }
    memchr::memchr_iter(b'\r', block).all(|i| i + 1 == block.len() || block[i + 1] == b'\n')
}

/// The reader thread: the type sample's batches, then `buffered` and `input` as
/// blocks of whole lines while they are plain, then as chunks of records split by the csv
/// crate. Returns the records the csv crate rejected (the blocks' are counted by the
/// folding threads).
fn split(
    sample: Vec<Batch>,
    buffered: Vec<u8>,
    mut input: impl Read,
    empty: std::sync::mpsc::Receiver<Batch>,
    full: Vec<std::sync::mpsc::SyncSender<Batch>>,
) -> Result<u64, String> {
    let mut carry = buffered;
    let mut next = 0;
    let mut send = |batch| {
        let ok = full[next].send(batch).is_ok();
        next = (next + 1) % full.len();
        ok
    };
    for batch in sample {
        if !send(batch) {
            return Ok(0);
        }
    }
    loop {
        let Ok(batch) = empty.recv() else {
            return Ok(0);
        };
        let mut block = match batch {
            Batch::Lines(v) => v,
            Batch::Records(..) | Batch::Sample(_) => Vec::with_capacity(BLOCK),
        };
        block.clear();
        block.extend_from_slice(&carry);
        carry.clear();
        let target = BLOCK.max(block.len() + 1);
        let end = fill(&mut block, &mut input, target)?;
        if !plain(&block) {
            // From here on the csv crate splits, starting at this block (a line start).
            let rest = std::io::Cursor::new(block).chain(input);
            return split_records(rest, empty, send);
        }
        let cut = if end {
            block.len()
        } else {
            block
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(block.len(), |i| i + 1)
        };
        carry.extend_from_slice(&block[cut..]);
        block.truncate(cut);
        if !send(Batch::Lines(block)) || end {
            return Ok(0);
        }
    }
}

/// The reader thread once the data has quotes: records split by the csv crate (any field
/// count: a record unlike the header is counted by the folding thread).
fn split_records(
    input: impl Read,
    empty: std::sync::mpsc::Receiver<Batch>,
    mut send: impl FnMut(Batch) -> bool,
) -> Result<u64, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(CSV_BUFFER)
        .from_reader(input);
    let mut bad_rows = 0;
    while let Ok(batch) = empty.recv() {
        let mut chunk = match batch {
            Batch::Records(chunk, _) => chunk,
            Batch::Lines(_) | Batch::Sample(_) => vec![csv::ByteRecord::new(); CHUNK],
        };
        let mut n = 0;
        let mut end = false;
        while n < chunk.len() {
            match reader.read_byte_record(&mut chunk[n]) {
                Ok(true) => n += 1,
                Ok(false) => {
                    end = true;
                    break;
                }
                Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                    return Err(format!("cannot read: {e}"))
                }
                Err(_) => bad_rows += 1,
            }
        }
        if !send(Batch::Records(chunk, n)) || end {
            break;
        }
    }
    Ok(bad_rows)
}

/// Folds a batch; `fields` is scratch space (each record's cells as byte ranges).
fn fold_batch(
    builder: &mut SummaryBuilder,
    counts: &mut Counts,
    columns: &[Column],
    batch: &Batch,
    with_label: bool,
    fields: &mut Vec<(usize, usize)>,
) {
    match batch {
        Batch::Sample(Sample::Lines(lines, range)) => fold_lines(
            builder,
            counts,
            columns,
            &lines[range.clone()],
            with_label,
            fields,
        ),
        Batch::Sample(Sample::Records(chunk)) => {
            for r in chunk {
                fold_record(builder, counts, columns, r, with_label, fields);
            }
        }
        Batch::Records(chunk, n) => {
            for r in &chunk[..*n] {
                fold_record(builder, counts, columns, r, with_label, fields);
            }
        }
        Batch::Lines(block) => fold_lines(builder, counts, columns, block, with_label, fields),
    }
}

/// Folds a block of whole lines (the last one's `\n` optional).
fn fold_lines(
    builder: &mut SummaryBuilder,
    counts: &mut Counts,
    columns: &[Column],
    block: &[u8],
    with_label: bool,
    fields: &mut Vec<(usize, usize)>,
) {
    // Cells as byte ranges within their line.
    let (mut line, mut start) = (0, 0);
    fields.clear();
    for i in memchr::memchr2_iter(b',', b'\n', block) {
        fields.push((start - line, i - line));
        start = i + 1;
        if block[i] == b'\n' {
            fold_line(
                builder,
                counts,
                columns,
                &block[line..i],
                with_label,
                fields,
            );
            fields.clear();
            line = start;
        }
    }
    if start < block.len() || !fields.is_empty() {
        fields.push((start - line, block.len() - line));
        let last = &block[line..];
        fold_line(builder, counts, columns, last, with_label, fields);
    }
}

/// Folds one line (without its `\n`; a last `\r` is dropped), its cells at `fields`; an
/// empty line is skipped and a line of another field count than the header's counted, as
/// the csv crate does.
fn fold_line(
    builder: &mut SummaryBuilder,
    counts: &mut Counts,
    columns: &[Column],
    line: &[u8],
    with_label: bool,
    fields: &mut [(usize, usize)],
) {
    let mut line = line;
    if let (Some(last), [.., b'\r']) = (fields.last_mut(), line) {
        last.1 -= 1;
        line = &line[..line.len() - 1];
    }
    if line.is_empty() {
        return;
    }
    if fields.len() != columns.len() {
        counts.bad_rows += 1;
        return;
    }
    fold(builder, counts, columns, line, fields, with_label);
}

/// Folds a record split by the csv crate.
fn fold_record(
    builder: &mut SummaryBuilder,
    counts: &mut Counts,
    columns: &[Column],
    record: &csv::ByteRecord,
    with_label: bool,
    fields: &mut Vec<(usize, usize)>,
) {
    if record.len() != columns.len() {
        counts.bad_rows += 1;
        return;
    }
    fields.clear();
    fields.extend((0..record.len()).filter_map(|i| record.range(i).map(|r| (r.start, r.end))));
    fold(
        builder,
        counts,
        columns,
        record.as_slice(),
        fields,
        with_label,
    );
}

/// Folds one record, its cells at `fields` in `bytes`, counting what was not as typed into
/// `counts`.
fn fold(
    builder: &mut SummaryBuilder,
    counts: &mut Counts,
    columns: &[Column],
    bytes: &[u8],
    fields: &[(usize, usize)],
    with_label: bool,
) {
    let row = Row {
        columns,
        bytes,
        fields,
        // One UTF-8 check per record (its cells are then `str`s for free), not one per cell.
        utf8: std::str::from_utf8(bytes).ok(),
        invalid_utf8: Cell::new(0),
        mistyped: Cell::new(0),
    };
    let mut prediction = CellPrediction(Value::Null, false);
    let mut label = Value::Null;
    let mut segment = None;
    for (i, c) in columns.iter().enumerate() {
        match c.role {
            Role::Prediction => prediction = CellPrediction(row.value(i), true),
            Role::Label => label = row.value(i),
            // A segment is a name whatever it looks like (region 3 is segment "3").
            Role::Segment => {
                let cell = row.bytes(i).trim_ascii();
                segment = (!is_missing(cell)).then(|| String::from_utf8_lossy(cell));
            }
            _ => {}
        }
    }
    builder.log_prediction(&row, &prediction);
    if with_label {
        builder.log_ground_truth(label, prediction.0.borrowed(), segment.as_deref());
    }
    counts.invalid_utf8 += row.invalid_utf8.get();
    counts.mistyped += row.mistyped.get();
    counts.rows += 1;
}

/// One record viewed as features: cells parsed as the builder asks for them, straight from
/// the record's bytes into the builder (no `Value` kept, no allocation).
/// The counts are cells because the builder walks the features through `&self`.
struct Row<'a> {
    columns: &'a [Column],
    bytes: &'a [u8],
    /// Each cell's byte range in `bytes`, one per column.
    fields: &'a [(usize, usize)],
    /// `bytes` as text, when they are UTF-8 (nearly always).
    utf8: Option<&'a str>,
    invalid_utf8: Cell<u64>,
    mistyped: Cell<u64>,
}

impl<'a> Row<'a> {
    fn bytes(&self, i: usize) -> &'a [u8] {
        let (from, to) = self.fields[i];
        &self.bytes[from..to]
    }

    fn value(&self, i: usize) -> Value<'a> {
        let ty = self.columns[i].ty;
        let (from, to) = self.fields[i];
        let (v, bad_utf8, mistyped) = match self.utf8 {
            // Cells end at ASCII separators: their ranges are character boundaries.
            Some(text) => {
                let (v, mistyped) = parse_text(text.get(from..to).unwrap_or_default(), ty);
                (v, false, mistyped)
            }
            None => parse_cell(&self.bytes[from..to], ty),
        };
        if bad_utf8 {
            self.invalid_utf8.set(self.invalid_utf8.get() + 1);
        }
        if mistyped {
            self.mistyped.set(self.mistyped.get() + 1);
        }
        v
    }
}

impl Features for Row<'_> {
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        for (i, c) in self.columns.iter().enumerate() {
            if c.role == Role::Feature {
                f(&c.name, self.value(i));
            }
        }
    }
}

/// The prediction cell as the summary's output; `false`: no prediction column, no output.
struct CellPrediction<'a>(Value<'a>, bool);

impl Prediction for CellPrediction<'_> {
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        if self.1 {
            f(modelwatch::PREDICTION, self.0.borrowed())
        }
    }
    fn predicted(&self) -> Value<'_> {
        self.0.borrowed()
    }
}

fn is_missing(trimmed: &[u8]) -> bool {
    // The tokens are 2 to 8 bytes and none ends with a digit: numbers skip the comparisons.
    match trimmed {
        [] => true,
        [.., last] if last.is_ascii_digit() => false,
        [_, _, ..] if trimmed.len() <= 8 => MISSING_TOKENS.iter().any(|t| t.as_bytes() == trimmed),
        _ => false,
    }
}

fn parse_bool(t: &[u8]) -> Option<bool> {
    if t.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if t.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

/// An integer as a data scientist reads one: optional sign, digits, no leading zero (a
/// "007" is an identifier or a code, not seven). Past i64: `None` (then a float).
fn parse_int(t: &[u8]) -> Option<i64> {
    let (negative, digits) = match t {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, t),
    };
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    // Accumulated negative, so that i64::MIN fits.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Whether a number's text has a leading zero on its integer part ("0012.5", "-007"):
/// a code, not a number. "0", "0.5" and "-0.5" are numbers.
fn leading_zero(t: &[u8]) -> bool {
    let digits = t
        .strip_prefix(b"-")
        .or_else(|| t.strip_prefix(b"+"))
        .unwrap_or(t);
    digits.len() > 1 && digits[0] == b'0' && digits[1].is_ascii_digit()
}

/// A float: what Rust parses (decimal, exponent, inf), without leading zeros on the integer
/// part ("0012.5" is a code).
fn parse_float(t: &[u8]) -> Option<f64> {
    if leading_zero(t) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// Whether `t` is what `str::parse::<f64>` accepts, without computing the value (a
/// fifth of the instructions: the type sample is read before the folding threads start):
/// a sign, then `inf`, `infinity` or `nan` in any case, or digits with at most one `.` and
/// at least one digit, then an optional `e`/`E`, sign and digits.
fn float_syntax(t: &[u8]) -> bool {
    let t = match t {
        [b'+' | b'-', rest @ ..] => rest,
        _ => t,
    };
    if t.eq_ignore_ascii_case(b"inf")
        || t.eq_ignore_ascii_case(b"infinity")
        || t.eq_ignore_ascii_case(b"nan")
    {
        return true;
    }
    let digits = |t: &[u8]| t.iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits(t);
    let mut rest = &t[whole..];
    let mut fraction = 0;
    if let [b'.', after @ ..] = rest {
        fraction = digits(after);
        rest = &after[fraction..];
    }
    if whole + fraction == 0 {
        return false;
    }
    match rest {
        [] => true,
        [b'e' | b'E', exponent @ ..] => {
            let exponent = match exponent {
                [b'+' | b'-', e @ ..] => e,
                e => e,
            };
            !exponent.is_empty() && digits(exponent) == exponent.len()
        }
        _ => false,
    }
}

/// [`parse_float`] of text already known to be UTF-8 (no second check).
fn parse_float_str(t: &str) -> Option<f64> {
    if leading_zero(t.as_bytes()) {
        return None;
    }
    t.parse().ok()
}

fn text(cell: &[u8]) -> (Value<'_>, bool) {
    match std::str::from_utf8(cell) {
        Ok(s) => (Value::Str(Cow::Borrowed(s)), false),
        Err(_) => (Value::Str(String::from_utf8_lossy(cell)), true),
    }
}

/// A cell as its column's type: (value, not of the type). Text that is a number of
/// another column type is parsed as what it is; `parse` is the float parser of the text.
fn typed<'c>(t: &'c [u8], ty: ColumnType, parse: impl Fn() -> Option<f64>) -> Option<Value<'c>> {
    match ty {
        ColumnType::String => None,
        ColumnType::Int => parse_int(t)
            .map(Value::Int)
            .or_else(|| parse().map(Value::Float)),
        ColumnType::Float => parse().map(Value::Float),
        ColumnType::Bool => parse_bool(t).map(Value::Bool),
        ColumnType::Auto => parse_int(t)
            .map(Value::Int)
            .or_else(|| parse().map(Value::Float))
            .or_else(|| parse_bool(t).map(Value::Bool)),
    }
}

/// Whether a cell that is not of its column's type counts as mistyped.
fn counts_as_mistyped(ty: ColumnType) -> bool {
    !matches!(ty, ColumnType::String | ColumnType::Auto)
}

/// A cell as its column's type: (value, bytes not UTF-8, not of the type).
fn parse_cell(cell: &[u8], ty: ColumnType) -> (Value<'_>, bool, bool) {
    let t = cell.trim_ascii();
    if is_missing(t) {
        return (Value::Null, false, false);
    }
    match typed(t, ty, || parse_float(t)) {
        Some(v) => (v, false, false),
        None => {
            let (v, bad) = text(cell);
            (v, bad, counts_as_mistyped(ty))
        }
    }
}

/// [`parse_cell`] of a cell already known to be UTF-8: (value, not of the type).
fn parse_text(cell: &str, ty: ColumnType) -> (Value<'_>, bool) {
    let t = cell.trim_ascii();
    if is_missing(t.as_bytes()) {
        return (Value::Null, false);
    }
    match typed(t.as_bytes(), ty, || parse_float_str(t)) {
        Some(v) => (v, false),
        None => (Value::Str(Cow::Borrowed(cell)), counts_as_mistyped(ty)),
    }
}

/// A column's type from its sample cells, missing ones ignored: booleans if every cell is
/// `true`/`false`; integers if every cell is one; floats if every cell is a number
/// (integers mixed with decimals); else strings. No cell present: [`ColumnType::Auto`].
/// Strict on purpose: one text among numbers makes the column text, which the user sees in
/// the printed types and can override with `--type`.
pub fn infer<'a>(cells: impl Iterator<Item = &'a [u8]>) -> ColumnType {
    let mut inference = Inference::default();
    for cell in cells {
        inference.see(cell);
    }
    inference.column_type()
}

/// [`infer`] as the cells come: what every cell seen so far could be.
#[derive(Clone, Copy)]
struct Inference {
    any: bool,
    bools: bool,
    ints: bool,
    floats: bool,
}

impl Default for Inference {
    fn default() -> Self {
        Inference {
            any: false,
            bools: true,
            ints: true,
            floats: true,
        }
    }
}

impl Inference {
    fn see(&mut self, cell: &[u8]) {
        let t = cell.trim_ascii();
        // Text already: nothing can change that.
        if (!self.bools && !self.floats) || is_missing(t) {
            return;
        }
        self.any = true;
        self.bools &= parse_bool(t).is_some();
        let int = parse_int(t).is_some();
        self.ints &= int;
        self.floats &= int || (!leading_zero(t) && float_syntax(t));
    }

    fn column_type(self) -> ColumnType {
        match (self.any, self.bools, self.ints, self.floats) {
            (false, ..) => ColumnType::Auto,
            (_, true, ..) => ColumnType::Bool,
            (_, _, true, _) => ColumnType::Int,
            (_, _, _, true) => ColumnType::Float,
            _ => ColumnType::String,
        }
    }
}

/// The hash key: from a key file (a data folder's `.hash-key`, or that folder) or else
/// `MODELWATCH_HASH_KEY`, both 32 hex characters. There is no default: a profile made with
/// another key than production's would never line up with it.
pub fn hash_key(file: Option<&Path>) -> Result<[u8; 16], String> {
    let (text, from) = match file {
        Some(f) => {
            let f = if f.is_dir() {
                f.join(modelwatch::HASH_KEY_FILE)
            } else {
                f.to_owned()
            };
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("cannot read the hash key file {}: {e}", f.display()))?;
            (text, f.display().to_string())
        }
        None => match std::env::var(modelwatch::HASH_KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => (text, modelwatch::HASH_KEY_ENV.to_owned()),
            _ => {
                return Err(format!(
                    "a profile needs the deployment's hash key: --hash-key-file (its data folder's {}) or {}",
                    modelwatch::HASH_KEY_FILE,
                    modelwatch::HASH_KEY_ENV
                ))
            }
        },
    };
    parse_hex(&text).ok_or_else(|| {
        // A secret: say what is wrong with it, never what it is.
        format!("{from} must hold 32 hex characters (16 bytes)")
    })
}

fn parse_hex(text: &str) -> Option<[u8; 16]> {
    let t = text.trim().as_bytes();
    if t.len() != 32 || !t.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut key = [0u8; 16];
    for (b, pair) in key.iter_mut().zip(t.chunks(2)) {
        *b = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(cells: &[&str]) -> ColumnType {
        infer(cells.iter().map(|c| c.as_bytes()))
    }

    /// Every string of up to 5 characters over the characters of numbers, and the spelled-out
    /// ones in every case, is a float's syntax exactly when `str::parse` accepts it.
    #[test]
    fn float_syntax_accepts_what_std_parses() {
        fn each(alphabet: &[u8], len: usize, s: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])) {
            f(s);
            if s.len() < len {
                for &c in alphabet {
                    s.push(c);
                    each(alphabet, len, s, f);
                    s.pop();
                }
            }
        }
        let mut checked = 0;
        let mut check = |s: &[u8]| {
            let text = std::str::from_utf8(s).unwrap();
            assert_eq!(float_syntax(s), text.parse::<f64>().is_ok(), "{text:?}");
            checked += 1;
        };
        each(b"09.eE+-", 5, &mut Vec::new(), &mut check);
        // The words, their prefixes and a letter past them, in every case, with each sign.
        for word in ["infinity", "nan", "infinityx", "nanx"] {
            for len in 1..=word.len() {
                for case in 0..1u32 << len {
                    let cased = word.bytes().take(len).enumerate().map(|(i, b)| {
                        if case >> i & 1 == 1 {
                            b.to_ascii_uppercase()
                        } else {
                            b
                        }
                    });
                    for sign in ["", "+", "-"] {
                        let mut s = sign.as_bytes().to_vec();
                        s.extend(cased.clone());
                        check(&s);
                    }
                }
            }
        }
        for text in ["1.5e", "1e5.", ".e1", "0x10", "1_000", " 1", "1 ", "١"] {
            check(text.as_bytes());
        }
        assert!(checked > 20_000, "{checked}");
    }

    #[test]
    fn blocks_without_quotes_or_lone_carriage_returns_are_plain() {
        assert!(plain(b"a,b\nc,d\n"));
        assert!(plain(b"a,b\r\nc,d\r\n"));
        // Cut between a line's `\r` and its `\n`: the line is carried to the next block.
        assert!(plain(b"a,b\r\nc,d\r"));
        assert!(!plain(b"a,b\rc,d\r\n"));
        assert!(!plain(b"a,\"b\"\n"));
    }

    #[test]
    fn inference_reads_as_a_data_scientist_would() {
        assert_eq!(ty(&["1", "-2", "", "30"]), ColumnType::Int);
        assert_eq!(ty(&["1", "2.5", "NA", "1e3"]), ColumnType::Float);
        assert_eq!(ty(&["true", "False", "TRUE", ""]), ColumnType::Bool);
        assert_eq!(ty(&["0", "1", "1"]), ColumnType::Int);
        assert_eq!(ty(&["02139", "10001"]), ColumnType::String); // zip codes
        assert_eq!(ty(&["1", "2", "three"]), ColumnType::String);
        assert_eq!(ty(&["", "nan", "NULL"]), ColumnType::Auto);
        assert_eq!(ty(&["99999999999999999999"]), ColumnType::Float); // past i64
    }

    #[test]
    fn cells_parse_as_their_column_type_or_count_as_mistyped() {
        assert_eq!(parse_cell(b"3", ColumnType::Float).0, Value::Float(3.0));
        assert_eq!(parse_cell(b"3", ColumnType::String).0, Value::from("3"));
        assert_eq!(parse_cell(b" 3 ", ColumnType::Int).0, Value::Int(3));
        assert_eq!(
            parse_cell(b"2.5", ColumnType::Int),
            (Value::Float(2.5), false, false)
        );
        assert_eq!(
            parse_cell(b"x", ColumnType::Int),
            (Value::from("x"), false, true)
        );
        assert_eq!(parse_cell(b"N/A", ColumnType::Int).0, Value::Null);
        let (v, bad, mistyped) = parse_cell(b"a\xffb", ColumnType::Int);
        assert_eq!((v, bad, mistyped), (Value::from("a\u{fffd}b"), true, true));
    }

    #[test]
    fn integers_parse_as_std_does_but_for_leading_zeros() {
        for t in [
            "0",
            "-0",
            "+7",
            "42",
            "-42",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(parse_int(t.as_bytes()), t.parse::<i64>().ok(), "{t}");
        }
        for t in [
            "9223372036854775808",
            "-9223372036854775809",
            "",
            "-",
            "+",
            "1.5",
            "1e3",
            "007",
            "-01",
            "1_000",
            " 1",
        ] {
            assert_eq!(parse_int(t.as_bytes()), None, "{t}");
        }
    }

    #[test]
    fn every_missing_token_and_no_number_is_missing() {
        for t in MISSING_TOKENS {
            assert!(is_missing(t.as_bytes()), "{t}");
        }
        assert!(is_missing(b""));
        for t in ["1", "-1", "12.5", "1.#INF0", "NA1", "Nan", "nulls", "1e5"] {
            assert!(!is_missing(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn utf8_records_parse_as_their_bytes_do() {
        let cells = [
            "3", " 3 ", "2.5", "x", "N/A", "", "-0.5", "007", "1e3", "true", "FALSE", "inf",
        ];
        for ty in [
            ColumnType::Int,
            ColumnType::Float,
            ColumnType::Bool,
            ColumnType::String,
            ColumnType::Auto,
        ] {
            for c in cells {
                let (v, bad, mistyped) = parse_cell(c.as_bytes(), ty);
                assert!(!bad);
                assert_eq!(parse_text(c, ty), (v, mistyped), "{c:?} as {ty:?}");
            }
        }
    }

    #[test]
    fn a_header_with_a_name_twice_is_refused() {
        let mut p = Profiler::new(&Options::new("d", [0; 16]));
        assert!(p
            .read(&b"a,b,a\n1,2,3\n"[..])
            .unwrap_err()
            .contains("\"a\""));
    }

    #[test]
    fn hash_keys_are_32_hex_characters() {
        assert_eq!(
            parse_hex(" 000102030405060708090a0b0c0d0e0f\n").unwrap()[15],
            15
        );
        assert!(parse_hex("+00102030405060708090a0b0c0d0e0f").is_none());
        assert!(parse_hex("0001").is_none());
    }
}
