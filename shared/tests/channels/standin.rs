//! A loopback HTTP stand-in for a provider (WAHA, Graph API): it records every request and
//! answers from a script of replies, one per request, in order. An empty script answers 599 so a
//! test that sends more than it expects fails loudly.

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, header::HeaderMap, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One request as the provider saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the stand-in answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Json {
        status: u16,
        body: Value,
        headers: Vec<(&'static str, String)>,
    },
    Text {
        status: u16,
        body: String,
    },
    /// Never answers: the client's timeout must fire.
    Hang,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self::Json {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub fn with_header(self, name: &'static str, value: &str) -> Self {
        match self {
            Self::Json {
                status,
                body,
                mut headers,
            } => {
                headers.push((name, value.to_owned()));
                Self::Json {
                    status,
                    body,
                    headers,
                }
            }
            other => other,
        }
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Recorded>>,
    replies: Mutex<VecDeque<Reply>>,
}

pub struct StandIn {
    pub base: url::Url,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let task = tokio::spawn(serve(listener, state.clone()));
        Self {
            base: url::Url::parse(&format!("http://{addr}")).unwrap(),
            state,
            task,
        }
    }

    pub fn reply(&self, reply: Reply) -> &Self {
        self.state.replies.lock().unwrap().push_back(reply);
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    state.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });
    let reply = state.replies.lock().unwrap().pop_front();
    let (status, body, headers) = match reply {
        Some(Reply::Json {
            status,
            body,
            headers,
        }) => (status, body.to_string(), headers),
        Some(Reply::Text { status, body }) => (status, body, Vec::new()),
        Some(Reply::Hang) => std::future::pending().await,
        None => (599, "no reply scripted".to_owned(), Vec::new()),
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (name, value) in headers {
        response = response.header(name, value);
    }
    Ok(response.body(Full::new(Bytes::from(body))).unwrap())
}
