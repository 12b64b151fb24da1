//! Switchyard's shared library: everything the `ingress`, `worker` and `scheduler` binaries
//! have in common, so each binary only wires parts together.

pub mod bot;
pub mod channels;
pub mod config;
pub mod conversation;
pub mod db;
pub mod events;
pub mod inboxes;
pub mod jobs;
pub mod metrics_server;
pub mod pusher;
pub mod queue;
pub mod shutdown;
pub mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod webhooks;
