//! `gateway`: the WebSocket socket gateway (Pusher protocol v7), fed by Redis pub/sub.

use gateway::{Gateway, GatewayConfig};
use shared::config::env_parse;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = shared::telemetry::init("gateway");
    let port: u16 = env_parse("GATEWAY_PORT", 6001)?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    let stop = shared::shutdown::on_signal();
    Gateway::build(GatewayConfig::from_env(), listener)
        .run(stop)
        .await;
    Ok(())
}
