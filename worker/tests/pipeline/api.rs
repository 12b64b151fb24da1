//! The `/api` endpoints over HTTP: keys and scopes, provisioning, agent actions, every kind of
//! bad input and every illegal transition with its answer, idempotent replies, and tenant
//! isolation.

use serde_json::{Value, json};
use shared::{
    conversation::api_keys::{self, Scope},
    events::Broadcaster,
};

use crate::{
    World,
    http::{ApiServer, CREATED, Client, send},
    only_session, tenant, waha_job,
};

/// A world with the API served and a tenant key and an operator key.
struct Desk {
    w: World,
    server: ApiServer,
    tenant: Client,
    operator: Client,
}

async fn desk() -> Desk {
    let w = World::new().await;
    let broadcaster = Broadcaster::new(w.redis.queues.clone(), w.broadcast_prefix.clone());
    let api =
        ingress::api::Api::with_broadcaster(w.db.pool.clone(), w.redis.queues.clone(), broadcaster);
    let server = ApiServer::start(api).await;
    let tenant_key = key(
        &w,
        Scope::Tenant {
            tenant_id: w.tenant_id.clone(),
        },
    )
    .await;
    let operator_key = key(&w, Scope::Operator).await;
    Desk {
        tenant: Client::new(server.addr, &tenant_key),
        operator: Client::new(server.addr, &operator_key),
        server,
        w,
    }
}

async fn key(w: &World, scope: Scope) -> String {
    let mut conn = w.db.pool.get().await.unwrap();
    api_keys::create(&mut conn, &scope, "test")
        .await
        .unwrap()
        .token
}

