//! The state machines of DESIGN.md §4, in one place. Every status change in the pipeline goes
//! through [`transition`]; an illegal one is an [`IllegalTransition`] (409 on the API, a
//! permanent failure in a job), never silently applied.
//!
//! - message: new → stored → sent → delivered → read, forward only (steps may be skipped), and
//!   failed only from new, stored or sent — shared::channels::status::advance, the one order
//! - session: bot ⇄ live, either → closed
//! - case: created → assigned → in_progress → resolved → closed (the CSAT survey follows)
//! - queue item: waiting → assigned → done, or waiting → done (the session went away)
//! - CSAT survey: sent → responded

use std::{fmt, str::FromStr};

/// One state machine: its states and which moves are legal.
pub trait StateMachine: Copy + Eq + fmt::Debug + 'static {
    /// The entity's name in errors (`message`, `case`…).
    const ENTITY: &'static str;
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn can_become(self, next: Self) -> bool;

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == text)
    }
}

/// A move the state machine forbids.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{entity} {id} is {from}; it cannot become {to}")]
pub struct IllegalTransition {
    pub entity: &'static str,
    pub id: String,
    pub from: &'static str,
    pub to: &'static str,
}

/// `Ok(to)` when `from → to` is legal for the entity `id`.
pub fn transition<S: StateMachine>(id: &str, from: S, to: S) -> Result<S, IllegalTransition> {
    if from.can_become(to) {
        Ok(to)
    } else {
        Err(IllegalTransition {
            entity: S::ENTITY,
            id: id.to_owned(),
            from: from.as_str(),
            to: to.as_str(),
        })
    }
}

/// Parses a state column; an unknown value means a newer release wrote the row.
pub fn parse_state<S: StateMachine>(text: &str) -> Result<S, UnknownState> {
    S::parse(text).ok_or_else(|| UnknownState {
        entity: S::ENTITY,
        value: text.to_owned(),
    })
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{entity} has an unknown state {value:?}")]
pub struct UnknownState {
    pub entity: &'static str,
    pub value: String,
}

macro_rules! states {
    ($name:ident, $entity:literal, [$($variant:ident => $text:literal),+ $(,)?]) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            const VARIANTS: &'static [Self] = &[$(Self::$variant),+];
            fn text(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.text())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_state(s)
            }
        }
    };
}

/// An outbound (or inbound) message's status: the delivery status of shared::channels::status,
/// so provider callbacks and the pipeline share one enum and one order.
pub use crate::channels::status::DeliveryStatus as MessageStatus;

impl StateMachine for MessageStatus {
    const ENTITY: &'static str = "message";
    const ALL: &'static [Self] = MessageStatus::ALL;
    fn as_str(self) -> &'static str {
        MessageStatus::as_str(self)
    }
    fn can_become(self, next: Self) -> bool {
        crate::channels::status::advance(self, next)
            == crate::channels::status::StatusChange::To(next)
    }
}

states!(SessionState, "session", [Bot => "bot", Live => "live", Closed => "closed"]);

impl StateMachine for SessionState {
    const ENTITY: &'static str = "session";
    const ALL: &'static [Self] = Self::VARIANTS;
    fn as_str(self) -> &'static str {
        self.text()
    }
    fn can_become(self, next: Self) -> bool {
        use SessionState::*;
        matches!(
            (self, next),
            (Bot, Live) | (Live, Bot) | (Bot | Live, Closed)
        )
    }
}

states!(CaseState, "case", [
    Created => "created", Assigned => "assigned", InProgress => "in_progress",
    Resolved => "resolved", Closed => "closed",
]);

impl StateMachine for CaseState {
    const ENTITY: &'static str = "case";
    const ALL: &'static [Self] = Self::VARIANTS;
    fn as_str(self) -> &'static str {
        self.text()
    }
    fn can_become(self, next: Self) -> bool {
        use CaseState::*;
        matches!(
            (self, next),
            (Created, Assigned)
                | (Assigned, InProgress)
                | (InProgress, Resolved)
                | (Resolved, Closed)
        )
    }
}

