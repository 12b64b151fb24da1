//! Integration tests of `shared::webhooks` against a real Postgres and Redis, with subscriber
//! endpoints served by small hyper servers on loopback. Time-dependent behaviour is checked on
//! the due times scheduled (an injected clock), never by measuring elapsed time.

mod delivery;
mod disabled_event;
mod fanout;
mod fleet_limit;
mod isolation;
mod recovery;
mod ssrf;
mod store;
mod subscriber;
mod support;
mod verifier;
