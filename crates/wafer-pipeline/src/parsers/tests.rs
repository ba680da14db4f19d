use serde_json::json;

use super::*;

fn parser(yaml: &str) -> Result<Parser, String> {
    let config: ParserConfig = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
    Parser::new(&config)
}

fn record(parser: &Parser, line: &str) -> (Value, Option<SystemTime>) {
    let (record, time) = parser.parse(line.as_bytes()).unwrap();
    (Value::Object(record), time)
}

fn at(seconds: u64, nanos: u32) -> Option<SystemTime> {
    Some(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos))
}

/// 2024-05-06T07:08:09Z.
const T: u64 = 1_714_979_289;

#[test]
fn json_takes_the_time_key_out_unless_told_to_keep_it() {
    let p = parser("{format: json, time_key: ts, time_format: '%Y-%m-%dT%H:%M:%S.%L%z'}").unwrap();
    let (body, time) = record(&p, r#"{"a":1,"ts":"2024-05-06T09:08:09.250+0200","b":"x"}"#);
    assert_eq!(body.to_string(), r#"{"a":1,"b":"x"}"#);
    assert_eq!(time, at(T, 250_000_000));

    let keep = parser("{format: JSON, time_key: ts, time_format: '%s', time_keep: On}").unwrap();
    let (body, time) = record(&keep, r#"{"ts":"1714979289","a":1}"#);
    assert_eq!(body, json!({"ts": "1714979289", "a": 1}));
    assert_eq!(time, at(T, 0));

    // No time_format: no time, the field stays.
    let plain = parser("{format: json}").unwrap();
    assert_eq!(
        record(&plain, r#"{"time":"x"}"#),
        (json!({"time": "x"}), None)
    );
}

#[test]
fn json_keeps_a_time_that_does_not_fit_or_is_not_text() {
    let p = parser("{format: json, time_format: '%Y-%m-%d'}").unwrap();
    assert_eq!(
        record(&p, r#"{"time":"soon"}"#),
        (json!({"time": "soon"}), None)
    );
    assert_eq!(record(&p, r#"{"time":5}"#), (json!({"time": 5}), None));
}

#[test]
fn json_refuses_what_is_not_one_object() {
    let p = parser("{format: json}").unwrap();
    for line in ["[1]", "\"text\"", "{\"a\":", "{} {}", ""] {
        assert!(p.parse(line.as_bytes()).is_err(), "{line:?}");
    }
}

#[test]
fn regex_fields_come_in_pattern_order_with_the_time_taken() {
    let p = parser(
        r#"
format: regex
regex: '^(?<time>[^ ]+) (?<level>[A-Z]+) (?<message>.*)$'
time_key: time
time_format: '%Y-%m-%dT%H:%M:%S.%L%z'
"#,
    )
    .unwrap();
    let (body, time) = record(&p, "2024-05-06T07:08:09.5Z INFO hello world");
    assert_eq!(
        body.to_string(),
        r#"{"level":"INFO","message":"hello world"}"#
    );
    assert_eq!(time, at(T, 500_000_000));
    assert!(p.parse(b"no match here").is_err());
    // A time that does not fit leaves the record, and gives no time.
    let (body, time) = record(&p, "yesterday INFO late");
    assert_eq!(body, json!({"level": "INFO", "message": "late"}));
    assert_eq!(time, None);
}

#[test]
fn regex_reads_ruby_syntax() {
    // Fluent Bit's `apache2` parser, as its parsers.conf writes it.
    let apache = parser(
        r#"
format: regex
regex: '^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^ ]*) +\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>.*)")?$'
time_format: '%d/%b/%Y:%H:%M:%S %z'
types: 'code:integer size:integer'
"#,
    )
    .unwrap();
    let (body, time) = record(
        &apache,
        r#"192.168.0.1 - - [06/May/2024:02:08:09 -0500] "GET /index.html HTTP/1.1" 200 3395"#,
    );
    assert_eq!(
        body,
        json!({"host": "192.168.0.1", "user": "-", "method": "GET", "path": "/index.html", "code": 200, "size": 3395})
    );
    assert_eq!(time, at(T, 0));
    // `/pattern/i`, `\h`.
    let slashed = parser(r#"{format: regex, regex: '/^id=(?<id>\h+)$/i'}"#).unwrap();
    assert_eq!(record(&slashed, "ID=00ff").0, json!({"id": "00ff"}));
    assert!(slashed.parse(b"id=xyz").is_err());
}

#[test]
fn empty_captures_are_left_out_unless_asked_for() {
    let yaml = "{format: regex, regex: '^(?<a>x*)-(?<b>y)?$'}";
    assert_eq!(record(&parser(yaml).unwrap(), "-").0, json!({}));
    let keep = "{format: regex, regex: '^(?<a>x*)-(?<b>y)?$', skip_empty_values: false}";
    assert_eq!(
        record(&parser(keep).unwrap(), "-").0,
        json!({"a": "", "b": ""})
    );
}

#[test]
fn types_cast_as_c_reads_numbers() {
    assert_eq!(cast_value(" 42abc", Some(Cast::Integer), "k"), json!(42));
    assert_eq!(cast_value("abc", Some(Cast::Integer), "k"), json!(0));
    assert_eq!(
        cast_value("99999999999999999999", Some(Cast::Integer), "k"),
        json!(i64::MAX)
    );
    assert_eq!(cast_value("-1.5e1x", Some(Cast::Float), "k"), json!(-15.0));
    assert_eq!(cast_value("0x1F", Some(Cast::Hex), "k"), json!(31));
    assert_eq!(cast_value("TRUE", Some(Cast::Bool), "k"), json!(true));
    assert_eq!(cast_value("nope", Some(Cast::Bool), "k"), json!("nope"));
    assert_eq!(
        parse_types("a:integer b:weird c"),
        vec![("a".into(), Cast::Integer), ("b".into(), Cast::String)]
    );
}

#[test]
fn time_zone_places_times_without_a_zone() {
    // Where the host has zoneinfo (Debian's tzdata): Paris is +02:00 in May.
    if !std::path::Path::new("/usr/share/zoneinfo/Europe/Paris").exists() {
        return;
    }
    let p = parser("{format: json, time_format: '%Y-%m-%d %H:%M:%S', time_zone: Europe/Paris}")
        .unwrap();
    assert_eq!(record(&p, r#"{"time":"2024-05-06 09:08:09"}"#).1, at(T, 0));
    // A zone in the text wins.
    let zoned =
        parser("{format: json, time_format: '%Y-%m-%d %H:%M:%S%z', time_zone: Europe/Paris}")
            .unwrap();
    assert_eq!(
        record(&zoned, r#"{"time":"2024-05-06 07:08:09Z"}"#).1,
        at(T, 0)
    );
}

#[test]
fn definitions_that_cannot_work_are_refused_naming_why() {
    for (yaml, expected) in [
        ("{format: ltsv}", "not supported"),
        ("{format: xml}", "not json or regex"),
        ("{format: regex}", "needs `regex`"),
        ("{format: regex, regex: '^(a)$'}", "no named group"),
        ("{format: regex, regex: '(?<a>x)(?=y)'}", "not supported"),
        ("{format: json, time_format: '%Q'}", "%Q"),
        (
            "{format: json, time_format: '%s', time_offset: soon}",
            "time_offset",
        ),
        (
            "{format: json, time_format: '%s', time_zone: Nowhere/Else}",
            "Nowhere/Else",
        ),
        (
            "{format: json, time_format: '%s', time_zone: ../x}",
            "not an IANA zone",
        ),
        ("{format: json, time_zone: UTC}", "needs time_format"),
        (
            "{format: json, time_format: '%s', time_zone: UTC, time_offset: '+01'}",
            "combined",
        ),
        ("{format: json, decoders: x}", "unknown field"),
    ] {
        let error = parser(yaml).unwrap_err();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
}
