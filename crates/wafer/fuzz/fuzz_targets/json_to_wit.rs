//! Any JSON for every parameter type of the types guest (every kind of WIT
//! value): converting never panics, and what converts goes back to JSON
//! and converts again to the same value.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

fn types() -> &'static [Type] {
    static TYPES: OnceLock<Vec<Type>> = OnceLock::new();
    TYPES.get_or_init(|| {
        let engine = Engine::new(Config::new().wasm_component_model(true)).unwrap();
        let path = std::env::var("WAFER_FUZZ_TYPES")
            .expect("WAFER_FUZZ_TYPES names the types guest (p2_types.wasm)");
        let bytes = std::fs::read(path).unwrap();
        let component = Component::new(&engine, bytes).unwrap();
        let mut found = Vec::new();
        let mut items: Vec<ComponentItem> = component
            .component_type()
            .exports(&engine)
            .map(|(_, item)| item.ty)
            .collect();
        while let Some(item) = items.pop() {
            match item {
                ComponentItem::ComponentInstance(instance) => {
                    items.extend(instance.exports(&engine).map(|(_, item)| item.ty))
                }
                ComponentItem::ComponentFunc(func) => found.extend(func.params().map(|(_, ty)| ty)),
                _ => {}
            }
        }
        found
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    let ty = &types()[usize::from(which) % types().len()];
    if let Ok(value) = wafer::values::from_json(ty, json) {
        let again = wafer::values::from_json(ty, wafer::values::into_json(value.clone()));
        // NaN is not equal to itself: compare through JSON text then.
        match again {
            Ok(again) if again == value => {}
            Ok(again) => assert_eq!(
                wafer::values::into_json(again).to_string(),
                wafer::values::into_json(value).to_string()
            ),
            Err(e) => panic!("a converted value does not convert back: {e}"),
        }
    }
});
