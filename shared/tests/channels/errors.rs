//! Every class of every adapter's error table, with error bodies in the shape each provider
//! documents, driven through one `check`: the verdict, what the queue is told (`JobError`), and
//! that the provider's text, code and `fbtrace_id` survive into it.

use std::time::Duration;

use serde_json::{Value, json};
use shared::{
    channels::{ChannelSender, OutboundMessage, SendError, ThrottleScope, job_error},
    jobs::JobError,
};

use crate::standin::{Reply, StandIn};

#[derive(Clone, Copy, Debug)]
enum Adapter {
    Waha,
    Messenger,
    Whatsapp,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Throttled(ThrottleScope, Option<u64>),
    Transient,
    Broken,
    Permanent,
}

use Adapter::*;
use Expect::*;

/// A Graph API error body.
fn graph(code: i64, subcode: Option<i64>, message: &str) -> Value {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": format!("Atrace{code}"),
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    json!({ "error": error })
}

/// A WhatsApp Cloud error body, with `error_data.details` as Meta sends it.
fn wa(code: i64, message: &str, details: &str) -> Value {
    let mut body = graph(code, None, message);
    body["error"]["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
    body
}

/// A WAHA (NestJS) error body.
fn waha(status: u16, message: &str) -> Value {
    json!({"statusCode": status, "message": message, "error": "Error"})
}

async fn check(adapter: Adapter, reply: Reply, expect: Expect) {
    let provider = StandIn::start().await;
    provider.reply(reply.clone());
    let sender: Box<dyn ChannelSender> = match adapter {
        Waha => Box::new(crate::waha(&provider.base)),
        Messenger => Box::new(crate::messenger(&provider.base)),
        Whatsapp => Box::new(crate::whatsapp(&provider.base)),
    };
    let error = sender
        .send(&OutboundMessage::text("msg_1", "5511987654321", "hi"))
        .await
        .expect_err("the provider refused");
    let context = format!("{adapter:?} {reply:?} → {error:?}");

    let got = match &error {
        SendError::Throttled {
            scope, retry_after, ..
        } => Throttled(*scope, retry_after.map(|d| d.as_secs())),
        SendError::Transient { .. } => Transient,
        SendError::ChannelBroken { .. } => Broken,
        SendError::Permanent { .. } => Permanent,
    };
    assert_eq!(got, expect, "{context}");

    let job = job_error(&error);
    match expect {
        Throttled(_, after) => assert!(
            matches!(&job, JobError::RetryAfter { after: a, .. }
                if *a == Duration::from_secs(after.unwrap_or(60))),
            "{context}: {job:?}"
        ),
        Transient => assert!(matches!(job, JobError::Transient(_)), "{context}"),
        Broken => assert!(matches!(job, JobError::RetryAfter { .. }), "{context}"),
        Permanent => assert!(matches!(job, JobError::Permanent(_)), "{context}"),
    }

    if let Reply::Json { status, body, .. } = &reply {
        let provider_error = error.error();
        if *status >= 300 {
            assert_eq!(provider_error.http_status, Some(*status), "{context}");
        }
        if let Some(code) = body.pointer("/error/code").and_then(Value::as_i64) {
            assert_eq!(provider_error.code, Some(code), "{context}");
            let trace = format!("Atrace{code}");
            assert_eq!(provider_error.fbtrace_id.as_deref(), Some(trace.as_str()));
            assert!(job.to_string().contains(&trace), "{context}: {job}");
        }
        let message = body
            .pointer("/error/message")
            .or_else(|| body.get("message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(job.to_string().contains(message), "{context}: {job}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn messenger_error_table() {
    let cases = [
        (
            400,
            graph(4, None, "(#4) Application request limit reached"),
            Throttled(ThrottleScope::Inbox, None),
        ),
        (
            400,
            graph(
                613,
                None,
                "(#613) Calls to this api have exceeded the rate limit.",
            ),
            Throttled(ThrottleScope::Inbox, None),
        ),
        (
            500,
            graph(
                1200,
                None,
                "Temporary send message failure. Please try again later",
            ),
            Transient,
        ),
        (
            503,
            graph(
                2,
                None,
                "An unexpected error has occurred. Please retry your request later.",
            ),
            Transient,
        ),
        (
            400,
            graph(
                190,
                Some(463),
                "Error validating access token: Session has expired",
            ),
            Broken,
        ),
        (
            403,
            graph(200, None, "(#200) Requires pages_messaging permission"),
            Broken,
        ),
        (
            403,
            graph(
                230,
                None,
                "(#230) Requires pages_messaging_phone_number permission",
            ),
            Broken,
        ),
        (
            400,
            graph(
                10,
                None,
                "(#10) Application does not have permission for this action",
            ),
            Broken,
        ),
        (
            400,
            graph(
                368,
                None,
                "The action attempted has been deemed abusive or is otherwise disallowed",
            ),
            Broken,
        ),
        (
            400,
            graph(
                10,
                Some(2018278),
                "(#10) This message is sent outside of allowed window.",
            ),
            Permanent,
        ),
        (
            400,
            graph(100, Some(2018001), "(#100) No matching user found"),
            Permanent,
        ),
        (
            400,
            graph(551, Some(1545041), "This person isn't available right now."),
            Permanent,
        ),
        (400, graph(100, None, "(#100) Invalid parameter"), Permanent),
    ];
    for (status, body, expect) in cases {
        check(Messenger, Reply::json(status, body), expect).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn whatsapp_cloud_error_table() {
    let cases = [
        (
            400,
            graph(4, None, "(#4) Application request limit reached"),
            Throttled(ThrottleScope::Inbox, None),
        ),
        (
            400,
            wa(
                80007,
                "(#80007) Rate limit issues",
                "WhatsApp Business Account rate limit hit",
            ),
            Throttled(ThrottleScope::Inbox, None),
        ),
        (
            400,
            wa(
                130429,
                "(#130429) Rate limit hit",
                "Cloud API message throughput has been reached.",
            ),
            Throttled(ThrottleScope::Inbox, None),
        ),
        (
            400,
            wa(
                131056,
                "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                "Too many messages sent from this phone number to the same phone number",
            ),
            Throttled(ThrottleScope::Recipient, None),
        ),
        (
            500,
            wa(
                1,
                "An unknown error occurred",
                "Invalid request or possible server error.",
            ),
            Transient,
        ),
        (
            503,
            wa(
                2,
                "Service temporarily unavailable",
                "Temporary due to downtime or due to being overloaded.",
            ),
            Transient,
        ),
        (
            500,
            wa(
                131000,
                "Something went wrong",
                "Message failed to send due to an unknown error.",
            ),
            Transient,
        ),
        (
            503,
            wa(
                131016,
                "Service unavailable",
                "A service is temporarily unavailable.",
            ),
            Transient,
        ),
        (
            401,
            graph(
                190,
                Some(463),
                "Error validating access token: Session has expired",
            ),
            Broken,
        ),
        (403, graph(200, None, "(#200) Permissions error"), Broken),
        (403, graph(10, None, "(#10) Permission denied"), Broken),
        (
            400,
            wa(131031, "Account has been locked", "Business Account locked"),
            Broken,
        ),
        (
            400,
            graph(368, None, "Temporarily blocked for policies violations"),
            Broken,
        ),
        (
            400,
            wa(
                131048,
                "Spam rate limit hit",
                "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
            ),
            Broken,
        ),
        (
            400,
            wa(100, "(#100) Invalid parameter", "Parameter 'to' is invalid"),
            Permanent,
        ),
        (
            400,
            wa(
                131026,
                "Message Undeliverable.",
                "Unable to deliver message.",
            ),
            Permanent,
        ),
        (
            400,
            wa(
                131047,
                "Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
            ),
            Permanent,
        ),
        (
            400,
            wa(
                131051,
                "Unsupported message type",
                "Message type is not currently supported.",
            ),
            Permanent,
        ),
        (
            400,
            wa(
                131049,
                "This message was not delivered to maintain healthy ecosystem engagement.",
                "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
            ),
            Permanent,
        ),
    ];
    for (status, body, expect) in cases {
        check(Whatsapp, Reply::json(status, body), expect).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn waha_error_table() {
    let cases = [
        (401, waha(401, "Unauthorized"), Broken),
        (404, waha(404, "Session \"default\" does not exist"), Broken),
        (
            422,
            waha(
                422,
                "Session status is not as expected. Try again later or restart the session",
            ),
            Broken,
        ),
        (400, waha(400, "chatId must be a string"), Permanent),
        (500, waha(500, "Internal server error"), Transient),
        (502, waha(502, "Bad gateway"), Transient),
    ];
    for (status, body, expect) in cases {
        check(Waha, Reply::json(status, body), expect).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_on_429_is_honoured_by_every_http_adapter() {
    for adapter in [Waha, Messenger, Whatsapp] {
        let reply = Reply::json(429, json!({"message": "Too Many Requests"}))
            .with_header("retry-after", "120");
        check(adapter, reply, Throttled(ThrottleScope::Inbox, Some(120))).await;
    }
    let meta_throttle = Reply::json(400, wa(130429, "(#130429) Rate limit hit", "throughput"))
        .with_header("retry-after", "30");
    check(
        Whatsapp,
        meta_throttle,
        Throttled(ThrottleScope::Inbox, Some(30)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_that_are_not_json_fall_back_to_the_http_status() {
    let cases = [
        (Messenger, 502, Transient),
        (Whatsapp, 503, Transient),
        (Waha, 504, Transient),
        (Whatsapp, 404, Permanent),
    ];
    for (adapter, status, expect) in cases {
        let reply = Reply::Text {
            status,
            body: "<html>upstream trouble</html>".into(),
        };
        check(adapter, reply, expect).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2xx_without_a_message_id_is_not_retried() {
    for adapter in [Waha, Messenger, Whatsapp] {
        check(adapter, Reply::json(200, json!({"ok": true})), Permanent).await;
    }
}
