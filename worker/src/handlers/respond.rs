//! A customer message, step two: answer it. A local bot (the rules bot, or none) decides inside
//! the transaction that stored the message ([`decide_in`], then [`act_in`]; a plain reply
//! — [`as_bot_reply`] — super::inbound stores with the other steps' replies in one exchange).
//! A remote bot decides outside any transaction (an HTTP bot may take seconds), then one
//! transaction applies the decision ([`respond`]) — unless another attempt already did
//! (`processed_at` under the message's row lock) or an agent took the session meanwhile. The
//! decision's effects, in order: the bot's reply (`message.ready`, a `deliveries` job), then the
//! handoff if asked for or if the inbox's limit of unrecognised messages in a row is reached. A
//! reply of 1–5 while a CSAT survey waits is its answer.

use serde_json::json;
use shared::{
    bot::{BotDecision, BotError, BotInput, InboxBot, is_handoff_postback},
    conversation::{
        ConversationError, Message, Session, Tx, csat,
        handoff::{self, Trigger},
        messages::{self, NewOutbound, Sender},
        sessions,
        settings::InboxSettings,
        state::SessionState,
    },
    jobs::JobError,
    queue::Job,
};

use super::{Pipeline, inbound::Landed, parse::Inbound};

/// What to do with the message.
pub(super) enum Decision {
    Bot(BotDecision),
    /// The inbox has no bot: every conversation goes to the agents.
    NoBot,
    /// The answer to the session's waiting CSAT survey.
    CsatAnswer {
        survey_id: String,
        score: i64,
    },
}

/// The reply when too many messages in a row were not understood.
pub const HANDOFF_AFTER_UNRECOGNISED: &str =
    "I'm having trouble understanding. Let me connect you to an agent.";
/// The reply to a CSAT answer.
pub const CSAT_THANKS: &str = "Thank you for your feedback!";

/// Decides in the caller's transaction, for a bot that needs no I/O: the message was stored (as
/// processed) by this transaction, on the session it found and locked. A CSAT answer may need a
/// look-up; the bot needs none.
pub(super) async fn decide_in(
    tx: &mut Tx,
    inbound: &Inbound,
    landed: &Landed,
    inbox_bot: &InboxBot,
) -> Result<Decision, ConversationError> {
    if let Some(decision) = fixed(tx, inbound, landed).await? {
        return Ok(decision);
    }
    match inbox_bot.bot.as_deref() {
        None => Ok(Decision::NoBot),
        Some(bot) => bot
            .decide(&input(inbound, landed))
            .await
            .map(Decision::Bot)
            .map_err(|e| ConversationError::invalid("bot", e.to_string())),
    }
}

/// The effects of a [`decide_in`] decision, on the message and session the transaction stored
/// and holds.
pub(super) async fn act_in(
    tx: &mut Tx,
    landed: &Landed,
    decision: Decision,
    settings: &InboxSettings,
) -> Result<(), ConversationError> {
    act(
        tx,
        landed,
        &landed.message,
        &landed.session,
        Some(decision),
        settings,
    )
    .await
}

/// What most decisions come to: the bot's reply, if any, and the session's new count of
/// unrecognised messages in a row, if it changed — no handoff, no survey. A shared transaction
/// stores such replies of all its steps in one exchange (super::inbound::store_in).
pub(super) struct BotReply {
    pub reply: Option<NewOutbound>,
    pub unrecognised: Option<i32>,
}

/// `decision` on `message` as a [`BotReply`], when that is all it comes to on this session
/// (on the bot path); else the decision back, for [`act_in`].
pub(super) fn as_bot_reply(
    decision: Decision,
    message: &Message,
    session: &Session,
    settings: &InboxSettings,
) -> Result<BotReply, Decision> {
    let Decision::Bot(d) = &decision else {
        return Err(decision);
    };
    let next = next_step(d, session, settings);
    if d.handoff || next.limit_hit {
        return Err(decision);
    }
    Ok(BotReply {
        reply: next.text.map(|text| bot_reply(&text, message)),
        unrecognised: (next.count != session.unrecognised_count).then_some(next.count),
    })
}

/// Where a bot's decision leaves the session.
struct NextStep {
    /// Unrecognised messages in a row, this one included.
    count: i32,
    /// That count reached the inbox's limit: hand off (unless the bot does anyway).
    limit_hit: bool,
    /// The reply to send.
    text: Option<String>,
}

fn next_step(d: &BotDecision, session: &Session, settings: &InboxSettings) -> NextStep {
    let count = if d.recognised {
        0
    } else {
        session.unrecognised_count + 1
    };
    let limit_hit = !d.handoff && settings.handoff_after > 0 && count >= settings.handoff_after;
    let text = if limit_hit {
        Some(HANDOFF_AFTER_UNRECOGNISED.to_owned())
    } else {
        d.reply.clone()
    };
    NextStep {
        count,
        limit_hit,
        text,
    }
}

/// The bot's reply `body` to `message`.
fn bot_reply(body: &str, message: &Message) -> NewOutbound {
    NewOutbound {
        sender: Sender::Bot,
        body: body.to_owned(),
        idempotency_key: None,
        payload: json!({ "in_reply_to": message.id }),
    }
}

