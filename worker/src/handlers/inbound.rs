//! A customer message, step one: store it (and, when the inbox's bot needs no I/O, answer it in
//! the same transaction). In one transaction: find the customer's contact and open session,
//! both locked, which serialises this customer's messages from here on (one statement for a
//! follow-up; else the contact is found or created and a session found or opened,
//! `session.created` — `sessions::of_sender`); store the message unless its provider id is known
//! (`message.ready`) — as already processed when the local bot answers it in this transaction,
//! which then needs neither to lock it again nor to mark it afterwards.
//! A duplicate whose bot step is done is a successful no-op (after sending anything an earlier
//! attempt committed but did not publish); one whose bot step a crash interrupted goes on to
//! [`super::respond`] like a new message.
//!
//! Store steps go through [`super::batch`], which runs several jobs' steps in one transaction
//! when they queue up.

use std::sync::Arc;

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

use super::{Pipeline, batch::StoreStep, parse, respond};

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
    let result = store_in(p, &mut tx, step, None).await;
    let (landed, effects) = tx.finish(result).await?;
    p.conversations.settle(effects).await;
    Ok(landed)
}

/// What the look-up of a sender's open conversation found ([`sessions::open_of_sender`]).
pub(super) type LookedUp = Option<(Contact, Session)>;

/// Step one (with a local bot, step two too) in `tx`, which may be shared with other jobs'
/// steps (super::batch). `ahead`: the sender's look-up, when the batch made it for every step
/// at once in this transaction.
pub(super) async fn store_in(
    p: &Pipeline,
    tx: &mut Tx,
    step: &StoreStep,
    ahead: Option<LookedUp>,
) -> Result<Landed, ConversationError> {
    let (job, inbound) = (&step.job, &*step.inbound);
    let kind = p
        .inbox_kinds
        .of_tenant(tx.conn(), &inbound.inbox_id, &inbound.tenant_id)
        .await?;
    let (inbox_id, sender, correlation_id) =
        (&inbound.inbox_id, &inbound.contact, &job.correlation_id);
    let (contact, session) = match ahead {
        Some(open) => {
            sessions::of_sender_looked_up(tx, open, inbox_id, sender, correlation_id).await?
        }
        None => sessions::of_sender(tx, inbox_id, sender, correlation_id).await?,
    };
    // A local bot answers a new message on the bot path right here, in this transaction.
    let answer_now = step.local_bot.is_some() && session.state()? == SessionState::Bot;
    let stored = messages::store_inbound(tx, &session, inbound.message.clone(), answer_now).await?;
    let duplicate = matches!(stored, Stored::Duplicate(_));
    if duplicate {
        tracing::debug!(message_id = %stored.message().id, "duplicate provider message");
    }
    let landed = Landed {
        kind,
        contact,
        session,
        message: stored.message().clone(),
        duplicate,
    };
    if let Some(inbox_bot) = &step.local_bot
        && answer_now
        && !duplicate
    {
        // Stored as processed just now, on the session this transaction holds.
        respond::respond_in(tx, inbound, &landed, inbox_bot).await?;
    }
    Ok(landed)
}
