//! Custom event types over HTTP against real Redis and Postgres: register a type with a JSON
//! Schema, publish it, and a loopback subscriber receives it signed (checked by the independent
//! Standard Webhooks verifier); invalid payloads are refused with every violation's pointer and
//! leave nothing logged or enqueued; tenants cannot see, publish or alter each other's types.

use diesel::{dsl::count_star, prelude::*};
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use shared::{db::schema::job_outbox, inboxes};

use crate::{
    helpers::TestApp,
    subscriber::{Reply, Subscriber},
    subscriptions::{call, key},
    verifier,
    webhook_worker::Worker,
};

fn order_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["order_id", "amount", "currency"],
        "properties": {
            "order_id": { "type": "string" },
            "amount": { "type": "integer", "minimum": 0 },
            "currency": { "enum": ["EUR", "USD"] }
        }
    })
}

async fn register(app: &TestApp, token: &str, name: &str) -> (u16, Value) {
    call(
        app,
        token,
        "POST",
        "/api/events/types",
        json!({ "name": name, "description": "an order was placed", "schema": order_schema() }),
    )
    .await
}

async fn subscribe(app: &TestApp, token: &str, url: &str, types: Value, filters: Value) -> Value {
    let (status, created) = call(
        app,
        token,
        "POST",
        "/api/events/subscriptions",
        json!({ "url": url, "event_types": types, "filters": filters }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn logged(app: &TestApp, token: &str, event_type: &str) -> Vec<Value> {
    let (status, page) = call(
        app,
        token,
        "GET",
        &format!("/api/events?type={event_type}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().unwrap().clone()
}

async fn staged_jobs(app: &TestApp) -> i64 {
    let mut conn = app.db.pool.get().await.unwrap();
    job_outbox::table
        .select(count_star())
        .first(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_type_is_published_validated_and_delivered_signed() {
    let app = TestApp::spawn().await;
    let a = key(&app, &app.tenant_id).await;
    let worker = Worker::new(&app);
    let (status, created) = register(&app, &a, "order.created").await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "order.created");
    assert_eq!(created["archived"], false);
    let (status, dup) = register(&app, &a, "order.created").await;
    assert_eq!(
        (status, dup["code"].clone()),
        (409, json!("conflict")),
        "{dup}"
    );

    let eur = Subscriber::start(Reply::status(200)).await;
    let usd = Subscriber::start(Reply::status(200)).await;
    let eur_sub = subscribe(
        &app,
        &a,
        &eur.url,
        json!(["order.created"]),
        json!({ "currency": "EUR" }),
    )
    .await;
    subscribe(
        &app,
        &a,
        &usd.url,
        json!(["order.created"]),
        json!({ "currency": "USD" }),
    )
    .await;

    let data = json!({ "order_id": "ord_1", "amount": 1250, "currency": "EUR" });
    let publish = |key: &'static str| {
        let body = json!({ "type": "order.created", "data": data.clone(), "entity": { "type": "order", "id": "ord_1" } })
            .to_string();
        let auth = format!("Bearer {a}");
        let app = &app;
        async move {
            app.request(
                "POST",
                "/api/events",
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                    ("x-request-id", "req-order-1"),
                ],
                body,
            )
            .await
        }
    };
    let first = publish("order-1").await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let first = first.json();
    let event_id = first["event"]["id"].as_str().unwrap().to_owned();
    assert_eq!(first["event"]["type"], "order.created");
    assert_eq!(first["event"]["tenant_id"], app.tenant_id.as_str());
    assert_eq!(first["event"]["data"], data);
    assert_eq!(
        first["aggregate"],
        json!({ "type": "order", "id": "ord_1", "version": 1 })
    );
    let again = publish("order-1").await;
    assert_eq!(again.status, 200, "a replay answers with the first event");
    assert_eq!(again.json()["event"]["id"], event_id.as_str());
    assert_eq!(again.json()["replayed"], true);
    assert_eq!(
        logged(&app, &a, "order.created").await.len(),
        1,
        "logged once"
    );
    // The same key for another event is refused, not answered with the first one.
    let reused = app
        .request(
            "POST",
            "/api/events",
            &[
                ("authorization", format!("Bearer {a}").as_str()),
                ("content-type", "application/json"),
                ("idempotency-key", "order-1"),
            ],
            json!({ "type": "order.created", "data": { "order_id": "ord_1", "amount": 999, "currency": "EUR" }, "entity": { "type": "order", "id": "ord_1" } })
                .to_string(),
        )
        .await;
    assert_eq!(reused.status, 422, "{:?}", reused.body);
    assert_eq!(reused.json()["code"], "idempotency_key_reused");
    assert_eq!(reused.json()["field"], "idempotency_key");
    assert_eq!(logged(&app, &a, "order.created").await.len(), 1);

    // The outbox staged one fan-out job, which the worker turns into one signed delivery.
    let outcomes = worker.drain().await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    let received = eur.received();
    assert_eq!(received.len(), 1);
    assert!(usd.received().is_empty(), "the USD filter does not match");
    let secret = eur_sub["secret"].as_str().unwrap();
    verifier::verify_request(secret, &received[0]).expect("signature verifies");
    assert!(
        verifier::verify_request(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &received[0]
        )
        .is_err()
    );
    assert_eq!(received[0].header("webhook-id"), event_id);
    let body = received[0].json();
    assert_eq!(body["type"], "order.created");
    assert_eq!(body["data"], data);
    assert_eq!(body["version"], "1.0");
    assert!(!body["correlation_id"].as_str().unwrap().is_empty());
    assert_eq!(
        body, first["event"],
        "the subscriber gets the logged envelope"
    );

    // Invalid payloads: every violation with its pointer; nothing logged, staged or enqueued.
    let (status, refused) = call(
        &app,
        &a,
        "POST",
        "/api/events",
        json!({ "type": "order.created", "data": { "order_id": 7, "amount": -5 } }),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "schema_mismatch");
    let mut pointers: Vec<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        ["/data", "/data/amount", "/data/order_id"],
        "{refused}"
    );
    assert!(
        refused["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["message"].is_string())
    );
    assert_eq!(logged(&app, &a, "order.created").await.len(), 1);
    assert_eq!(staged_jobs(&app).await, 0);
    assert_eq!(
        worker.queued().await,
        0,
        "nothing enqueued for an invalid event"
    );

    // The catalogue lists the tenant's type with its schema; the timeline has the entity.
    let (_, schemas) = call(&app, &a, "GET", "/api/events/schemas", Value::Null).await;
    let ours = schemas["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "order.created")
        .cloned()
        .expect("custom type listed");
    assert_eq!(ours["custom"], true);
    assert_eq!(ours["data_schema"], order_schema());
    assert_eq!(ours["schema"]["properties"]["data"], order_schema());
    let (_, timeline) = call(
        &app,
        &a,
        "GET",
        "/api/events/timeline?entity_type=order&entity_id=ord_1",
        Value::Null,
    )
    .await;
    assert_eq!(timeline["events"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn types_are_tenant_scoped_checked_and_archivable() {
    let app = TestApp::spawn().await;
    let a = key(&app, &app.tenant_id).await;
    let other = inboxes::create_tenant(&app.db.pool, "Other").await.unwrap();
    let b = key(&app, &other).await;
    let types = "/api/events/types";

    // Bad schemas and names are refused with the reason.
    for (body, field, why) in [
        (
            json!({ "name": "order.created", "schema": { "type": "strnig" } }),
            "schema",
            "not a valid JSON Schema",
        ),
        (
            json!({ "name": "order.created", "schema": { "$schema": "http://json-schema.org/draft-04/schema#" } }),
            "schema",
            "not supported",
        ),
        (
            json!({ "name": "order.created", "schema": { "$ref": "http://127.0.0.1:9/s.json" } }),
            "schema",
            "cannot be compiled",
        ),
        (
            json!({ "name": "order.created", "schema": "object" }),
            "schema",
            "JSON Schema object",
        ),
        (json!({ "name": "order.created" }), "schema", "required"),
        (
            json!({ "name": "message.ready", "schema": {} }),
            "name",
            "built-in",
        ),
        (
            json!({ "name": "message.tagged", "schema": {} }),
            "name",
            "reserved",
        ),
        (json!({ "name": "Order", "schema": {} }), "name", "dotted"),
    ] {
        let (status, err) = call(&app, &a, "POST", types, body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
        assert!(
            err["error"].as_str().unwrap().contains(why),
            "{body}: {err}"
        );
    }
    let (status, _) = call(
        &app,
        &a,
        "POST",
        types,
        json!({ "name": "order.created", "schema": order_schema() }),
    )
    .await;
    assert_eq!(status, 201);
    let one = format!("{types}/order.created");
    let valid = json!({ "type": "order.created", "data": { "order_id": "o", "amount": 1, "currency": "EUR" } });

    // Tenant B neither sees, alters, archives nor publishes A's type.
    let (_, theirs) = call(&app, &b, "GET", types, Value::Null).await;
    assert!(theirs["event_types"].as_array().unwrap().is_empty());
    for (method, body) in [
        ("GET", Value::Null),
        ("PUT", json!({ "description": "mine" })),
        ("DELETE", Value::Null),
    ] {
        let (status, err) = call(&app, &b, method, &one, body).await;
        assert_eq!(status, 404, "{method}: {err}");
    }
    let (status, err) = call(&app, &b, "POST", "/api/events", valid.clone()).await;
    assert_eq!(
        (status, err["field"].clone()),
        (400, json!("type")),
        "{err}"
    );
    let (_, mine) = call(&app, &a, "GET", &one, Value::Null).await;
    assert_eq!(mine["description"], Value::Null, "B's PUT changed nothing");
    assert_eq!(mine["archived"], false, "B's DELETE changed nothing");
    // Names are per tenant: B may register its own order.created.
    let (status, _) = call(
        &app,
        &b,
        "POST",
        types,
        json!({ "name": "order.created", "schema": {} }),
    )
    .await;
    assert_eq!(status, 201);

    // Built-in, unknown and reserved-entity publishes are refused.
    for (body, field) in [
        (json!({ "type": "message.ready", "data": {} }), "type"),
        (json!({ "type": "order.shipped", "data": {} }), "type"),
        (
            json!({ "type": "order.created", "data": valid["data"], "entity": { "type": "session", "id": "ses_1" } }),
            "entity",
        ),
        (json!({ "type": "order.created", "data": [1] }), "data"),
        (json!({ "type": "order.created" }), "data"),
    ] {
        let (status, err) = call(&app, &a, "POST", "/api/events", body.clone()).await;
        assert_eq!(
            (status, err["field"].clone()),
            (400, json!(field)),
            "{body}: {err}"
        );
    }

    // PUT validates the new schema; a valid one applies to the next publish.
    let (status, err) = call(&app, &a, "PUT", &one, json!({ "schema": { "type": 5 } })).await;
    assert_eq!(
        (status, err["field"].clone()),
        (400, json!("schema")),
        "{err}"
    );
    let stricter =
        json!({ "type": "object", "required": ["order_id", "amount", "currency", "note"] });
    let (status, updated) = call(
        &app,
        &a,
        "PUT",
        &one,
        json!({ "schema": stricter, "description": "v2" }),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["description"], "v2");
    let (status, err) = call(&app, &a, "POST", "/api/events", valid.clone()).await;
    assert_eq!(status, 422, "{err}");

    // Archived: no longer published nor listed by default; PUT archived:false restores it.
    let (status, archived) = call(&app, &a, "DELETE", &one, Value::Null).await;
    assert_eq!((status, archived["archived"].clone()), (200, json!(true)));
    let mut note = valid.clone();
    note["data"]["note"] = json!("gift");
    let (status, err) = call(&app, &a, "POST", "/api/events", note.clone()).await;
    assert_eq!(
        (status, err["field"].clone()),
        (400, json!("type")),
        "{err}"
    );
    assert!(err["error"].as_str().unwrap().contains("archived"), "{err}");
    let (_, listed) = call(&app, &a, "GET", types, Value::Null).await;
    assert!(listed["event_types"].as_array().unwrap().is_empty());
    let (_, all) = call(
        &app,
        &a,
        "GET",
        &format!("{types}?archived=true"),
        Value::Null,
    )
    .await;
    assert_eq!(all["event_types"].as_array().unwrap().len(), 1);
    let (status, dup) = call(
        &app,
        &a,
        "POST",
        types,
        json!({ "name": "order.created", "schema": {} }),
    )
    .await;
    assert_eq!(status, 409, "an archived name stays taken: {dup}");
    let (status, _) = call(&app, &a, "PUT", &one, json!({ "archived": false })).await;
    assert_eq!(status, 200);
    let (status, published) = call(&app, &a, "POST", "/api/events", note).await;
    assert_eq!(status, 201, "{published}");
    let (status, _) = call(&app, &a, "PATCH", &one, Value::Null).await;
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_publishes_with_one_idempotency_key_log_one_event() {
    let app = TestApp::spawn().await;
    let a = key(&app, &app.tenant_id).await;
    let (status, _) = register(&app, &a, "order.created").await;
    assert_eq!(status, 201);
    let body = json!({
        "type": "order.created",
        "data": { "order_id": "o", "amount": 1, "currency": "USD" },
        "idempotency_key": "order-o",
    });
    let publish = || call(&app, &a, "POST", "/api/events", body.clone());
    let (x, y, z) = tokio::join!(publish(), publish(), publish());
    let mut statuses = [x.0, y.0, z.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 201], "{x:?} {y:?} {z:?}");
    assert_eq!(x.1["event"]["id"], y.1["event"]["id"]);
    assert_eq!(y.1["event"]["id"], z.1["event"]["id"]);
    assert_eq!(logged(&app, &a, "order.created").await.len(), 1);

    // The key in the body and the header must agree.
    let auth = format!("Bearer {a}");
    let reply = app
        .request(
            "POST",
            "/api/events",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
                ("idempotency-key", "another"),
            ],
            body.to_string(),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["field"], "idempotency_key");
}
