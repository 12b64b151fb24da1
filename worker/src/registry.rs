//! The job kinds this worker runs. Features register their handlers here; the queue never
//! needs to change when a kind is added.

use shared::{
    db::DbPool,
    jobs::{JobRegistry, builtin},
};

pub fn build(db: DbPool) -> JobRegistry {
    let mut registry = JobRegistry::new();
    builtin::register(&mut registry, db);
    registry
}
