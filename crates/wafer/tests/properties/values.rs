//! JSON ↔ WIT: for the parameter types of every function of the types
//! guest (every kind of WIT value), any valid value goes to JSON and back
//! unchanged, and any JSON at all is converted or refused without a panic.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, Val};
use wasmtime::{Config, Engine};

use super::alloc::peak_during;

/// Converting a few KiB of JSON never needs more than this.
const CONVERSION_PEAK: usize = 16 << 20;

/// The parameter types of every exported function of the types guest.
fn types() -> &'static [(String, Type)] {
    static TYPES: OnceLock<Vec<(String, Type)>> = OnceLock::new();
    TYPES.get_or_init(|| {
        let engine = Engine::new(Config::new().wasm_component_model(true)).unwrap();
        let bytes = std::fs::read(wafer_guests::P2_TYPES).expect("guests are built");
        let component = Component::new(&engine, bytes).unwrap();
        let mut found = Vec::new();
        let mut items: Vec<(String, ComponentItem)> = component
            .component_type()
            .exports(&engine)
            .map(|(name, item)| (name.to_string(), item.ty))
            .collect();
        while let Some((name, item)) = items.pop() {
            match item {
                ComponentItem::ComponentInstance(instance) => items.extend(
                    instance
                        .exports(&engine)
                        .map(|(inner, item)| (format!("{name}#{inner}"), item.ty)),
                ),
                ComponentItem::ComponentFunc(func) => found.extend(
                    func.params()
                        .map(|(param, ty)| (format!("{name}({param})"), ty)),
                ),
                _ => {}
            }
        }
        assert!(
            found.len() > 20,
            "the types guest has a parameter of every kind"
        );
        found
    })
}

/// Any value of type `ty`.
fn val(ty: &Type, depth: u32) -> BoxedStrategy<Val> {
    let small = |n| if depth > 3 { 0..2 } else { 0..n };
    match ty {
        Type::Bool => any::<bool>().prop_map(Val::Bool).boxed(),
        Type::S8 => any::<i8>().prop_map(Val::S8).boxed(),
        Type::U8 => any::<u8>().prop_map(Val::U8).boxed(),
        Type::S16 => any::<i16>().prop_map(Val::S16).boxed(),
        Type::U16 => any::<u16>().prop_map(Val::U16).boxed(),
        Type::S32 => any::<i32>().prop_map(Val::S32).boxed(),
        Type::U32 => any::<u32>().prop_map(Val::U32).boxed(),
        Type::S64 => any::<i64>().prop_map(Val::S64).boxed(),
        Type::U64 => any::<u64>().prop_map(Val::U64).boxed(),
        // NaN is not equal to itself; it round-trips as "NaN" (unit tests).
        Type::Float32 => any::<f32>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(Val::Float32)
            .boxed(),
        Type::Float64 => any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(Val::Float64)
            .boxed(),
        Type::Char => any::<char>().prop_map(Val::Char).boxed(),
        Type::String => ".{0,20}".prop_map(Val::String).boxed(),
        Type::List(list) => proptest::collection::vec(val(&list.ty(), depth + 1), small(5))
            .prop_map(Val::List)
            .boxed(),
        Type::FixedLengthList(list) => {
            let items = vec![val(&list.ty(), depth + 1); list.len() as usize];
            items.prop_map(Val::FixedLengthList).boxed()
        }
        Type::Tuple(tuple) => {
            let items: Vec<_> = tuple.types().map(|t| val(&t, depth + 1)).collect();
            items.prop_map(Val::Tuple).boxed()
        }
        Type::Record(record) => {
            let fields: Vec<_> = record
                .fields()
                .map(|field| {
                    let name = field.name.to_string();
                    val(&field.ty, depth + 1).prop_map(move |v| (name.clone(), v))
                })
                .collect();
            fields.prop_map(Val::Record).boxed()
        }
        Type::Option(option) => proptest::option::of(val(&option.ty(), depth + 1))
            .prop_map(|v| Val::Option(v.map(Box::new)))
            .boxed(),
        Type::Result(result) => {
            let side = |ty: Option<Type>| match ty {
                Some(ty) => val(&ty, depth + 1).prop_map(|v| Some(Box::new(v))).boxed(),
                None => Just(None).boxed(),
            };
            prop_oneof![
                side(result.ok()).prop_map(|v| Val::Result(Ok(v))),
                side(result.err()).prop_map(|v| Val::Result(Err(v))),
            ]
            .boxed()
        }
        Type::Variant(variant) => {
            let cases: Vec<BoxedStrategy<Val>> = variant
                .cases()
                .map(|case| {
                    let name = case.name.to_string();
                    match case.ty {
                        Some(ty) => val(&ty, depth + 1)
                            .prop_map(move |v| Val::Variant(name.clone(), Some(Box::new(v))))
                            .boxed(),
                        None => Just(Val::Variant(name, None)).boxed(),
                    }
                })
                .collect();
            proptest::strategy::Union::new(cases).boxed()
        }
        Type::Enum(names) => {
            let names: Vec<String> = names.names().map(str::to_string).collect();
            proptest::sample::select(names).prop_map(Val::Enum).boxed()
        }
        Type::Flags(flags) => {
            let names: Vec<String> = flags.names().map(str::to_string).collect();
            proptest::sample::subsequence(names.clone(), 0..=names.len())
                .prop_map(Val::Flags)
                .boxed()
        }
        other => panic!("the types guest has no parameter of type {other:?}"),
    }
}

/// Any JSON at all, to throw at every parameter type.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
        prop_oneof![
            Just("NaN"),
            Just("Infinity"),
            Just("ok"),
            Just("err"),
            Just("some")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z-]{0,6}|ok|err|some", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A parameter of the types guest, with a value of its type.
fn typed_value() -> impl Strategy<Value = (String, Type, Val)> {
    proptest::sample::select((0..types().len()).collect::<Vec<_>>()).prop_flat_map(|i| {
        let (name, ty) = types()[i].clone();
        val(&ty, 0).prop_map(move |v| (name.clone(), ty.clone(), v))
    })
}

proptest! {
    #![proptest_config(super::config())]

    #[test]
    fn every_valid_value_round_trips_through_json((name, ty, value) in typed_value()) {
        let json = wafer::values::into_json(value.clone());
        let back = wafer::values::from_json(&ty, json.clone());
        prop_assert_eq!(back.as_ref(), Ok(&value), "{} via {}", name, json);
    }

    #[test]
    fn any_json_is_converted_or_refused_without_panic(
        index in any::<proptest::sample::Index>(),
        json in json(),
    ) {
        let (name, ty) = &types()[index.index(types().len())];
        let text = json.to_string();
        let (converted, peak) = peak_during(|| wafer::values::from_json(ty, json));
        if let Err(error) = &converted {
            prop_assert!(!error.message.is_empty(), "{name}: {text}");
        }
        prop_assert!(peak < CONVERSION_PEAK, "{peak} bytes converting {} bytes of JSON", text.len());
    }
}
