//! The services of a running `wafer run`: bound, serving, and moved to a
//! new generation's routes by a reload.
//!
//! Each server answers through the routes it currently holds: a reload
//! swaps them in one step, so requests already routed finish on the old
//! generation's functions and every later one (on a kept-alive connection
//! too) goes to the new. A service whose address is unchanged keeps its
//! listener (nothing is refused during a reload); one whose address
//! changed, or that is gone, stops taking connections and finishes its
//! requests, for at most [`SHUTDOWN_GRACE`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::ServiceExt as _;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;
use wafer::Runtime;
use wafer::registry::{EntryKind, HttpServiceConfig};

use crate::observe::HttpMetrics;
use crate::{DAPR_SERVICE, HttpError, SHUTDOWN_GRACE, routes};

/// The HTTP services of a process, across reloads. The metrics of every
/// generation's routes add up in one place.
pub struct Servers {
    dapr_http_port: u16,
    metrics: Arc<HttpMetrics>,
    running: Vec<Running>,
    tasks: JoinSet<Result<(), HttpError>>,
}

/// A service that is serving.
struct Running {
    id: String,
    /// Its address as configured (a port 0 stays 0): what a reload
    /// compares.
    configured: SocketAddr,
    /// Where it listens.
    addr: SocketAddr,
    routes: watch::Sender<Router>,
    retire: watch::Sender<bool>,
}

/// A generation's services, with a listener bound for each one that is
/// not listening yet: what [`Servers::apply`] puts in place.
pub struct Plan {
    services: Vec<Planned>,
}

struct Planned {
    id: String,
    configured: SocketAddr,
    addr: SocketAddr,
    /// A new listener, or the running service (its index) whose listener
    /// it keeps.
    listener: Listener,
    router: Router,
}

enum Listener {
    New(TcpListener),
    Keep(usize),
}

/// What [`Servers::apply`] changed, by service id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServiceChanges {
    /// Services that started listening.
    pub added: Vec<String>,
    /// Services that kept their listener and took the new routes.
    pub kept: Vec<String>,
    /// Services that stopped taking connections (gone, or moved to
    /// another address, where they are `added`).
    pub removed: Vec<String>,
}

impl Plan {
    /// Each service's id and the address it listens on (the port the OS
    /// chose, for port 0).
    pub fn services(&self) -> impl Iterator<Item = (&str, SocketAddr)> {
        self.services.iter().map(|s| (s.id.as_str(), s.addr))
    }

    /// Whether the generation has no HTTP service.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

impl Servers {
    /// No service yet. A registry of Dapr components and no `http.service`
    /// will be served on `127.0.0.1:{dapr_http_port}` as [`DAPR_SERVICE`].
    pub fn new(dapr_http_port: u16) -> Servers {
        Servers {
            dapr_http_port,
            metrics: Arc::new(HttpMetrics::new()),
            running: Vec::new(),
            tasks: JoinSet::new(),
        }
    }

