//! Expected strings from Fluent Bit's own tests (tests/internal/pack.c and
//! its data in tests/internal/data/pack) and from its code's printf
//! formats.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wafer::Message;

use super::*;

/// A record of `body` with tag `tag`, made at `sec.nsec`.
fn record(body: &str, tag: &str, sec: u64, nsec: u32) -> Message {
    let mut message = Message::new(body.to_string()).with_meta(TAG, tag);
    message.timestamp = UNIX_EPOCH + Duration::new(sec, nsec);
    message
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn printed(message: &Message) -> String {
    let mut out = Vec::new();
    Renderer::new().print(&mut out, 0, message);
    text(out)
}

fn chunk(format: Format, date: &JsonDate, batch: &[Message]) -> String {
    let mut out = Vec::new();
    Renderer::new().chunk(&mut out, format, date, batch);
    text(out)
}

fn date(format: DateFormat) -> JsonDate {
    JsonDate {
        key: Some("date".into()),
        format,
    }
}

#[test]
fn stdout_prints_as_msgpack_object_print() {
    let dummy = record(
        r#"{"message":"dummy"}"#,
        "dummy.0",
        1_700_000_000,
        123_456_789,
    );
    assert_eq!(
        printed(&dummy),
        "[0] dummy.0: [[1700000000.123456789, {}], {\"message\"=>\"dummy\"}]\n"
    );
    let mixed = record(
        r#"{"int":1,"neg":-2,"float":1.5,"whole":2.0,"e":1e3,"t":true,"f":false,"n":null,
            "arr":[1,"a",[]],"map":{"k":"v","e":{}},"esc":"a\"b\\c\u00e9"}"#,
        "",
        5,
        7,
    );
    // Strings are written raw, as msgpack-c prints them.
    assert_eq!(
        printed(&mixed),
        "[0] : [[5.000000007, {}], {\"int\"=>1, \"neg\"=>-2, \"float\"=>1.500000, \
         \"whole\"=>2.000000, \"e\"=>1000.000000, \"t\"=>true, \"f\"=>false, \"n\"=>nil, \
         \"arr\"=>[1, \"a\", []], \"map\"=>{\"k\"=>\"v\", \"e\"=>{}}, \"esc\"=>\"a\"b\\cé\"}]\n"
    );
    let mut out = Vec::new();
    let mut renderer = Renderer::new();
    for (i, message) in [&dummy, &dummy].into_iter().enumerate() {
        renderer.print(&mut out, i, message);
    }
    assert!(
        text(out).starts_with("[0] dummy.0: [[")
            && printed(&dummy).contains("[[1700000000.123456789")
    );
}

