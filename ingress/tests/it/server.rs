//! What every route shares: probes, metrics, unknown routes, body limits on chunked bodies, slow
//! clients, and graceful shutdown with a request in flight.

use std::time::Duration;

use shared::inboxes::InboxKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// Reads until the server closes the connection; a generous bound turns a hang into a failure.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server never closed the connection");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_answer() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz").await;
    assert_eq!(
        (health.status.as_u16(), health.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.json(),
        serde_json::json!({"redis": "ok", "postgres": "ok"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_rejections_and_enqueue_latency() {
    let app = TestApp::spawn().await;
    let inbox = app.inbox(InboxKind::Waha, |_| {}).await;
    let path = format!("/webhooks/waha/{inbox}");
    app.post(
        &path,
        &[("content-type", "application/json")],
        fixture("waha-message.json"),
    )
    .await;
    app.post(&path, &[("content-type", "text/plain")], "x")
        .await;
    let echo = fixture("waha-message.json").replace("\"fromMe\": false", "\"fromMe\": true");
    app.post(&path, &[("content-type", "application/json")], echo)
        .await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    for expected in [
        "ingress_requests_total{route=\"/webhooks/waha/{inbox}\",status=\"200\"}",
        "ingress_requests_total{route=\"/webhooks/waha/{inbox}\",status=\"415\"}",
        "ingress_rejected_total{reason=\"unsupported_media_type\"}",
        "ingress_ignored_total{reason=\"echo\"}",
        "ingress_enqueued_total{queue=\"whatsapp-messages\",kind=\"waha.message\"}",
        "ingress_enqueue_seconds_bucket{queue=\"whatsapp-messages\"",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_methods() {
    let app = TestApp::spawn().await;
    let reply = app.get("/nope").await;
    assert_eq!(
        (reply.status.as_u16(), reply.error().as_str()),
        (404, "no such route")
    );
    let reply = app.get("/webhooks/waha/inb_x").await;
    assert_eq!(
        (reply.status.as_u16(), reply.header("allow")),
        (405, Some("POST"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_bodies_are_cut_off_at_the_limit() {
    let app = TestApp::spawn_with(None, |c| c.limits.max_body_bytes = 1024).await;
    let inbox = app.inbox(InboxKind::Waha, |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /webhooks/waha/{inbox} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let chunk = format!("{:x}\r\n{}\r\n", 600, "x".repeat(600));
    let request = format!("{head}{chunk}{chunk}0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let response = read_until_closed(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("body larger than 1024 bytes"),
        "{response}"
    );
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_body_is_read_to_its_end_before_the_413() {
    let app = TestApp::spawn_with(None, |c| c.limits.max_body_bytes = 1024).await;
    let inbox = app.inbox(InboxKind::Waha, |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(1500));
    let head = format!(
        "POST /webhooks/waha/{inbox} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(700);
    stream
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .expect("write");
    // Ingress waits for the rest of the body before it answers (it used to answer at once and
    // close on the client, whose kernel then reset the connection under the answer).
    let mut early = [0u8; 64];
    let answered_early =
        tokio::time::timeout(Duration::from_millis(300), stream.read(&mut early)).await;
    assert!(
        answered_early.is_err(),
        "answered before the body was in: {answered_early:?}"
    );
    stream.write_all(rest.as_bytes()).await.expect("write");
    // The whole answer arrives, and the connection closes after it.
    let response = read_until_closed(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    assert!(
        response.contains("body larger than 1024 bytes"),
        "{response}"
    );
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_disconnected() {
    let app = TestApp::spawn_with(None, |c| {
        c.limits.header_read_timeout = Duration::from_millis(200);
        c.limits.body_read_timeout = Duration::from_millis(200);
    })
    .await;
    let inbox = app.inbox(InboxKind::Waha, |_| {}).await;
    // A head that never ends.
    let mut slow_head = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    slow_head
        .write_all(b"POST /webhooks/waha/x HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    read_until_closed(&mut slow_head).await;
    // A body that never ends.
    let mut slow_body = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /webhooks/waha/{inbox} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    slow_body.write_all(head.as_bytes()).await.expect("write");
    let response = read_until_closed(&mut slow_body).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_the_request_in_flight_then_stops_accepting() {
    let app = TestApp::spawn().await;
    let inbox = app.inbox(InboxKind::Waha, |_| {}).await;
    let body = fixture("waha-message.json");
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /webhooks/waha/{inbox} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    // hyper sends 100 Continue when the handler starts reading the body: the request is in flight.
    let mut continue_line = [0u8; 25];
    stream
        .read_exact(&mut continue_line)
        .await
        .expect("100 continue");
    assert!(
        continue_line.starts_with(b"HTTP/1.1 100 Continue"),
        "{:?}",
        String::from_utf8_lossy(&continue_line)
    );
    app.stop.cancel();
    stream.write_all(body.as_bytes()).await.expect("write body");
    let response = read_until_closed(&mut stream).await;
    assert!(response.contains("HTTP/1.1 200 OK"), "{response}");
    assert_eq!(app.jobs("whatsapp-messages").await.len(), 1);
    let TestApp { server, addr, .. } = app;
    server
        .await
        .expect("server task")
        .expect("server stops cleanly");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
