//! A real `nats-server` with JetStream for tests: installed from Debian's
//! packages when the machine has none, started on a free loopback port
//! with its storage in a temp folder, restarted on the same port and
//! storage, and stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::RecvTimeoutError;

use super::server::PATIENCE;

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl NatsServer {
    /// A server with JetStream on a free port, once it is ready.
    pub fn start() -> NatsServer {
        let mut server = NatsServer {
            child: None,
            port: 0,
            store: tempfile::tempdir().unwrap(),
            url: String::new(),
        };
        server.launch();
        server
    }

    /// Stops the server at once (`kill -9`, as a crash would) and starts
    /// it again on the same port with the same storage, once it is ready.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts `nats-server` and waits for its readiness line; the port is
    /// the server's choice the first time, the same one after.
    fn launch(&mut self) {
        let port = if self.port == 0 {
            "-1".to_string()
        } else {
            self.port.to_string()
        };
        let mut child = Command::new(binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &port, "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    // Keep reading so that the server never blocks on a
                    // full pipe.
                    continue;
                }
            }
        });
        let mut log = String::new();
        loop {
            match lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    log.push_str(&line);
                    log.push('\n');
                    if let Some(at) = line.find("Listening for client connections on ") {
                        let address = &line[at + "Listening for client connections on ".len()..];
                        self.port = address.rsplit(':').next().unwrap().trim().parse().unwrap();
                    }
                    if line.contains("Server is ready") {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("nats-server never got ready:\n{log}"),
                Err(RecvTimeoutError::Disconnected) => panic!("nats-server ended:\n{log}"),
            }
        }
        assert_ne!(self.port, 0, "nats-server named no port:\n{log}");
        self.url = format!("nats://127.0.0.1:{}", self.port);
        self.child = Some(child);
    }
}

/// The `nats-server` binary: on the PATH, or installed now with apt-get
/// (once per test process).
fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(found) = on_path() {
            return found;
        }
        let installed = Command::new("sh")
            .args([
                "-c",
                "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server) >&2",
            ])
            .status();
        assert!(
            matches!(installed, Ok(status) if status.success()),
            "these tests need nats-server, which apt-get could not install: install Debian's nats-server package"
        );
        on_path().expect("nats-server is on the PATH once installed")
    })
}

fn on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}
