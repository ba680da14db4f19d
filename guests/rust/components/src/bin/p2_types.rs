//! A wasm32-wasip2 component exporting every kind of WIT value (see
//! wit/types.wit). Built by guests/artifacts.

wit_bindgen::generate!({ path: "wit", world: "guest" });

use exports::wafer::test::types::{Color, Guest as Types, KebabCaseKeys, Perms, Point, Shape, User};
use std::sync::atomic::{AtomicU32, Ordering};

struct Component;

static CALLS: AtomicU32 = AtomicU32::new(0);
static MISBEHAVE_CALLS: AtomicU32 = AtomicU32::new(0);

impl Guest for Component {
    fn add(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

impl Types for Component {
    fn echo_user(u: User) -> User {
        u
    }
    fn add_points(a: Point, b: Point) -> Point {
        Point { x: a.x + b.x, y: a.y + b.y }
    }
    fn echo_kebab(k: KebabCaseKeys) -> KebabCaseKeys {
        k
    }
    fn nested_option(x: Option<Option<i32>>) -> Option<Option<i32>> {
        x
    }
    fn divide(a: i32, b: i32) -> Result<i32, String> {
        if b == 0 { Err("division by zero".to_string()) } else { Ok(a / b) }
    }
    fn check(ok: bool) -> Result<(), ()> {
        if ok { Ok(()) } else { Err(()) }
    }
    fn echo_shape(s: Shape) -> Shape {
        s
    }
    fn next_color(c: Color) -> Color {
        match c {
            Color::Red => Color::Green,
            Color::Green => Color::Blue,
            Color::Blue => Color::Red,
        }
    }
    fn invert(p: Perms) -> Perms {
        Perms::all() - p
    }
    fn swap(t: (String, u32)) -> (u32, String) {
        (t.1, t.0)
    }
    fn echo_char(c: char) -> char {
        c
    }
    fn echo_ints(a: u64, b: i64, c: u8, d: i8, e: u16, f: i16, g: u32, h: i32) -> (u64, i64, u8, i8, u16, i16, u32, i32) {
        (a, b, c, d, e, f, g, h)
    }
    fn echo_floats(a: f32, b: f64) -> (f32, f64) {
        (a, b)
    }
    fn reverse_bytes(mut b: Vec<u8>) -> Vec<u8> {
        b.reverse();
        b
    }
    fn deep(x: Vec<Option<Vec<Result<Point, String>>>>) -> Vec<Option<Vec<Result<Point, String>>>> {
        x
    }
    fn greet(name: String) -> String {
        println!("greeting {name}");
        eprintln!("a line on stderr");
        format!("hello, {name}")
    }
    fn nothing() {}
    fn counter() -> u32 {
        CALLS.fetch_add(1, Ordering::Relaxed) + 1
    }
    fn boom() {
        panic!("boom on purpose");
    }
    fn spin() {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    fn sleep_ms(ms: u32) -> u32 {
        println!("sleeping {ms} ms");
        std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
        ms
    }
    fn env_var(name: String) -> Option<String> {
        std::env::var(name).ok()
    }
    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
    fn flood(lines: u32) -> u64 {
        let line = format!("{}\n", "x".repeat(99));
        for _ in 0..lines {
            print!("{line}");
        }
        u64::from(lines) * 100
    }
    fn misbehave(how: String) -> u32 {
        match how.as_str() {
            "trap" => panic!("misbehaving on purpose"),
            "spin" => {
                println!("spinning");
                Self::spin();
                unreachable!("spin never returns")
            }
            _ => MISBEHAVE_CALLS.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }
    fn hold(addr: String) -> u32 {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("read");
        bytes.len() as u32
    }
}

export!(Component);

fn main() {}
