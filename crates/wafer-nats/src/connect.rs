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
use std::sync::Arc;

use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use serde::Deserialize;
use wafer::metrics::ConnectionState;

/// How a component proves who it is (`auth`); at most one way.
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// # Errors
    ///
    /// The first field at fault: no URL, a URL that does not parse, two
    /// ways to authenticate, a user without a password, a file that is
    /// not there, `skip_cert_verify`.
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
        Ok(Connect { urls, auth, tls })
    }

    /// Connects, as `name` (the client name the server shows), reporting
    /// the connection's state to `state` from now on.
    ///
    /// # Errors
    ///
    /// When no server in `urls` could be reached, refused the
    /// credentials, or a file could not be read.
    pub async fn connect(&self, name: &str, state: Arc<ConnectionState>) -> Result<Client, String> {
        let mut options = ConnectOptions::new()
            .name(name)
            .max_reconnects(None)
            .event_callback({
                let state = state.clone();
                let name = name.to_string();
                move |event| {
                    let state = state.clone();
                    let name = name.clone();
                    async move { report(&name, &state, event) }
                }
            });
        let auth = &self.auth;
        if let Some(path) = &auth.user_credentials_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        }
        if let Some(path) = &auth.nkey_file {
            let seed = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            options = options.nkey(seed.trim().to_string());
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

/// Logs a connection event and keeps `state` in step.
fn report(name: &str, state: &ConnectionState, event: Event) {
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
        other => tracing::warn!(component = %name, "NATS: {other}."),
    }
}
