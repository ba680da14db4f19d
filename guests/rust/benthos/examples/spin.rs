//! `BENTHOS_LOUDER`, but loops forever, without calls, when the message is
//! exactly "spin". Tests: deadlines of processors.

use wafer_guest_benthos::benthos::{louder, message};

#[unsafe(no_mangle)]
pub extern "C" fn process() {
    let message = message();
    if message == b"spin" {
        let mut n: u64 = 0;
        loop {
            // black_box: the optimiser cannot drop a loop it cannot see into.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    louder(message);
}
