//! One pass over a record's JSON, writing as it reads (serde visitors over
//! `serde_json`'s parser, so that strings without escapes are never
//! copied and keys keep their order): Fluent Bit's printed form, its JSON
//! and its MessagePack.

use std::fmt;
use std::io::Write as _;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{DateFormat, write_date, write_fixed6, write_json_float};

/// One top-level entry of a record: where its key (raw) and its printed
/// value are in the scratch buffer, and whether the value is a string.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub key: Range<usize>,
    pub value: Range<usize>,
    pub text: bool,
}

/// The date key written first in a JSON record: key, format, time.
pub(super) type Stamp<'a> = Option<(&'a str, DateFormat, (i64, u32))>;

/// A walk over one body, with the key spans reused between bodies.
pub(super) struct Walk<'r> {
    keys: &'r mut Vec<(usize, usize)>,
}

type Parsed = Result<(), serde_json::Error>;

impl<'r> Walk<'r> {
    pub fn new(keys: &'r mut Vec<(usize, usize)>) -> Walk<'r> {
        Walk { keys }
    }

    /// `msgpack_object_print`.
    pub fn print(&mut self, out: &mut Vec<u8>, body: &[u8]) -> Parsed {
        let mut parser = serde_json::Deserializer::from_slice(body);
        Print { out }.deserialize(&mut parser)?;
        parser.end()
    }

    /// `msgpack2json`, with `stamp` as the first key of the top map.
    pub fn json(&mut self, out: &mut Vec<u8>, body: &[u8], stamp: Stamp<'_>) -> Parsed {
        let mut parser = serde_json::Deserializer::from_slice(body);
        self.keys.clear();
        Json {
            out,
            keys: self.keys,
            stamp,
        }
        .deserialize(&mut parser)?;
        parser.end()
    }

    /// MessagePack, as Fluent Bit packs JSON.
    pub fn msgpack(&mut self, out: &mut Vec<u8>, body: &[u8]) -> Parsed {
        let mut parser = serde_json::Deserializer::from_slice(body);
        Msgpack { out }.deserialize(&mut parser)?;
        parser.end()
    }

    /// The top map's entries: raw keys and printed values into `scratch`.
    pub fn entries(
        &mut self,
        scratch: &mut Vec<u8>,
        body: &[u8],
        entries: &mut Vec<Entry>,
    ) -> Parsed {
        let mut parser = serde_json::Deserializer::from_slice(body);
        Entries { scratch, entries }.deserialize(&mut parser)?;
        parser.end()
    }
}

/// Visitor boilerplate: a seed that deserializes any value with itself.
macro_rules! seed {
    ($name:ident, $value:ty) => {
        impl<'de> DeserializeSeed<'de> for $name<'_> {
            type Value = $value;

            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
                d.deserialize_any(self)
            }
        }
    };
}

/// Writes `text` raw.
struct Raw<'a> {
    out: &'a mut Vec<u8>,
}

seed!(Raw, ());

impl Visitor<'_> for Raw<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// `msgpack_object_print`; answers whether the value was a string.
struct Print<'a> {
    out: &'a mut Vec<u8>,
}

seed!(Print, bool);

impl<'de> Visitor<'de> for Print<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, b: bool) -> Result<bool, E> {
        self.out
            .extend_from_slice(if b { b"true".as_slice() } else { b"false" });
        Ok(false)
    }

    fn visit_i64<E>(self, n: i64) -> Result<bool, E> {
        let _ = write!(self.out, "{n}");
        Ok(false)
    }

    fn visit_u64<E>(self, n: u64) -> Result<bool, E> {
        let _ = write!(self.out, "{n}");
        Ok(false)
    }

    fn visit_f64<E>(self, n: f64) -> Result<bool, E> {
        write_fixed6(self.out, n);
        Ok(false)
    }

    fn visit_str<E>(self, text: &str) -> Result<bool, E> {
        self.out.push(b'"');
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(b'"');
        Ok(true)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        self.out.extend_from_slice(b"nil");
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let out = self.out;
        out.push(b'[');
        let mut first = true;
        loop {
            let mark = out.len();
            if !first {
                out.extend_from_slice(b", ");
            }
            if seq.next_element_seed(Print { out: &mut *out })?.is_none() {
                out.truncate(mark);
                break;
            }
            first = false;
        }
        out.push(b']');
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let out = self.out;
        out.push(b'{');
        let mut first = true;
        loop {
            let mark = out.len();
            if !first {
                out.extend_from_slice(b", ");
            }
            out.push(b'"');
            if map.next_key_seed(Raw { out: &mut *out })?.is_none() {
                out.truncate(mark);
                break;
            }
            out.extend_from_slice(b"\"=>");
            map.next_value_seed(Print { out: &mut *out })?;
            first = false;
        }
        out.push(b'}');
        Ok(false)
    }
}

