//! A customer message, step one: store it (and, when the inbox's bot needs no I/O, answer it in
//! the same transaction). In one transaction: find the customer's contact and open session,
//! both locked, which serialises this customer's messages from here on — or create them, or
//! open a session for a known contact (`session.created`) — in one statement
//! (`sessions::of_senders`); store the message unless its provider id is known
//! (`message.ready`) — as already processed when the local bot answers it in this transaction,
//! which then needs neither to lock it again nor to mark it afterwards.
//! A duplicate whose bot step is done is a successful no-op (after sending anything an earlier
//! attempt committed but did not publish); one whose bot step a crash interrupted goes on to
//! [`super::respond`] like a new message.
//!
//! Store steps go through [`super::batch`], which runs several jobs' steps in one transaction
//! when they queue up; [`store_in`] runs them, a kind of statement for all at once.

use std::sync::Arc;

use diesel_async::AsyncPgConnection;
use futures::future::try_join_all;
use shared::{
    conversation::{
        Contact, ConversationError, Message, Session, Tx,
        messages::{self, Stored},
        sessions,
        state::SessionState,
    },
    inboxes::InboxKind,
    jobs::JobError,
    queue::Job,
};
use tracing::Instrument as _;

use super::{Pipeline, batch::StoreStep, parse, respond, respond::BotReply};

/// What step one leaves for step two.
pub struct Landed {
    pub kind: InboxKind,
    pub contact: Contact,
    pub session: Session,
    pub message: Message,
    /// The provider message id was already stored (a redelivery or a rerun).
    pub duplicate: bool,
}

pub async fn handle(p: &Pipeline, job: &Job) -> Result<(), JobError> {
    let step = step(p, job).await?;
    let inbound = step.inbound.clone();
    let landed = p.store_steps.store(p, step).await?;
    after_store(p, job, &inbound, landed).await
}

/// The job's store step: its message parsed, its inbox's bot when that answers in place.
pub(super) async fn step(p: &Pipeline, job: &Job) -> Result<StoreStep, JobError> {
    let inbound = Arc::new(parse::inbound(job).map_err(JobError::permanent)?);
    let inbox_bot = p.bots.for_inbox(&inbound.inbox_id).await?;
    Ok(StoreStep {
        span: tracing::info_span!(
            "store_step",
            job_id = %job.id,
            correlation_id = %job.correlation_id,
        ),
        job: job.clone(),
        inbound,
        local_bot: inbox_bot.is_local().then_some(inbox_bot),
    })
}

/// What follows a stored message: a rerun sends what an earlier attempt left; a message the
/// local bot did not answer goes to step two.
pub(super) async fn after_store(
    p: &Pipeline,
    job: &Job,
    inbound: &parse::Inbound,
    landed: Landed,
) -> Result<(), JobError> {
    if landed.duplicate {
        // A rerun: whatever an earlier attempt committed but did not get out goes now.
        let origin = job.id.to_string();
        p.conversations
            .outbox
            .flush_origin(&origin)
            .await
            .map_err(JobError::transient)?;
    }
    if landed.message.processed_at.is_some() {
        return Ok(());
    }
    respond::respond(p, job, inbound, landed).await
}

/// Step one in a transaction of its own (with a local bot, step two too); then sends.
pub(super) async fn store_alone(p: &Pipeline, step: &StoreStep) -> Result<Landed, JobError> {
    let mut tx = p
        .conversations
        .begin(&step.inbound.tenant_id, &step.job.id.to_string())
        .await?;
    let result = store_in(p, &mut tx, &[step], false).await;
    let (mut landed, effects) = tx.finish(result).await?;
    p.conversations.settle(effects).await;
    Ok(landed.pop().expect("one step, one landing"))
}

/// Step one (with a local bot, step two too) of `steps` in `tx`: one job's step, or several
/// jobs' steps sharing the transaction (`shared`, super::batch), in the order given.
///
/// The steps take turns statement by statement, so that every step's statement of a kind goes
/// in one exchange, pipelined on the connection: the senders' conversations (found or opened),
/// then the messages, then the bot's replies and counts — a round trip per kind instead of one
/// per step. Between them each step tells what it did (events, jobs: `Tx` keeps them by step)
/// and its bot decides. A sender with several steps here has one per round: a round starts
/// after the one before ended, so it sees what that did to the session (its count of
/// unrecognised messages, say).
pub(super) async fn store_in(
    p: &Pipeline,
    tx: &mut Tx,
    steps: &[&StoreStep],
    shared: bool,
) -> Result<Vec<Landed>, ConversationError> {
    let mut landed: Vec<Option<Landed>> = steps.iter().map(|_| None).collect();
    for round in rounds(steps) {
        let round_steps: Vec<&StoreStep> = round.iter().map(|&index| steps[index]).collect();
        let round_landed = store_round(p, tx, &round_steps, shared).await?;
        for (index, step_landed) in round.into_iter().zip(round_landed) {
            landed[index] = Some(step_landed);
        }
    }
    Ok(landed
        .into_iter()
        .map(|step_landed| step_landed.expect("every step is in a round"))
        .collect())
}

/// The steps' indices by round: a sender's first step in the first round, its second in the
/// second…, in the given order within each.
fn rounds(steps: &[&StoreStep]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let earlier = steps[..index]
            .iter()
            .filter(|other| other.lock_order() == step.lock_order())
            .count();
        if rounds.len() == earlier {
            rounds.push(Vec::new());
        }
        rounds[earlier].push(index);
    }
    rounds
}

