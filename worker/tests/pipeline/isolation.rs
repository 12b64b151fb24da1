//! Tenant isolation: one tenant's ids are "not found" to another's operations, its events never
//! appear on the other's channels or in its log, and a job naming another tenant's inbox is
//! refused.

use crate::{World, only_session, tenant, waha_job};
use shared::{conversation::ConversationError, jobs::JobError};

#[tokio::test(flavor = "multi_thread")]
async fn one_tenant_cannot_see_or_touch_another_tenants_conversations() {
    let w = World::new().await;
    let (other_tenant, other_inbox) = tenant(&w.db, "Globex").await;
    let ours = w.subscribe(&w.tenant_id).await;
    let theirs = w.subscribe(&other_tenant).await;
    let their_agent = w.agent_of(&other_tenant, "Gia", 1).await;
    let our_agent = w.agent("Dana", 1).await;

    // Their customer asks for an agent and is assigned theirs.
    let job = waha_job(
        &other_tenant,
        &other_inbox,
        "9@c.us",
        "g-1",
        "talk to an agent",
    );
    w.run(&job).await.unwrap();
    let their_events = w.events_of(&other_tenant).await;
    let session = their_events[0].aggregate_id.clone();
    let case = their_events
        .iter()
        .find(|e| e.envelope.event_type == "case.created")
        .unwrap()
        .aggregate_id
        .clone();
    let survey_placeholder = "csa_01JDX7Q3M4N5P6R7S8T9V0W1X2";

    // Acting as our tenant on their ids: not found, whoever the agent is.
    let not_found =
        |r: Result<_, ConversationError>| matches!(r, Err(ConversationError::NotFound { .. }));
    assert!(not_found(
        w.reply(&w.tenant_id, &session, &our_agent.id, "hi")
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        w.reply(&w.tenant_id, &session, &their_agent.id, "hi")
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        w.close(&w.tenant_id, &case, "x", "neutral")
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        w.answer_csat(&w.tenant_id, survey_placeholder, 5)
            .await
            .map(|_| ())
    ));
    // Acting as them with our agent: the agent is not found.
    assert!(not_found(
        w.reply(&other_tenant, &session, &our_agent.id, "hi")
            .await
            .map(|_| ())
    ));

    // A job claiming our tenant for their inbox is refused outright.
    let forged = waha_job(&w.tenant_id, &other_inbox, "9@c.us", "g-2", "hello");
    assert!(matches!(w.run(&forged).await, Err(JobError::Permanent(m)) if m.contains("not found")));

    // Our conversation goes on; no event crosses over.
    w.run(&w.waha("1@c.us", "a-1", "hello")).await.unwrap();
    let our_session = only_session(&w).await;
    let ours_seen = ours.wait_for(7).await;
    let theirs_seen = theirs.settle().await;
    assert!(
        ours_seen
            .iter()
            .all(|(c, _)| c.contains(&w.tenant_id) && !c.contains(&other_tenant))
    );
    assert!(
        ours_seen
            .iter()
            .all(|(_, p)| p["data"]["tenant_id"] == w.tenant_id.as_str())
    );
    assert!(!theirs_seen.is_empty());
    assert!(
        theirs_seen
            .iter()
            .all(|(c, p)| c.contains(&other_tenant)
                && p["data"]["tenant_id"] == other_tenant.as_str())
    );
    assert!(theirs_seen.iter().all(|(c, _)| !c.contains(&our_session)));
    assert!(
        w.events()
            .await
            .iter()
            .all(|e| e.envelope.tenant_id == w.tenant_id)
    );
    assert!(
        w.events_of(&other_tenant)
            .await
            .iter()
            .all(|e| e.envelope.tenant_id == other_tenant)
    );
}

/// Below the code, the schema holds the line too: a contact, session or message can only name
/// a parent of its own tenant and inbox (one composite key per table, migration 000017).
#[tokio::test(flavor = "multi_thread")]
async fn the_database_refuses_a_row_whose_tenant_or_inbox_is_not_its_parents() {
    use diesel_async::SimpleAsyncConnection as _;
    let w = World::new().await;
    let (other_tenant, other_inbox) = tenant(&w.db, "Globex").await;
    w.run(&w.waha("1@c.us", "a-1", "hello")).await.unwrap();
    let session = only_session(&w).await;
    let contact = w
        .events()
        .await
        .into_iter()
        .find(|e| e.envelope.event_type == "session.created")
        .unwrap()
        .envelope
        .data["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (tenant, inbox) = (&w.tenant_id, &w.inbox_id);
    let message = |id: &str, tenant: &str, inbox: &str| {
        format!(
            "INSERT INTO messages (id, tenant_id, inbox_id, session_id, direction, sender_type, \
             kind, body, status) VALUES ('{id}', '{tenant}', '{inbox}', '{session}', 'outbound', \
             'bot', 'text', 'hi', 'stored')"
        )
    };
    let refused = [
        // Our session, their tenant and inbox; our session, our tenant, their inbox.
        message("msg_x1", &other_tenant, &other_inbox),
        message("msg_x2", tenant, &other_inbox),
        // A session of our contact filed under their tenant.
        format!(
            "INSERT INTO sessions (id, tenant_id, inbox_id, contact_id, state, correlation_id) \
             VALUES ('ses_x', '{other_tenant}', '{inbox}', '{contact}', 'closed', 'c')"
        ),
        // A contact of their inbox filed under our tenant.
        format!(
            "INSERT INTO contacts (id, tenant_id, inbox_id, external_id) \
             VALUES ('con_x', '{tenant}', '{other_inbox}', '2@c.us')"
        ),
    ];
    let mut conn = w.db.pool.get().await.unwrap();
    for sql in refused {
        let error = conn.batch_execute(&sql).await.unwrap_err().to_string();
        assert!(error.contains("foreign key"), "{sql}: {error}");
    }
    // The same rows with matching keys are accepted (the statements above failed on the key).
    conn.batch_execute(&message("msg_ok", tenant, inbox))
        .await
        .unwrap();
}

/// Below the job's own check of its inbox (`InboxKinds::of_tenant`), the statement that finds a
/// customer's conversation never hands one tenant another's contact: asked, in tenant B's
/// transaction, for a customer of A's inbox whom A already has, it fails and creates nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_conversation_look_up_never_returns_another_tenants_contact() {
    use shared::conversation::{contacts::ContactInfo, sessions};
    let w = World::new().await;
    let (other_tenant, _) = tenant(&w.db, "Globex").await;
    w.run(&w.waha("1@c.us", "a-1", "hello")).await.unwrap();
    let (contacts, sessions_before) = (
        w.count("SELECT 1 FROM contacts").await,
        w.count("SELECT 1 FROM sessions").await,
    );

    let mut tx = w
        .conversations()
        .begin(&other_tenant, "probe")
        .await
        .unwrap();
    let customer = ContactInfo {
        external_id: "1@c.us".into(),
        ..Default::default()
    };
    let sender = sessions::Sender {
        inbox_id: &w.inbox_id,
        contact: &customer,
        correlation_id: "c",
    };
    let error = sessions::of_senders(&mut tx, &[sender])
        .await
        .expect_err("another tenant's contact")
        .to_string();
    assert!(error.contains("is not tenant"), "{error}");
    assert!(
        !error.contains("1@c.us"),
        "the customer's id stays out of errors: {error}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(w.count("SELECT 1 FROM contacts").await, contacts);
    assert_eq!(w.count("SELECT 1 FROM sessions").await, sessions_before);
}