fn check(reply: &crate::http::Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["code"], code, "{:?}", reply.body);
    assert!(!reply.error().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_required_checked_and_scoped() {
    let d = desk().await;
    let addr = d.server.addr;
    check(
        &send(addr, "GET", "/api/sessions", &[], "").await,
        401,
        "missing_api_key",
    );
    check(
        &Client::new(addr, "sy_not-a-real-key")
            .get("/api/sessions")
            .await,
        401,
        "invalid_api_key",
    );
    check(
        &send(
            addr,
            "GET",
            "/api/sessions",
            &[("authorization", "Basic dTpw")],
            "",
        )
        .await,
        401,
        "missing_api_key",
    );
    check(&d.operator.get("/api/sessions").await, 403, "forbidden");
    check(&d.tenant.get("/api/tenants").await, 403, "forbidden");
    check(
        &d.tenant.post("/api/tenants", json!({"name": "x"})).await,
        403,
        "forbidden",
    );
    let mut conn = d.w.db.pool.get().await.unwrap();
    let listed = api_keys::list(&mut conn, Some(&d.w.tenant_id))
        .await
        .unwrap();
    api_keys::revoke(&mut conn, &listed[0].id).await.unwrap();
    check(&d.tenant.get("/api/sessions").await, 401, "invalid_api_key");
    check(
        &d.operator.get("/api/nothing-here").await,
        404,
        "unknown_route",
    );
    check(
        &d.operator.get("/api/cases/cas_1/close").await,
        405,
        "method_not_allowed",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_provision_tenants_inboxes_agents_and_keys() {
    let d = desk().await;
    let op = &d.operator;
    let tenant = op.post("/api/tenants", json!({"name": "Initech"})).await;
    assert_eq!(tenant.status, CREATED);
    let t = tenant.body["tenant"]["id"].as_str().unwrap().to_owned();
    let inbox = op
        .post(
            &format!("/api/tenants/{t}/inboxes"),
            json!({"kind": "messenger", "name": "FB", "page_id": "555"}),
        )
        .await;
    assert_eq!(inbox.status, CREATED, "{:?}", inbox.body);
    for (body, field) in [
        (json!({"kind": "sms", "name": "x"}), "kind"),
        (json!({"kind": "messenger", "name": "x"}), "page_id"),
        (json!({"kind": "widget", "name": "x"}), "widget_token"),
        (
            json!({"kind": "email", "name": "x", "email_provider": "mailgun"}),
            "email_provider",
        ),
        (json!({"kind": "waha", "name": ""}), "name"),
        (
            json!({"kind": "waha", "name": "x", "waha_session": 7}),
            "waha_session",
        ),
    ] {
        let reply = op.post(&format!("/api/tenants/{t}/inboxes"), body).await;
        check(&reply, 400, "invalid_input");
        assert_eq!(reply.body["field"], field);
    }
    let taken = op
        .post(
            &format!("/api/tenants/{t}/inboxes"),
            json!({"kind": "messenger", "name": "FB2", "page_id": "555"}),
        )
        .await;
    check(&taken, 409, "conflict");
    check(
        &op.post(
            "/api/tenants/ten_nope/inboxes",
            json!({"kind": "waha", "name": "x"}),
        )
        .await,
        404,
        "not_found",
    );
    let agent = op
        .post(
            &format!("/api/tenants/{t}/agents"),
            json!({"name": "Ann", "capacity": 2}),
        )
        .await;
    assert_eq!(agent.status, CREATED);
    check(
        &op.post(
            &format!("/api/tenants/{t}/agents"),
            json!({"name": "Bad", "capacity": -1}),
        )
        .await,
        400,
        "invalid_input",
    );
    let key = op
        .post(
            &format!("/api/tenants/{t}/api-keys"),
            json!({"name": "desk"}),
        )
        .await;
    assert_eq!(key.status, CREATED);
    let token = key.body["token"].as_str().unwrap();
    let theirs = Client::new(d.server.addr, token);
    let agents = theirs.get("/api/agents").await;
    assert_eq!(agents.body["agents"].as_array().unwrap().len(), 1);
    let listed = op.get(&format!("/api/tenants/{t}/api-keys")).await;
    let listed = listed.body.to_string();
    assert!(
        !listed.contains(token) && !listed.contains("token_hash"),
        "keys are never listed with secrets"
    );
    let inboxes = op
        .get(&format!("/api/tenants/{t}/inboxes"))
        .await
        .body
        .to_string();
    assert!(inboxes.contains("555"));
}

/// The customer of `d` asks for an agent; returns (session id, case id, agent id).
async fn handed_off(d: &Desk) -> (String, String, String) {
    let agent = d.w.agent("Dana", 2).await;
    d.w.run(&d.w.waha("1@c.us", "m1", "talk to an agent"))
        .await
        .unwrap();
    let session = only_session(&d.w).await;
    let case = d.w.open_case(&session).await;
    (session, case.id, agent.id)
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_actions_bad_input_and_illegal_transitions_answer_precisely() {
    let d = desk().await;
    let (session, case, agent) = handed_off(&d).await;
    let t = &d.tenant;
    let reply_path = format!("/api/sessions/{session}/replies");

    // Bad input.
    let addr = d.server.addr;
    let auth = format!("Bearer {}", t.key);
    let plain = send(
        addr,
        "POST",
        &reply_path,
        &[("authorization", &auth), ("content-type", "text/plain")],
        "hi",
    )
    .await;
    check(&plain, 415, "unsupported_media_type");
    let broken = send(
        addr,
        "POST",
        &reply_path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        "{",
    )
    .await;
    check(&broken, 400, "invalid_payload");
    let huge = json!({"agent_id": agent, "text": "x".repeat(70_000)});
    check(&t.post(&reply_path, huge).await, 413, "body_too_large");
    for (body, field) in [
        (json!([1, 2]), "body"),
        (json!({"text": "hi"}), "agent_id"),
        (json!({"agent_id": agent}), "text"),
        (json!({"agent_id": agent, "text": 5}), "text"),
        (json!({"agent_id": agent, "text": "  "}), "text"),
        (json!({"agent_id": agent, "text": "x".repeat(4097)}), "text"),
        // Postgres stores no U+0000: refused at the door, not a database error later.
        (json!({"agent_id": agent, "text": "hi\u{0}"}), "body"),
    ] {
        let reply = t.post(&reply_path, body).await;
        check(&reply, 400, "invalid_input");
        assert_eq!(reply.body["field"], field);
    }
    check(
        &t.post(&reply_path, json!({"agent_id": "agt_nobody", "text": "hi"}))
            .await,
        404,
        "not_found",
    );
    check(
        &t.post(
            "/api/sessions/ses_nope/replies",
            json!({"agent_id": agent, "text": "hi"}),
        )
        .await,
        404,
        "not_found",
    );
    check(
        &t.post(
            "/api/sessions/bad%20id/replies",
            json!({"agent_id": agent, "text": "hi"}),
        )
        .await,
        404,
        "not_found",
    );
    check(&t.get("/api/sessions?limit=0").await, 400, "invalid_input");
    check(
        &t.get("/api/sessions?state=open").await,
        400,
        "invalid_input",
    );

    // An idempotent reply.
    let first = t
        .post_with(
            &reply_path,
            json!({"agent_id": agent, "text": "On it"}),
            &[("idempotency-key", "k1")],
        )
        .await;
    assert_eq!(first.status, CREATED, "{:?}", first.body);
    let again = t
        .post_with(
            &reply_path,
            json!({"agent_id": agent, "text": "On it"}),
            &[("idempotency-key", "k1")],
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["message"]["id"], first.body["message"]["id"]);
    assert_eq!(
        d.w.count("SELECT 1 FROM messages WHERE sender_type = 'agent'")
            .await,
        1
    );
    let agent_deliveries =
        d.w.deliveries()
            .await
            .into_iter()
            .filter(|j| j.payload["sender_type"] == "agent")
            .count();
    assert_eq!(agent_deliveries, 1);

    // Illegal transitions: 409 with the states.
    let live_handoff = t
        .post(&format!("/api/sessions/{session}/handoff"), json!({}))
        .await;
    check(&live_handoff, 409, "illegal_transition");
    assert_eq!(
        (
            live_handoff.body["entity"].clone(),
            live_handoff.body["from"].clone(),
            live_handoff.body["to"].clone()
        ),
        (json!("session"), json!("live"), json!("live"))
    );
    let close_path = format!("/api/cases/{case}/close");
    for (body, field) in [
        (json!({"sentiment": "positive"}), "disposition"),
        (json!({"disposition": "done"}), "sentiment"),
        (
            json!({"disposition": "done", "sentiment": "meh"}),
            "sentiment",
        ),
        (
            json!({"disposition": "", "sentiment": "neutral"}),
            "disposition",
        ),
    ] {
        let reply = t.post(&close_path, body).await;
        check(&reply, 400, "invalid_input");
        assert_eq!(reply.body["field"], field);
    }
    let resolved = t
        .post(&format!("/api/cases/{case}/resolve"), json!({}))
        .await;
    assert_eq!(resolved.status, 200, "{:?}", resolved.body);
    let twice = t
        .post(&format!("/api/cases/{case}/resolve"), json!({}))
        .await;
    check(&twice, 409, "illegal_transition");
    let closed = t
        .post(
            &close_path,
            json!({"disposition": "refund_issued", "sentiment": "positive"}),
        )
        .await;
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    assert_eq!(closed.body["case"]["state"], "closed");
    assert_eq!(closed.body["session"]["state"], "bot");
    let again = t
        .post(
            &close_path,
            json!({"disposition": "x", "sentiment": "neutral"}),
        )
        .await;
    check(&again, 409, "illegal_transition");
    assert_eq!(again.body["from"], "closed");
    check(
        &t.post(
            &reply_path,
            json!({"agent_id": agent, "text": "still there?"}),
        )
        .await,
        409,
        "conflict",
    );

    // The survey.
    let survey = closed.body["csat"]["id"].as_str().unwrap();
    let csat_path = format!("/api/csat/{survey}/responses");
    for body in [
        json!({}),
        json!({"score": "5"}),
        json!({"score": 9}),
        json!({"score": 4.5}),
    ] {
        let reply = t.post(&csat_path, body).await;
        check(&reply, 400, "invalid_input");
        assert_eq!(reply.body["field"], "score");
    }
    let answered = t
        .post(&csat_path, json!({"score": 5, "comment": "great"}))
        .await;
    assert_eq!(answered.status, 200);
    assert_eq!(answered.body["csat"]["score"], 5);
    check(
        &t.post(&csat_path, json!({"score": 1})).await,
        409,
        "illegal_transition",
    );
    let case_view = t.get(&format!("/api/cases/{case}")).await;
    assert_eq!(case_view.body["csat"]["state"], "responded");
    let session_view = t.get(&format!("/api/sessions/{session}")).await;
    assert!(session_view.body["messages"].as_array().unwrap().len() >= 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_key_cannot_read_or_act_on_another_tenants_sessions_cases_or_events() {
    let d = desk().await;
    let (other, other_inbox) = tenant(&d.w.db, "Globex").await;
    let their_agent = d.w.agent_of(&other, "Gia", 1).await;
    d.w.run(&waha_job(
        &other,
        &other_inbox,
        "9@c.us",
        "g1",
        "agent please",
    ))
    .await
    .unwrap();
    let theirs = d.w.events_of(&other).await;
    let session = theirs[0].aggregate_id.clone();
    let case = theirs
        .iter()
        .find(|e| e.envelope.event_type == "case.created")
        .unwrap()
        .aggregate_id
        .clone();
    let t = &d.tenant;
    check(
        &t.get(&format!("/api/sessions/{session}")).await,
        404,
        "not_found",
    );
    check(
        &t.post(
            &format!("/api/sessions/{session}/replies"),
            json!({"agent_id": their_agent.id, "text": "hi"}),
        )
        .await,
        404,
        "not_found",
    );
    check(
        &t.post(&format!("/api/sessions/{session}/handoff"), json!({}))
            .await,
        404,
        "not_found",
    );
    check(
        &t.get(&format!("/api/cases/{case}")).await,
        404,
        "not_found",
    );
    check(
        &t.post(
            &format!("/api/cases/{case}/close"),
            json!({"disposition": "x", "sentiment": "neutral"}),
        )
        .await,
        404,
        "not_found",
    );
    check(
        &t.post(
            &format!("/api/agents/{}/availability", their_agent.id),
            json!({"available": false}),
        )
        .await,
        404,
        "not_found",
    );
    let listed = t.get("/api/sessions").await;
    assert_eq!(listed.body["sessions"], json!([]));
    let events = t.get("/api/events").await;
    assert_eq!(events.body["events"], json!([]));
    // Their case is untouched, still theirs.
    assert_eq!(
        d.w.count(&format!(
            "SELECT 1 FROM cases WHERE id = '{case}' AND state = 'assigned'"
        ))
        .await,
        1
    );
    // Our own events are there, with their channels.
    d.w.run(&d.w.waha("1@c.us", "m1", "hello")).await.unwrap();
    let ours = t.get("/api/events?limit=2").await;
    let list = ours.body["events"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .all(|e| e["event"]["tenant_id"] == d.w.tenant_id.as_str())
    );
    assert_eq!(list[0]["event"]["type"], "session.created");
    let next = ours.body["next_after"].as_i64().unwrap();
    let rest = t.get(&format!("/api/events?after={next}")).await;
    assert_eq!(rest.body["events"].as_array().unwrap().len(), 1);
    let _: Value = rest.body;
}
