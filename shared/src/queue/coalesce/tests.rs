//! Group commit against a private `redis-server`, so its script calls can be counted and Redis
//! stopped under concurrent callers.

use std::{collections::HashMap, time::Duration};

use futures::future::join_all;

use crate::queue::{Job, QueueName, Queues, enqueue::Enqueued};
use crate::testkit::PrivateRedis;

const WINDOW: Duration = Duration::from_secs(60);

fn job(queue: &str) -> Job {
    Job::new(
        QueueName::new(queue).expect("name"),
        "noop",
        serde_json::json!({}),
    )
}

async fn stream_len(redis: &PrivateRedis, queues: &Queues, queue: &str) -> usize {
    let mut admin = redis.admin().await.expect("admin");
    let stream = queues.keys(&QueueName::new(queue).expect("name")).stream;
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut admin)
        .await
        .expect("XLEN")
}

/// A private Redis and a `Queues` on it whose first call (which also loads the script:
/// EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA) is done, so later script runs count one per call.
async fn warmed_up() -> (PrivateRedis, Queues) {
    let redis = PrivateRedis::start(PrivateRedis::free_port()).await;
    let queues = Queues::new(&redis.url(), "t").expect("queues");
    queues
        .enqueue_unless_duplicate(&job("email"), "warm-up", WINDOW)
        .await
        .expect("stored");
    (redis, queues)
}

/// Script calls Redis ran so far, by SHA or by text.
async fn script_runs(redis: &PrivateRedis) -> u64 {
    redis.command_count("evalsha").await + redis.command_count("eval").await
}

/// 600 concurrent calls over two queues, every dedup key used three times: one job per key is
/// stored, the others name it as holder, and the calls shared far fewer script runs than jobs.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_share_script_runs_and_each_job_is_decided_alone() {
    let redis = PrivateRedis::start(PrivateRedis::free_port()).await;
    let queues = Queues::new(&redis.url(), "t").expect("queues");
    queues.ping().await.expect("up");
    let before = script_runs(&redis).await;

    let calls = (0..600).map(|n| {
        let queues = queues.clone();
        let queue = if n % 2 == 0 {
            "whatsapp-messages"
        } else {
            "facebook"
        };
        let key = format!("key-{}", n % 200);
        tokio::spawn(async move {
            let job = job(queue);
            let outcome = queues
                .enqueue_unless_duplicate(&job, &key, WINDOW)
                .await
                .expect("enqueued or duplicate");
            (queue, key, job.id.to_string(), outcome)
        })
    });
    let results: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();

    let mut stored: HashMap<(&str, String), String> = HashMap::new();
    for (queue, key, id, outcome) in &results {
        if let Enqueued::New { .. } = outcome {
            let earlier = stored.insert((queue, key.clone()), id.clone());
            assert!(earlier.is_none(), "{queue} {key} stored twice");
        }
    }
    // Keys 0..200 split by parity into the two queues: 100 keys each, all stored once.
    assert_eq!(stored.len(), 200);
    for (queue, key, _, outcome) in &results {
        if let Enqueued::Duplicate { holder } = outcome {
            assert_eq!(holder, &stored[&(*queue, key.clone())], "{queue} {key}");
        }
    }
    assert_eq!(stream_len(&redis, &queues, "whatsapp-messages").await, 100);
    assert_eq!(stream_len(&redis, &queues, "facebook").await, 100);

    let runs = script_runs(&redis).await - before;
    assert!(
        runs < 300,
        "600 concurrent jobs took {runs} script runs: no round trip was shared"
    );
}

/// A job submitted alone goes at once, in one script run of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_lone_call_is_one_script_run() {
    let (redis, queues) = warmed_up().await;
    let before = script_runs(&redis).await;
    let outcome = queues
        .enqueue_unless_duplicate(&job("email"), "one", WINDOW)
        .await
        .expect("stored");
    assert!(matches!(outcome, Enqueued::New { .. }));
    let after = script_runs(&redis).await;
    assert_eq!(after - before, 1);
}

/// Redis stops under concurrent callers: every caller hears an error (none waits forever, none
/// is told "stored"), and once Redis is back the same `Queues` stores again.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_round_trip_fails_every_caller_and_later_calls_recover() {
    let port = PrivateRedis::free_port();
    let mut redis = PrivateRedis::start(port).await;
    let queues = Queues::new(&PrivateRedis::url_of(port), "t").expect("queues");
    queues.ping().await.expect("up");
    redis.kill();

    let calls = (0..50).map(|n| {
        let queues = queues.clone();
        tokio::spawn(async move {
            queues
                .enqueue_unless_duplicate(&job("widget"), &format!("down-{n}"), WINDOW)
                .await
        })
    });
    let outcomes = tokio::time::timeout(Duration::from_secs(30), join_all(calls))
        .await
        .expect("every caller answered");
    for outcome in outcomes {
        assert!(
            outcome.expect("task").is_err(),
            "stored while Redis was down"
        );
    }

    let redis = PrivateRedis::start(port).await;
    let mut stored = false;
    for _ in 0..50 {
        // A reply lost to the restart may leave the job stored: then it answers Duplicate.
        if queues
            .enqueue_unless_duplicate(&job("widget"), "after", WINDOW)
            .await
            .is_ok()
        {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored, "the same Queues stores again once Redis is back");
    assert_eq!(stream_len(&redis, &queues, "widget").await, 1);
}

/// Callers that carry round trips themselves are cancelled mid-way (clients hanging up): the
/// round trips still finish, every other caller is answered, and every job is stored once.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_caller_does_not_strand_the_jobs_of_its_round_trip() {
    let (redis, queues) = warmed_up().await;
    // Hold Redis busy for a while, so round trips sent now stay in flight.
    let mut admin = redis.admin().await.expect("admin");
    let busy = tokio::spawn(async move {
        redis::cmd("EVAL")
            .arg(
                "local t = redis.call('TIME'); local stop = t[1] * 1e6 + t[2] + 400000 \
                  repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= stop",
            )
            .arg(0)
            .query_async::<()>(&mut admin)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let call = |n: usize| {
        let queues = queues.clone();
        tokio::spawn(async move {
            queues
                .enqueue_unless_duplicate(&job("email"), &format!("job-{n}"), WINDOW)
                .await
        })
    };
    // The first two take both round-trip slots and carry their own round trips...
    let carriers = [call(0), call(1)];
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...these wait for a slot...
    let waiting: Vec<_> = (2..12).map(call).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...and the carriers' clients hang up while Redis is still busy.
    for carrier in &carriers {
        carrier.abort();
    }
    for outcome in join_all(waiting).await {
        let outcome = outcome.expect("task").expect("answered");
        assert!(matches!(outcome, Enqueued::New { .. }), "{outcome:?}");
    }
    busy.await.expect("task").expect("busy script");
    // The cancelled callers' jobs were stored too: their round trips went on without them.
    assert_eq!(stream_len(&redis, &queues, "email").await, 13);
}
