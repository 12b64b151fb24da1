//! Integration tests of `shared::webhooks` against a real Postgres and Redis, with subscriber
//! endpoints served by small hyper servers on loopback.
