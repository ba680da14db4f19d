//! Loops forever without calls or output, stopped only by the host's
//! deadline. Tests: timeouts of commands.

fn main() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}
