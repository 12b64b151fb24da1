//! One WebSocket client: handshake on `/app/{key}`, then subscribe / unsubscribe / ping frames
//! from the client, and events from the hub to the client.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::{net::TcpStream, sync::mpsc};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{Request, Response},
};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::{GatewayConfig, hub::Hub, protocol};

/// How many frames may wait for a slow client before it starts missing events.
const OUTBOX: usize = 256;

// The handshake callback's `Result<Response, ErrorResponse>` is tungstenite's signature, not ours.
#[allow(clippy::result_large_err)]
pub async fn serve(stream: TcpStream, hub: Hub, config: GatewayConfig, stop: CancellationToken) {
    let mut path = String::new();
    let accepted =
        tokio_tungstenite::accept_hdr_async(stream, |request: &Request, response: Response| {
            path = request.uri().path().to_owned();
            Ok(response)
        })
        .await;
    let Ok(socket) = accepted else { return };
    let (mut sink, mut source) = socket.split();

    if path.strip_prefix("/app/") != Some(config.pusher.key.as_str()) {
        let _ = sink
            .send(Message::text(protocol::error(4001, "unknown app key")))
            .await;
        let _ = sink.close().await;
        return;
    }

    let socket_id = protocol::new_socket_id();
    let (outbox, mut inbox) = mpsc::channel::<String>(OUTBOX);
    if sink
        .send(Message::text(protocol::connection_established(
            &socket_id, 120,
        )))
        .await
        .is_err()
    {
        return;
    }
    metrics::gauge!("switchyard_gateway_connections").increment(1.0);
    let idle_limit = Duration::from_secs(150);
    loop {
        tokio::select! {
            frame = inbox.recv() => match frame {
                Some(frame) => if sink.send(Message::text(frame)).await.is_err() { break },
                None => break,
            },
            incoming = tokio::time::timeout(idle_limit, source.next()) => match incoming {
                Ok(Some(Ok(Message::Text(text)))) => {
                    if let Some(reply) = handle(&text, &socket_id, &hub, &outbox, &config)
                        && sink.send(Message::text(reply)).await.is_err()
                    {
                        break;
                    }
                }
                Ok(Some(Ok(Message::Ping(payload)))) => { let _ = sink.send(Message::Pong(payload)).await; }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => break,
                Ok(Some(Ok(_))) => {}
            },
            _ = stop.cancelled() => {
                let _ = sink.send(Message::text(protocol::error(4200, "server shutting down, reconnect"))).await;
                break;
            }
        }
    }
    hub.forget_socket(&socket_id);
    metrics::gauge!("switchyard_gateway_connections").decrement(1.0);
    let _ = sink.close().await;
    debug!(socket_id, "socket closed");
}

/// Handles one client frame; returns the reply to send, if any.
fn handle(
    text: &str,
    socket_id: &str,
    hub: &Hub,
    outbox: &mpsc::Sender<String>,
    config: &GatewayConfig,
) -> Option<String> {
    let Ok(frame) = serde_json::from_str::<protocol::ClientFrame>(text) else {
        return Some(protocol::error(
            4000,
            "frame is not a JSON object with an `event`",
        ));
    };
    let channel = frame
        .data
        .get("channel")
        .and_then(|c| c.as_str())
        .unwrap_or_default();
    match frame.event.as_str() {
        "pusher:ping" => Some(protocol::pong()),
        "pusher:subscribe" => Some(subscribe(
            channel,
            &frame.data,
            socket_id,
            hub,
            outbox,
            config,
        )),
        "pusher:unsubscribe" => {
            hub.unsubscribe(channel, socket_id);
            None
        }
        // Client events (`client-…`) are not relayed: agents and customers talk through the API.
        _ => None,
    }
}

fn subscribe(
    channel: &str,
    data: &serde_json::Value,
    socket_id: &str,
    hub: &Hub,
    outbox: &mpsc::Sender<String>,
    config: &GatewayConfig,
) -> String {
    if !protocol::valid_channel_name(channel) {
        return protocol::subscription_error(channel, "invalid channel name", 400);
    }
    // Every channel Switchyard broadcasts on is private: subscribing needs the API's signature.
    if !channel.starts_with("private-") {
        return protocol::subscription_error(channel, "only private channels are served", 403);
    }
    let auth = data
        .get("auth")
        .and_then(|a| a.as_str())
        .unwrap_or_default();
    if !protocol::verify(
        &config.pusher.key,
        config.pusher.secret.expose(),
        socket_id,
        channel,
        auth,
    ) {
        return protocol::subscription_error(channel, "invalid auth signature", 401);
    }
    hub.subscribe(channel, socket_id, outbox.clone());
    protocol::subscription_succeeded(channel)
}