#[test]
fn json_dates_are_written_as_pack_c_expects() {
    // tests/internal/pack.c: 123456789.123456789, {"aa":"bb"}.
    let batch = [record(r#"{"aa":"bb"}"#, "t", 123_456_789, 123_456_789)];
    let cases = [
        (DateFormat::Iso8601, r#""1973-11-29T21:33:09.123456Z""#),
        // pack.c looks for "123456789.123456" in it: %.16g.
        (DateFormat::Double, "123456789.1234568"),
        (
            DateFormat::JavaSqlTimestamp,
            r#""1973-11-29 21:33:09.123456""#,
        ),
        (DateFormat::Epoch, "123456789"),
        (DateFormat::EpochMs, "123456789123"),
    ];
    for (format, value) in cases {
        assert_eq!(
            chunk(Format::Json, &date(format), &batch),
            format!(r#"[{{"date":{value},"aa":"bb"}}]"#),
            "{format:?}"
        );
    }
    // A whole second is a whole float: %.1f.
    let whole = [record(r#"{"aa":"bb"}"#, "t", 1_700_000_000, 0)];
    assert_eq!(
        chunk(Format::JsonStream, &JsonDate::default(), &whole),
        r#"{"date":1700000000.0,"aa":"bb"}"#
    );
}

#[test]
fn repeated_keys_keep_the_last_as_dup_keys_out_json() {
    // tests/internal/data/pack/dup_keys_in.json, out through json_lines
    // with an epoch date key, gives dup_keys_out.json: the body's `date`
    // drops the date key too.
    let body = r#"{"date": 872835240, "map": {"sub1": false, "sub2": "aaa", "sub3": "bbb", "sub1": null, "sub1": true}, "key1": 12345, "key2": 444, "date": 1059113640, "key1": 333}"#;
    let batch = [record(body, "t", 1_601_487_301, 0)];
    assert_eq!(
        chunk(Format::JsonLines, &date(DateFormat::Epoch), &batch),
        "{\"map\":{\"sub2\":\"aaa\",\"sub3\":\"bbb\",\"sub1\":true},\"key2\":444,\"date\":1059113640,\"key1\":333}\n"
    );
    // The date key alone goes when the body repeats it first.
    let first = [record(r#"{"date":"mine","a":1}"#, "t", 1, 0)];
    assert_eq!(
        chunk(Format::JsonStream, &JsonDate::default(), &first),
        r#"{"date":"mine","a":1}"#
    );
    let only = [record(r#"{"date":"mine"}"#, "t", 1, 0)];
    assert_eq!(
        chunk(Format::JsonStream, &JsonDate::default(), &only),
        r#"{"date":"mine"}"#
    );
}

#[test]
fn strings_escape_as_the_utf8_tests_expect() {
    // tests/internal/data/pack/{utf8_*,mixed_*}: .txt packed, .json expected.
    let cases = [
        ("©", r#""\u00a9""#),
        ("𩸽", r#""\ud867\ude3d""#),
        ("🔔", r#""\ud83d\udd14""#),
        (
            "mixed_001 => \u{1b}[1;34mI\u{1b}[0m test\n",
            r#""mixed_001 => \u001b[1;34mI\u001b[0m test\n""#,
        ),
        (
            "mixed_002 =>\n\n  áéíóú\n\n\n'\n\\t\n",
            r#""mixed_002 =>\n\n  \u00e1\u00e9\u00ed\u00f3\u00fa\n\n\n'\n\\t\n""#,
        ),
        ("\u{7f}/\u{8}\u{c}\r\t\"", r#""\u007f/\b\f\r\t\"""#),
    ];
    for (raw, expected) in cases {
        let mut out = Vec::new();
        walk::write_json_str(&mut out, raw);
        assert_eq!(text(out), expected);
    }
}

#[test]
fn json_formats_frame_a_chunk_as_flb_pack_does() {
    let batch = [
        record(r#"{"a":1}"#, "t", 1, 500_000_000),
        record(r#"{"b":[1.5,-3,1e300,0.1]}"#, "t", 2, 0),
    ];
    let no_date = JsonDate {
        key: None,
        format: DateFormat::Double,
    };
    assert_eq!(
        chunk(Format::Json, &no_date, &batch),
        r#"[{"a":1},{"b":[1.5,-3,1e+300,0.1]}]"#
    );
    assert_eq!(
        chunk(Format::JsonLines, &JsonDate::default(), &batch),
        "{\"date\":1.5,\"a\":1}\n{\"date\":2.0,\"b\":[1.5,-3,1e+300,0.1]}\n"
    );
    assert_eq!(
        chunk(Format::JsonStream, &no_date, &batch),
        r#"{"a":1}{"b":[1.5,-3,1e+300,0.1]}"#
    );
    assert_eq!(chunk(Format::Json, &no_date, &[]), "");
}

#[test]
fn floats_are_written_as_c_writes_them() {
    let general = |value: f64| {
        let mut out = Vec::new();
        write_json_float(&mut out, value);
        text(out)
    };
    assert_eq!(general(0.1), "0.1");
    assert_eq!(general(1.0 / 3.0), "0.3333333333333333");
    assert_eq!(general(1e-5), "1e-05");
    assert_eq!(general(0.0001), "0.0001");
    assert_eq!(general(123456789012345678.0), "123456789012345680.0");
    assert_eq!(general(1e20), "1e+20");
    assert_eq!(general(-2.5), "-2.5");
    assert_eq!(general(1234567890123456.7), "1234567890123457");
    // %.16g itself, around its switches (Python's '%.16g' as reference).
    let g16 = |value: f64| {
        let mut out = Vec::new();
        write_general(&mut out, value, 16);
        text(out)
    };
    assert_eq!(g16(9_999_999_999.999_998), "9999999999.999998");
    assert_eq!(g16(99_999.999_999_999_99), "99999.99999999999");
    assert_eq!(g16(0.300_000_000_000_000_04), "0.3");
    assert_eq!(g16(f64::MAX), "1.797693134862316e+308");
    assert_eq!(g16(5e-324), "4.940656458412465e-324");
    assert_eq!(g16(0.000_012_34), "1.234e-05");
    assert_eq!(g16(999_999_999_999_999.9), "999999999999999.9");
    assert_eq!(g16(1_700_000_000.123_456_7), "1700000000.123457");
    assert_eq!(g16(1e15 + 0.3), "1000000000000000");
    assert_eq!(g16(1e16 + 2.0), "1e+16");
    let fixed = |value: f64| {
        let mut out = Vec::new();
        write_fixed6(&mut out, value);
        text(out)
    };
    assert_eq!(fixed(1_700_000_000.123_456_7), "1700000000.123457");
    assert_eq!(fixed(-0.5), "-0.500000");
}

#[test]
fn a_body_that_is_not_an_object_is_a_log_record() {
    let line = record("plain text", "t", 1, 0);
    assert_eq!(
        printed(&line),
        "[0] t: [[1.000000000, {}], {\"log\"=>\"plain text\"}]\n"
    );
    let broken = record(r#"{"a": 1, "#, "t", 1, 0);
    let mut out = Vec::new();
    Renderer::new().json_body(&mut out, &broken);
    assert_eq!(text(out), r#"{"log":"{\"a\": 1, "}"#);
}

#[test]
fn out_file_formats() {
    let message = record(
        r#"{"message":"dummy","n":1.5,"b":true}"#,
        "dummy.0",
        1_700_000_000,
        123_456_789,
    );
    let mut renderer = Renderer::new();
    let mut out = Vec::new();
    renderer.file_line(&mut out, &message);
    renderer.json_body(&mut out, &message);
    out.push(b'\n');
    renderer.csv(&mut out, &message, ",", true);
    renderer.csv(&mut out, &message, "\t", false);
    renderer.ltsv(&mut out, &message, "\t", ":");
    renderer.template(
        &mut out,
        &message,
        "{time} {message} {n} {b} {missing} {a{message}} {t} {} {unclosed",
    );
    assert_eq!(
        text(out),
        "dummy.0: [1700000000.123456789, {\"message\":\"dummy\",\"n\":1.5,\"b\":true}]\n\
         {\"message\":\"dummy\",\"n\":1.5,\"b\":true}\n\
         timestamp,\"message\",\"n\",\"b\"\n\
         1700000000.123456789,\"dummy\",1.500000,true\n\
         1700000000.123456789\t\"dummy\"\t1.500000\ttrue\n\
         \"time\":1700000000.123457\t\"message\":\"dummy\"\t\"n\":1.500000\t\"b\":true\n\
         1700000000.123457 dummy 1.500000 true {missing} {adummy} 1700000000.123457 1700000000.123457 {unclosed\n"
    );
    // An empty record has no csv or ltsv line.
    let empty = record("{}", "t", 1, 0);
    let mut out = Vec::new();
    renderer.csv(&mut out, &empty, ",", true);
    renderer.ltsv(&mut out, &empty, "\t", ":");
    assert!(out.is_empty());
}

#[test]
fn msgpack_is_the_chunk_s_record() {
    let message = record(
        r#"{"s":"dummy","i":300,"neg":-40,"big":18446744073709551615,"f":0.5,"a":[null,false],"m":{}}"#,
        "t",
        1_700_000_000,
        123_456_789,
    );
    let mut out = Vec::new();
    Renderer::new().msgpack(&mut out, &message);
    let mut expected = vec![0x92, 0x92, 0xd7, 0x00];
    expected.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    expected.extend_from_slice(&123_456_789u32.to_be_bytes());
    expected.push(0x80);
    expected.push(0x87);
    expected.extend_from_slice(b"\xa1s\xa5dummy");
    expected.extend_from_slice(b"\xa1i\xcd\x01\x2c");
    expected.extend_from_slice(b"\xa3neg\xd0\xd8");
    expected.extend_from_slice(b"\xa3big\xcf\xff\xff\xff\xff\xff\xff\xff\xff");
    expected.extend_from_slice(b"\xa1f\xcb");
    expected.extend_from_slice(&0.5f64.to_be_bytes());
    expected.extend_from_slice(b"\xa1a\x92\xc0\xc2");
    expected.extend_from_slice(b"\xa1m\x80");
    assert_eq!(out, expected);
    // Long strings and maps take the wider headers.
    let wide: String = (0..20)
        .map(|i| format!("\"k{i}\":\"{}\",", "x".repeat(40)))
        .collect();
    let wide = record(&format!("{{{}}}", wide.trim_end_matches(',')), "t", 0, 0);
    let mut out = Vec::new();
    Renderer::new().msgpack(&mut out, &wide);
    // After the 13 bytes of `[[time, {}],`.
    assert_eq!(&out[13..16], &[0xde, 0x00, 20]);
    assert_eq!(&out[16..19], b"\xa2k0");
    assert_eq!(&out[19..21], &[0xd9, 40]);
}

#[test]
fn before_the_epoch_the_nanoseconds_stay_positive() {
    let time = UNIX_EPOCH - Duration::new(1, 250_000_000);
    assert_eq!(event_time(time), (-2, 750_000_000));
    assert_eq!(event_time(SystemTime::UNIX_EPOCH), (0, 0));
}

#[test]
fn spellings_are_fluent_bit_s() {
    assert_eq!(Format::parse("JSON_Lines"), Ok(Format::JsonLines));
    assert!(Format::parse("otlp_json").is_err());
    assert_eq!(DateFormat::parse("epoch_millis"), Ok(DateFormat::EpochMs));
    assert_eq!(JsonDate::from_fields(Some("off"), None).unwrap().key, None);
    assert_eq!(
        JsonDate::from_fields(Some("ts"), Some("iso8601")).unwrap(),
        JsonDate {
            key: Some("ts".into()),
            format: DateFormat::Iso8601
        }
    );
}
