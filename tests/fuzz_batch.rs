//! Fuzz-style properties of the record batch v2 codec
//! (`logbrook::protocol::batch`), run by `cargo test` with proptest.
//!
//! Inputs: arbitrary bytes, arbitrary bytes behind a plausible header,
//! hand-encoded batches (well-formed or with one deliberate flaw, including
//! record headers and null values that `BatchBuilder` never writes), valid
//! batches under random edits, truncations, extensions and concatenations.
//! On every input `BatchHeader::parse`, `validate`, `records()`,
//! `batches()` and `set_base_offset` must not panic and must agree with an
//! independent decoding of the fixed header; whatever `validate` accepts
//! must be walkable to exactly `record_count` records lying inside the
//! buffer.
//!
//! Cases per property: small by default so the suite stays fast; set
//! `PROPTEST_CASES` for a long run (see docs/fuzzing.md).

mod fuzz_support;

use logbrook::protocol::batch::{
    batches, records, set_base_offset, validate, BatchBuilder, BatchError, BatchHeader, RecordView,
    HEADER_LEN,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use fuzz_support::fuzz_config;

/// Where the CRC field sits, and where the data it covers starts.
const CRC_POS: usize = 17;
const CRC_START: usize = 21;
/// `baseOffset` and `batchLength` are not counted by `batchLength`.
const LOG_OVERHEAD: usize = 12;

// ---------------------------------------------------------------------------
// Oracles: an independent reading of the fixed header and a varint writer.

fn field<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

/// The fixed header decoded by hand, with no checks; `None` if too short.
fn raw_header(buf: &[u8]) -> Option<BatchHeader> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    Some(BatchHeader {
        base_offset: i64::from_be_bytes(field(buf, 0)),
        batch_length: i32::from_be_bytes(field(buf, 8)),
        partition_leader_epoch: i32::from_be_bytes(field(buf, 12)),
        magic: buf[16] as i8,
        crc: u32::from_be_bytes(field(buf, 17)),
        attributes: i16::from_be_bytes(field(buf, 21)),
        last_offset_delta: i32::from_be_bytes(field(buf, 23)),
        base_timestamp: i64::from_be_bytes(field(buf, 27)),
        max_timestamp: i64::from_be_bytes(field(buf, 35)),
        producer_id: i64::from_be_bytes(field(buf, 43)),
        producer_epoch: i16::from_be_bytes(field(buf, 51)),
        base_sequence: i32::from_be_bytes(field(buf, 53)),
        record_count: i32::from_be_bytes(field(buf, 57)),
    })
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_uvarint(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// Writes `batchLength` and the CRC so that only the record walk can fail.
fn fix_length_and_crc(buf: &mut [u8]) {
    if buf.len() >= HEADER_LEN {
        let len = (buf.len() - LOG_OVERHEAD) as i32;
        buf[8..12].copy_from_slice(&len.to_be_bytes());
        fix_crc(buf);
    }
}

fn fix_crc(buf: &mut [u8]) {
    if buf.len() >= CRC_START {
        let crc = crc32c::crc32c(&buf[CRC_START..]);
        buf[CRC_POS..CRC_START].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Whether a borrowed field lies in the record area of `buf`. Empty slices
/// hold no bytes, so they cannot lie outside (a null value reads as an empty
/// slice that need not point into the buffer).
fn inside(buf: &[u8], part: &[u8]) -> bool {
    if part.is_empty() {
        return true;
    }
    let start = buf.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    p >= start + HEADER_LEN && p + part.len() <= start + buf.len()
}

// ---------------------------------------------------------------------------
// The checks run on every input.

/// Runs every entry point of the codec on `buf` and checks what must hold
/// whatever the bytes are.
fn check_everything(buf: &[u8]) -> Result<(), TestCaseError> {
    // parse: exactly the documented checks, fields as on the wire.
    let parsed = BatchHeader::parse(buf);
    match raw_header(buf) {
        None => prop_assert_eq!(
            &parsed,
            &Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len()
            })
        ),
        Some(h) if h.magic != 2 => prop_assert_eq!(&parsed, &Err(BatchError::BadMagic(h.magic))),
        Some(h) if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 => {
            prop_assert_eq!(&parsed, &Err(BatchError::BadLength(h.batch_length)))
        }
        Some(h) => {
            prop_assert_eq!(&parsed, &Ok(h));
            prop_assert_eq!(h.total_len(), LOG_OVERHEAD + h.batch_length as usize);
            prop_assert_eq!(
                h.last_offset(),
                h.base_offset.wrapping_add(i64::from(h.last_offset_delta))
            );
        }
    }

    // records(): never panics, stops after at most record_count + 1 items
    // (the extra one reports left-over bytes), stays stopped after an error
    // or the end, and only lends out bytes of the buffer.
    if let Ok(mut it) = records(buf) {
        let h = parsed
            .clone()
            .expect("records() accepted an unparsable header");
        prop_assert!(h.record_count >= 0);
        let mut items = 0u64;
        while let Some(item) = it.next() {
            items += 1;
            prop_assert!(
                items <= h.record_count as u64 + 1,
                "records() runs past recordCount"
            );
            match item {
                Ok(r) => {
                    prop_assert!(r.key.is_none_or(|k| inside(buf, k)));
                    prop_assert!(inside(buf, r.value));
                }
                Err(_) => {
                    prop_assert!(it.next().is_none(), "records() continues after an error");
                    break;
                }
            }
        }
        prop_assert!(it.next().is_none(), "records() is not fused");
    }

    // batches(): consecutive slices of the buffer, each a whole framed
    // batch; at most one error, and only last.
    let mut covered = 0usize;
    let mut failed = false;
    let mut it = batches(buf);
    for item in it.by_ref() {
        prop_assert!(!failed, "batches() yields after an error");
        match item {
            Ok(b) => {
                prop_assert_eq!(b.as_ptr() as usize, buf[covered..].as_ptr() as usize);
                let h = BatchHeader::parse(b);
                prop_assert!(h.is_ok(), "batches() framed an unparsable batch");
                prop_assert_eq!(h.unwrap().total_len(), b.len());
                covered += b.len();
            }
            Err(e) => {
                let rest = &buf[covered..];
                match BatchHeader::parse(rest) {
                    Err(parse_err) => prop_assert_eq!(e, parse_err),
                    Ok(h) => prop_assert_eq!(
                        e,
                        BatchError::Truncated {
                            needed: h.total_len(),
                            available: rest.len()
                        }
                    ),
                }
                failed = true;
            }
        }
    }
    prop_assert!(it.next().is_none(), "batches() is not fused");
    if !failed {
        prop_assert_eq!(covered, buf.len());
    }

    // set_base_offset: writes bytes 0..8 and nothing else; no-op if short.
    let new_base = buf.len() as i64 * 7919 - 3;
    let mut moved = buf.to_vec();
    set_base_offset(&mut moved, new_base);
    if buf.len() >= 8 {
        prop_assert_eq!(&moved[..8], &new_base.to_be_bytes()[..]);
        prop_assert_eq!(&moved[8..], &buf[8..]);
    } else {
        prop_assert_eq!(&moved[..], buf);
    }

    // validate: an error from parse is passed on unchanged; success means a
    // whole, CRC-checked, uncompressed batch of exactly record_count
    // records with contiguous offsets, lying inside the buffer.
    match validate(buf) {
        Err(e) => {
            if let Err(parse_err) = &parsed {
                prop_assert_eq!(&e, parse_err);
            }
        }
        Ok(h) => {
            prop_assert_eq!(&parsed, &Ok(h));
            prop_assert_eq!(h.total_len(), buf.len());
            prop_assert_eq!(h.crc, crc32c::crc32c(&buf[CRC_START..]));
            prop_assert!(h.record_count >= 1);
            prop_assert_eq!(h.last_offset_delta, h.record_count - 1);
            prop_assert_eq!(h.attributes & 0x07, 0);
            let recs: Vec<RecordView<'_>> = records(buf)
                .expect("validate accepted what records() rejects")
                .collect::<Result<_, _>>()
                .expect("validate accepted a batch with a malformed record");
            prop_assert_eq!(recs.len(), h.record_count as usize);
            for (i, r) in recs.iter().enumerate() {
                prop_assert_eq!(r.offset, h.base_offset.wrapping_add(i as i64));
                prop_assert!(
                    r.key.is_none_or(|k| inside(buf, k)),
                    "key outside the batch"
                );
                prop_assert!(inside(buf, r.value), "value outside the batch");
            }
            let framed: Vec<_> = batches(buf).collect();
            prop_assert_eq!(framed, vec![Ok(buf)]);
            // The base offset is outside the CRC: rewriting it keeps the
            // batch valid.
            let after = validate(&moved);
            prop_assert_eq!(
                after,
                Ok(BatchHeader {
                    base_offset: new_base,
                    ..h
                })
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies.

type Rec = (Option<Vec<u8>>, Vec<u8>, i64);
/// A record as read back: offset, timestamp, key, value.
type Seen<'a> = (i64, i64, Option<&'a [u8]>, &'a [u8]);

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

/// Mostly short fields; sometimes long enough for 2- and 3-byte varint
/// lengths (64 and 8192 bytes). Long ones are a cheap pattern rather than
/// random bytes: their content does not matter, their length does.
fn field_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        16 => bytes(70),
        3 => bytes(300),
        1 => (any::<u8>(), 8150usize..8250)
            .prop_map(|(seed, n)| (0..n).map(|i| seed.wrapping_add(i as u8)).collect()),
    ]
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 1_600_000_000_000i64..1_800_000_000_000,
        1 => any::<i64>(),
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1i64), Just(0i64)],
    ]
}

fn record() -> impl Strategy<Value = Rec> {
    (
        proptest::option::of(field_bytes()),
        field_bytes(),
        timestamp(),
    )
}

fn build(recs: &[Rec]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for (k, v, ts) in recs {
        b.push(k.as_deref(), v, *ts);
    }
    b.finish()
}

/// A valid batch as a broker stores it: built, then given a base offset.
fn valid_batch() -> impl Strategy<Value = Vec<u8>> {
    (vec(record(), 1..8), any::<i64>()).prop_map(|(recs, base)| {
        let mut batch = build(&recs);
        set_base_offset(&mut batch, base);
        batch
    })
}

/// A valid batch of a few hundred bytes at most, for exhaustive sweeps.
fn small_valid_batch() -> impl Strategy<Value = Vec<u8>> {
    let rec = (proptest::option::of(bytes(40)), bytes(60), timestamp());
    (vec(rec, 1..4), any::<i64>()).prop_map(|(recs, base)| {
        let mut batch = build(&recs);
        set_base_offset(&mut batch, base);
        batch
    })
}

/// One edit of a byte buffer; positions are taken modulo the length.
#[derive(Debug, Clone)]
enum Edit {
    Set(Index, u8),
    Xor(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
    Extend(Vec<u8>),
    /// Copies a range over another place (keeps valid-looking varints).
    CopyRange(Index, Index, u8),
    /// Writes a 32-bit big-endian value (lengths, counts) somewhere.
    SetI32(Index, i32),
}

fn edit() -> impl Strategy<Value = Edit> {
    let interesting_i32 = prop_oneof![
        Just(0),
        Just(-1),
        Just(1),
        Just(i32::MAX),
        Just(i32::MIN),
        -5i32..70,
        any::<i32>()
    ];
    prop_oneof![
        4 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        4 => (any::<Index>(), 1u8..=255).prop_map(|(i, b)| Edit::Xor(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<Index>().prop_map(Edit::Remove),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => bytes(20).prop_map(Edit::Extend),
        1 => (any::<Index>(), any::<Index>(), 1u8..16)
            .prop_map(|(a, b, n)| Edit::CopyRange(a, b, n)),
        2 => (any::<Index>(), interesting_i32).prop_map(|(i, v)| Edit::SetI32(i, v)),
    ]
}

fn apply(buf: &mut Vec<u8>, edit: &Edit) {
    let len = buf.len();
    match *edit {
        _ if len == 0 => {
            if let Edit::Extend(more) = edit {
                buf.extend_from_slice(more);
            }
        }
        Edit::Set(i, b) => buf[i.index(len)] = b,
        Edit::Xor(i, b) => buf[i.index(len)] ^= b,
        Edit::Insert(i, b) => buf.insert(i.index(len + 1), b),
        Edit::Remove(i) => {
            buf.remove(i.index(len));
        }
        Edit::Truncate(i) => buf.truncate(i.index(len)),
        Edit::Extend(ref more) => buf.extend_from_slice(more),
        Edit::CopyRange(from, to, n) => {
            let from = from.index(len);
            let to = to.index(len);
            let n = (n as usize).min(len - from).min(len - to);
            buf.copy_within(from..from + n, to);
        }
        Edit::SetI32(i, v) => {
            if len >= 4 {
                let at = i.index(len - 3);
                buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
    }
}

/// What to repair after editing, so the deeper checks are reached.
#[derive(Debug, Clone, Copy)]
enum Repair {
    Nothing,
    Crc,
    LengthAndCrc,
}

fn repair() -> impl Strategy<Value = Repair> {
    prop_oneof![
        1 => Just(Repair::Nothing),
        2 => Just(Repair::Crc),
        3 => Just(Repair::LengthAndCrc),
    ]
}

// Hand-encoded batches: every field under the test's control.

/// One deliberate defect of a hand-encoded record.
#[derive(Debug, Clone)]
enum Flaw {
    /// The record's length prefix is off by this much (non-zero).
    LenSkew(i32),
    /// The key's length prefix is off by this much (non-zero).
    KeyLenSkew(i32),
    /// The header count is replaced by this value.
    HeaderCount(i32),
    /// Bytes after the last field, counted in the record length.
    Trailing(Vec<u8>),
    /// A header with a null key.
    NullHeaderKey,
    /// The timestamp delta as an 11-byte varint (overflows 64 bits).
    OverlongVarint,
    /// A key length below -1.
    KeyLen(i32),
}

#[derive(Debug, Clone)]
struct HandRecord {
    attributes: u8,
    ts_delta: i64,
    /// `None`: the correct, contiguous delta.
    offset_delta: Option<i32>,
    key: Option<Vec<u8>>,
    /// A null value is legal and reads as empty.
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    flaw: Option<Flaw>,
}

#[derive(Debug, Clone)]
struct HandBatch {
    base_offset: i64,
    leader_epoch: i32,
    /// Transactional / control / timestamp-type bits; compression bits are
    /// only set by `compression`.
    attribute_bits: i16,
    compression: i16,
    base_timestamp: i64,
    producer: (i64, i16, i32),
    records: Vec<HandRecord>,
    /// `None`: the correct record count / last offset delta.
    record_count: Option<i32>,
    last_offset_delta: Option<i32>,
    /// Bytes after the last record, inside the batch.
    trailing: Vec<u8>,
    crc_ok: bool,
}

impl HandBatch {
    fn well_formed(&self) -> bool {
        self.records
            .iter()
            .all(|r| r.flaw.is_none() && r.offset_delta.is_none())
            && self.record_count.is_none()
            && self.last_offset_delta.is_none()
            && self.compression == 0
            && self.trailing.is_empty()
            && self.crc_ok
            && !self.records.is_empty()
    }

    /// Whether some flaw certainly breaks the batch. (A skewed key length
    /// alone may, by chance, still parse.)
    fn certainly_invalid(&self) -> bool {
        let n = self.records.len() as i32;
        let bad_record = |(i, r): (usize, &HandRecord)| {
            r.offset_delta.is_some_and(|d| d != i as i32)
                || match &r.flaw {
                    None | Some(Flaw::KeyLenSkew(_)) => false,
                    Some(Flaw::HeaderCount(c)) => *c != r.headers.len() as i32,
                    Some(_) => true,
                }
        };
        !self.crc_ok
            || self.compression != 0
            || self.records.is_empty()
            || !self.trailing.is_empty()
            || self.record_count.is_some_and(|c| c != n)
            || self.last_offset_delta.is_some_and(|d| d != n - 1)
            || self.records.iter().enumerate().any(bad_record)
    }

    fn encode(&self) -> Vec<u8> {
        let n = self.records.len() as i32;
        let mut out = vec![0u8; HEADER_LEN];
        for (i, r) in self.records.iter().enumerate() {
            let mut body = vec![r.attributes];
            match r.flaw {
                Some(Flaw::OverlongVarint) => body.extend_from_slice(&[0xff; 10]),
                _ => put_varlong(&mut body, r.ts_delta),
            }
            put_varint(&mut body, r.offset_delta.unwrap_or(i as i32));
            match (&r.flaw, &r.key) {
                (Some(Flaw::KeyLenSkew(skew)), Some(k)) => {
                    put_varint(&mut body, (k.len() as i32).wrapping_add(*skew));
                    body.extend_from_slice(k);
                }
                (Some(Flaw::KeyLen(len)), _) => put_varint(&mut body, *len),
                (_, key) => put_nullable(&mut body, key.as_deref()),
            }
            put_nullable(&mut body, r.value.as_deref());
            let mut headers = r.headers.clone();
            if let Some(Flaw::NullHeaderKey) = r.flaw {
                headers.push((vec![], None));
            }
            match r.flaw {
                Some(Flaw::HeaderCount(c)) => put_varint(&mut body, c),
                _ => put_varint(&mut body, headers.len() as i32),
            }
            for (j, (hk, hv)) in headers.iter().enumerate() {
                let null_key =
                    matches!(r.flaw, Some(Flaw::NullHeaderKey)) && j + 1 == headers.len();
                put_nullable(&mut body, (!null_key).then_some(&hk[..]));
                put_nullable(&mut body, hv.as_deref());
            }
            if let Some(Flaw::Trailing(t)) = &r.flaw {
                body.extend_from_slice(t);
            }
            let skew = match r.flaw {
                Some(Flaw::LenSkew(s)) => s,
                _ => 0,
            };
            put_varint(&mut out, (body.len() as i32).wrapping_add(skew));
            out.extend_from_slice(&body);
        }
        out.extend_from_slice(&self.trailing);
        let (producer_id, producer_epoch, base_sequence) = self.producer;
        let header = [
            &self.base_offset.to_be_bytes()[..],
            &((out.len() - LOG_OVERHEAD) as i32).to_be_bytes(),
            &self.leader_epoch.to_be_bytes(),
            &[2],
            &[0; 4],
            &(self.attribute_bits & !0x07 | self.compression).to_be_bytes(),
            &self.last_offset_delta.unwrap_or(n - 1).to_be_bytes(),
            &self.base_timestamp.to_be_bytes(),
            &self.base_timestamp.to_be_bytes(),
            &producer_id.to_be_bytes(),
            &producer_epoch.to_be_bytes(),
            &base_sequence.to_be_bytes(),
            &self.record_count.unwrap_or(n).to_be_bytes(),
        ]
        .concat();
        out[..HEADER_LEN].copy_from_slice(&header);
        fix_crc(&mut out);
        if !self.crc_ok {
            out[CRC_POS] ^= 0x5a;
        }
        out
    }
}

fn flaw() -> impl Strategy<Value = Flaw> {
    let skew = prop_oneof![-3i32..=-1, 1i32..=3, Just(i32::MIN), Just(i32::MAX)];
    prop_oneof![
        skew.clone().prop_map(Flaw::LenSkew),
        skew.prop_map(Flaw::KeyLenSkew),
        prop_oneof![-3i32..0, 1i32..5, Just(i32::MAX), Just(i32::MIN)].prop_map(Flaw::HeaderCount),
        vec(any::<u8>(), 1..5).prop_map(Flaw::Trailing),
        Just(Flaw::NullHeaderKey),
        Just(Flaw::OverlongVarint),
        prop_oneof![Just(-2), Just(i32::MIN), -100i32..-1].prop_map(Flaw::KeyLen),
    ]
}

fn hand_record() -> impl Strategy<Value = HandRecord> {
    (
        any::<u8>(),
        prop_oneof![3 => -1000i64..1000, 1 => any::<i64>()],
        prop_oneof![9 => Just(None), 1 => any::<i32>().prop_map(Some)],
        proptest::option::of(bytes(40)),
        proptest::option::weighted(0.8, field_bytes()),
        vec((bytes(12), proptest::option::of(bytes(12))), 0..3),
        proptest::option::weighted(0.25, flaw()),
    )
        .prop_map(
            |(attributes, ts_delta, offset_delta, key, value, headers, flaw)| HandRecord {
                attributes,
                ts_delta,
                offset_delta,
                key,
                value,
                headers,
                flaw,
            },
        )
}

fn hand_batch() -> impl Strategy<Value = HandBatch> {
    let skew = || prop_oneof![12 => Just(None), 1 => any::<i32>().prop_map(Some), 1 => (-2i32..3).prop_map(Some)];
    (
        any::<i64>(),
        any::<i32>(),
        any::<i16>(),
        prop_oneof![12 => Just(0i16), 1 => 1i16..8],
        timestamp(),
        any::<(i64, i16, i32)>(),
        vec(hand_record(), 0..6),
        skew(),
        skew(),
        prop_oneof![12 => Just(vec![]), 1 => vec(any::<u8>(), 1..6)],
        prop_oneof![12 => Just(true), 1 => Just(false)],
    )
        .prop_map(
            |(
                base_offset,
                leader_epoch,
                attribute_bits,
                compression,
                base_timestamp,
                producer,
                records,
                record_count,
                last_offset_delta,
                trailing,
                crc_ok,
            )| HandBatch {
                base_offset,
                leader_epoch,
                attribute_bits,
                compression,
                base_timestamp,
                producer,
                records,
                record_count,
                last_offset_delta,
                trailing,
                crc_ok,
            },
        )
}

// ---------------------------------------------------------------------------
// Properties.

/// Default cases per property: the whole file runs in about a second in a
/// debug build.
const BATCH_CASES: u32 = 512;

proptest! {
    #![proptest_config(fuzz_config(BATCH_CASES))]

    /// Arbitrary bytes: nothing panics, parse agrees with the oracle, and
    /// anything validate accepts is a whole batch of in-bounds records.
    #[test]
    fn arbitrary_bytes_never_panic(buf in bytes(600)) {
        check_everything(&buf)?;
    }

    /// Arbitrary record bytes behind a header that passes parse (magic 2,
    /// exact batchLength, maybe a correct CRC), so the record walk sees the
    /// garbage rather than the header checks.
    #[test]
    fn arbitrary_records_behind_a_plausible_header(
        mut buf in vec(any::<u8>(), HEADER_LEN..700),
        count in prop_oneof![0i32..6, any::<i32>()],
        uncompressed in any::<bool>(),
        crc_ok in any::<bool>(),
    ) {
        buf[16] = 2;
        buf[23..27].copy_from_slice(&count.wrapping_sub(1).to_be_bytes());
        buf[57..61].copy_from_slice(&count.to_be_bytes());
        if uncompressed {
            buf[22] &= !0x07;
        }
        let len = (buf.len() - LOG_OVERHEAD) as i32;
        buf[8..12].copy_from_slice(&len.to_be_bytes());
        if crc_ok {
            fix_crc(&mut buf);
        }
        check_everything(&buf)?;
    }

    /// Hand-encoded batches, with headers and null values BatchBuilder never
    /// writes: well-formed ones validate and read back field by field; ones
    /// with a flaw never panic, and are rejected unless the flaw is one
    /// that may by chance still parse (a skewed key length).
    #[test]
    fn hand_encoded_batches(batch in hand_batch()) {
        let buf = batch.encode();
        check_everything(&buf)?;
        if batch.well_formed() {
            let h = validate(&buf);
            prop_assert!(h.is_ok(), "well-formed batch rejected: {:?}", h);
            let got: Vec<Seen<'_>> = records(&buf)
                .unwrap()
                .map(|r| r.map(|r| (r.offset, r.timestamp, r.key, r.value)))
                .collect::<Result<_, _>>()
                .unwrap();
            let want: Vec<Seen<'_>> = batch
                .records
                .iter()
                .enumerate()
                .map(|(i, r)| (
                    batch.base_offset.wrapping_add(i as i64),
                    batch.base_timestamp.wrapping_add(r.ts_delta),
                    r.key.as_deref(),
                    r.value.as_deref().unwrap_or_default(),
                ))
                .collect();
            prop_assert_eq!(got, want);
        }
        if batch.certainly_invalid() {
            let h = validate(&buf);
            prop_assert!(h.is_err(), "flawed batch accepted: {:?}", h);
        }
    }

    /// Valid batches under random edits, with the length and CRC sometimes
    /// repaired afterwards so the edits reach the record walk.
    #[test]
    fn edited_valid_batches_never_panic(
        mut buf in valid_batch(),
        edits in vec(edit(), 1..6),
        repair in repair(),
    ) {
        for e in &edits {
            apply(&mut buf, e);
        }
        match repair {
            Repair::Nothing => {}
            Repair::Crc => fix_crc(&mut buf),
            Repair::LengthAndCrc => fix_length_and_crc(&mut buf),
        }
        check_everything(&buf)?;
    }

    /// BatchBuilder output validates and reads back exactly, at any base
    /// offset; builder reuse and preallocation do not change the bytes.
    #[test]
    fn builder_round_trips(recs in vec(record(), 1..24), base in any::<i64>(), capacity in 0usize..5000) {
        let mut builder = BatchBuilder::with_capacity(capacity);
        for (k, v, ts) in &recs {
            builder.push(k.as_deref(), v, *ts);
        }
        prop_assert_eq!(builder.len(), recs.len());
        let encoded_len = builder.encoded_len();
        let mut buf = builder.finish();
        prop_assert!(builder.is_empty());
        prop_assert_eq!(buf.len(), encoded_len);
        prop_assert_eq!(&buf, &build(&recs));
        // The same builder again gives the same bytes.
        for (k, v, ts) in &recs {
            builder.push(k.as_deref(), v, *ts);
        }
        prop_assert_eq!(&builder.finish(), &buf);

        set_base_offset(&mut buf, base);
        let h = validate(&buf);
        prop_assert!(h.is_ok(), "{:?}", h);
        let h = h.unwrap();
        prop_assert_eq!(h.base_offset, base);
        prop_assert_eq!(h.record_count as usize, recs.len());
        prop_assert_eq!(h.total_len(), buf.len());
        prop_assert_eq!(h.base_timestamp, recs[0].2);
        prop_assert_eq!(h.max_timestamp, recs.iter().map(|r| r.2).max().unwrap());
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (-1, -1, -1));
        prop_assert_eq!((h.attributes, h.partition_leader_epoch), (0, -1));
        let got: Vec<(i64, Rec)> = records(&buf)
            .unwrap()
            .map(|r| r.map(|r| (r.offset, (r.key.map(<[u8]>::to_vec), r.value.to_vec(), r.timestamp))))
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(i64, Rec)> = recs
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (base.wrapping_add(i as i64), r))
            .collect();
        prop_assert_eq!(got, want);
        check_everything(&buf)?;
    }

    /// Changing any single byte of a valid batch: only the base offset
    /// (0..8) and the leader epoch (12..16) are outside the checks; any
    /// change from the CRC on (17..) is a CRC mismatch.
    #[test]
    fn any_single_byte_change_is_caught(buf in valid_batch(), at in any::<Index>(), mask in 1u8..=255) {
        let at = at.index(buf.len());
        let mut bad = buf.clone();
        bad[at] ^= mask;
        let result = validate(&bad);
        match at {
            0..=7 | 12..=15 => prop_assert!(result.is_ok(), "byte {} is not covered: {:?}", at, result),
            16 => prop_assert_eq!(result, Err(BatchError::BadMagic((buf[16] ^ mask) as i8))),
            8..=11 => prop_assert!(result.is_err()),
            _ => prop_assert!(
                matches!(result, Err(BatchError::CrcMismatch { .. })),
                "byte {} changed by {:#04x}: {:?}", at, mask, result
            ),
        }
        check_everything(&bad)?;
    }

    /// Any change of one byte at or after the CRC start, sweeping every
    /// position of one batch, fails validate.
    #[test]
    fn every_byte_after_crc_start_is_covered(buf in small_valid_batch(), mask in 1u8..=255) {
        for at in CRC_START..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= mask;
            prop_assert!(validate(&bad).is_err(), "flip of byte {} by {:#04x} accepted", at, mask);
        }
    }

    /// A valid batch cut anywhere is `Truncated`, framed as a torn batch,
    /// and harmless to every entry point; a valid batch with bytes appended
    /// is a size mismatch, framed as the batch plus a remainder.
    #[test]
    fn truncated_or_extended_batches_fail(buf in valid_batch(), cut in any::<Index>(), extra in vec(any::<u8>(), 1..80)) {
        let cut = cut.index(buf.len());
        let part = &buf[..cut];
        let needed = if cut < HEADER_LEN { HEADER_LEN } else { buf.len() };
        let torn = BatchError::Truncated { needed, available: cut };
        prop_assert_eq!(validate(part), Err(torn.clone()));
        let framed: Vec<_> = batches(part).collect();
        if cut == 0 {
            prop_assert!(framed.is_empty());
        } else {
            prop_assert_eq!(framed, vec![Err(torn)]);
        }
        check_everything(part)?;

        let long = [&buf[..], &extra[..]].concat();
        prop_assert_eq!(
            validate(&long),
            Err(BatchError::SizeMismatch { batch: buf.len(), buffer: long.len() })
        );
        prop_assert_eq!(batches(&long).next(), Some(Ok(&buf[..])));
        check_everything(&long)?;
    }

    /// Concatenated valid batches followed by garbage: batches() frames
    /// every whole batch exactly before it reaches the garbage.
    #[test]
    fn concatenated_batches_then_garbage(parts in vec(valid_batch(), 0..5), tail in bytes(120)) {
        let whole = parts.concat();
        let buf = [&whole[..], &tail[..]].concat();
        let framed: Vec<_> = batches(&buf).take(parts.len()).collect();
        let want: Vec<Result<&[u8], BatchError>> = parts.iter().map(|p| Ok(&p[..])).collect();
        prop_assert_eq!(framed, want);
        if tail.is_empty() {
            prop_assert_eq!(batches(&buf).count(), parts.len());
        }
        check_everything(&buf)?;
    }
}