/// Asks a remote bot outside any transaction, then applies its decision in one.
pub async fn respond(
    p: &Pipeline,
    job: &Job,
    inbound: &Inbound,
    landed: Landed,
) -> Result<(), JobError> {
    if landed.session.state().map_err(JobError::from)? != SessionState::Bot {
        let defaults = InboxSettings::defaults(&landed.session.inbox_id);
        return finish(p, job, &landed, None, &defaults).await;
    }
    let inbox_bot = p.bots.for_inbox(&landed.session.inbox_id).await?;
    let decision = decide(p, inbound, &landed, inbox_bot.bot.as_deref()).await?;
    finish(p, job, &landed, Some(decision), &inbox_bot.settings).await
}

/// What needs no bot: the answer to a waiting CSAT survey, or a "connect agent" button.
async fn fixed(
    tx: &mut Tx,
    inbound: &Inbound,
    landed: &Landed,
) -> Result<Option<Decision>, ConversationError> {
    if let Some(score) = csat::score_from_text(&landed.message.body)
        && let Some(survey) = csat::pending(tx, &landed.session.id).await?
    {
        return Ok(Some(Decision::CsatAnswer {
            survey_id: survey.id,
            score,
        }));
    }
    if inbound.postback.as_deref().is_some_and(is_handoff_postback) {
        return Ok(Some(Decision::Bot(BotDecision {
            intent: Some("handoff".into()),
            reply: None,
            handoff: true,
            recognised: true,
        })));
    }
    Ok(None)
}

fn input(inbound: &Inbound, landed: &Landed) -> BotInput {
    BotInput {
        tenant_id: landed.session.tenant_id.clone(),
        inbox_id: landed.session.inbox_id.clone(),
        session_id: landed.session.id.clone(),
        message_id: landed.message.id.clone(),
        text: landed.message.body.clone(),
        postback: inbound.postback.clone(),
        contact_name: landed.contact.name.clone(),
    }
}

async fn decide(
    p: &Pipeline,
    inbound: &Inbound,
    landed: &Landed,
    bot: Option<&dyn shared::bot::Bot>,
) -> Result<Decision, JobError> {
    let maybe_fixed =
        csat::score_from_text(&landed.message.body).is_some() || inbound.postback.is_some();
    if maybe_fixed {
        let mut tx = p
            .conversations
            .begin(&landed.session.tenant_id, "bot-check")
            .await?;
        let fixed = fixed(&mut tx, inbound, landed).await;
        tx.rollback().await?;
        if let Some(decision) = fixed? {
            return Ok(decision);
        }
    }
    let Some(bot) = bot else {
        return Ok(Decision::NoBot);
    };
    bot.decide(&input(inbound, landed))
        .await
        .map(Decision::Bot)
        .map_err(|e| match e {
            BotError::Transient(m) => JobError::Transient(m),
            BotError::Permanent(m) => JobError::Permanent(m),
        })
}

/// Applies `decision` (none: the session is not on the bot path) in one transaction.
async fn finish(
    p: &Pipeline,
    job: &Job,
    landed: &Landed,
    decision: Option<Decision>,
    settings: &InboxSettings,
) -> Result<(), JobError> {
    let mut tx = p
        .conversations
        .begin(&landed.session.tenant_id, &job.id.to_string())
        .await?;
    let result = apply(&mut tx, landed, decision, settings).await;
    let (_, effects) = tx.finish(result).await?;
    p.conversations.settle(effects).await;
    Ok(())
}

/// Step two in a transaction of its own: locks the message (another attempt may have answered
/// it meanwhile) and the session (an agent may have taken it), acts, marks the message processed.
async fn apply(
    tx: &mut Tx,
    landed: &Landed,
    decision: Option<Decision>,
    settings: &InboxSettings,
) -> Result<(), ConversationError> {
    let message = messages::lock(tx, &landed.message.id).await?;
    if message.processed_at.is_some() {
        return Ok(());
    }
    let session = sessions::lock(tx, &landed.session.id).await?;
    act(tx, landed, &message, &session, decision, settings).await?;
    messages::mark_processed(tx, &message.id).await
}

/// The decision's effects (none: the session is not on the bot path), on a message and session
/// this transaction holds.
async fn act(
    tx: &mut Tx,
    landed: &Landed,
    message: &Message,
    session: &Session,
    decision: Option<Decision>,
    settings: &InboxSettings,
) -> Result<(), ConversationError> {
    if let (Some(decision), SessionState::Bot) = (decision, session.state()?) {
        match decision {
            Decision::CsatAnswer { survey_id, score } => {
                csat::respond(tx, &survey_id, score, None).await?;
                let thanks = NewOutbound {
                    sender: Sender::System,
                    ..bot_reply(CSAT_THANKS, message)
                };
                messages::store_outbound(tx, session, &landed.contact, landed.kind, thanks).await?;
            }
            Decision::NoBot => {
                handoff::hand_off(tx, session, Trigger::BotOff, Some(message)).await?;
            }
            Decision::Bot(d) => {
                let next = next_step(&d, session, settings);
                if let Some(text) = &next.text {
                    let reply = bot_reply(text, message);
                    messages::store_outbound(tx, session, &landed.contact, landed.kind, reply)
                        .await?;
                }
                if d.handoff || next.limit_hit {
                    let trigger = match (&d, next.limit_hit) {
                        (_, true) => Trigger::Unrecognised(next.count),
                        (_, false) if message.payload["postback"].is_string() => Trigger::Postback(
                            message.payload["postback"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        ),
                        (d, false) => {
                            Trigger::Intent(d.intent.clone().unwrap_or_else(|| "handoff".into()))
                        }
                    };
                    handoff::hand_off(tx, session, trigger, Some(message)).await?;
                } else if next.count != session.unrecognised_count {
                    sessions::set_unrecognised(tx, &session.id, next.count).await?;
                }
            }
        }
    }
    Ok(())
}
