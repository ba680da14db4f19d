//! Finding the function an entry's `method` names inside a component.
//!
//! `method` is `func` (a function exported by the component itself),
//! `iface#func` (a function of an exported interface, matched on the
//! interface's short name, `pkg:ns/iface@1.0` → `iface`) or
//! `pkg:ns/iface#func` (matched exactly, with or without the version).

use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex};

/// The export `method` names: its index (to find it in an instance) and
/// its type.
pub(crate) fn find_function(
    engine: &Engine,
    component: &Component,
    method: &str,
) -> Result<(ComponentExportIndex, ComponentFunc), String> {
    let ty = component.component_type();
    let not_found = || {
        format!(
            "the component has no export `{method}` (it exports: {})",
            list_functions(engine, component)
        )
    };
    let Some((interface, func)) = method.split_once('#') else {
        let Some(ComponentItem::ComponentFunc(func_ty)) =
            ty.get_export(engine, method).map(|e| e.ty)
        else {
            return Err(not_found());
        };
        let index = component
            .get_export_index(None, method)
            .ok_or_else(not_found)?;
        return Ok((index, func_ty));
    };
    let matches: Vec<String> = ty
        .exports(engine)
        .filter(|(name, item)| {
            matches!(item.ty, ComponentItem::ComponentInstance(_))
                && interface_matches(name, interface)
        })
        .map(|(name, _)| name.to_string())
        .collect();
    let instance_name = match matches.as_slice() {
        [one] => one,
        [] => return Err(not_found()),
        many => {
            return Err(format!(
                "`{interface}` is ambiguous: {}; write the full name",
                many.join(", ")
            ));
        }
    };
    let Some(ComponentItem::ComponentInstance(instance_ty)) =
        ty.get_export(engine, instance_name).map(|e| e.ty)
    else {
        return Err(not_found());
    };
    let Some(ComponentItem::ComponentFunc(func_ty)) =
        instance_ty.get_export(engine, func).map(|e| e.ty)
    else {
        return Err(not_found());
    };
    let instance_index = component
        .get_export_index(None, instance_name)
        .ok_or_else(not_found)?;
    let index = component
        .get_export_index(Some(&instance_index), func)
        .ok_or_else(not_found)?;
    Ok((index, func_ty))
}

/// Whether an exported instance `name` (`pkg:ns/iface@1.0`, or a plain
/// `iface`) is what `wanted` names.
fn interface_matches(name: &str, wanted: &str) -> bool {
    if wanted.contains('/') {
        return name == wanted || unversioned(name) == wanted;
    }
    short_name(name) == wanted
}

/// `pkg:ns/iface@1.0` → `pkg:ns/iface`.
fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// `pkg:ns/iface@1.0` → `iface`; a plain `iface` stays as it is.
fn short_name(name: &str) -> &str {
    let unversioned = unversioned(name);
    unversioned
        .rsplit_once('/')
        .map_or(unversioned, |(_, iface)| iface)
}

/// Every callable export, written as a `method` would name it.
fn list_functions(engine: &Engine, component: &Component) -> String {
    let mut names = Vec::new();
    for (name, item) in component.component_type().exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(_) => names.push(name.to_string()),
            ComponentItem::ComponentInstance(instance) => {
                let short = short_name(name);
                for (func, item) in instance.exports(engine) {
                    if matches!(item.ty, ComponentItem::ComponentFunc(_)) {
                        names.push(format!("{short}#{func}"));
                    }
                }
            }
            _ => {}
        }
    }
    if names.is_empty() {
        "no functions".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::interface_matches;

    #[test]
    fn interface_names_match_short_and_full() {
        assert!(interface_matches("wafer:test/api@0.1.0", "api"));
        assert!(interface_matches("wafer:test/api@0.1.0", "wafer:test/api"));
        assert!(interface_matches(
            "wafer:test/api@0.1.0",
            "wafer:test/api@0.1.0"
        ));
        assert!(interface_matches("test-sleep", "test-sleep"));
        assert!(!interface_matches("wafer:test/api", "other:test/api"));
    }
}
