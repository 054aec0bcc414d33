//! Starting and stopping a whole proxy from its config: the one entry point
//! of `clsf-proxy` and of the end-to-end test harness.
//!
//! Sessions run on one thread per worker, each with its own single-threaded
//! runtime and its own listening socket on the same address
//! (`SO_REUSEPORT`: the kernel spreads new connections over them). A
//! session never moves between threads, so its two sockets wake only the
//! thread that owns it: no hand-off between threads on the path of a
//! statement (measured in `docs/performance.md`). The admin listener, the
//! control plane's connection and the reload watcher run on a thread of
//! their own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use crate::config::Config;
use crate::session::Shared;
use crate::{admin, control_plane, reload, server, start, tls};

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The policy, identities, upstream settings or audit trail.
    #[error(transparent)]
    Setup(#[from] start::SetupError),
    /// An address could not be resolved or bound.
    #[error("cannot listen on {address}{listener}: {source}")]
    Listen {
        /// The address as configured.
        address: String,
        /// Which listener, for the admin and MCP ones (" (admin)").
        listener: &'static str,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The admin listener has no certificate of its own nor `[tls]`'s.
    #[error("[admin] needs a certificate")]
    AdminCertificate,
    /// A listener's TLS certificate, key or client CA.
    #[error(transparent)]
    Tls(#[from] tls::AcceptorError),
    /// The policy files or the lock cannot be watched for changes.
    #[error(transparent)]
    Watch(#[from] reload::WatchError),
    /// The control thread (control plane, admin and MCP listeners) failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A thread or its runtime could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// Why the control thread (the control plane's approvals, shipping and
/// bundles, the OpenTelemetry export, the admin and MCP listeners) did not
/// start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Its runtime could not be built.
    #[error("cannot start the control thread's runtime: {0}")]
    Runtime(std::io::Error),
    /// The control plane's password file.
    #[error(transparent)]
    Password(#[from] crate::config::PasswordFileError),
    /// The control plane could not be attached to.
    #[error(transparent)]
    ControlPlane(#[from] crate::approvals::StoreError),
    /// The key that signs the central audit copy's anchors.
    #[error(transparent)]
    AnchorKey(#[from] crate::central_audit::AnchorKeyError),
    /// The OpenTelemetry exporter's settings.
    #[error(transparent)]
    Otel(#[from] crate::otel::OtelError),
    /// The admin listener's socket.
    #[error("admin listener: {0}")]
    Admin(std::io::Error),
    /// The MCP listener's socket.
    #[error("MCP listener: {0}")]
    Mcp(std::io::Error),
    /// It did not say it was ready in time.
    #[error("the control thread did not start within 60 s")]
    Timeout,
}

/// `StartError::Listen` for the listener named `listener` at `address`.
fn listen_error(
    address: impl std::fmt::Display,
    listener: &'static str,
) -> impl FnOnce(std::io::Error) -> StartError {
    let address = address.to_string();
    move |source| StartError::Listen {
        address,
        listener,
        source,
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct Running {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The admin listener's address, when configured.
    pub admin: Option<SocketAddr>,
    /// The MCP listener's address, when configured.
    pub mcp: Option<SocketAddr>,
    /// What every session shares (the policy in force, the audit trail…).
    pub shared: Arc<Shared>,
    /// The config as started (the admin listener's chosen port filled in).
    pub config: Config,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    _watcher: reload::PolicyWatcher,
}

/// How many session threads: as configured, or half the CPU cores the
/// process may use (at least one). A session thread spends most of its
/// time in the kernel relaying bytes, and the proxy shares its cores with
/// the clients or the database more often than not: measured on a 2-core
/// host (docs/performance.md), one thread cost 12–20 % less CPU per
/// transaction than two at the same throughput, at 8 and at 64 clients.
fn workers(config: &Config) -> usize {
    match config.worker_threads {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get().div_ceil(2))
            .max(1),
        n => n,
    }
}

/// A listening socket on `addr` that other sockets may share.
fn shared_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Resolves the configured listen address (a host name is looked up).
fn listen_addr(listen: &str) -> Result<SocketAddr, StartError> {
    use std::net::ToSocketAddrs;
    listen
        .to_socket_addrs()
        .map_err(listen_error(listen, ""))?
        .next()
        .ok_or_else(|| {
            listen_error(listen, "")(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address",
            ))
        })
}

/// Starts a proxy: compiles the policy, opens the audit trail, binds the
/// listeners, attaches the control plane, and runs sessions until
/// [`Running::shutdown`].
pub fn start(mut config: Config) -> Result<Running, StartError> {
    // The admin listener is bound first, so that with port 0 the URL held
    // clients are told names the port actually chosen.
    let admin_listener = match &mut config.admin {
        Some(a) => {
            let bound = listen_error(&a.listen, " (admin)");
            let l = std::net::TcpListener::bind(&a.listen)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(bound)?;
            a.listen = l
                .local_addr()
                .map_err(listen_error(&a.listen, " (admin)"))?
                .to_string();
            let (cert, key) = a
                .tls_files(config.tls.as_ref())
                .ok_or(StartError::AdminCertificate)?;
            let acceptor = tls::acceptor(cert, key, None, &[tls::HTTP_ALPN])?;
            Some((l, acceptor))
        }
        None => None,
    };
    // The MCP listener, likewise bound before anything runs.
    let mcp_listener = match &mut config.mcp {
        Some(m) => {
            let l = std::net::TcpListener::bind(&m.listen)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(listen_error(&m.listen, " (mcp)"))?;
            m.listen = l
                .local_addr()
                .map_err(listen_error(&m.listen, " (mcp)"))?
                .to_string();
            // Agents may prove themselves with a client certificate from
            // the same CA as the wire protocol's clients (mutual TLS).
            let client_ca = config
                .tls
                .as_ref()
                .and_then(|t| t.client_ca_file.as_deref());
            let acceptor = match m.tls_files(config.tls.as_ref()) {
                Some((cert, key)) => Some(tls::acceptor(cert, key, client_ca, &[tls::HTTP_ALPN])?),
                None => None,
            };
            Some((l, acceptor, m.max_rows))
        }
        None => None,
    };
    let mcp = match &mcp_listener {
        Some((l, _, _)) => Some(
            l.local_addr()
                .map_err(listen_error("the MCP address", ""))?,
        ),
        None => None,
    };
    let admin = match &admin_listener {
        Some((l, _)) => Some(
            l.local_addr()
                .map_err(listen_error("the admin address", ""))?,
        ),
        None => None,
    };

    // The first listener picks the port (when 0); the others share it.
    let wanted = listen_addr(&config.listen)?;
    if wanted.port() != 0 {
        // Sockets of the same user that all ask for SO_REUSEPORT share a
        // port: a second proxy started on this one's address would
        // silently take half its clients. A plain bind first fails as
        // "address in use" when anything listens there.
        drop(std::net::TcpListener::bind(wanted).map_err(listen_error(&config.listen, ""))?);
    }
    let first = shared_listener(wanted).map_err(listen_error(&config.listen, ""))?;
    let addr = first
        .local_addr()
        .map_err(listen_error(&config.listen, ""))?;
    let mut listeners = vec![first];
    for _ in 1..workers(&config) {
        listeners.push(shared_listener(addr).map_err(listen_error(addr, ""))?);
    }

    // Only once the address is ours: a proxy that cannot listen must not
    // touch the audit trail another one may be writing.
    let shared = Arc::new(start::shared_state(&config)?);
    // The live catalog compared with the lock before the first client
    // (`drift`); if the server cannot be reached, every relation is read
    // through the lock's columns until a comparison succeeds.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Thread)?
        .block_on(async {
            let _ = crate::drift::check(&shared).await;
        });
    // Kept alive for as long as the proxy runs: dropping it stops reloading.
    let watcher = reload::watch(Arc::clone(&shared), config.clone())?;

    let (stop, stopped) = watch::channel(false);
    let mut threads = Vec::new();
    // The control thread: admin listener and control plane.
    let (ready, started) = std::sync::mpsc::channel::<Result<(), ControlError>>();
    {
        let shared = Arc::clone(&shared);
        let control = config.control_plane.clone();
        let otel = config.otel.clone();
        let followed = config.clone();
        let mut stopped = stopped.clone();
        threads.push(
            std::thread::Builder::new()
                .name("clsf-control".to_owned())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready.send(Err(ControlError::Runtime(e)));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        // The audit trail's readers, set before any session
                        // writes to it: the central copy, the OTel export.
                        let central = control.as_ref().is_some_and(|c| c.audit);
                        let mut taps = shared
                            .audit
                            .taps(
                                usize::from(central) + usize::from(otel.is_some()),
                                crate::central_audit::CAPACITY,
                            )
                            .unwrap_or_default()
                            .into_iter();
                        if let Some(cp) = control {
                            let password = match cp.password() {
                                Ok(pw) => pw,
                                Err(e) => {
                                    let _ = ready.send(Err(e.into()));
                                    return;
                                }
                            };
                            let attached = control_plane::attach(
                                Arc::clone(&shared.approvals),
                                &cp.url,
                                password.as_deref(),
                            )
                            .await;
                            if let Err(e) = attached {
                                let _ = ready.send(Err(e.into()));
                                return;
                            }
                            tracing::info!(
                                "approval requests are shared through the control plane"
                            );
                            if cp.audit {
                                let shipping =
                                    match crate::central_audit::shipping(&cp, password.clone()) {
                                        Ok(s) => s,
                                        Err(e) => {
                                            let _ = ready.send(Err(e.into()));
                                            return;
                                        }
                                    };
                                if let Some(tapped) = taps.next() {
                                    tokio::spawn(crate::central_audit::ship(
                                        Arc::clone(&shared),
                                        tapped,
                                        shipping,
                                    ));
                                }
                            }
                            if cp.follow_bundles {
                                tokio::spawn(crate::distribution::follow(
                                    Arc::clone(&shared),
                                    followed,
                                    cp.url.clone(),
                                    password,
                                ));
                            }
                        }
                        if let Some(otel) = otel {
                            match crate::otel::Exporter::new(otel) {
                                Ok(exporter) => {
                                    if let Some(tapped) = taps.next() {
                                        tokio::spawn(exporter.run(Arc::clone(&shared), tapped));
                                    }
                                }
                                Err(e) => {
                                    let _ = ready.send(Err(e.into()));
                                    return;
                                }
                            }
                        }
                        if let Some((l, acceptor)) = admin_listener {
                            match tokio::net::TcpListener::from_std(l) {
                                Ok(l) => {
                                    tokio::spawn(admin::serve(l, acceptor, Arc::clone(&shared)));
                                }
                                Err(e) => {
                                    let _ = ready.send(Err(ControlError::Admin(e)));
                                    return;
                                }
                            }
                        }
                        if let Some((l, acceptor, max_rows)) = mcp_listener {
                            match tokio::net::TcpListener::from_std(l) {
                                Ok(l) => {
                                    tokio::spawn(crate::mcp::serve(
                                        l,
                                        acceptor,
                                        Arc::clone(&shared),
                                        max_rows,
                                    ));
                                }
                                Err(e) => {
                                    let _ = ready.send(Err(ControlError::Mcp(e)));
                                    return;
                                }
                            }
                        }
                        tokio::spawn(crate::drift::watch(Arc::clone(&shared), stopped.clone()));
                        tokio::spawn(crate::upstream::pool::sweeping(
                            Arc::clone(&shared.upstream.pool),
                            stopped.clone(),
                        ));
                        let _ = ready.send(Ok(()));
                        let _ = stopped.wait_for(|s| *s).await;
                    });
                })
                .map_err(StartError::Thread)?,
        );
    }
    let started = started
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| ControlError::Timeout)
        .and_then(|r| r);
    if let Err(e) = started {
        let _ = stop.send(true);
        for t in threads {
            let _ = t.join();
        }
        return Err(e.into());
    }

    // Every session holds a permit of the one connection limit, whichever
    // thread runs it.
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    for (i, listener) in listeners.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let limit = Arc::clone(&limit);
        let max = config.max_connections;
        let mut stopped = stopped.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Thread)?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("clsf-sessions-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let listener = match tokio::net::TcpListener::from_std(listener) {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!(error = %e, "a session thread cannot listen");
                                return;
                            }
                        };
                        server::run(listener, shared, limit, max, grace, async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await;
                    });
                })
                .map_err(StartError::Thread)?,
        );
    }
    Ok(Running {
        addr,
        admin,
        mcp,
        shared,
        config,
        stop,
        threads,
        _watcher: watcher,
    })
}

impl Running {
    /// Stops accepting, lets every session finish what it has in flight
    /// (up to the configured grace), and returns when all have ended.
    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Every session has ended and audited its end.
        self.shared.audit.close();
    }
}