/// `msgpack2json`: JSON with Fluent Bit's escapes and floats, a key a
/// later one repeats dropped.
struct Json<'a, 's> {
    out: &'a mut Vec<u8>,
    /// Spans of the keys written in the maps being written.
    keys: &'a mut Vec<(usize, usize)>,
    /// The date key, for the top map only.
    stamp: Stamp<'s>,
}

impl<'de> DeserializeSeed<'de> for Json<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Writes a key, escaped.
struct JsonKey<'a> {
    out: &'a mut Vec<u8>,
}

seed!(JsonKey, ());

impl Visitor<'_> for JsonKey<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        write_json_str(self.out, text);
        Ok(())
    }
}

impl<'de> Visitor<'de> for Json<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.out
            .extend_from_slice(if b { b"true".as_slice() } else { b"false" });
        Ok(())
    }

    fn visit_i64<E>(self, n: i64) -> Result<(), E> {
        let _ = write!(self.out, "{n}");
        Ok(())
    }

    fn visit_u64<E>(self, n: u64) -> Result<(), E> {
        let _ = write!(self.out, "{n}");
        Ok(())
    }

    fn visit_f64<E>(self, n: f64) -> Result<(), E> {
        write_json_float(self.out, n);
        Ok(())
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        write_json_str(self.out, text);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (out, keys) = (self.out, self.keys);
        out.push(b'[');
        let mut first = true;
        loop {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            let item = Json {
                out: &mut *out,
                keys: &mut *keys,
                stamp: None,
            };
            if seq.next_element_seed(item)?.is_none() {
                out.truncate(mark);
                break;
            }
            first = false;
        }
        out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (out, keys) = (self.out, self.keys);
        out.push(b'{');
        // This map's keys are keys[base..]; a nested map's go above them
        // while it is written, and are gone once it is.
        let base = keys.len();
        if let Some((key, format, time)) = self.stamp {
            let start = out.len();
            write_json_str(out, key);
            keys.push((start, out.len()));
            out.push(b':');
            write_date(out, format, time);
        }
        loop {
            let mark = out.len();
            let comma = keys.len() > base;
            if comma {
                out.push(b',');
            }
            let mut start = out.len();
            if map.next_key_seed(JsonKey { out: &mut *out })?.is_none() {
                out.truncate(mark);
                break;
            }
            let mut end = out.len();
            // msgpack2json keeps the last of repeated keys: the earlier
            // entry goes, with the comma after it.
            let repeated = (base..keys.len()).find(|&i| {
                let (s, e) = keys[i];
                out[s..e] == out[start..end]
            });
            if let Some(i) = repeated {
                let from = keys[i].0;
                let to = keys.get(i + 1).map_or(start, |next| next.0);
                let removed = to - from;
                out.drain(from..to);
                keys.remove(i);
                for span in &mut keys[i..] {
                    span.0 -= removed;
                    span.1 -= removed;
                }
                start -= removed;
                end -= removed;
            }
            keys.push((start, end));
            out.push(b':');
            map.next_value_seed(Json {
                out: &mut *out,
                keys: &mut *keys,
                stamp: None,
            })?;
        }
        keys.truncate(base);
        out.push(b'}');
        Ok(())
    }
}

