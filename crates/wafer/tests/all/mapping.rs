//! Every WIT type crosses JSON both ways, through a real component.

use serde_json::{Value, json};

use super::util::TYPES;

async fn call(name: &str, args: Value) -> Result<Value, wafer::Error> {
    TYPES
        .call(&format!("t:{name}"), args.as_array().unwrap().clone())
        .await
}

/// Calls `name` and checks the result.
async fn expect(name: &str, args: Value, result: Value) {
    let got = call(name, args.clone())
        .await
        .unwrap_or_else(|e| panic!("{name}({args}) failed: {e}"));
    assert_eq!(got, result, "{name}({args})");
}

/// Calls an echo function and checks the value comes back unchanged.
async fn round_trip(name: &str, value: Value) {
    expect(name, json!([value.clone()]), value).await;
}

/// Calls `name` and checks the error message.
async fn expect_error(name: &str, args: Value, message: &str) {
    match call(name, args.clone()).await {
        Ok(v) => panic!("{name}({args}) returned {v}, expected an error containing {message:?}"),
        Err(e) => assert!(
            e.to_string().contains(message),
            "{name}({args}):\nexpected: {message}\nactual:   {e}"
        ),
    }
}

#[tokio::test]
async fn numbers_bool_char_string() {
    expect("add", json!([2, 40]), json!(42)).await;
    expect(
        "echo-ints",
        json!([
            u64::MAX,
            i64::MIN,
            255,
            -128,
            65535,
            -32768,
            u32::MAX,
            i32::MIN
        ]),
        json!([
            u64::MAX,
            i64::MIN,
            255,
            -128,
            65535,
            -32768,
            u32::MAX,
            i32::MIN
        ]),
    )
    .await;
    expect(
        "echo-ints",
        json!([0, i64::MAX, 0, 127, 0, 32767, 0, i32::MAX]),
        json!([0, i64::MAX, 0, 127, 0, 32767, 0, i32::MAX]),
    )
    .await;
    round_trip("echo-char", json!("é")).await;
    round_trip("echo-char", json!("🦀")).await;
    expect("greet", json!(["bob"]), json!("hello, bob")).await;
}

#[tokio::test]
async fn floats_including_nan_and_infinities() {
    expect("echo-floats", json!([0.1, 0.1]), json!([0.1, 0.1])).await;
    expect("echo-floats", json!(["NaN", "NaN"]), json!(["NaN", "NaN"])).await;
    expect(
        "echo-floats",
        json!(["Infinity", "-Infinity"]),
        json!(["Infinity", "-Infinity"]),
    )
    .await;
    expect(
        "echo-floats",
        json!([-1.5e30, 2.5e-300]),
        json!([-1.5e30, 2.5e-300]),
    )
    .await;
    expect("echo-floats", json!([3, 4]), json!([3.0, 4.0])).await;
}

#[tokio::test]
async fn records_with_kebab_keys_and_optional_fields() {
    let user = json!({"id": 1, "name": "Alice", "tags": ["admin", "dev"], "email": "a@x.org", "active": true});
    round_trip("echo-user", user).await;
    // An option field may be omitted; it comes back as null.
    expect(
        "echo-user",
        json!([{"id": 2, "name": "Bob", "tags": [], "active": false}]),
        json!({"id": 2, "name": "Bob", "tags": [], "email": null, "active": false}),
    )
    .await;
    round_trip(
        "echo-kebab",
        json!({"first-name": "Ann", "last-seen-ms": 1_700_000_000_000u64}),
    )
    .await;
    expect(
        "add-points",
        json!([{"x": 1, "y": 2}, {"x": 10, "y": 20}]),
        json!({"x": 11, "y": 22}),
    )
    .await;
}

#[tokio::test]
async fn options_nested() {
    round_trip("nested-option", json!(null)).await;
    round_trip("nested-option", json!({"some": null})).await;
    round_trip("nested-option", json!({"some": 5})).await;
    // The payload may also be written directly when it is not null.
    expect("nested-option", json!([5]), json!({"some": 5})).await;
}

