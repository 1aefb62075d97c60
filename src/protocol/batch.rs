//! Kafka record batch v2 ("magic 2") codec.
//!
//! Batches stay in their wire layout from producer to disk to consumer: the
//! broker validates them, writes the base offset in place and stores them
//! verbatim, so every function here works on byte slices and borrows from
//! them instead of decoding into owned structures.

use std::iter::FusedIterator;

/// Size of the fixed batch header, up to and including `recordCount`.
pub const HEADER_LEN: usize = 61;
/// The only batch format version this codec understands.
pub const MAGIC: i8 = 2;

/// `baseOffset` and `batchLength` are not counted by `batchLength` itself.
const LOG_OVERHEAD: usize = 12;
/// A batch must at least hold the rest of the header.
const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
const CRC_POS: usize = 17;
/// The CRC starts after itself, so the broker may rewrite the base offset
/// and the leader epoch without recomputing it.
const CRC_START: usize = 21;
const COMPRESSION_MASK: i16 = 0x07;
/// Kafka's producer sentinel for "no idempotence" and "unknown leader".
const NO_ID: i64 = -1;

/// Why a buffer is not a well-formed record batch.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The buffer ends before the batch does.
    #[error("record batch truncated: needs {needed} bytes but only {available} are available")]
    Truncated {
        /// Bytes the batch (or its header) needs.
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// The batch is in a format version other than [`MAGIC`].
    #[error("unsupported record batch magic {0} (only magic 2 is supported)")]
    BadMagic(i8),
    /// `batchLength` is too small to hold the header.
    #[error("invalid record batch length {0}")]
    BadLength(i32),
    /// The buffer holds more than exactly one batch.
    #[error("buffer holds {buffer} bytes but the record batch is {batch} bytes")]
    SizeMismatch {
        /// Size the header announces.
        batch: usize,
        /// Size of the buffer given.
        buffer: usize,
    },
    /// The stored CRC does not match the data.
    #[error("record batch CRC mismatch: header says {expected:#010x}, data gives {actual:#010x}")]
    CrcMismatch {
        /// CRC stored in the header.
        expected: u32,
        /// CRC computed over the data.
        actual: u32,
    },
    /// Compressed record sets cannot be walked without decompressing them.
    #[error("compressed record batches are not supported (attributes {0:#06x})")]
    Compressed(i16),
    /// `recordCount` disagrees with `lastOffsetDelta` or is not positive.
    #[error("record count {record_count} does not match last offset delta {last_offset_delta}")]
    BadRecordCount {
        /// `recordCount` from the header.
        record_count: i32,
        /// `lastOffsetDelta` from the header.
        last_offset_delta: i32,
    },
    /// A record inside the batch is malformed; the text says how.
    #[error("malformed record: {0}")]
    BadRecord(&'static str),
}

/// A parsed batch header (copy of the fixed fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch of the broker that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version, always [`MAGIC`] once parsed.
    pub magic: i8,
    /// CRC-32C from `attributes` to the end of the batch.
    pub crc: u32,
    /// Compression, timestamp type and transactional flags.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record, in ms.
    pub base_timestamp: i64,
    /// Largest record timestamp, in ms.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the fixed header from the start of `buf` (needs HEADER_LEN
    /// bytes); checks magic and that batch_length is sane (>= HEADER_LEN-12).
    /// Does not check the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let truncated = BatchError::Truncated {
            needed: HEADER_LEN,
            available: buf.len(),
        };
        let mut cur = Cursor::new(buf.get(..HEADER_LEN).ok_or(truncated.clone())?);
        let mut read = || -> Option<BatchHeader> {
            Some(BatchHeader {
                base_offset: cur.i64()?,
                batch_length: cur.i32()?,
                partition_leader_epoch: cur.i32()?,
                magic: cur.i8()?,
                crc: cur.u32()?,
                attributes: cur.i16()?,
                last_offset_delta: cur.i32()?,
                base_timestamp: cur.i64()?,
                max_timestamp: cur.i64()?,
                producer_id: cur.i64()?,
                producer_epoch: cur.i16()?,
                base_sequence: cur.i32()?,
                record_count: cur.i32()?,
            })
        };
        let header = read().ok_or(truncated)?;
        if header.magic != MAGIC {
            return Err(BatchError::BadMagic(header.magic));
        }
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::BadLength(header.batch_length));
        }
        Ok(header)
    }

    /// 12 + batch_length: the whole batch's size in bytes.
    pub fn total_len(&self) -> usize {
        // Clamped so a hand-built header with a negative length cannot
        // overflow; parse() never yields one.
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// base_offset + last_offset_delta (wrapping, so garbage cannot panic).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The header in wire layout.
    fn encode(&self) -> [u8; HEADER_LEN] {
        let fields: [&[u8]; 13] = [
            &self.base_offset.to_be_bytes(),
            &self.batch_length.to_be_bytes(),
            &self.partition_leader_epoch.to_be_bytes(),
            &self.magic.to_be_bytes(),
            &self.crc.to_be_bytes(),
            &self.attributes.to_be_bytes(),
            &self.last_offset_delta.to_be_bytes(),
            &self.base_timestamp.to_be_bytes(),
            &self.max_timestamp.to_be_bytes(),
            &self.producer_id.to_be_bytes(),
            &self.producer_epoch.to_be_bytes(),
            &self.base_sequence.to_be_bytes(),
            &self.record_count.to_be_bytes(),
        ];
        let mut out = [0u8; HEADER_LEN];
        let mut at = 0;
        for field in fields {
            out[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        out
    }
}

/// Full validation of exactly one whole batch (buf.len() must equal
/// total_len): header, CRC, record_count == last_offset_delta+1 (offset
/// deltas 0..n contiguous), every record's varints/lengths in bounds and the
/// records exactly fill the batch. Does not allocate.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = verify_stored(buf)?;
    let mut records = records(buf)?;
    for expected_delta in 0..header.record_count {
        let raw = records.next_raw()?;
        if raw.offset_delta != expected_delta {
            return Err(BatchError::BadRecord(
                "offset deltas are not contiguous from 0",
            ));
        }
    }
    if !records.cur.is_empty() {
        return Err(BatchError::BadRecord(
            "bytes left over after the last record",
        ));
    }
    Ok(header)
}

/// The checks of [`validate`] that a batch stored after passing it can fail:
/// header, exact size, CRC and record count, but not the walk over its records.
/// The records are what the CRC covers, so a stored batch whose CRC still
/// matches holds the records [`validate`] accepted (Kafka's recovery checks the
/// same). Recovery uses it to read a segment at the speed of its CRC.
pub fn verify_stored(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let total = header.total_len();
    if buf.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    if buf.len() > total {
        return Err(BatchError::SizeMismatch {
            batch: total,
            buffer: buf.len(),
        });
    }
    let actual = crc32c::crc32c(buf.get(CRC_START..).unwrap_or_default());
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    if header.record_count < 1 || header.last_offset_delta != header.record_count - 1 {
        return Err(BatchError::BadRecordCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Overwrites the base offset in place (bytes 0..8). Precondition:
/// buf.len() >= 8; a shorter buffer is left untouched.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    if let Some(field) = buf.get_mut(..8) {
        field.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Byte range of the producer id, producer epoch and base sequence fields.
const PRODUCER_FIELDS: std::ops::Range<usize> = 43..57;

/// Writes an idempotent producer's id, epoch and base sequence into a finished
/// batch and recomputes its CRC (the fields lie inside the checksummed range).
/// A buffer shorter than a header is left untouched.
pub fn set_producer(buf: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    if buf.len() < HEADER_LEN {
        return;
    }
    let mut fields = [0u8; 14];
    fields[..8].copy_from_slice(&producer_id.to_be_bytes());
    fields[8..10].copy_from_slice(&producer_epoch.to_be_bytes());
    fields[10..].copy_from_slice(&base_sequence.to_be_bytes());
    buf[PRODUCER_FIELDS].copy_from_slice(&fields);
    let crc = crc32c::crc32c(&buf[CRC_START..]);
    buf[CRC_POS..CRC_START].copy_from_slice(&crc.to_be_bytes());
}

/// Builds one batch: push records, then finish. Reuses one `Vec<u8>`
/// between pushes and computes the CRC once, on finish.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    /// Header placeholder followed by the encoded records, so finish()
    /// only fills the header in instead of copying the records.
    buf: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    capacity: usize,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty builder whose buffer starts with room for `bytes` bytes of
    /// finished batch; finish() hands out buffers of the same capacity.
    pub fn with_capacity(bytes: usize) -> Self {
        let capacity = bytes.max(HEADER_LEN);
        let mut buf = Vec::with_capacity(capacity);
        buf.resize(HEADER_LEN, 0);
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp: NO_ID,
            max_timestamp: NO_ID,
            capacity,
        }
    }

    /// Appends a record. The first record's timestamp is the batch's base
    /// timestamp.
    ///
    /// # Panics
    /// If the batch would exceed the format's limits: more than `i32::MAX`
    /// records or bytes.
    pub fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp_ms: i64) {
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        // Wrapping keeps extreme timestamps round-tripping: readers add the
        // delta back with wrapping arithmetic too.
        let ts_delta = timestamp_ms.wrapping_sub(self.base_timestamp);
        let key_len = key.map_or(-1, |k| len_i32(k.len()));
        let value_len = len_i32(value.len());
        let body_len = 1
            + varlong_len(ts_delta)
            + varint_len(self.count)
            + varint_len(key_len)
            + key.map_or(0, <[u8]>::len)
            + varint_len(value_len)
            + value.len()
            + varint_len(0);
        let body_len_i32 = len_i32(body_len);
        let batch_len = self.buf.len() + varint_len(body_len_i32) + body_len - LOG_OVERHEAD;
        assert!(
            i32::try_from(batch_len).is_ok() && self.count < i32::MAX,
            "record batch would exceed the format's 2 GiB / i32::MAX records limit"
        );

        let buf = &mut self.buf;
        put_varint(buf, body_len_i32);
        buf.push(0); // record attributes: unused by magic 2
        put_varlong(buf, ts_delta);
        put_varint(buf, self.count);
        put_varint(buf, key_len);
        buf.extend_from_slice(key.unwrap_or_default());
        put_varint(buf, value_len);
        buf.extend_from_slice(value);
        put_varint(buf, 0); // no headers
        self.count += 1;
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True if no record was pushed since the last finish.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the finished batch will take.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Returns the finished batch (base offset 0, producer id -1, epoch -1,
    /// base sequence -1, attributes 0, leader epoch -1) and resets the
    /// builder for reuse. Finishing an empty builder yields a zero-record
    /// batch, which [`validate`] rejects.
    pub fn finish(&mut self) -> Vec<u8> {
        let header = BatchHeader {
            base_offset: 0,
            batch_length: len_i32(self.buf.len() - LOG_OVERHEAD),
            partition_leader_epoch: -1,
            magic: MAGIC,
            crc: 0,
            attributes: 0,
            last_offset_delta: self.count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: NO_ID,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: self.count,
        };
        let mut fresh = Vec::with_capacity(self.capacity);
        fresh.resize(HEADER_LEN, 0);
        let mut out = std::mem::replace(&mut self.buf, fresh);
        out[..HEADER_LEN].copy_from_slice(&header.encode());
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[CRC_POS..CRC_START].copy_from_slice(&crc.to_be_bytes());
        self.count = 0;
        self.base_timestamp = NO_ID;
        self.max_timestamp = NO_ID;
        out
    }
}

/// One record seen in place inside a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Absolute offset: base offset + offset delta.
    pub offset: i64,
    /// Absolute timestamp in ms: base timestamp + timestamp delta.
    pub timestamp: i64,
    /// The key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value; a null value reads as empty.
    pub value: &'a [u8],
}

/// Iterator over the records of one batch; see [`records`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    cur: Cursor<'a>,
    base_offset: i64,
    base_timestamp: i64,
    remaining: i32,
    done: bool,
}

/// A record's fields before they are made absolute.
struct RawRecord<'a> {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: &'a [u8],
}

