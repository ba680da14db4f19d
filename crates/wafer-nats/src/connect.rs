//! Reaching a NATS server: the fields every NATS component shares
//! (`urls`, `auth`, `tls`, named as in Benthos' NATS components), checked
//! when the component is built, and one client per component, whose
//! state the runtime's metrics and `/readyz` show.
//!
//! The first connection must succeed: a wrong address or credentials are
//! an error at start, never a silent wait. After that the client
//! reconnects on its own, as often as it takes (every server in `urls`
//! and those the cluster announces, backing off to 4 s between rounds),
//! and the components wait for it: a restarted broker pauses them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use futures_util::StreamExt;
use serde::Deserialize;
use wafer::metrics::ConnectionState;

/// How a component proves who it is (`auth`); at most one way. Its
/// `Debug` leaves the password and the token out.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// A `.creds` file (a user JWT and its NKey seed), as `nsc` writes it.
    pub user_credentials_file: Option<PathBuf>,
    /// A file holding an NKey seed.
    pub nkey_file: Option<PathBuf>,
    /// A user name; needs `password`.
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
    /// A token.
    pub token: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<hidden>");
        f.debug_struct("Auth")
            .field("user_credentials_file", &self.user_credentials_file)
            .field("nkey_file", &self.nkey_file)
            .field("user", &self.user)
            .field("password", &hidden(&self.password))
            .field("token", &hidden(&self.token))
            .finish()
    }
}

/// TLS to the server (`tls`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Require TLS (a `tls://` URL requires it too).
    #[serde(default)]
    pub enabled: bool,
    /// PEM certificates of the authorities that sign the server's
    /// certificate, besides the system's.
    pub root_cas_file: Option<PathBuf>,
    /// A client certificate and its key, for servers that verify clients
    /// (one at most).
    #[serde(default)]
    pub client_certs: Vec<ClientCert>,
    /// Refused: wafer always verifies the server.
    #[serde(default)]
    pub skip_cert_verify: bool,
}

/// A client certificate (`tls.client_certs[]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCert {
    /// Its PEM file.
    pub cert_file: PathBuf,
    /// Its private key's PEM file.
    pub key_file: PathBuf,
}

/// Everything needed to connect, checked ([`Connect::new`]).
#[derive(Debug, Clone)]
pub struct Connect {
    urls: Vec<ServerAddr>,
    auth: Auth,
    tls: Tls,
    secrets: Secrets,
}

