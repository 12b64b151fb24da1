//! The socket gateway: pushes every broadcast published on Redis pub/sub (Laravel's Redis
//! broadcaster format) to the WebSocket clients subscribed to that channel, speaking the Pusher
//! Channels protocol v7, so pusher-js and Laravel Echo clients connect unchanged.
//!
//! Tenant isolation rests on private channels: a client can only subscribe to a channel whose
//! name it holds a signature for, and the API signs only its own tenant's channels.

mod connection;
pub mod hub;
pub mod protocol;

use std::net::SocketAddr;

use futures::StreamExt;
use shared::{
    config::{Secret, env_or},
    pusher::PusherApp,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use hub::Hub;

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub redis_url: Secret,
    /// BROADCAST_PREFIX: put in front of every channel name by publishers (Laravel's Redis prefix).
    pub broadcast_prefix: String,
    /// PUSHER_APP_KEY / PUSHER_APP_SECRET: the key clients connect with (`/app/{key}`) and the
    /// secret the API signs private-channel subscriptions with — read by the same code as the API's.
    pub pusher: PusherApp,
}

impl GatewayConfig {
    pub fn from_env() -> Self {
        Self {
            redis_url: Secret::new(env_or("REDIS_URL", "redis://127.0.0.1:6379")),
            broadcast_prefix: env_or("BROADCAST_PREFIX", ""),
            pusher: PusherApp::from_env(),
        }
    }
}

pub struct Gateway {
    listener: TcpListener,
    config: GatewayConfig,
    hub: Hub,
}

impl Gateway {
    /// Takes a bound listener, so tests use port 0.
    pub fn build(config: GatewayConfig, listener: TcpListener) -> Self {
        Self {
            listener,
            config,
            hub: Hub::default(),
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop`: accepts sockets and relays broadcasts.
    pub async fn run(self, stop: CancellationToken) {
        tokio::spawn(relay_broadcasts(
            self.config.clone(),
            self.hub.clone(),
            stop.clone(),
        ));
        info!(addr = ?self.listener.local_addr().ok(), "gateway listening");
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => { warn!(error = %e, "accept failed"); continue; }
                },
                _ = stop.cancelled() => break,
            };
            tokio::spawn(connection::serve(
                stream,
                self.hub.clone(),
                self.config.clone(),
                stop.clone(),
            ));
        }
        info!("gateway stopped");
    }
}

/// One pattern subscription for every private channel; resubscribes after Redis restarts.
async fn relay_broadcasts(config: GatewayConfig, hub: Hub, stop: CancellationToken) {
    let pattern = format!("{}private-*", config.broadcast_prefix);
    loop {
        match subscribe(&config, &pattern).await {
            Ok(mut pubsub) => {
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                let channel = message.get_channel_name();
                                let channel = channel.strip_prefix(config.broadcast_prefix.as_str()).unwrap_or(channel);
                                hub.dispatch(channel, message.get_payload_bytes());
                            }
                            None => break,
                        },
                        _ = stop.cancelled() => return,
                    }
                }
                warn!("broadcast subscription lost; resubscribing");
            }
            Err(e) => warn!(error = %e, "cannot subscribe to broadcasts; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn subscribe(
    config: &GatewayConfig,
    pattern: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = redis::Client::open(config.redis_url.expose())?
        .get_async_pubsub()
        .await?;
    pubsub.psubscribe(pattern).await?;
    Ok(pubsub)
}
