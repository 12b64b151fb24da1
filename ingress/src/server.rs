//! The connection layer: accept, time out slow clients, serve HTTP/1.1, and shut down gracefully.
//!
//! The shutdown protocol is the fleet's (STYLE.md habit 4): the token is cancelled → the listener
//! is dropped (no new connections) → every open connection is told to finish its current request
//! and close → we wait up to the grace period → whatever is left is logged and dropped. A client
//! that does not send its request head within the header timeout is disconnected by hyper; one
//! that trickles its body is cut off by `body::read`.

use std::{convert::Infallible, sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{State, routes};

pub async fn serve(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(state.config.limits.max_connections.max(1)));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "ingress listening");
    }
    loop {
        // Wait for a free slot first, so excess connections queue in the kernel's backlog.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            _ = stop.cancelled() => break,
        };
        let Ok(permit) = permit else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let header_timeout = state.config.limits.header_read_timeout;
        let shared = state.clone();
        let service = service_fn(move |request| {
            let state = shared.clone();
            async move { Ok::<_, Infallible>(routes::handle(state, request).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let grace = state.config.shutdown_grace;
    tracing::info!(?grace, "draining in-flight requests");
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("ingress stopped"),
        Err(_) => tracing::warn!("grace period over; dropping the connections still open"),
    }
}