/// What the `auth` files hold, read when the config is checked (so that
/// connecting reads no file on an async worker, and `wafer check` reports
/// an unreadable one). Never printed.
#[derive(Clone, Default)]
struct Secrets {
    /// `auth.nkey_file`'s seed, trimmed.
    nkey_seed: Option<String>,
    /// `auth.user_credentials_file`'s text (a JWT and a seed).
    credentials: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

/// A field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field, as the config names it (`urls[1]`, `auth.password`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Connect {
    /// Checks `urls`, `auth` and `tls`; relative file paths are resolved
    /// against `base` (the registry file's folder, or the working
    /// directory).
    ///
    /// The `auth` files (`nkey_file`, `user_credentials_file`) are read
    /// here, once: a changed file takes effect on the next start.
    ///
    /// # Errors
    ///
    /// The first field at fault: no URL, a URL that does not parse, two
    /// ways to authenticate, a user without a password, a file that is
    /// not there or cannot be read, a credentials file that does not
    /// parse, `skip_cert_verify`.
    pub fn new(
        urls: &[String],
        mut auth: Auth,
        mut tls: Tls,
        base: Option<&Path>,
    ) -> Result<Connect, FieldError> {
        if urls.is_empty() {
            return Err(FieldError::new(
                "urls",
                "name at least one server, like nats://127.0.0.1:4222",
            ));
        }
        let urls = urls
            .iter()
            .enumerate()
            .flat_map(|(i, url)| url.split(',').map(move |one| (i, one.trim())))
            .map(|(i, url)| {
                url.parse::<ServerAddr>().map_err(|e| {
                    FieldError::new(
                        format!("urls[{i}]"),
                        format!("`{url}` is not a NATS URL: {e}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ways = [
            auth.user_credentials_file.is_some(),
            auth.nkey_file.is_some(),
            auth.user.is_some(),
            auth.token.is_some(),
        ];
        if ways.iter().filter(|way| **way).count() > 1 {
            return Err(FieldError::new(
                "auth",
                "give one of user_credentials_file, nkey_file, user and password, or token",
            ));
        }
        if auth.user.is_some() != auth.password.is_some() {
            let missing = if auth.user.is_some() {
                "auth.password"
            } else {
                "auth.user"
            };
            return Err(FieldError::new(
                missing,
                "a user and a password go together",
            ));
        }
        if tls.skip_cert_verify {
            return Err(FieldError::new(
                "tls.skip_cert_verify",
                "wafer always verifies the server's certificate: give its authority in tls.root_cas_file",
            ));
        }
        if tls.client_certs.len() > 1 {
            return Err(FieldError::new(
                "tls.client_certs",
                "wafer presents one client certificate",
            ));
        }
        let mut files: Vec<(String, &mut PathBuf)> = Vec::new();
        if let Some(path) = auth.user_credentials_file.as_mut() {
            files.push(("auth.user_credentials_file".into(), path));
        }
        if let Some(path) = auth.nkey_file.as_mut() {
            files.push(("auth.nkey_file".into(), path));
        }
        if let Some(path) = tls.root_cas_file.as_mut() {
            files.push(("tls.root_cas_file".into(), path));
        }
        for (i, cert) in tls.client_certs.iter_mut().enumerate() {
            files.push((
                format!("tls.client_certs[{i}].cert_file"),
                &mut cert.cert_file,
            ));
            files.push((
                format!("tls.client_certs[{i}].key_file"),
                &mut cert.key_file,
            ));
        }
        for (field, path) in files {
            if let Some(base) = base
                && path.is_relative()
            {
                *path = base.join(&*path);
            }
            if !path.is_file() {
                return Err(FieldError::new(
                    field,
                    format!("no file {}", path.display()),
                ));
            }
        }
        let secrets = Secrets {
            nkey_seed: read_secret("auth.nkey_file", auth.nkey_file.as_deref())?
                .map(|seed| seed.trim().to_string()),
            credentials: read_secret(
                "auth.user_credentials_file",
                auth.user_credentials_file.as_deref(),
            )?,
        };
        if let Some(credentials) = &secrets.credentials {
            ConnectOptions::new()
                .credentials(credentials)
                .map_err(|e| {
                    FieldError::new(
                        "auth.user_credentials_file",
                        format!("not a NATS credentials file: {e}"),
                    )
                })?;
        }
        Ok(Connect {
            urls,
            auth,
            tls,
            secrets,
        })
    }

    /// Connects, as `name` (the client name the server shows), reporting
    /// the connection's state to `state` from now on.
    ///
    /// # Errors
    ///
    /// When no server in `urls` could be reached, refused the
    /// credentials, or a TLS file could not be read.
    pub async fn connect(&self, name: &str, state: Arc<ConnectionState>) -> Result<Client, String> {
        let slow = Arc::new(SlowConsumers::default());
        let mut options = ConnectOptions::new()
            .name(name)
            .max_reconnects(None)
            .event_callback({
                let state = state.clone();
                let name = name.to_string();
                move |event| {
                    let (state, name, slow) = (state.clone(), name.clone(), slow.clone());
                    async move { report(&name, &state, &slow, event) }
                }
            });
        let auth = &self.auth;
        if let Some(credentials) = &self.secrets.credentials {
            // Parsed when checked: this only fails if that did.
            options = options.credentials(credentials).map_err(|e| {
                let path = auth
                    .user_credentials_file
                    .as_deref()
                    .unwrap_or(Path::new(""));
                format!("cannot use {}: {e}", path.display())
            })?;
        }
        if let Some(seed) = &self.secrets.nkey_seed {
            options = options.nkey(seed.clone());
        }
        if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &auth.token {
            options = options.token(token.clone());
        }
        let tls = &self.tls;
        if tls.enabled {
            options = options.require_tls(true);
        }
        if let Some(path) = &tls.root_cas_file {
            options = options.add_root_certificates(path.clone());
        }
        if let Some(cert) = tls.client_certs.first() {
            options = options.add_client_certificate(cert.cert_file.clone(), cert.key_file.clone());
        }
        let client = options
            .connect(self.urls.as_slice())
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.describe()))?;
        state.connected();
        Ok(client)
    }

    /// The servers, as a log line names them (never a password).
    pub fn describe(&self) -> String {
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|url| {
                let url = url.clone().into_inner();
                format!(
                    "{}://{}:{}",
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    url.port().unwrap_or(4222)
                )
            })
            .collect();
        urls.join(", ")
    }
}

/// The text of the file at `path` (`field`'s), if there is one.
fn read_secret(field: &str, path: Option<&Path>) -> Result<Option<String>, FieldError> {
    let Some(path) = path else { return Ok(None) };
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| FieldError::new(field, format!("cannot read {}: {e}", path.display())))
}

/// How long [`round_trip`] waits for its message: 10 s.
pub const ROUND_TRIP_PATIENCE: Duration = Duration::from_secs(10);

/// Returns once the server has processed everything `client` sent
/// before the call: subscriptions, publications, acknowledgements.
///
/// [`Client::flush`] is not enough: it only writes the client's buffer
/// to the socket, with no answer from the server. This subscribes to a
/// fresh inbox, publishes an empty message to it and waits for that
/// message to come back; a server processes one connection's commands in
/// order, so its return proves the earlier ones were processed. (It
/// relies on the connection receiving its own messages, NATS' default,
/// which wafer never turns off.)
///
/// # Errors
///
/// The subscription or publication failed, or nothing came back within
/// [`ROUND_TRIP_PATIENCE`] (the server is away).
pub async fn round_trip(client: &Client) -> Result<(), String> {
    let inbox = client.new_inbox();
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| format!("cannot reach the NATS server: {e}"))?;
    client
        .publish(inbox, "".into())
        .await
        .map_err(|e| format!("cannot reach the NATS server: {e}"))?;
    match tokio::time::timeout(ROUND_TRIP_PATIENCE, echo.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the NATS connection closed".to_string()),
        Err(_) => Err(format!(
            "the NATS server did not answer within {} s",
            ROUND_TRIP_PATIENCE.as_secs()
        )),
    }
}

