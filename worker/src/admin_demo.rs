//! `worker admin seed-demo`: a tenant a newcomer can watch a conversation go through — a WAHA
//! inbox (no signature, so plain `curl` works), one available agent and a tenant API key (plus
//! an operator key) — and the commands that drive the whole journey against a running fleet.

use serde_json::json;
use shared::{
    conversation::{
        Conversations, agents,
        api_keys::{self, Scope},
    },
    inboxes::{self, InboxKind, NewInbox},
};

use crate::admin::{Printer, SeedArgs};

pub async fn seed(c: &Conversations, args: &SeedArgs, out: &Printer) -> anyhow::Result<()> {
    let tenant_id = inboxes::create_tenant(&c.db, "Demo").await?;
    let mut inbox = NewInbox::new(&tenant_id, InboxKind::Waha, "Demo WhatsApp (WAHA)");
    inbox.waha_session = Some("default".into());
    let inbox_id = inboxes::create_inbox(&c.db, &inbox).await?;
    let mut tx = c.begin(&tenant_id, "seed-demo").await?;
    let new_agent = agents::NewAgent {
        name: "Dana Demo".into(),
        email: Some("dana@demo.example".into()),
        capacity: 3,
    };
    let result = agents::create(&mut tx, &new_agent).await;
    let (agent, effects) = tx.finish(result).await?;
    c.settle(effects).await;
    let mut conn = c.db.get().await?;
    let tenant_scope = Scope::Tenant {
        tenant_id: tenant_id.clone(),
    };
    let key = api_keys::create(&mut conn, &tenant_scope, "demo agent desk").await?;
    let operator = api_keys::create(&mut conn, &Scope::Operator, "demo operator").await?;
    let made = json!({
        "tenant_id": tenant_id,
        "inbox_id": inbox_id,
        "agent_id": agent.id,
        "api_key": key.token,
        "operator_key": operator.token,
        "webhook_url": format!("{}/webhooks/waha/{inbox_id}", args.base_url),
    });
    if out.json {
        println!("{made}");
        return Ok(());
    }
    print_guide(&made, &args.base_url);
    Ok(())
}

fn print_guide(made: &serde_json::Value, base: &str) {
    let s = |k: &str| made[k].as_str().unwrap_or_default().to_owned();
    let (tenant, agent, key) = (s("tenant_id"), s("agent_id"), s("api_key"));
    println!("demo tenant   {tenant}");
    println!(
        "waha inbox    {} (webhook {})",
        s("inbox_id"),
        s("webhook_url")
    );
    println!("agent         {agent} (Dana Demo, capacity 3, available)");
    println!("api key       {key}   (tenant key: agent actions; shown once)");
    println!(
        "operator key  {}   (provisioning; shown once)",
        s("operator_key")
    );
    println!();
    println!("Try it (watch events: redis-cli PSUBSCRIBE 'private-tenant.{tenant}.*'):");
    let waha = |id: &str, text: &str| {
        format!(
            "curl -s -XPOST {} -H 'content-type: application/json' -d '{{\"event\":\"message\",\"session\":\"default\",\"payload\":{{\"id\":\"{id}\",\"from\":\"4915212345678@c.us\",\"fromMe\":false,\"body\":\"{text}\"}}}}'",
            s("webhook_url")
        )
    };
    println!(
        "  1. customer writes:      {}",
        waha("demo-1", "Hi, my order has not arrived")
    );
    println!(
        "  2. asks for a person:    {}",
        waha("demo-2", "talk to an agent")
    );
    println!(
        "  3. find the session:     curl -s {base}/api/sessions -H 'authorization: Bearer {key}'"
    );
    println!(
        "  4. agent replies:        curl -s -XPOST {base}/api/sessions/SESSION_ID/replies -H 'authorization: Bearer {key}' -H 'content-type: application/json' -d '{{\"agent_id\":\"{agent}\",\"text\":\"Hi, I am on it\"}}'"
    );
    println!(
        "  5. agent closes the case: curl -s -XPOST {base}/api/cases/CASE_ID/close -H 'authorization: Bearer {key}' -H 'content-type: application/json' -d '{{\"disposition\":\"resolved\",\"sentiment\":\"positive\"}}'"
    );
    println!("  6. customer rates it:    {}", waha("demo-3", "5"));
}
