//! With `argv[1]`, prints that env var's value and "\n" ("missing" on stderr
//! and exit 2 if unset; 1 on wasip2, whose std exits only 0 or 1); without,
//! prints every env var as sorted "K=V" lines. Tests: commands' environment.

fn main() {
    match std::env::args().nth(1) {
        Some(name) => match std::env::var_os(&name) {
            Some(value) => println!("{}", value.to_string_lossy()),
            None => {
                eprintln!("missing");
                std::process::exit(2);
            }
        },
        None => {
            let mut vars: Vec<String> = std::env::vars_os()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect();
            vars.sort();
            for var in vars {
                println!("{var}");
            }
        }
    }
}
