//! An `exec_wasi` program: tries to write "out.txt" (in its working
//! directory), "data/out.txt", "../escape.txt" and "/tmp/wafer-fb-escape.txt",
//! and to read "/etc/passwd", printing one line for each: "ok <path>" or
//! "denied <path>". Tests: accessible_paths grants what it lists, nothing
//! else.

fn main() {
    for path in ["out.txt", "data/out.txt", "../escape.txt", "/tmp/wafer-fb-escape.txt"] {
        match std::fs::write(path, "written by fb_write_file\n") {
            Ok(()) => println!("ok {path}"),
            Err(_) => println!("denied {path}"),
        }
    }
    match std::fs::read("/etc/passwd") {
        Ok(_) => println!("ok /etc/passwd"),
        Err(_) => println!("denied /etc/passwd"),
    }
}
