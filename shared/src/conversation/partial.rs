//! The predicates of the partial indexes of migration 000003, spelled as SQL literals.
//!
//! Postgres uses a partial index only for a query whose WHERE clause proves the index's
//! predicate. `state <> $1` proves nothing once a prepared statement switches to its generic
//! plan (after five runs on a connection, when the table was small): from then on that
//! connection scans the whole table, for every message, for as long as it lives. Measured
//! under pipeline-bench, the open-session lookup was a sequential scan per message,
//! growing with the sessions table (BENCHMARKS.md, pipeline, "Partial indexes and generic
//! plans"). With the literal the planner matches the index whatever the plan.
//!
//! Not `diesel::dsl::sql`: a query holding such a literal is never kept prepared, so it was
//! parsed and planned on every call (the session look-up, once per message: ~70 µs of planning
//! each under pipeline-bench). Each predicate here is a type of its own whose SQL never changes,
//! so diesel keeps the statement prepared and Postgres its plan.

use diesel::{
    expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate},
    pg::Pg,
    query_builder::{AstPass, QueryFragment, QueryId},
    sql_types::Bool,
};

/// A fixed SQL predicate, one type per predicate: the type is the prepared statement's cache key.
macro_rules! predicate {
    ($(#[$doc:meta])* $name:ident, $sql:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, QueryId)]
        pub struct $name;

        impl Expression for $name {
            type SqlType = Bool;
        }

        impl<QS> AppearsOnTable<QS> for $name {}

        impl<QS> SelectableExpression<QS> for $name {}

        impl ValidGrouping<()> for $name {
            type IsAggregate = is_aggregate::Never;
        }

        impl QueryFragment<Pg> for $name {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }
    };
}

predicate!(
    /// `cases_one_open_per_session`.
    CaseIsOpen,
    CASE_IS_OPEN
);
const CASE_IS_OPEN: &str = "cases.state <> 'closed'";

predicate!(
    /// `queue_items_one_open_per_session`.
    QueueItemIsOpen,
    QUEUE_ITEM_IS_OPEN
);
const QUEUE_ITEM_IS_OPEN: &str = "queue_items.state <> 'done'";

predicate!(
    /// `queue_items_waiting`.
    QueueItemIsWaiting,
    QUEUE_ITEM_IS_WAITING
);
const QUEUE_ITEM_IS_WAITING: &str = "queue_items.state = 'waiting'";

predicate!(
    /// `csat_surveys_session`.
    SurveyIsSent,
    SURVEY_IS_SENT
);
const SURVEY_IS_SENT: &str = "csat_surveys.state = 'sent'";

#[cfg(test)]
mod tests {
    use super::super::state::{CaseState, CsatState, QueueItemState, SessionState, StateMachine};

    const CONVERSATIONS: &str =
        include_str!("../../../migrations/2026-11-23-000003_conversations/up.sql");
    /// Spells the open session's predicate in its body (it is SQL, not diesel).
    const CONVERSATION_OF_SENDER: &str =
        include_str!("../../../migrations/2026-11-23-000021_conversation_of_sender/up.sql");

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
        let session_is_open = format!("s.{}", cases[0].1);
        assert_eq!(
            CONVERSATION_OF_SENDER.matches(&session_is_open).count(),
            2,
            "conversation_of_sender looks up the open session by {session_is_open}"
        );
        let literals = [
            session_is_open.as_str(),
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
