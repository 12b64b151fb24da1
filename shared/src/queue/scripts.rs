//! The Lua scripts, one per atomic move (see each file's header for KEYS and ARGV).
//! `redis::Script` runs them by SHA and loads them on a NOSCRIPT miss, so a Redis restart that
//! forgets the script cache costs one extra round trip, not an error.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("lua/", $file))));
    };
}

script!(ENQUEUE_UNIQUE, "enqueue_unique.lua");
script!(SETTLE, "settle.lua");
script!(RETRY_LATER, "retry_later.lua");
script!(PROMOTE_DUE, "promote_due.lua");
script!(RECLAIM_ABANDONED, "reclaim_abandoned.lua");
script!(RELEASE, "release.lua");
script!(PRUNE_CONSUMERS, "prune_consumers.lua");