impl CaseState {
    /// The legal steps from `self` to `target` along the case's one path (for "close" on a
    /// case still in progress: in_progress → resolved → closed). Empty when `target` is
    /// behind or equal; `None` only if the path is broken, which the machine rules out.
    pub fn path_to(self, target: Self) -> Vec<Self> {
        let order = Self::VARIANTS;
        let from = order.iter().position(|s| *s == self).unwrap_or(0);
        let to = order.iter().position(|s| *s == target).unwrap_or(0);
        if to <= from {
            return Vec::new();
        }
        order[from + 1..=to].to_vec()
    }
}

states!(QueueItemState, "queue item", [Waiting => "waiting", Assigned => "assigned", Done => "done"]);

impl StateMachine for QueueItemState {
    const ENTITY: &'static str = "queue item";
    const ALL: &'static [Self] = Self::VARIANTS;
    fn as_str(self) -> &'static str {
        self.text()
    }
    fn can_become(self, next: Self) -> bool {
        use QueueItemState::*;
        matches!(
            (self, next),
            (Waiting, Assigned) | (Waiting | Assigned, Done)
        )
    }
}

states!(CsatState, "csat survey", [Sent => "sent", Responded => "responded", Expired => "expired"]);

impl StateMachine for CsatState {
    const ENTITY: &'static str = "csat survey";
    const ALL: &'static [Self] = Self::VARIANTS;
    fn as_str(self) -> &'static str {
        self.text()
    }
    fn can_become(self, next: Self) -> bool {
        // Expired: unanswered past its inbox's expiry (the scheduler's `expire-csat`).
        matches!(
            (self, next),
            (Self::Sent, Self::Responded) | (Self::Sent, Self::Expired)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of states: legal exactly when listed.
    fn check<S: StateMachine>(legal: &[(S, S)]) {
        for &from in S::ALL {
            for &to in S::ALL {
                let expected = legal.contains(&(from, to));
                assert_eq!(
                    transition("x", from, to).is_ok(),
                    expected,
                    "{} {from:?} → {to:?}",
                    S::ENTITY
                );
            }
        }
    }

    #[test]
    fn message_lifecycle() {
        use MessageStatus::*;
        check(&[
            (New, Stored),
            (New, Sent),
            (New, Delivered),
            (New, Read),
            (Stored, Sent),
            (Stored, Delivered),
            (Stored, Read),
            (Sent, Delivered),
            (Sent, Read),
            (Delivered, Read),
            (New, Failed),
            (Stored, Failed),
            (Sent, Failed),
        ]);
    }

    #[test]
    fn session_paths() {
        use SessionState::*;
        check(&[(Bot, Live), (Live, Bot), (Bot, Closed), (Live, Closed)]);
    }

    #[test]
    fn case_lifecycle() {
        use CaseState::*;
        check(&[
            (Created, Assigned),
            (Assigned, InProgress),
            (InProgress, Resolved),
            (Resolved, Closed),
        ]);
        assert_eq!(InProgress.path_to(Closed), [Resolved, Closed]);
        assert!(Closed.path_to(Closed).is_empty());
    }

    #[test]
    fn queue_items_and_surveys() {
        use QueueItemState::*;
        check(&[(Waiting, Assigned), (Waiting, Done), (Assigned, Done)]);
        check(&[
            (CsatState::Sent, CsatState::Responded),
            (CsatState::Sent, CsatState::Expired),
        ]);
    }

    #[test]
    fn errors_say_what_was_refused() {
        let error = transition("cas_1", CaseState::Closed, CaseState::Assigned).unwrap_err();
        assert_eq!(
            error.to_string(),
            "case cas_1 is closed; it cannot become assigned"
        );
        assert_eq!(
            "in_progress".parse::<CaseState>(),
            Ok(CaseState::InProgress)
        );
        assert!("open".parse::<CaseState>().is_err());
    }
}
