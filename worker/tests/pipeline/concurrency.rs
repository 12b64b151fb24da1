//! Two (or many) first messages from a new customer processed at the same time make one
//! contact and one session: the contacts' unique index picks the creator and its row lock
//! serialises the rest of each transaction.

use futures::future::join_all;

use crate::World;

#[tokio::test(flavor = "multi_thread")]
async fn two_first_messages_at_once_make_one_contact_and_one_session() {
    let w = World::new().await;
    let a = w.waha("new@c.us", "m-a", "hello");
    let b = w.waha("new@c.us", "m-b", "are you there?");
    let (ra, rb) = tokio::join!(w.run(&a), w.run(&b));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(w.count("SELECT 1 FROM contacts").await, 1);
    assert_eq!(w.count("SELECT 1 FROM sessions").await, 1);
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE direction = 'inbound'")
            .await,
        2
    );
    let types = w.event_types().await;
    assert_eq!(types.iter().filter(|t| *t == "session.created").count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_customers_writing_five_messages_each_at_once_stay_apart() {
    let w = World::new().await;
    let jobs: Vec<_> = (0..20)
        .flat_map(|c| (0..5).map(move |m| (c, m)))
        .map(|(c, m)| {
            w.waha(
                &format!("{c}@c.us"),
                &format!("{c}-{m}"),
                "where is my parcel",
            )
        })
        .collect();
    let results = join_all(jobs.iter().map(|j| w.run(j))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(w.count("SELECT 1 FROM contacts").await, 20);
    assert_eq!(w.count("SELECT 1 FROM sessions").await, 20);
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE direction = 'inbound'")
            .await,
        100
    );
    // Per aggregate, versions are 1..n without gaps or forks.
    assert_eq!(
        w.count(
            "SELECT aggregate_id FROM event_logs GROUP BY aggregate_type, aggregate_id \
             HAVING max(aggregate_version) <> count(*)"
        )
        .await,
        0
    );
}
