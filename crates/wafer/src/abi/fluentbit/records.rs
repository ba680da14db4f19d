//! Records across the boundary: the bytes the guest is given for a record
//! and the record read back from its answer, in either event format.
//!
//! A record is a JSON object on the host side; in msgpack mode it crosses
//! as a msgpack map, converted each way.

use std::borrow::Cow;

use bytes::Bytes;
use rmpv::Value as Pack;
use serde::de::IgnoredAny;
use serde_json::Value as Json;

use crate::registry::EventFormat;

/// What the filter answered for a record.
pub(super) enum Answer {
    /// The new record: a JSON object.
    Keep(Bytes),
    /// Drop it (NULL, or an empty string in json mode).
    Drop,
}

/// The bytes the guest gets for `record` (a JSON object): itself in json
/// mode, as a msgpack map in msgpack mode.
pub(super) fn record_for_guest(
    format: EventFormat,
    record: &[u8],
) -> Result<Cow<'_, [u8]>, String> {
    match format {
        EventFormat::Json => {
            // Fluent Bit only ever passes an object; a line of text would
            // make a guest that parses it trap.
            let text = record.trim_ascii();
            if !(text.starts_with(b"{") && text.ends_with(b"}")) {
                return Err("the record is not a JSON object".to_string());
            }
            Ok(Cow::Borrowed(record))
        }
        EventFormat::Msgpack => {
            let json: Json = serde_json::from_slice(record)
                .map_err(|e| format!("the record is not JSON ({e}), so it has no msgpack form"))?;
            let mut packed = Vec::with_capacity(record.len());
            rmpv::encode::write_value(&mut packed, &to_pack(json))
                .map_err(|e| format!("cannot encode the record as msgpack: {e}"))?;
            Ok(Cow::Owned(packed))
        }
    }
}

/// The record the guest answered at `ptr` in `memory`.
pub(super) fn read_answer(format: EventFormat, memory: &[u8], ptr: u32) -> Result<Answer, String> {
    if ptr == 0 {
        return Ok(Answer::Drop);
    }
    let Some(answer) = memory.get(ptr as usize..).filter(|rest| !rest.is_empty()) else {
        return Err(format!(
            "the filter answered {ptr:#x}, outside its memory ({} bytes)",
            memory.len()
        ));
    };
    match format {
        EventFormat::Json => read_json(answer),
        EventFormat::Msgpack => read_msgpack(answer),
    }
}

/// The first complete JSON value of `answer`, which must be an object; an
/// empty string drops the record. What follows the value is ignored: it
/// may be the rest of a freed buffer rather than a NUL.
fn read_json(answer: &[u8]) -> Result<Answer, String> {
    if answer[0] == 0 {
        return Ok(Answer::Drop);
    }
    let start = answer
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(answer.len());
    let mut values =
        serde_json::Deserializer::from_slice(&answer[start..]).into_iter::<IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => {}
        Some(Err(e)) => return Err(format!("the filter's answer is not JSON: {e}")),
        None => return Err("the filter's answer is not JSON: it is blank".to_string()),
    }
    let end = start + values.byte_offset();
    if answer[start] != b'{' {
        let what = describe_json(answer[start]);
        return Err(format!("the filter answered {what}, not a JSON object"));
    }
    // serde skips over strings without checking their UTF-8: a record's
    // bytes are UTF-8 JSON, so what is not becomes U+FFFD.
    let value = &answer[start..end];
    Ok(Answer::Keep(match std::str::from_utf8(value) {
        Ok(_) => Bytes::copy_from_slice(value),
        Err(_) => Bytes::from(String::from_utf8_lossy(value).into_owned()),
    }))
}

/// "a JSON array", "a JSON string"... from a value's first byte.
fn describe_json(first: u8) -> &'static str {
    match first {
        b'[' => "a JSON array",
        b'"' => "a JSON string",
        b't' | b'f' => "a JSON boolean",
        b'n' => "JSON null",
        _ => "a JSON number",
    }
}

/// Exactly one msgpack value from `answer`, which must be a map: what
/// follows is ignored, and zero bytes inside it are data.
fn read_msgpack(answer: &[u8]) -> Result<Answer, String> {
    let mut reader = answer;
    let value = rmpv::decode::read_value(&mut reader)
        .map_err(|e| format!("the filter's answer is not msgpack: {e}"))?;
    if !value.is_map() {
        return Err(format!(
            "the filter answered msgpack {}, not a map",
            describe_pack(&value)
        ));
    }
    let json = serde_json::to_vec(&to_json(value))
        .map_err(|e| format!("cannot render the filter's answer as JSON: {e}"))?;
    Ok(Answer::Keep(Bytes::from(json)))
}

