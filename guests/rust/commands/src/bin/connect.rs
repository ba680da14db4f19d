//! Opens a TCP connection to `argv[1]` ("127.0.0.1:8080") and prints
//! "connected\n", or prints the error to stderr and exits 1 (always so on
//! wasip1, whose std has no sockets). Tests: network access for commands.

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_default();
    match std::net::TcpStream::connect(&addr) {
        Ok(_) => println!("connected"),
        Err(e) => {
            eprintln!("{addr}: {e}");
            std::process::exit(1);
        }
    }
}