/// At most one log line about slow consumers this often: 10 s.
const SLOW_CONSUMER_LOG_EVERY: Duration = Duration::from_secs(10);

/// Slow-consumer events (the client dropped messages of a subscription
/// that was not read fast enough) come in floods under overload: the
/// first is logged at once, later ones at most every
/// [`SLOW_CONSUMER_LOG_EVERY`], with how many there were.
#[derive(Default)]
struct SlowConsumers(Mutex<SlowConsumerLog>);

#[derive(Default)]
struct SlowConsumerLog {
    /// When the last line was logged.
    logged: Option<Instant>,
    /// Events since then, not yet logged.
    unlogged: u64,
}

impl SlowConsumers {
    /// Records an event at `now`: `Some(n)` when a line is due now, for
    /// `n` events (this one included; 1 for the very first).
    fn record(&self, now: Instant) -> Option<u64> {
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        log.unlogged += 1;
        let due = log
            .logged
            .is_none_or(|at| now.duration_since(at) >= SLOW_CONSUMER_LOG_EVERY);
        if !due {
            return None;
        }
        log.logged = Some(now);
        Some(std::mem::take(&mut log.unlogged))
    }
}

/// Logs a connection event and keeps `state` in step.
fn report(name: &str, state: &ConnectionState, slow: &SlowConsumers, event: Event) {
    match event {
        Event::Connected => {
            state.connected();
            if state.disconnects() == 0 {
                tracing::info!(component = %name, "Connected to NATS.");
            } else {
                tracing::info!(component = %name, "Reconnected to NATS.");
            }
        }
        Event::Disconnected => {
            state.disconnected();
            tracing::warn!(component = %name, "Lost the connection to NATS; reconnecting (work waits meanwhile).");
        }
        Event::Closed => {
            state.disconnected();
            tracing::debug!(component = %name, "NATS connection closed.");
        }
        Event::LameDuckMode => {
            tracing::warn!(component = %name, "The NATS server is shutting down (lame duck mode).");
        }
        Event::SlowConsumer(_) => match slow.record(Instant::now()) {
            Some(1) => tracing::warn!(
                component = %name,
                "NATS: messages dropped for a subscription not read fast enough (slow consumer)."
            ),
            Some(events) => tracing::warn!(
                component = %name,
                events,
                "NATS: messages dropped for subscriptions not read fast enough, {events} times in the last {} s or more (slow consumer).",
                SLOW_CONSUMER_LOG_EVERY.as_secs()
            ),
            None => {}
        },
        other => tracing::warn!(component = %name, "NATS: {other}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords_and_tokens() {
        let auth = Auth {
            user: Some("ann".into()),
            password: Some("s3cret".into()),
            token: Some("t0ken".into()),
            ..Auth::default()
        };
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("ann") && shown.contains("<hidden>"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0ken"),
            "{shown}"
        );
    }

    /// A folder of the test's own, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path =
                std::env::temp_dir().join(format!("wafer-nats-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn slow_consumer_events_are_logged_first_then_counted_at_most_every_ten_seconds() {
        let slow = SlowConsumers::default();
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(slow.record(at(0)), Some(1));
        for _ in 0..500 {
            assert_eq!(slow.record(at(1)), None);
        }
        assert_eq!(slow.record(at(9)), None);
        assert_eq!(slow.record(at(10)), Some(502));
        assert_eq!(slow.record(at(15)), None);
        assert_eq!(slow.record(at(60)), Some(2));
    }

    #[test]
    fn auth_files_are_read_and_checked_with_the_config() {
        let dir = TempDir::new("auth-files");
        std::fs::write(
            dir.path().join("seed.nk"),
            "SUAIO3FHUX5PNV2LQIIP7TZ3N4L7TX3W53MQGEIVYFIGA635OZCKEYHFLM\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("bad.creds"), "not credentials").unwrap();
        let urls = ["nats://127.0.0.1:4222".to_string()];
        let nkey = Auth {
            nkey_file: Some("seed.nk".into()),
            ..Auth::default()
        };
        let connect = Connect::new(&urls, nkey, Tls::default(), Some(dir.path())).unwrap();
        assert_eq!(
            connect.secrets.nkey_seed.as_deref(),
            Some("SUAIO3FHUX5PNV2LQIIP7TZ3N4L7TX3W53MQGEIVYFIGA635OZCKEYHFLM")
        );
        assert!(!format!("{connect:?}").contains("SUAIO3"));
        let creds = Auth {
            user_credentials_file: Some("bad.creds".into()),
            ..Auth::default()
        };
        let refused = Connect::new(&urls, creds, Tls::default(), Some(dir.path())).unwrap_err();
        assert_eq!(refused.field, "auth.user_credentials_file");
        assert!(
            refused.message.contains("not a NATS credentials file"),
            "{refused}"
        );
    }
}
