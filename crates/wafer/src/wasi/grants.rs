//! The grant model: which imports wafer links, and which an entry's
//! `imports` must grant.
//!
//! * Always linked, against the entry's own context: the WASI interfaces
//!   every toolchain imports (`wasi:cli`, `wasi:io`, `wasi:clocks`,
//!   `wasi:random`, `wasi:filesystem`), and `wasi_snapshot_preview1` for
//!   core modules. Linking grants nothing: the context is empty unless the
//!   entry fills it.
//! * `wasi:sockets` is linked too, so that programs built with socket
//!   support load, but every socket operation is denied unless `imports`
//!   grants `wasi:sockets` (or one of its interfaces); even then only the
//!   addresses in its `allow` list may be bound or connected to.
//! * `wasi:http` is linked too (a proxy component imports its types), but
//!   every outgoing request is denied unless `imports` grants `wasi:http`,
//!   and even then only the hosts in `allowed_outbound_hosts` may be
//!   called ([`super::outbound_http`]).
//! * Anything else (a custom host module) is not provided: the entry is
//!   refused at load, naming the import.
//!
//! Names are accepted with or without a version, per package
//! (`wasi:sockets`) or per interface (`wasi:sockets/tcp@0.2.0`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// WASI packages linked for every guest.
pub const ALWAYS_LINKED: &[&str] = &[
    "wasi:cli",
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:filesystem",
];

/// Packages an entry may grant in `imports`.
pub const GRANTABLE: &[&str] = &["wasi:sockets", "wasi:http"];

/// An import name split into package and interface, version dropped:
/// `wasi:sockets/tcp@0.2.0` is (`wasi:sockets`, `Some("tcp")`).
pub fn split_import(name: &str) -> (&str, Option<&str>) {
    let unversioned = name.split_once('@').map_or(name, |(n, _)| n);
    match unversioned.split_once('/') {
        Some((package, interface)) => (package, Some(interface)),
        None => (unversioned, None),
    }
}

/// Whether wafer links the package `name` belongs to.
fn is_provided(name: &str) -> bool {
    let (package, _) = split_import(name);
    ALWAYS_LINKED.contains(&package) || GRANTABLE.contains(&package)
}

/// Why an `imports` item is not accepted.
pub fn check_grant_name(name: &str) -> Result<(), String> {
    if is_provided(name) {
        return Ok(());
    }
    Err(format!(
        "unknown import `{name}` (wafer provides {} and {})",
        ALWAYS_LINKED.join(", "),
        GRANTABLE.join(", ")
    ))
}

/// Whether a component import (`wasi:cli/environment@0.2.3`) is one wafer
/// links; otherwise the reason it is refused.
pub fn check_component_import(name: &str) -> Result<(), String> {
    if is_provided(name) {
        Ok(())
    } else {
        Err(format!("imports {name}, which wafer does not provide"))
    }
}

/// Refuses a component that imports what wafer does not link, naming every
/// such import.
pub(crate) fn check_component_imports(
    engine: &Engine,
    component: &Component,
) -> Result<(), String> {
    let refused: Vec<String> = component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| check_component_import(name).err())
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused.join("; "))
    }
}

/// What a guest may do on the network. Nothing by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkGrant {
    /// TCP sockets.
    pub tcp: bool,
    /// UDP sockets.
    pub udp: bool,
    /// Name lookups (`wasi:sockets/ip-name-lookup`).
    pub name_lookup: bool,
    /// Addresses that may be bound or connected to; empty denies all.
    pub allow: Vec<AddressPattern>,
}

impl NetworkGrant {
    /// Whether nothing is granted.
    pub fn is_none(&self) -> bool {
        *self == NetworkGrant::default()
    }

    /// Adds what granting `name` (a `wasi:sockets` package or interface)
    /// allows.
    pub fn grant(&mut self, name: &str, allow: &[AddressPattern]) {
        let (package, interface) = split_import(name);
        if package != "wasi:sockets" {
            return;
        }
        match interface {
            None | Some("network") | Some("instance-network") => {
                self.tcp = true;
                self.udp = true;
                self.name_lookup = true;
            }
            Some("tcp") | Some("tcp-create-socket") => self.tcp = true,
            Some("udp") | Some("udp-create-socket") => self.udp = true,
            Some("ip-name-lookup") => self.name_lookup = true,
            Some(_) => {}
        }
        self.allow.extend_from_slice(allow);
    }

    /// Sets `builder`'s socket permissions.
    pub(crate) fn apply(&self, builder: &mut WasiCtxBuilder) {
        builder
            .allow_tcp(self.tcp)
            .allow_udp(self.udp)
            .allow_ip_name_lookup(self.name_lookup);
        if self.tcp || self.udp {
            let allow = self.allow.clone();
            builder.socket_addr_check(move |addr, use_| {
                let allowed = allow.iter().any(|p| p.matches(addr, use_));
                Box::pin(async move { allowed })
            });
        }
    }
}

/// An address a guest may use: `IP:PORT`, where either may be `*`
/// (`127.0.0.1:8080`, `10.0.0.5:*`, `*:443`, `[::1]:*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPattern {
    ip: Option<IpAddr>,
    port: Option<u16>,
}

impl AddressPattern {
    /// Whether `addr` matches. Binds to port 0 (the OS picks a port, as
    /// every outgoing connection does implicitly) match any port pattern.
    fn matches(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let implicit_bind = matches!(use_, SocketAddrUse::TcpBind | SocketAddrUse::UdpBind)
            && addr.port() == 0
            && addr.ip().is_unspecified();
        implicit_bind
            || (self.ip.is_none_or(|ip| ip == addr.ip())
                && self.port.is_none_or(|port| port == addr.port()))
    }
}

impl FromStr for AddressPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not an address pattern (IP:PORT, either may be `*`)");
        let (ip, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let ip = match ip {
            "*" => None,
            ip => Some(ip.parse::<IpAddr>().map_err(|_| bad())?),
        };
        let port = match port {
            "*" => None,
            port => Some(port.parse::<u16>().map_err(|_| bad())?),
        };
        Ok(AddressPattern { ip, port })
    }
}

impl fmt::Display for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            None => f.write_str("*")?,
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            Some(ip) => write!(f, "{ip}")?,
        }
        match self.port {
            None => f.write_str(":*"),
            Some(port) => write!(f, ":{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_or_without_versions_and_interfaces() {
        assert_eq!(
            split_import("wasi:sockets/tcp@0.2.0"),
            ("wasi:sockets", Some("tcp"))
        );
        assert_eq!(split_import("wasi:sockets@0.2.0"), ("wasi:sockets", None));
        assert!(check_grant_name("wasi:cli").is_ok());
        assert!(check_grant_name("wasi:sockets/tcp@0.2.3").is_ok());
        assert!(check_grant_name("acme:thing").is_err());
        assert!(check_component_import("acme:db/query@1.0.0").is_err());
    }

    #[test]
    fn address_patterns() {
        let any_port: AddressPattern = "127.0.0.1:*".parse().unwrap();
        let exact: AddressPattern = "[::1]:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(any_port.matches(local, SocketAddrUse::TcpConnect));
        assert!(!exact.matches(local, SocketAddrUse::TcpConnect));
        assert!(exact.matches("[::1]:8080".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert_eq!(exact.to_string(), "[::1]:8080");
        assert!("localhost:80".parse::<AddressPattern>().is_err());
    }
}