/// A string as Fluent Bit's `flb_utils_write_str` escapes it with
/// `escape_unicode` on (its default): quotes, backslashes and control
/// characters, and every non-ASCII character as `\uXXXX` (a surrogate
/// pair beyond the BMP).
pub(super) fn write_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[copied..i]);
        let mut next = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..0x80 => {
                let _ = write!(out, "\\u{b:04x}");
            }
            _ => {
                let c = text[i..].chars().next().expect("a char starts here");
                next = i + c.len_utf8();
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
        i = next;
        copied = next;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// MessagePack as `msgpack-c` packs what Fluent Bit reads from JSON: the
/// smallest encoding of each integer, floats as float 64.
struct Msgpack<'a> {
    out: &'a mut Vec<u8>,
}

seed!(Msgpack, ());

impl<'de> Visitor<'de> for Msgpack<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.out.push(if b { 0xc3 } else { 0xc2 });
        Ok(())
    }

    fn visit_i64<E>(self, n: i64) -> Result<(), E> {
        write_msgpack_int(self.out, n);
        Ok(())
    }

    fn visit_u64<E>(self, n: u64) -> Result<(), E> {
        write_msgpack_uint(self.out, n);
        Ok(())
    }

    fn visit_f64<E>(self, n: f64) -> Result<(), E> {
        self.out.push(0xcb);
        self.out.extend_from_slice(&n.to_be_bytes());
        Ok(())
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        let out = self.out;
        let n = text.len();
        match n {
            0..32 => out.push(0xa0 | n as u8),
            32..256 => out.extend_from_slice(&[0xd9, n as u8]),
            256..65536 => {
                out.push(0xda);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
        }
        out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.push(0xc0);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.out;
        // The count is known at the end: its header goes in front then.
        let at = out.len();
        let mut count = 0usize;
        while seq.next_element_seed(Msgpack { out: &mut *out })?.is_some() {
            count += 1;
        }
        insert_header(out, at, count, [0x90, 0xdc, 0xdd]);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        let at = out.len();
        let mut count = 0usize;
        while map.next_key_seed(Msgpack { out: &mut *out })?.is_some() {
            map.next_value_seed(Msgpack { out: &mut *out })?;
            count += 1;
        }
        insert_header(out, at, count, [0x80, 0xde, 0xdf]);
        Ok(())
    }
}

/// An integer as `msgpack_pack_int64` packs it: a non-negative one as
/// unsigned.
fn write_msgpack_int(out: &mut Vec<u8>, n: i64) {
    match n {
        0.. => write_msgpack_uint(out, n as u64),
        -32..0 => out.push(n as i8 as u8),
        -128..-32 => out.extend_from_slice(&[0xd0, n as i8 as u8]),
        -32768..-128 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -2147483648..-32768 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// An unsigned integer in its smallest encoding.
fn write_msgpack_uint(out: &mut Vec<u8>, n: u64) {
    match n {
        0..128 => out.push(n as u8),
        128..256 => out.extend_from_slice(&[0xcc, n as u8]),
        256..65536 => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        65536..4294967296 => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0xcf);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// An array or map header (`[fix, 16, 32]` markers) inserted at `at`.
fn insert_header(out: &mut Vec<u8>, at: usize, count: usize, [fix, b16, b32]: [u8; 3]) {
    let mut header = [0u8; 5];
    let len = match count {
        0..16 => {
            header[0] = fix | count as u8;
            1
        }
        16..65536 => {
            header[0] = b16;
            header[1..3].copy_from_slice(&(count as u16).to_be_bytes());
            3
        }
        _ => {
            header[0] = b32;
            header[1..5].copy_from_slice(&(count as u32).to_be_bytes());
            5
        }
    };
    out.splice(at..at, header[..len].iter().copied());
}

/// The top map's entries, for out_file's csv, ltsv and template formats.
struct Entries<'a> {
    scratch: &'a mut Vec<u8>,
    entries: &'a mut Vec<Entry>,
}

seed!(Entries, ());

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (scratch, entries) = (self.scratch, self.entries);
        loop {
            let key_start = scratch.len();
            if map.next_key_seed(Raw { out: &mut *scratch })?.is_none() {
                return Ok(());
            }
            let value_start = scratch.len();
            let text = map.next_value_seed(Print { out: &mut *scratch })?;
            entries.push(Entry {
                key: key_start..value_start,
                value: value_start..scratch.len(),
                text,
            });
        }
    }
}
