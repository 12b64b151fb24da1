//! Each channel's happy path: the request the provider receives is exactly what it documents,
//! and the provider's message id comes back. Plus the transport failures every HTTP adapter
//! shares: a provider that never answers, and one that is not listening.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use shared::channels::{
    ChannelSender, EmailSender, EmailThread, HttpOptions, MessengerConfig, MessengerSender,
    OutboundMessage, SendError, SmtpConfig, SmtpSecurity, WahaConfig, WahaSender, WidgetSender,
    job_error,
};
use shared::config::Secret;
use shared::jobs::JobError;

use crate::{
    PAGE_TOKEN, TestRedis, WA_TOKEN, WAHA_KEY, messenger,
    smtp_server::SmtpServer,
    standin::{Reply, StandIn},
    waha, whatsapp,
};

#[tokio::test(flavor = "multi_thread")]
async fn waha_sends_text_with_the_api_key() {
    let provider = StandIn::start().await;
    provider.reply(Reply::json(
        201,
        json!({"id": {"fromMe": true, "_serialized": "true_4915212345678@c.us_3EB0AA"}}),
    ));
    let message = OutboundMessage::text("msg_1", "4915212345678@c.us", "Hallo 👋");

    let sent = waha(&provider.base).send(&message).await.unwrap();

    assert_eq!(sent.provider_message_id, "true_4915212345678@c.us_3EB0AA");
    let [request] = provider.requests().try_into().unwrap();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/api/sendText")
    );
    assert_eq!(request.header("x-api-key"), Some(WAHA_KEY));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.body,
        json!({"session": "default", "chatId": "4915212345678@c.us", "text": "Hallo 👋"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn waha_without_an_api_key_sends_no_key_header() {
    let provider = StandIn::start().await;
    provider.reply(Reply::json(200, json!({"id": "GOWS1"})));
    let sender = WahaSender::new(WahaConfig {
        base_url: provider.base.clone(),
        session: "s2".into(),
        api_key: None,
        http: crate::http(),
    });
    let sent = sender
        .send(&OutboundMessage::text("msg_1", "1@c.us", "hi"))
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id, "GOWS1");
    assert_eq!(provider.requests()[0].header("x-api-key"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn messenger_sends_a_response_with_the_page_token() {
    let provider = StandIn::start().await;
    provider.reply(Reply::json(
        200,
        json!({"recipient_id": "7012345678901234", "message_id": "m_AbC"}),
    ));
    let message = OutboundMessage::text("msg_1", "7012345678901234", "Hello!");

    let sent = messenger(&provider.base).send(&message).await.unwrap();

    assert_eq!(sent.provider_message_id, "m_AbC");
    let [request] = provider.requests().try_into().unwrap();
    assert_eq!(request.path, "/v21.0/me/messages");
    assert_eq!(
        request.query.as_deref(),
        Some(format!("access_token={PAGE_TOKEN}").as_str())
    );
    assert_eq!(
        request.body,
        json!({
            "recipient": {"id": "7012345678901234"},
            "messaging_type": "RESPONSE",
            "message": {"text": "Hello!"},
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn messenger_tags_an_agent_reply_outside_the_window() {
    let provider = StandIn::start().await;
    provider.reply(Reply::json(
        200,
        json!({"recipient_id": "1", "message_id": "m_1"}),
    ));
    let mut message = OutboundMessage::text("msg_1", "1", "Sorry for the wait");
    message.messenger_tag = Some("HUMAN_AGENT".into());

    messenger(&provider.base).send(&message).await.unwrap();

    let body = &provider.requests()[0].body;
    assert_eq!(body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(body["tag"], "HUMAN_AGENT");
}

#[tokio::test(flavor = "multi_thread")]
async fn whatsapp_cloud_sends_text_with_a_bearer_token() {
    let provider = StandIn::start().await;
    provider.reply(Reply::json(
        200,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "5511987654321", "wa_id": "5511987654321"}],
            "messages": [{"id": "wamid.HBgNNTUx"}],
        }),
    ));
    let message = OutboundMessage::text("msg_1", "5511987654321", "Olá");

    let sent = whatsapp(&provider.base).send(&message).await.unwrap();

    assert_eq!(sent.provider_message_id, "wamid.HBgNNTUx");
    let [request] = provider.requests().try_into().unwrap();
    assert_eq!(request.path, "/v21.0/106540352242922/messages");
    assert_eq!(request.query, None);
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {WA_TOKEN}").as_str())
    );
    assert_eq!(
        request.body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": "text",
            "text": {"preview_url": false, "body": "Olá"},
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_never_answers_is_transient_and_the_token_stays_out_of_the_error() {
    let provider = StandIn::start().await;
    provider.reply(Reply::Hang);
    // A short per-attempt timeout; the assertion is on the verdict, not on time.
    let sender = MessengerSender::new(MessengerConfig {
        graph_base: provider.base.clone(),
        api_version: "v21.0".into(),
        page_access_token: Secret::new(PAGE_TOKEN),
        http: HttpOptions {
            timeout: Duration::from_millis(300),
        },
    });

    let error = sender
        .send(&OutboundMessage::text("msg_1", "1", "hi"))
        .await
        .unwrap_err();

    assert!(matches!(error, SendError::Transient { .. }), "{error:?}");
    assert!(matches!(job_error(&error), JobError::Transient(_)));
    assert!(
        !format!("{error} {error:?}").contains(PAGE_TOKEN),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_is_not_listening_is_transient() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let base = url::Url::parse(&format!("http://{closed}")).unwrap();
    let error = whatsapp(&base)
        .send(&OutboundMessage::text("msg_1", "1", "hi"))
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Transient { .. }), "{error:?}");
    assert!(!format!("{error:?}").contains(WA_TOKEN));
}

fn smtp(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::Plain,
        username: None,
        password: None,
        from: "Acme Support <support@acme.example>".into(),
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn email_reply_is_threaded_into_the_customers_conversation() {
    let server = SmtpServer::start("250 OK").await;
    let sender = EmailSender::new(&smtp(server.port)).unwrap();
    let mut message = OutboundMessage::text(
        "msg_01J",
        "Jane Doe <jane@customer.example>",
        "We shipped it.",
    );
    message.email = Some(EmailThread {
        subject: "Order 42".into(),
        in_reply_to: Some("<c2@customer.example>".into()),
        references: vec!["<c1@customer.example>".into()],
    });

    let sent = sender.send(&message).await.unwrap();

    assert_eq!(sent.provider_message_id, "<msg_01J@acme.example>");
    let [mail] = server.mails().try_into().unwrap();
    for header in [
        "From: \"Acme Support\" <support@acme.example>",
        "To: \"Jane Doe\" <jane@customer.example>",
        "Subject: Re: Order 42",
        "Message-ID: <msg_01J@acme.example>",
        "In-Reply-To: <c2@customer.example>",
        "References: <c1@customer.example> <c2@customer.example>",
    ] {
        assert!(
            mail.contains(&format!("{header}\r\n")),
            "{header} missing in\n{mail}"
        );
    }
    assert!(mail.contains("We shipped it."), "{mail}");
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_refusals_are_classified_by_reply_code() {
    for (reply, permanent) in [
        ("550 5.1.1 no such user", true),
        ("451 4.3.0 try later", false),
    ] {
        let server = SmtpServer::start(reply).await;
        let sender = EmailSender::new(&smtp(server.port)).unwrap();
        let error = sender
            .send(&OutboundMessage::text(
                "msg_1",
                "jane@customer.example",
                "x",
            ))
            .await
            .unwrap_err();
        match (permanent, &error) {
            (true, SendError::Permanent { error }) => assert_eq!(error.code, Some(550)),
            (false, SendError::Transient { error }) => assert_eq!(error.code, Some(451)),
            _ => panic!("{reply}: {error:?}"),
        }
        assert!(server.mails().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_email_recipient_is_permanent() {
    let sender = EmailSender::new(&smtp(9)).unwrap();
    let error = sender
        .send(&OutboundMessage::text("msg_1", "not an address", "x"))
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Permanent { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn widget_reply_is_published_on_the_session_channel() {
    let redis = TestRedis::new();
    let channel = format!("{}-private-tenant.ten_1.session.ses_1", redis.prefix);
    let client = redis::Client::open(crate::redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let sender = WidgetSender::new(redis.queues.clone());

    let sent = sender
        .send(&OutboundMessage::text("msg_7", &channel, "Hi from Acme"))
        .await
        .unwrap();

    assert_eq!(sent.provider_message_id, "msg_7");
    let received = tokio::time::timeout(Duration::from_secs(10), pubsub.on_message().next())
        .await
        .expect("published")
        .expect("a message");
    let payload: serde_json::Value =
        serde_json::from_str(&received.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(payload["event"], "message.outbound");
    assert_eq!(payload["data"]["message_id"], "msg_7");
    assert_eq!(payload["data"]["text"], "Hi from Acme");
    assert!(payload["socket"].is_null());
}
