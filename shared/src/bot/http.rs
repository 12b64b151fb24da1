//! The HTTP bot adapter: POSTs each message to a detect-intent service and reads its decision.
//!
//! Request: `POST <url>` with the [`BotInput`] as JSON. Response: 2xx with
//! `{"reply": "…"|null, "intent": "…"|null, "handoff": bool, "recognised": bool}` (all
//! optional; `recognised` defaults to whether an intent came back). Timeouts, connection
//! errors, 408, 429 and 5xx are transient (the job retries on its queue's schedule); any other
//! status or an unreadable body is permanent.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{Bot, BotDecision, BotError, BotInput};

/// A bot behind an HTTP endpoint.
pub struct HttpBot {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    reply: Option<String>,
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    handoff: bool,
    #[serde(default)]
    recognised: Option<bool>,
}

impl HttpBot {
    pub fn new(client: reqwest::Client, url: impl Into<String>, timeout: Duration) -> Self {
        Self {
            client,
            url: url.into(),
            timeout,
        }
    }

    async fn ask(&self, input: &BotInput) -> Result<BotDecision, BotError> {
        let response = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .json(input)
            .send()
            .await
            .map_err(|e| BotError::Transient(describe(&e)))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            return Err(BotError::Transient(format!("bot answered {status}")));
        }
        if !status.is_success() {
            return Err(BotError::Permanent(format!("bot answered {status}")));
        }
        let answer: Answer = response.json().await.map_err(|e| {
            if e.is_timeout() {
                BotError::Transient(describe(&e))
            } else {
                BotError::Permanent(format!("unreadable bot answer: {e}"))
            }
        })?;
        let recognised = answer.recognised.unwrap_or(answer.intent.is_some());
        // A reply carrying U+0000 would fail to store on every retry and the customer would get
        // no answer at all.
        let storable = |text: String| crate::db::without_nul(&text);
        Ok(BotDecision {
            intent: answer.intent.map(storable),
            reply: answer.reply.map(storable).filter(|r| !r.trim().is_empty()),
            handoff: answer.handoff,
            recognised,
        })
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "bot timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect to the bot".to_owned()
    } else {
        format!("bot request failed: {error}")
    }
}

impl Bot for HttpBot {
    fn decide<'a>(&'a self, input: &'a BotInput) -> BoxFuture<'a, Result<BotDecision, BotError>> {
        Box::pin(self.ask(input))
    }
}