/// A step's conversation, found or opened in this transaction.
struct Conversation {
    kind: InboxKind,
    contact: Contact,
    session: Session,
    /// The inbox's local bot answers the message in this transaction (the session is on the
    /// bot path).
    answer_now: bool,
}

/// One round of [`store_in`]: steps of different senders.
async fn store_round(
    p: &Pipeline,
    tx: &mut Tx,
    steps: &[&StoreStep],
    shared: bool,
) -> Result<Vec<Landed>, ConversationError> {
    // Each step's inbox checked against its tenant (remembered: no statement after the first).
    let mut kinds = Vec::with_capacity(steps.len());
    for step in steps {
        let inbound = &*step.inbound;
        kinds.push(
            p.inbox_kinds
                .of_tenant(tx.conn(), &inbound.inbox_id, &inbound.tenant_id)
                .await?,
        );
    }
    // The senders' conversations, in one exchange (in the given order: a shared transaction's
    // lock order).
    let senders: Vec<sessions::Sender> = steps
        .iter()
        .map(|step| sessions::Sender {
            inbox_id: &step.inbound.inbox_id,
            contact: &step.inbound.contact,
            correlation_id: &step.job.correlation_id,
        })
        .collect();
    let found = sessions::of_senders(tx, &senders).await?;
    let mut conversations = Vec::with_capacity(steps.len());
    for ((step, kind), of_sender) in steps.iter().zip(kinds).zip(found) {
        take_turn(tx, step, shared);
        sessions::announce_opened(tx, &of_sender)
            .instrument(step.span.clone())
            .await?;
        // A local bot answers a new message on the bot path right here, in this transaction.
        let answer_now =
            step.local_bot.is_some() && of_sender.session.state()? == SessionState::Bot;
        conversations.push(Conversation {
            kind,
            contact: of_sender.contact,
            session: of_sender.session,
            answer_now,
        });
    }

    // The messages, in one exchange.
    let conn: &AsyncPgConnection = tx.conn();
    let inserted = try_join_all(steps.iter().zip(&conversations).map(|(step, c)| {
        messages::insert_inbound(conn, &c.session, &step.inbound.message, c.answer_now)
    }))
    .await?;

    // Each step tells what it stored; a local bot decides.
    let mut landed = Vec::with_capacity(steps.len());
    let mut replies = Vec::new();
    for (index, ((step, conversation), inserted)) in
        steps.iter().zip(conversations).zip(inserted).enumerate()
    {
        take_turn(tx, step, shared);
        let (step_landed, reply) = stored(tx, step, conversation, inserted)
            .instrument(step.span.clone())
            .await?;
        if let Some(reply) = reply {
            replies.push((index, reply));
        }
        landed.push(step_landed);
    }
    if replies.is_empty() {
        return Ok(landed);
    }

    // The bot's replies and the sessions' counts, in one exchange.
    let conn: &AsyncPgConnection = tx.conn();
    let new_replies = try_join_all(replies.iter().filter_map(|(index, reply)| {
        let new = reply.reply.as_ref()?;
        let session = &landed[*index].session;
        Some(async move {
            let message = messages::insert_outbound(conn, session, new).await?;
            Ok::<_, ConversationError>((*index, new, message))
        })
    }));
    let counts = try_join_all(replies.iter().filter_map(|(index, reply)| {
        let count = reply.unrecognised?;
        Some(sessions::update_unrecognised(
            conn,
            &landed[*index].session.id,
            count,
        ))
    }));
    let (new_replies, _) = futures::try_join!(new_replies, counts)?;
    for (index, new, message) in new_replies {
        take_turn(tx, steps[index], shared);
        let step_landed = &landed[index];
        messages::outbound_stored(
            tx,
            &step_landed.session,
            &step_landed.contact,
            step_landed.kind,
            &new.sender,
            message,
        )
        .instrument(steps[index].span.clone())
        .await?;
    }
    Ok(landed)
}

/// In a shared transaction, what follows is `step`'s (its events and jobs carry its job id).
fn take_turn(tx: &mut Tx, step: &StoreStep, shared: bool) {
    if shared {
        tx.switch_cause(&step.job.id.to_string());
    }
}

/// What the message's insert did, told (`message.ready`); a local bot's decision applied — or,
/// when it is only a reply (the common case), returned, to be stored with the round's others.
async fn stored(
    tx: &mut Tx,
    step: &StoreStep,
    conversation: Conversation,
    inserted: Option<Message>,
) -> Result<(Landed, Option<BotReply>), ConversationError> {
    let inbound = &*step.inbound;
    let stored =
        messages::inbound_stored(tx, &conversation.session, &inbound.message, inserted).await?;
    let duplicate = matches!(stored, Stored::Duplicate(_));
    if duplicate {
        tracing::debug!(message_id = %stored.message().id, "duplicate provider message");
    }
    let landed = Landed {
        kind: conversation.kind,
        contact: conversation.contact,
        session: conversation.session,
        message: stored.message().clone(),
        duplicate,
    };
    let Some(inbox_bot) = &step.local_bot else {
        return Ok((landed, None));
    };
    if !conversation.answer_now || duplicate {
        return Ok((landed, None));
    }
    // Stored as processed just now, on the session this transaction holds.
    let decision = respond::decide_in(tx, inbound, &landed, inbox_bot).await?;
    match respond::as_bot_reply(
        decision,
        &landed.message,
        &landed.session,
        &inbox_bot.settings,
    ) {
        Ok(reply) => Ok((landed, Some(reply))),
        Err(decision) => {
            respond::act_in(tx, &landed, decision, &inbox_bot.settings).await?;
            Ok((landed, None))
        }
    }
}
