//! Prints "hello " and `argv[1]`, no trailing newline: `["main", "salaboy"]`
//! prints "hello salaboy". Dapr's testdata `example`.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    print!("hello {name}");
}