fn describe_pack(value: &Pack) -> &'static str {
    match value {
        Pack::Nil => "nil",
        Pack::Boolean(_) => "a boolean",
        Pack::Integer(_) | Pack::F32(_) | Pack::F64(_) => "a number",
        Pack::String(_) => "a string",
        Pack::Binary(_) => "binary",
        Pack::Array(_) => "an array",
        Pack::Map(_) => "a map",
        Pack::Ext(..) => "an extension",
    }
}

/// A JSON value as msgpack.
fn to_pack(json: Json) -> Pack {
    match json {
        Json::Null => Pack::Nil,
        Json::Bool(b) => Pack::Boolean(b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Pack::from(u),
            (None, Some(i)) => Pack::from(i),
            _ => Pack::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Pack::from(s),
        Json::Array(items) => Pack::Array(items.into_iter().map(to_pack).collect()),
        Json::Object(map) => Pack::Map(
            map.into_iter()
                .map(|(k, v)| (Pack::from(k), to_pack(v)))
                .collect(),
        ),
    }
}

/// A msgpack value as JSON, as Fluent Bit renders one: binary and strings
/// that are not UTF-8 become (lossy) strings, map keys that are not
/// strings their JSON text, extensions null.
fn to_json(pack: Pack) -> Json {
    match pack {
        Pack::Nil | Pack::Ext(..) => Json::Null,
        Pack::Boolean(b) => Json::Bool(b),
        Pack::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Json::from(u),
            (None, Some(i)) => Json::from(i),
            _ => Json::Null,
        },
        Pack::F32(f) => float(f64::from(f)),
        Pack::F64(f) => float(f),
        Pack::String(s) => Json::String(lossy(s)),
        Pack::Binary(bytes) => Json::String(String::from_utf8_lossy(&bytes).into_owned()),
        Pack::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Pack::Map(entries) => Json::Object(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Pack::String(s) => lossy(s),
                        Pack::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

/// A msgpack string as text: one that is not UTF-8 keeps what it can.
fn lossy(s: rmpv::Utf8String) -> String {
    match String::from_utf8(s.into_bytes()) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A float as JSON: JSON has no NaN or infinity, so those are null.
fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(answer: Result<Answer, String>) -> String {
        match answer {
            Ok(Answer::Keep(bytes)) => String::from_utf8(bytes.to_vec()).unwrap(),
            Ok(Answer::Drop) => "dropped".into(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn json_answers_take_the_first_value_and_need_an_object() {
        let json = |bytes: &[u8]| kept(read_answer(EventFormat::Json, bytes, 1));
        assert_eq!(json(b"x{\"a\":1}\0"), r#"{"a":1}"#);
        // No NUL, the rest of a freed buffer after it.
        assert_eq!(json(b"x{\"a\":[1,2]}\x01\xffgarbage"), r#"{"a":[1,2]}"#);
        assert_eq!(json(b"x\0{}"), "dropped");
        assert_eq!(kept(read_answer(EventFormat::Json, b"{}", 0)), "dropped");
        assert!(json(b"x[1,2]\0").contains("a JSON array, not a JSON object"));
        assert!(json(b"x{\"a\":").contains("not JSON"));
        assert!(json(b"xnot json").contains("not JSON"));
        assert!(kept(read_answer(EventFormat::Json, b"{}", 9)).contains("outside its memory"));
    }

    #[test]
    fn a_record_that_is_not_an_object_never_reaches_the_guest() {
        assert!(record_for_guest(EventFormat::Json, b" {\"a\":1}\n").is_ok());
        for record in [&b"plain text"[..], b"[1]", b"", b"{"] {
            let refused = record_for_guest(EventFormat::Json, record).unwrap_err();
            assert_eq!(refused, "the record is not a JSON object");
        }
        assert!(record_for_guest(EventFormat::Msgpack, b"not json").is_err());
    }

    #[test]
    fn an_answer_that_is_not_utf8_is_kept_as_valid_text() {
        let answer = b"x{\"a\":\"\xff\"}\0";
        assert_eq!(
            kept(read_answer(EventFormat::Json, answer, 1)),
            "{\"a\":\"\u{fffd}\"}"
        );
    }

    #[test]
    fn msgpack_records_keep_their_zero_bytes() {
        let record = br#"{"log":"a\u0000b","n":-3,"f":1.5,"ok":true,"list":[null]}"#;
        let packed = record_for_guest(EventFormat::Msgpack, record).unwrap();
        assert!(packed.contains(&0), "the zero byte crosses as data");
        let mut memory = vec![0xAA];
        memory.extend_from_slice(&packed);
        memory.extend_from_slice(b"\x00trailing");
        assert_eq!(
            kept(read_answer(EventFormat::Msgpack, &memory, 1)),
            r#"{"log":"a\u0000b","n":-3,"f":1.5,"ok":true,"list":[null]}"#
        );
        let array = [0xAA, 0x92, 0x01, 0x02];
        assert!(kept(read_answer(EventFormat::Msgpack, &array, 1)).contains("an array, not a map"));
    }
}
