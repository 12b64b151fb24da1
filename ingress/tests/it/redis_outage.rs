//! Redis stopped under a running ingress: webhooks get 503 with Retry-After and nothing is
//! half-written; once Redis is back the same ingress (not restarted) accepts them again,
//! including a Mailgun delivery whose token was seen during the outage.

use std::time::Duration;

use shared::{inboxes::InboxKind, testkit::PrivateRedis};

use crate::{email, helpers::*};

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_is_503_with_retry_after_and_recovers_without_restart() {
    let port = PrivateRedis::free_port();
    let mut redis = PrivateRedis::start(port).await;
    let app = TestApp::spawn_with(Some(redis.url()), |c| {
        c.retry_after = Duration::from_secs(7)
    })
    .await;
    let waha = app.inbox(InboxKind::Waha, |_| {}).await;
    let mailgun = email::mailgun_inbox(&app).await;
    let path = format!("/webhooks/waha/{waha}");
    let post_waha = |id: &'static str| {
        let body = fixture("waha-message.json")
            .replace("false_4915212345678@c.us_3EB0C767D26A1D8B4E2F", id);
        app.post(&path, &[("content-type", "application/json")], body)
    };
    assert_eq!(post_waha("before").await.json()["accepted"], 1);

    redis.kill();
    let down = post_waha("during").await;
    assert_eq!(
        (down.status.as_u16(), down.error().as_str()),
        (503, "redis unavailable, retry later")
    );
    assert_eq!(down.header("retry-after"), Some("7"));
    let mail = email::mailgun_body(email::now(), "token-during-outage");
    let mail_down = email::post_mailgun(&app, &mailgun, mail.clone()).await;
    assert_eq!(mail_down.status, 503);
    assert_eq!(app.get("/readyz").await.status, 503);

    let redis = PrivateRedis::start(port).await;
    let up = post_waha("during").await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert_eq!(up.json()["accepted"], 1);
    let mail_up = email::post_mailgun(&app, &mailgun, mail).await;
    assert_eq!(
        mail_up.json()["accepted"],
        1,
        "the token is remembered only once the job is stored"
    );
    assert_eq!(app.get("/readyz").await.status, 200);
    // Redis restarted without persistence: exactly the two jobs sent after it came back.
    assert_eq!(app.jobs("whatsapp-messages").await.len(), 1);
    assert_eq!(app.jobs("email").await.len(), 1);
    drop(redis);
}
