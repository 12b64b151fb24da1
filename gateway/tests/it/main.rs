//! The real gateway against the real Redis: pusher-protocol clients over WebSocket, broadcasts
//! published the way Laravel's Redis broadcaster does.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use gateway::{Gateway, GatewayConfig, protocol};
use serde_json::{Value, json};
use shared::{config::Secret, pusher::PusherApp};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};
use tokio_util::sync::CancellationToken;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Running {
    addr: std::net::SocketAddr,
    prefix: String,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start() -> Running {
    let prefix = format!("{}:", shared::testkit::unique("gw"));
    let config = GatewayConfig {
        redis_url: Secret::new(shared::testkit::redis_url()),
        broadcast_prefix: prefix.clone(),
        pusher: PusherApp {
            key: "app-key".into(),
            secret: Secret::new("app-secret"),
        },
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = Gateway::build(config, listener);
    let addr = gateway.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(gateway.run(stop.clone()));
    Running { addr, prefix, stop }
}

async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame arrives")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Connects and returns the socket with its socket id.
async fn connect(gw: &Running, key: &str) -> (Socket, Value) {
    let url = format!(
        "ws://{}/app/{key}?protocol=7&client=js&version=8.4.0",
        gw.addr
    );
    let (mut socket, _) = connect_async(url).await.unwrap();
    let hello = next_frame(&mut socket).await;
    (socket, hello)
}

async fn subscribe(socket: &mut Socket, socket_id: &str, channel: &str, secret: &str) -> Value {
    let auth = protocol::sign("app-key", secret, socket_id, channel);
    let frame = json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}});
    socket.send(Message::text(frame.to_string())).await.unwrap();
    next_frame(socket).await
}

fn socket_id(hello: &Value) -> String {
    assert_eq!(hello["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
    data["socket_id"].as_str().unwrap().to_owned()
}

async fn publish(gw: &Running, channel: &str, payload: &Value) -> i64 {
    let client = redis::Client::open(shared::testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PUBLISH")
        .arg(format!("{}{channel}", gw.prefix))
        .arg(payload.to_string())
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Publishes until the gateway's subscription is live (pub/sub has no backlog), then returns.
async fn publish_until_heard(gw: &Running, channel: &str, payload: &Value) {
    for _ in 0..200 {
        if publish(gw, channel, payload).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the gateway never subscribed to broadcasts");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscribed_client_receives_broadcasts_in_pusher_format() {
    let gw = start().await;
    let (mut socket, hello) = connect(&gw, "app-key").await;
    let id = socket_id(&hello);
    let channel = "private-tenant.t1.messages";
    let ok = subscribe(&mut socket, &id, channel, "app-secret").await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(ok["channel"], channel);

    let data = json!({"message": {"id": "m1", "text": "olá"}});
    publish_until_heard(
        &gw,
        channel,
        &json!({"event": "message.ready", "data": data, "socket": null}),
    )
    .await;
    let event = next_frame(&mut socket).await;
    assert_eq!(event["event"], "message.ready");
    assert_eq!(event["channel"], channel);
    let carried: Value =
        serde_json::from_str(event["data"].as_str().expect("data is a JSON string")).unwrap();
    assert_eq!(carried, data);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_signature_is_refused_and_hears_nothing() {
    let gw = start().await;
    let (mut intruder, hello) = connect(&gw, "app-key").await;
    let intruder_id = socket_id(&hello);
    let refused = subscribe(
        &mut intruder,
        &intruder_id,
        "private-tenant.b.messages",
        "guessed-secret",
    )
    .await;
    assert_eq!(refused["event"], "pusher:subscription_error");
    let error: Value = serde_json::from_str(refused["data"].as_str().unwrap()).unwrap();
    assert_eq!(error["status"], 401);

    // A legitimate client of tenant A, subscribed with a valid signature for A only.
    let (mut tenant_a, hello) = connect(&gw, "app-key").await;
    let a_id = socket_id(&hello);
    subscribe(
        &mut tenant_a,
        &a_id,
        "private-tenant.a.messages",
        "app-secret",
    )
    .await;

    // B's event reaches nobody (nobody may subscribe to B here); then A's event reaches A only.
    publish_until_heard(
        &gw,
        "private-tenant.a.messages",
        &json!({"event": "probe", "data": {}, "socket": null}),
    )
    .await;
    assert_eq!(next_frame(&mut tenant_a).await["event"], "probe");
    publish(
        &gw,
        "private-tenant.b.messages",
        &json!({"event": "secret.b", "data": {"x": 1}, "socket": null}),
    )
    .await;
    publish(
        &gw,
        "private-tenant.a.messages",
        &json!({"event": "after", "data": {}, "socket": null}),
    )
    .await;
    let next = next_frame(&mut tenant_a).await;
    assert_eq!(next["event"], "after", "tenant A never sees B's event");

    intruder
        .send(Message::text(
            json!({"event": "pusher:ping", "data": {}}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut intruder).await["event"],
        "pusher:pong",
        "the intruder got no event before its pong"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_broadcasts_are_dropped_and_the_sender_socket_is_skipped() {
    let gw = start().await;
    let (mut socket, hello) = connect(&gw, "app-key").await;
    let id = socket_id(&hello);
    let channel = "private-tenant.t1.session.s1";
    subscribe(&mut socket, &id, channel, "app-secret").await;
    publish_until_heard(&gw, channel, &json!({"event": "warmup", "data": {}})).await;
    assert_eq!(next_frame(&mut socket).await["event"], "warmup");
    publish(&gw, channel, &json!({"event": 42, "data": {}})).await;
    publish(&gw, channel, &json!({"event": "no-object", "data": "text"})).await;
    publish(
        &gw,
        channel,
        &json!({"event": "to-others", "data": {}, "socket": id}),
    )
    .await;
    publish(
        &gw,
        channel,
        &json!({"event": "last", "data": {}, "socket": null}),
    )
    .await;
    assert_eq!(next_frame(&mut socket).await["event"], "last");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_app_keys_and_public_channels_are_refused() {
    let gw = start().await;
    let (_, hello) = connect(&gw, "wrong-key").await;
    assert_eq!(hello["event"], "pusher:error");
    assert_eq!(hello["data"]["code"], 4001);

    let (mut socket, hello) = connect(&gw, "app-key").await;
    let id = socket_id(&hello);
    let public = subscribe(&mut socket, &id, "tenant.t1.messages", "app-secret").await;
    assert_eq!(public["event"], "pusher:subscription_error");
    let bad_name = subscribe(&mut socket, &id, "private-tenant.t 1", "app-secret").await;
    assert_eq!(bad_name["event"], "pusher:subscription_error");
}
