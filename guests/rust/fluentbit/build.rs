//! `fb_filter_log` is a `wasm` filter built as a wasip1 command, as TinyGo
//! builds Fluent Bit's filters: it exports its filter function and
//! wasi-libc's own `malloc` and `free` (defining our own would collide with
//! libc's). The other programs export nothing more.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("wasi") {
        for symbol in ["filter_log", "malloc", "free"] {
            println!("cargo:rustc-link-arg-bin=fb_filter_log=--export={symbol}");
        }
    }
}