#[tokio::test]
async fn results_are_data_not_failures() {
    expect("divide", json!([7, 2]), json!({"ok": 3})).await;
    expect("divide", json!([7, 0]), json!({"err": "division by zero"})).await;
    expect("check", json!([true]), json!({"ok": null})).await;
    expect("check", json!([false]), json!({"err": null})).await;
}

#[tokio::test]
async fn variants_enums_flags_tuples_lists() {
    round_trip("echo-shape", json!({"circle": 1.5})).await;
    round_trip("echo-shape", json!({"rect": {"x": 3, "y": 4}})).await;
    round_trip("echo-shape", json!("empty")).await;
    expect("echo-shape", json!([{"empty": null}]), json!("empty")).await;
    expect("next-color", json!(["red"]), json!("green")).await;
    expect("next-color", json!([2]), json!("red")).await;
    expect("invert", json!([["read"]]), json!(["write", "exec"])).await;
    expect("invert", json!([[]]), json!(["read", "write", "exec"])).await;
    expect("swap", json!([["a", 7]]), json!([7, "a"])).await;
    expect("reverse-bytes", json!([[1, 2, 255]]), json!([255, 2, 1])).await;
    expect("nothing", json!([]), json!(null)).await;
}

#[tokio::test]
async fn deeply_nested_values() {
    round_trip(
        "deep",
        json!([null, [], [{"ok": {"x": 1, "y": 2}}, {"err": "no"}], [{"err": ""}]]),
    )
    .await;
}

#[tokio::test]
async fn argument_errors_name_parameter_path_and_type() {
    let bad_tag = json!([{"id": 1, "name": "A", "tags": ["ok", "fine", 5], "active": true}]);
    expect_error(
        "echo-user",
        bad_tag,
        "args[0] (u).tags[2]: expected string, found number 5",
    )
    .await;
    expect_error(
        "echo-user",
        json!([{"id": 1, "tags": [], "active": true}]),
        "args[0] (u).name: missing field (expected string)",
    )
    .await;
    expect_error(
        "echo-user",
        json!([{"id": 1, "name": "A", "tags": [], "active": true, "admin": true}]),
        "args[0] (u).admin: unknown field",
    )
    .await;
    expect_error(
        "add",
        json!([1]),
        "args: expected 2 argument(s) (a: s32, b: s32), found 1",
    )
    .await;
    expect_error("add", json!([1, 2, 3]), "found 3").await;
    expect_error(
        "add",
        json!([1, 2147483648u64]),
        "args[1] (b): expected s32, found number 2147483648",
    )
    .await;
    expect_error("add", json!([1, 1.5]), "expected s32, found number 1.5").await;
    expect_error(
        "echo-ints",
        json!([-1, 0, 0, 0, 0, 0, 0, 0]),
        "args[0] (a): expected u64",
    )
    .await;
    expect_error("echo-char", json!(["ab"]), "expected char").await;
    expect_error(
        "next-color",
        json!(["purple"]),
        "expected enum { red, green, blue }",
    )
    .await;
    expect_error(
        "invert",
        json!([["read", "fly"]]),
        "args[0] (p)[1]: expected a flag of flags { read, write, exec }",
    )
    .await;
    expect_error(
        "echo-shape",
        json!([{"circle": "big"}]),
        "args[0] (s).circle: expected f64",
    )
    .await;
    expect_error(
        "echo-shape",
        json!(["circle"]),
        "case `circle` needs a payload",
    )
    .await;
    expect_error(
        "divide",
        json!([1, "x"]),
        "args[1] (b): expected s32, found string \"x\"",
    )
    .await;
    expect_error("swap", json!([["a"]]), "expected tuple<string, u32>").await;
    expect_error(
        "echo-floats",
        json!([1e39, 0]),
        "args[0] (a): expected f32, found number 1e+39",
    )
    .await;
    expect_error(
        "deep",
        json!([[[{"ok": {"x": 1}}]]]),
        "args[0] (x)[0][0].ok.y: missing field",
    )
    .await;
}
