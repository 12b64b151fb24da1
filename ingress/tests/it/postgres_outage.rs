//! Postgres unreachable under a running ingress: webhooks for inboxes ingress already knows keep
//! being accepted (they need only Redis), a webhook for an inbox it has not looked up yet gets
//! 503 with Retry-After — never 404, which a provider would take as "drop it" — and nothing is
//! enqueued for it; once Postgres is back the same ingress accepts it.

use std::time::Duration;

use shared::inboxes::InboxKind;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_is_503_for_unknown_inboxes_and_known_ones_keep_flowing() {
    let app = TestApp::spawn_with(None, |c| {
        c.retry_after = Duration::from_secs(7);
        c.inbox_cache_ttl = Duration::from_secs(300);
    })
    .await;
    let known = app.inbox(InboxKind::Waha, |_| {}).await;
    let unseen = app.inbox(InboxKind::Waha, |_| {}).await;
    let post = |inbox: String, id: &'static str| {
        let body = fixture("waha-message.json")
            .replace("false_4915212345678@c.us_3EB0C767D26A1D8B4E2F", id);
        let app = &app;
        async move {
            let path = format!("/webhooks/waha/{inbox}");
            app.post(&path, &[("content-type", "application/json")], body)
                .await
        }
    };
    assert_eq!(post(known.clone(), "before").await.json()["accepted"], 1);

    app.db.refuse_connections().await;
    let flowing = post(known.clone(), "during").await;
    assert_eq!(flowing.status, 200, "{:?}", flowing.body);
    assert_eq!(flowing.json()["accepted"], 1);
    let down = post(unseen.clone(), "during-unseen").await;
    assert_eq!(
        (down.status.as_u16(), down.error().as_str()),
        (503, "postgres unavailable, retry later")
    );
    assert_eq!(down.header("retry-after"), Some("7"));
    assert_eq!(app.get("/readyz").await.status, 503);
    assert_eq!(app.jobs("whatsapp-messages").await.len(), 2);

    app.db.accept_connections().await;
    let up = post(unseen.clone(), "during-unseen").await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert_eq!(up.json()["accepted"], 1);
    assert_eq!(app.get("/readyz").await.status, 200);
    assert_eq!(app.jobs("whatsapp-messages").await.len(), 3);
}
