//! HTTP for the tests: a client that sends one request per connection, and a server on port 0
//! that serves `ingress::api::handle` (the `/api` endpoints exactly as ingress runs them).

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use ingress::api::{Answer, Api};
use serde_json::Value;

/// An answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn error(&self) -> String {
        self.body["error"].as_str().unwrap_or_default().to_owned()
    }
}

pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "switchyard.test");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = sender
        .send_request(builder.body(Full::new(body.into())).unwrap())
        .await
        .expect("response");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// A client for one base address and one API key.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub key: String,
}

impl Client {
    pub fn new(addr: SocketAddr, key: &str) -> Self {
        Self {
            addr,
            key: key.to_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let auth = format!("Bearer {}", self.key);
        send(
            self.addr,
            "GET",
            path,
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_with(path, body, &[]).await
    }

    pub async fn post_with(&self, path: &str, body: Value, extra: &[(&str, &str)]) -> Reply {
        let auth = format!("Bearer {}", self.key);
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        send(self.addr, "POST", path, &headers, body.to_string()).await
    }
}

/// Serves the `/api` endpoints on port 0 until dropped.
pub struct ApiServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    pub async fn start(api: Api) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let api = api.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let api = api.clone();
                    async move {
                        let Answer(status, body) =
                            ingress::api::handle(&api, &ulid::Ulid::new().to_string(), request)
                                .await;
                        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self { addr, task }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const CREATED: u16 = StatusCode::CREATED.as_u16();