impl<'a> Records<'a> {
    fn next_raw(&mut self) -> Result<RawRecord<'a>, BatchError> {
        let len = self.cur.varint()?;
        let len =
            usize::try_from(len).map_err(|_| BatchError::BadRecord("negative record length"))?;
        let body = self.cur.take(len).ok_or(BatchError::BadRecord(
            "record runs past the end of the batch",
        ))?;
        let mut r = Cursor::new(body);
        r.i8()
            .ok_or(BatchError::BadRecord("record has no attributes"))?;
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.nullable_bytes()?;
        let value = r.nullable_bytes()?.unwrap_or_default();
        let headers = r.varint()?;
        if headers < 0 {
            return Err(BatchError::BadRecord("negative header count"));
        }
        for _ in 0..headers {
            if r.nullable_bytes()?.is_none() {
                return Err(BatchError::BadRecord("null header key"));
            }
            r.nullable_bytes()?;
        }
        if !r.is_empty() {
            return Err(BatchError::BadRecord(
                "record length does not match its fields",
            ));
        }
        Ok(RawRecord {
            timestamp_delta,
            offset_delta,
            key,
            value,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining <= 0 {
            self.done = true;
            return (!self.cur.is_empty()).then_some(Err(BatchError::BadRecord(
                "bytes left over after the last record",
            )));
        }
        self.remaining -= 1;
        let item = self.next_raw().map(|raw| RecordView {
            offset: self.base_offset.wrapping_add(i64::from(raw.offset_delta)),
            timestamp: self.base_timestamp.wrapping_add(raw.timestamp_delta),
            key: raw.key,
            value: raw.value,
        });
        // After a malformed record the following bytes have no known
        // boundary, so iteration stops.
        self.done = item.is_err();
        Some(item)
    }
}

impl FusedIterator for Records<'_> {}

/// Iterates the records of one whole batch (after validation or not: it
/// returns errors, never panics, on garbage). Bytes after the batch's end
/// are ignored; the CRC is not checked.
pub fn records(batch: &[u8]) -> Result<Records<'_>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let total = header.total_len();
    let body = batch.get(HEADER_LEN..total).ok_or(BatchError::Truncated {
        needed: total,
        available: batch.len(),
    })?;
    if header.attributes & COMPRESSION_MASK != 0 {
        return Err(BatchError::Compressed(header.attributes));
    }
    if header.record_count < 0 {
        return Err(BatchError::BadRecordCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(Records {
        cur: Cursor::new(body),
        base_offset: header.base_offset,
        base_timestamp: header.base_timestamp,
        remaining: header.record_count,
        done: false,
    })
}

/// Iterator over concatenated batches; see [`batches`].
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<&'a [u8], BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let split = BatchHeader::parse(self.rest).and_then(|header| {
            let total = header.total_len();
            self.rest
                .split_at_checked(total)
                .ok_or(BatchError::Truncated {
                    needed: total,
                    available: self.rest.len(),
                })
        });
        match split {
            Ok((batch, rest)) => {
                self.rest = rest;
                Some(Ok(batch))
            }
            Err(err) => {
                // Without a valid length there is no next boundary.
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

impl FusedIterator for Batches<'_> {}

/// Splits a buffer of concatenated whole batches (a fetch response) into
/// batch slices; a truncated final batch is an error item. Batches are only
/// framed, not validated.
pub fn batches(buf: &[u8]) -> Batches<'_> {
    Batches {
        rest: buf,
        failed: false,
    }
}

/// Converts a length the caller handed us; the format caps them at i32.
fn len_i32(len: usize) -> i32 {
    match i32::try_from(len) {
        Ok(len) => len,
        Err(_) => panic!("length {len} exceeds the record format's i32 limit"),
    }
}

fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn uvarint_len(mut v: u64) -> usize {
    let mut len = 1;
    while v >= 0x80 {
        v >>= 7;
        len += 1;
    }
    len
}

fn varint_len(v: i32) -> usize {
    uvarint_len(zigzag32(v))
}

fn varlong_len(v: i64) -> usize {
    uvarint_len(zigzag64(v))
}

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_varint(buf: &mut Vec<u8>, v: i32) {
    put_uvarint(buf, zigzag32(v));
}

fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag64(v));
}

