//! `/api/broadcasting/auth`: a tenant key gets a gateway signature for its own private channels
//! only; bad input is a JSON error naming the field.

use serde_json::{Value, json};
use shared::{
    conversation::api_keys::{self, Scope},
    pusher::{PusherApp, verify},
};

use crate::helpers::TestApp;

async fn tenant_key(app: &TestApp) -> (String, String) {
    let tenant = shared::inboxes::create_tenant(&app.db.pool, "Acme")
        .await
        .unwrap();
    let mut conn = app.db.pool.get().await.unwrap();
    let scope = Scope::Tenant {
        tenant_id: tenant.clone(),
    };
    let token = api_keys::create(&mut conn, &scope, "desk")
        .await
        .unwrap()
        .token;
    (tenant, token)
}

async fn sign(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let reply = app
        .request("POST", "/api/broadcasting/auth", &headers, body.to_string())
        .await;
    (reply.status.as_u16(), reply.json())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_key_signs_its_own_private_channels_only() {
    let app = TestApp::spawn().await;
    let (tenant, token) = tenant_key(&app).await;
    let (_, other) = tenant_key(&app).await;
    let pusher = PusherApp::from_env();

    let channel = format!("private-tenant.{tenant}.messages");
    let (status, body) = sign(
        &app,
        &token,
        json!({"socket_id": "123.456", "channel_name": channel}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let auth = body["auth"].as_str().unwrap();
    assert!(verify(
        &pusher.key,
        pusher.secret.expose(),
        "123.456",
        &channel,
        auth
    ));
    assert!(!verify(
        &pusher.key,
        pusher.secret.expose(),
        "123.457",
        &channel,
        auth
    ));

    let theirs = format!("private-tenant.{other}.messages");
    let (status, body) = sign(
        &app,
        &token,
        json!({"socket_id": "123.456", "channel_name": theirs}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.get("auth").is_none());
    // A prefix of another tenant's id must not pass either.
    let sneaky = format!("private-tenant.{tenant}x.messages");
    assert_eq!(
        sign(
            &app,
            &token,
            json!({"socket_id": "1.2", "channel_name": sneaky})
        )
        .await
        .0,
        403
    );

    for (bad, field) in [
        (
            json!({"socket_id": "abc", "channel_name": channel}),
            "socket_id",
        ),
        (
            json!({"socket_id": "1.2", "channel_name": "private-tenant.x y"}),
            "channel_name",
        ),
        (json!({"channel_name": channel}), "socket_id"),
    ] {
        let (status, body) = sign(&app, &token, bad).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, _) = sign(
        &app,
        "sy_not_a_key",
        json!({"socket_id": "1.2", "channel_name": channel}),
    )
    .await;
    assert_eq!(status, 401);
}
