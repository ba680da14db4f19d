//! The command guests (src/bin, wasm32-wasip1) export wasi-libc's own
//! `malloc` and `free`, as TinyGo's do: defining our own would collide with
//! libc's. rustc already exports a wasm binary's `no_mangle` functions (so
//! `process`), `--export=process` only makes sure.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("wasi") {
        for symbol in ["process", "malloc", "free"] {
            println!("cargo:rustc-link-arg-bins=--export={symbol}");
        }
    }
}