    /// The services of `runtime`'s registry, each with its routes, and a
    /// listener bound for each address no running service listens on.
    /// Nothing changes until [`Servers::apply`]; a plan dropped instead
    /// closes the listeners it bound.
    ///
    /// # Errors
    ///
    /// The first address that cannot be bound, naming its service.
    pub async fn plan(&self, runtime: &Arc<Runtime>) -> Result<Plan, HttpError> {
        let mut configs: Vec<(&str, HttpServiceConfig)> = runtime
            .registry()
            .entries()
            .iter()
            .filter_map(|entry| match &entry.kind {
                EntryKind::HttpService(config) => Some((entry.id.as_str(), config.clone())),
                _ => None,
            })
            .collect();
        if configs.is_empty() && runtime.registry().dapr_bindings().next().is_some() {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.dapr_http_port));
            configs.push((DAPR_SERVICE, HttpServiceConfig::new(addr)));
        }
        let mut services = Vec::new();
        let mut claimed = vec![false; self.running.len()];
        for (id, config) in configs {
            let router = routes::router(runtime, id, &config, &self.metrics);
            let (listener, addr) = match self.keeps(id, config.addr, &mut claimed) {
                Some(at) => (Listener::Keep(at), self.running[at].addr),
                None => {
                    let bind_error = |source| HttpError::Bind {
                        service: id.to_string(),
                        addr: config.addr,
                        source,
                    };
                    let listener = TcpListener::bind(config.addr).await.map_err(bind_error)?;
                    let addr = listener.local_addr().map_err(bind_error)?;
                    (Listener::New(listener), addr)
                }
            };
            services.push(Planned {
                id: id.to_string(),
                configured: config.addr,
                addr,
                listener,
                router,
            });
        }
        Ok(Plan { services })
    }

    /// Puts `plan` in place: a service listening on its address takes its
    /// new routes at once, a new one starts serving, and one the plan does
    /// not hold stops taking connections and finishes its requests (for
    /// at most [`SHUTDOWN_GRACE`]).
    pub fn apply(&mut self, plan: Plan) -> ServiceChanges {
        let mut changes = ServiceChanges::default();
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.running)
            .into_iter()
            .map(Some)
            .collect();
        for planned in plan.services {
            let Planned {
                id,
                configured,
                addr,
                listener,
                router,
            } = planned;
            let running = match listener {
                Listener::Keep(at) => {
                    let mut running = old[at].take().expect("a running service is kept once");
                    // The old routes live on in the requests they answer.
                    drop(running.routes.send_replace(router));
                    changes.kept.push(id.clone());
                    running.id = id;
                    running
                }
                Listener::New(listener) => {
                    changes.added.push(id.clone());
                    let (routes, retire) = self.serve(&id, listener, router);
                    Running {
                        id,
                        configured,
                        addr,
                        routes,
                        retire,
                    }
                }
            };
            self.running.push(running);
        }
        for retired in old.into_iter().flatten() {
            retired.retire.send_replace(true);
            changes.removed.push(retired.id);
        }
        changes
    }

    /// Whether any service is serving.
    pub fn is_serving(&self) -> bool {
        !self.running.is_empty()
    }

    /// Waits for a server that fails, and says why; never resolves while
    /// none does.
    pub async fn failure(&mut self) -> HttpError {
        loop {
            match self.tasks.join_next().await {
                // A retired service finished.
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => return error,
                Some(Err(join)) => std::panic::resume_unwind(join.into_panic()),
                None => std::future::pending().await,
            }
        }
    }

    /// Stops every service taking connections and waits for the requests
    /// in flight, for at most [`SHUTDOWN_GRACE`].
    ///
    /// # Errors
    ///
    /// When a server failed, naming its service.
    pub async fn stop(mut self) -> Result<(), HttpError> {
        for running in &self.running {
            running.retire.send_replace(true);
        }
        let mut failed = None;
        while let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    failed.get_or_insert(error);
                }
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// The running service (its index, not `claimed` yet) whose listener
    /// service `id` on `addr` keeps: the same service on the same address,
    /// or, for a fixed port, whichever service listens there (renamed).
    fn keeps(&self, id: &str, addr: SocketAddr, claimed: &mut [bool]) -> Option<usize> {
        let free = |at: &usize| !claimed[*at] && self.running[*at].configured == addr;
        let at = (0..self.running.len())
            .filter(free)
            .find(|&at| self.running[at].id == id)
            .or_else(|| {
                (addr.port() != 0)
                    .then(|| (0..self.running.len()).find(free))
                    .flatten()
            })?;
        claimed[at] = true;
        Some(at)
    }

    /// Serves `router` on `listener` until service `id` is retired: the
    /// sender that swaps its routes, and the one that retires it.
    fn serve(
        &mut self,
        id: &str,
        listener: TcpListener,
        router: Router,
    ) -> (watch::Sender<Router>, watch::Sender<bool>) {
        let (routes, current) = watch::channel(router);
        let (retire, retired) = watch::channel(false);
        // Each request is routed by the routes of the moment.
        let swappable = tower::service_fn(move |request: axum::extract::Request| {
            current.borrow().clone().oneshot(request)
        })
        .into_make_service();
        let mut stop_taking = retired.clone();
        let mut give_up = retired;
        let service = id.to_string();
        self.tasks.spawn(async move {
            // A response written in pieces (a streamed body and its end)
            // must not wait for the client's delayed acknowledgement.
            let listener = listener.tap_io(|connection| {
                if let Err(e) = connection.set_nodelay(true) {
                    tracing::debug!("Cannot set TCP_NODELAY on a connection: {e}");
                }
            });
            let serving = axum::serve(listener, swappable).with_graceful_shutdown(async move {
                let _ = stop_taking.wait_for(|retired| *retired).await;
            });
            let grace = async move {
                let _ = give_up.wait_for(|retired| *retired).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                served = serving => served.map_err(|source| HttpError::Serve { service, source }),
                () = grace => {
                    tracing::warn!(%service, "Requests still running after {} s; no longer waiting for them.", SHUTDOWN_GRACE.as_secs());
                    Ok(())
                }
            }
        });
        (routes, retire)
    }
}