/// Bounds-checked big-endian and varint reader over a borrowed slice.
#[derive(Debug, Clone)]
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { rest: buf }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    fn i8(&mut self) -> Option<i8> {
        self.array().map(i8::from_be_bytes)
    }

    fn i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_be_bytes)
    }

    fn uvarint(&mut self, max_bits: u32) -> Result<u64, BatchError> {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let [byte] = self.array::<1>().ok_or(BatchError::BadRecord(
                "varint runs past the end of the record",
            ))?;
            let bits = u64::from(byte & 0x7f);
            // Reject encodings whose payload does not fit, as Kafka does,
            // rather than silently dropping high bits.
            if shift >= max_bits || (shift > 0 && bits >> (max_bits - shift) != 0) {
                return Err(BatchError::BadRecord("varint overflows its type"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        let raw = self.uvarint(32)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, BatchError> {
        let raw = self.uvarint(64)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint length (-1 for null) followed by that many bytes.
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            len => {
                let len =
                    usize::try_from(len).map_err(|_| BatchError::BadRecord("length below -1"))?;
                self.take(len).map(Some).ok_or(BatchError::BadRecord(
                    "field runs past the end of the record",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Rec = (Option<Vec<u8>>, Vec<u8>, i64);

    fn build(records: &[Rec]) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for (k, v, ts) in records {
            b.push(k.as_deref(), v, *ts);
        }
        assert_eq!(b.encoded_len(), b.buf.len());
        b.finish()
    }

    fn read_back(batch: &[u8]) -> Vec<Rec> {
        records(batch)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.key.map(<[u8]>::to_vec), r.value.to_vec(), r.timestamp)
            })
            .collect()
    }

    fn sample() -> Vec<u8> {
        build(&[
            (Some(b"key".to_vec()), b"value".to_vec(), 1_000),
            (None, vec![], 900),
            (Some(vec![]), vec![7; 300], 5_000),
        ])
    }

    #[test]
    fn crc32c_is_castagnoli() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn exact_bytes_of_a_small_batch() {
        let mut b = BatchBuilder::new();
        b.push(Some(b"k"), b"v", 1000);
        b.push(None, b"", 999);
        assert_eq!(b.len(), 2);
        assert_eq!(b.encoded_len(), 77);
        let got = b.finish();

        let mut want: Vec<u8> = vec![];
        want.extend_from_slice(&[0; 8]); // baseOffset 0
        want.extend_from_slice(&[0, 0, 0, 65]); // batchLength 77 - 12
        want.extend_from_slice(&[0xff; 4]); // partitionLeaderEpoch -1
        want.push(2); // magic
        want.extend_from_slice(&[0; 4]); // crc, filled below
        want.extend_from_slice(&[0, 0]); // attributes
        want.extend_from_slice(&[0, 0, 0, 1]); // lastOffsetDelta
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // baseTimestamp 1000
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // maxTimestamp 1000
        want.extend_from_slice(&[0xff; 8]); // producerId -1
        want.extend_from_slice(&[0xff; 2]); // producerEpoch -1
        want.extend_from_slice(&[0xff; 4]); // baseSequence -1
        want.extend_from_slice(&[0, 0, 0, 2]); // recordCount
        assert_eq!(want.len(), HEADER_LEN);
        // length 8 (zigzag 0x10), attrs, tsDelta 0, offsetDelta 0,
        // keyLen 1 (0x02) "k", valueLen 1 (0x02) "v", 0 headers.
        want.extend_from_slice(&[0x10, 0, 0, 0, 0x02, b'k', 0x02, b'v', 0]);
        // length 6 (0x0c), attrs, tsDelta -1 (0x01), offsetDelta 1 (0x02),
        // keyLen -1 (0x01), valueLen 0, 0 headers.
        want.extend_from_slice(&[0x0c, 0, 0x01, 0x02, 0x01, 0, 0]);
        let crc = crc32c::crc32c(&want[21..]);
        want[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(got, want);

        let h = validate(&got).unwrap();
        assert_eq!(h.crc, crc);
        assert_eq!(h.total_len(), 77);
        assert_eq!(h.last_offset(), 1);
        assert_eq!(
            read_back(&got),
            vec![
                (Some(b"k".to_vec()), b"v".to_vec(), 1000),
                (None, vec![], 999)
            ]
        );
    }

    #[test]
    fn round_trip_varied_records() {
        let recs: Vec<Rec> = vec![
            (None, vec![], 0),
            (Some(vec![]), vec![], -5),
            (Some(b"a".to_vec()), vec![1; 100_000], i64::MIN),
            (None, b"x".to_vec(), i64::MAX),
            (Some(vec![9; 200]), vec![], 42),
        ];
        let batch = build(&recs);
        let h = validate(&batch).unwrap();
        assert_eq!(h.record_count, 5);
        assert_eq!(h.max_timestamp, i64::MAX);
        assert_eq!(read_back(&batch), recs);
    }

    #[test]
    fn round_trip_many_records_and_builder_reuse() {
        let mut b = BatchBuilder::with_capacity(1 << 16);
        for round in 0..3 {
            for i in 0..1000i64 {
                b.push(Some(&i.to_be_bytes()), &[round as u8; 3], 10_000 - i);
            }
            let batch = b.finish();
            assert!(b.is_empty());
            let h = validate(&batch).unwrap();
            assert_eq!((h.record_count, h.last_offset_delta), (1000, 999));
            assert_eq!(h.base_timestamp, 10_000);
            for (i, r) in records(&batch).unwrap().enumerate() {
                let r = r.unwrap();
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.timestamp, 10_000 - i as i64);
                assert_eq!(r.key, Some(&(i as i64).to_be_bytes()[..]));
            }
        }
    }

    #[test]
    fn null_value_reads_as_empty() {
        let mut batch = build(&[(None, b"v".to_vec(), 0)]);
        // Record: len, attrs, ts, off, keyLen, valueLen (1 = 0x02), "v", headers.
        // Null the value: valueLen -1 (0x01) and drop "v".
        let pos = HEADER_LEN + 5;
        assert_eq!(batch[pos], 0x02);
        batch[pos] = 0x01;
        batch.remove(pos + 1);
        assert_eq!(batch[HEADER_LEN], 0x0e);
        batch[HEADER_LEN] = 0x0c; // record length 7 -> 6
        let len = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        validate(&batch).unwrap();
        assert_eq!(read_back(&batch), vec![(None, vec![], 0)]);
    }

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        let batch = sample();
        for cut in 0..batch.len() {
            let part = &batch[..cut];
            assert!(validate(part).is_err(), "cut at {cut}");
            assert!(matches!(
                batches(part).next(),
                None | Some(Err(BatchError::Truncated { .. }))
            ));
            if let Ok(recs) = records(part) {
                recs.for_each(drop);
            }
        }
    }

    #[test]
    fn any_flipped_byte_in_crc_range_fails_validate() {
        let batch = sample();
        for i in CRC_START..batch.len() {
            let mut bad = batch.clone();
            bad[i] ^= 0x01;
            assert!(validate(&bad).is_err(), "flip at {i}");
        }
        for i in CRC_POS..CRC_START {
            let mut bad = batch.clone();
            bad[i] ^= 0x80;
            assert!(matches!(
                validate(&bad),
                Err(BatchError::CrcMismatch { .. })
            ));
        }
    }

    #[test]
    fn verify_stored_checks_what_the_crc_and_header_cover_but_not_the_record_walk() {
        let batch = sample();
        assert_eq!(verify_stored(&batch), validate(&batch));
        for i in CRC_START..batch.len() {
            let mut bad = batch.clone();
            bad[i] ^= 0x01;
            assert!(verify_stored(&bad).is_err(), "flip at {i}");
        }
        let mut long = batch.clone();
        long.push(0);
        assert!(matches!(
            verify_stored(&long),
            Err(BatchError::SizeMismatch { .. })
        ));
        // Malformed records under a matching CRC: only the full validation (run
        // before anything is stored) walks the records and refuses them.
        let mut forged = batch.clone();
        let last = forged.len() - 1;
        forged[last] ^= 0xFF;
        let crc = crc32c::crc32c(&forged[CRC_START..]);
        forged[CRC_POS..CRC_START].copy_from_slice(&crc.to_be_bytes());
        assert!(verify_stored(&forged).is_ok());
        assert!(validate(&forged).is_err());
    }

    #[test]
    fn set_base_offset_keeps_crc_and_moves_offsets() {
        let mut batch = sample();
        set_base_offset(&mut batch, 1_000_000);
        let h = validate(&batch).unwrap();
        assert_eq!((h.base_offset, h.last_offset()), (1_000_000, 1_000_002));
        let offsets: Vec<i64> = records(&batch)
            .unwrap()
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![1_000_000, 1_000_001, 1_000_002]);
        set_base_offset(&mut [0u8; 3], 5); // too short: ignored, no panic
    }

    #[test]
    fn header_errors_are_specific() {
        let batch = sample();
        let mut bad = batch.clone();
        bad[16] = 1;
        assert_eq!(BatchHeader::parse(&bad), Err(BatchError::BadMagic(1)));
        let mut bad = batch.clone();
        bad[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert_eq!(BatchHeader::parse(&bad), Err(BatchError::BadLength(48)));
        let mut long = batch.clone();
        long.push(0);
        assert!(matches!(
            validate(&long),
            Err(BatchError::SizeMismatch { .. })
        ));
        let empty = BatchBuilder::new().finish();
        assert!(matches!(
            validate(&empty),
            Err(BatchError::BadRecordCount { .. })
        ));
        assert!(BatchError::BadRecord("x")
            .to_string()
            .contains("malformed record: x"));
    }

    #[test]
    fn batches_splits_concatenation_and_reports_torn_tail() {
        let a = sample();
        let b = build(&[(None, b"second".to_vec(), 1)]);
        let mut buf = [a.clone(), b.clone(), a.clone()].concat();
        let got: Vec<&[u8]> = batches(&buf).map(Result::unwrap).collect();
        assert_eq!(got, vec![&a[..], &b[..], &a[..]]);
        assert_eq!(batches(&[]).count(), 0);

        buf.truncate(a.len() + b.len() + 30);
        let items: Vec<_> = batches(&buf).collect();
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[1].is_ok());
        assert!(matches!(items[2], Err(BatchError::Truncated { .. })));
        let buf = [a.clone(), b.clone(), a[..70].to_vec()].concat();
        let mut it = batches(&buf);
        it.next();
        it.next();
        assert_eq!(
            it.next(),
            Some(Err(BatchError::Truncated {
                needed: a.len(),
                available: 70
            }))
        );
        assert_eq!(it.next(), None);
    }

    #[test]
    fn non_contiguous_offset_deltas_are_rejected() {
        let mut batch = build(&[(None, vec![], 0), (None, vec![], 0)]);
        // Second record: len, attrs, tsDelta, offsetDelta(1)=0x02 -> 2=0x04.
        let second = HEADER_LEN + 7;
        assert_eq!(batch[second + 3], 0x02);
        batch[second + 3] = 0x04;
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate(&batch), Err(BatchError::BadRecord(_))));
    }

    fn record_strategy() -> impl Strategy<Value = Rec> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<i64>(),
        )
    }

    proptest! {
        #[test]
        fn prop_round_trip(recs in proptest::collection::vec(record_strategy(), 1..40), base in any::<i64>()) {
            let mut batch = build(&recs);
            set_base_offset(&mut batch, base);
            let h = validate(&batch).unwrap();
            prop_assert_eq!(h.record_count as usize, recs.len());
            prop_assert_eq!(h.total_len(), batch.len());
            prop_assert_eq!(read_back(&batch), recs);
        }

        #[test]
        fn prop_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = validate(&bytes);
            if let Ok(recs) = records(&bytes) {
                recs.for_each(drop);
            }
            batches(&bytes).for_each(drop);
        }

        #[test]
        fn prop_mutated_batches_never_panic(
            recs in proptest::collection::vec(record_strategy(), 1..5),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        ) {
            let mut batch = build(&recs);
            for (at, byte) in edits {
                let at = at % batch.len();
                batch[at] = byte;
            }
            // Fix the CRC so the record walk is exercised, not just the CRC.
            let crc = crc32c::crc32c(&batch[21..]);
            batch[17..21].copy_from_slice(&crc.to_be_bytes());
            let _ = validate(&batch);
            if let Ok(recs) = records(&batch) {
                recs.for_each(drop);
            }
            batches(&batch).for_each(drop);
        }
    }

    #[test]
    fn set_producer_keeps_the_batch_valid() {
        let mut b = BatchBuilder::new();
        b.push(None, b"v", 1);
        b.push(Some(b"k"), b"w", 2);
        let mut batch = b.finish();
        set_producer(&mut batch, 42, 3, 1000);
        let header = validate(&batch).unwrap();
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (42, 3, 1000)
        );
        assert_eq!(header.record_count, 2);
    }
}
