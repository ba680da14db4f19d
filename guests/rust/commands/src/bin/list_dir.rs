//! Prints the names in directory `argv[1]`, sorted, one per line (each ending
//! in "\n"); on error prints it to stderr and exits 1. Tests: preopens.

fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let names: std::io::Result<Vec<String>> = std::fs::read_dir(&path).and_then(|entries| {
        entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    });
    match names {
        Ok(mut names) => {
            names.sort();
            for name in names {
                println!("{name}");
            }
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}
