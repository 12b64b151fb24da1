//! The shared connection against a private `redis-server` of each test's own, so Redis can be
//! stopped, restarted and counted without disturbing other tests.

use std::{collections::HashSet, time::Duration};

use futures::future::join_all;

use crate::queue::{Job, QueueName, Queues, consume::StreamConsumer};
use crate::testkit::PrivateRedis;

async fn client_id(queues: &Queues) -> i64 {
    let mut conn = queues.conn().await.expect("connection");
    redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await
        .expect("CLIENT ID")
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_while_redis_is_down_then_works_once_it_is_up() {
    let port = PrivateRedis::free_port();
    let queues = Queues::new(&PrivateRedis::url_of(port), "t").expect("no dial at construction");

    let pings = join_all((0..20).map(|_| queues.ping())).await;
    assert!(
        pings.iter().all(Result::is_err),
        "every concurrent caller gets an answer, and it is an error"
    );

    let _redis = PrivateRedis::start(port).await;
    queues
        .ping()
        .await
        .expect("the first command after Redis came up succeeds (no stale dial error)");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_callers_share_one_connection_without_a_ping_per_command() {
    let port = PrivateRedis::free_port();
    let redis = PrivateRedis::start(port).await;
    let queues = Queues::new(&PrivateRedis::url_of(port), "t").expect("queues");
    let first = client_id(&queues).await;

    let ids: HashSet<i64> = join_all((0..50).map(|_| client_id(&queues)))
        .await
        .into_iter()
        .collect();
    assert_eq!(
        ids,
        HashSet::from([first]),
        "one connection for all callers"
    );

    let queue = QueueName::new("connection-test").expect("name");
    for i in 0..30 {
        let job = Job::new(queue.clone(), "noop", serde_json::json!({ "i": i }));
        queues.enqueue(&job).await.expect("enqueue");
    }
    assert_eq!(redis.command_count("ping").await, 0, "no PING per checkout");
    assert_eq!(client_id(&queues).await, first);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_connection_is_replaced_after_redis_restarts() {
    let port = PrivateRedis::free_port();
    let mut redis = PrivateRedis::start(port).await;
    let queues = Queues::new(&PrivateRedis::url_of(port), "t").expect("queues");
    queues.ping().await.expect("up");

    redis.kill();
    assert!(queues.ping().await.is_err(), "the dead connection fails");
    assert!(queues.ping().await.is_err(), "the redial is refused");

    let _redis = PrivateRedis::start(port).await;
    queues
        .ping()
        .await
        .expect("the same Queues reconnects by itself");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_stream_read_does_not_stall_short_commands() {
    let port = PrivateRedis::free_port();
    let redis = PrivateRedis::start(port).await;
    let queues = Queues::new(&PrivateRedis::url_of(port), "t").expect("queues");
    let queue = QueueName::new("connection-test").expect("name");
    let consumer = StreamConsumer::new(&queues, queue.clone(), "reader");
    consumer.ensure_group().await.expect("group");

    let block = Duration::from_secs(30);
    let mut reader = consumer.reader_connection(block).await.expect("reader");
    let read = tokio::spawn(async move { consumer.read(&mut reader, 1, block).await });
    let mut admin = redis.admin().await.expect("admin");
    for _ in 0..200 {
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut admin)
            .await
            .expect("CLIENT LIST");
        if clients.contains("cmd=xreadgroup") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    for _ in 0..10 {
        queues.ping().await.expect("short commands answer");
    }
    assert!(!read.is_finished(), "the read is still blocked meanwhile");

    let job = Job::new(queue, "noop", serde_json::json!({}));
    queues.enqueue(&job).await.expect("enqueue");
    let delivered = read.await.expect("task").expect("read");
    assert_eq!(
        delivered.len(),
        1,
        "the enqueued job wakes the blocked read"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_gets_a_working_connection_again_after_redis_restarts() {
    let port = PrivateRedis::free_port();
    let mut redis = PrivateRedis::start(port).await;
    let queues = Queues::new(&PrivateRedis::url_of(port), "t").expect("queues");
    let queue = QueueName::new("reader-restart").expect("name");
    let consumer = StreamConsumer::new(&queues, queue.clone(), "reader");
    consumer.ensure_group().await.expect("group");
    let block = Duration::from_millis(100);
    let mut reader = consumer.reader_connection(block).await.expect("reader");
    assert!(
        consumer
            .read(&mut reader, 1, block)
            .await
            .expect("read")
            .is_empty()
    );
    // Back to the pool, as a reader that stops would leave it.
    drop(reader);

    redis.kill();
    let _redis = PrivateRedis::start(port).await;
    // The pooled connection died with the server: the pool's check on checkout notices and
    // dials a new one, so the reader needs no restart.
    let mut reader = consumer
        .reader_connection(block)
        .await
        .expect("a new reader");
    // The shared connection of short commands fails its first command after the loss (see
    // a_lost_connection_is_replaced_after_redis_restarts); the backend's reader retries the same.
    if consumer.ensure_group().await.is_err() {
        consumer.ensure_group().await.expect("group again");
    }
    queues
        .enqueue(&Job::new(queue, "noop", serde_json::json!({})))
        .await
        .expect("enqueue");
    assert_eq!(
        consumer
            .read(&mut reader, 1, block)
            .await
            .expect("read")
            .len(),
        1
    );
    assert!(
        consumer
            .reader_connection(crate::queue::readers::MAX_BLOCK * 2)
            .await
            .is_err(),
        "a BLOCK longer than the readers' response timeout is refused"
    );
}
