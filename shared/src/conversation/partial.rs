//! The predicates of the partial indexes of migration 000003, spelled as SQL literals.
//!
//! Postgres uses a partial index only for a query whose WHERE clause proves the index's
//! predicate. `state <> $1` proves nothing once a prepared statement switches to its generic
//! plan (after five runs on a connection, when the table was small): from then on that
//! connection scans the whole table, for every message, for as long as it lives. Measured
//! under pipeline-bench, `find_or_open`'s session lookup was a sequential scan per message,
//! growing with the sessions table (BENCHMARKS.md, pipeline, "Partial indexes and generic
//! plans"). With the literal the planner matches the index whatever the plan.

use diesel::{dsl::sql, expression::SqlLiteral, sql_types::Bool};

/// `sessions_one_open_per_contact`.
pub fn session_is_open() -> SqlLiteral<Bool> {
    sql(SESSION_IS_OPEN)
}
const SESSION_IS_OPEN: &str = "sessions.state <> 'closed'";

/// `cases_one_open_per_session`.
pub fn case_is_open() -> SqlLiteral<Bool> {
    sql(CASE_IS_OPEN)
}
const CASE_IS_OPEN: &str = "cases.state <> 'closed'";

/// `queue_items_one_open_per_session`.
pub fn queue_item_is_open() -> SqlLiteral<Bool> {
    sql(QUEUE_ITEM_IS_OPEN)
}
const QUEUE_ITEM_IS_OPEN: &str = "queue_items.state <> 'done'";

/// `queue_items_waiting`.
pub fn queue_item_is_waiting() -> SqlLiteral<Bool> {
    sql(QUEUE_ITEM_IS_WAITING)
}
const QUEUE_ITEM_IS_WAITING: &str = "queue_items.state = 'waiting'";

/// `csat_surveys_session`.
pub fn survey_is_sent() -> SqlLiteral<Bool> {
    sql(SURVEY_IS_SENT)
}
const SURVEY_IS_SENT: &str = "csat_surveys.state = 'sent'";

#[cfg(test)]
mod tests {
    use super::super::state::{CaseState, CsatState, QueueItemState, SessionState, StateMachine};

    const CONVERSATIONS: &str =
        include_str!("../../../migrations/2026-11-23-000003_conversations/up.sql");

    /// The literals name the states the state machines write, and the indexes' predicates are
    /// the same words (a renamed state or a changed index breaks this, not the plans quietly).
    #[test]
    fn literals_match_the_states_and_the_indexes() {
        let cases = [
            (
                "sessions_one_open_per_contact",
                format!("state <> '{}'", SessionState::Closed.as_str()),
            ),
            (
                "cases_one_open_per_session",
                format!("state <> '{}'", CaseState::Closed.as_str()),
            ),
            (
                "queue_items_one_open_per_session",
                format!("state <> '{}'", QueueItemState::Done.as_str()),
            ),
            (
                "queue_items_waiting",
                format!("state = '{}'", QueueItemState::Waiting.as_str()),
            ),
            (
                "csat_surveys_session",
                format!("state = '{}'", CsatState::Sent.as_str()),
            ),
        ];
        let literals = [
            super::SESSION_IS_OPEN,
            super::CASE_IS_OPEN,
            super::QUEUE_ITEM_IS_OPEN,
            super::QUEUE_ITEM_IS_WAITING,
            super::SURVEY_IS_SENT,
        ];
        for ((index, predicate), literal) in cases.iter().zip(literals) {
            assert!(
                literal.ends_with(predicate.as_str()),
                "{literal} is not {predicate}"
            );
            let definition = CONVERSATIONS
                .lines()
                .find(|line| line.contains(&format!("INDEX {index} ")))
                .unwrap_or_else(|| panic!("{index} is not in migration 000003"));
            assert!(
                definition.ends_with(&format!("WHERE {predicate};")),
                "{definition}"
            );
        }
    }
}
