//! The pause when recording it fails: the handler must not leave the Redis flag set without the
//! durable record (the retry would find the flag and never record or alert), so the flag is
//! removed again and the retry pauses for real.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::future::BoxFuture;
use serde_json::json;
use shared::{
    channels::{
        ChannelSettings, DeliveryHandler, DeliveryStore, DeliveryTask, SendError, WahaConfig,
        status::DeliveryStatus,
    },
    config::Secret,
    jobs::JobError,
    queue::{Job, QueueName},
};

use crate::{
    TestRedis,
    standin::{Reply, StandIn},
};

/// A store whose first `inbox_broken` fails as a database outage would.
#[derive(Default)]
struct FlakyStore {
    outage: AtomicBool,
    paused: Mutex<Vec<String>>,
}

impl DeliveryStore for FlakyStore {
    fn status<'a>(
        &'a self,
        _task: &'a DeliveryTask,
    ) -> BoxFuture<'a, Result<Option<DeliveryStatus>, JobError>> {
        Box::pin(async { Ok(Some(DeliveryStatus::Stored)) })
    }

    fn sent<'a>(&'a self, _: &'a DeliveryTask, _: &'a str) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async { Ok(()) })
    }

    fn failed<'a>(
        &'a self,
        _: &'a DeliveryTask,
        _: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async { Ok(()) })
    }

    fn inbox_broken<'a>(
        &'a self,
        task: &'a DeliveryTask,
        _: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        let result = if self.outage.swap(false, Ordering::SeqCst) {
            Err(JobError::Transient("database: connection refused".into()))
        } else {
            self.paused.lock().unwrap().push(task.inbox_id.clone());
            Ok(())
        };
        Box::pin(async move { result })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pause_that_could_not_be_recorded_is_recorded_by_the_retry() {
    let redis = TestRedis::new();
    let provider = StandIn::start().await;
    let unauthorized = || Reply::json(401, json!({"statusCode": 401, "message": "Unauthorized"}));
    provider.reply(unauthorized()).reply(unauthorized());
    let settings = HashMap::from([(
        "inb_w".to_owned(),
        ChannelSettings::Waha(WahaConfig {
            base_url: provider.base.clone(),
            session: "default".into(),
            api_key: Some(Secret::new("k")),
            http: crate::http(),
        }),
    )]);
    let store = Arc::new(FlakyStore::default());
    store.outage.store(true, Ordering::SeqCst);
    let handler = DeliveryHandler::new(redis.queues.clone(), store.clone(), Arc::new(settings));
    let payload = json!({
        "v": 1, "message_id": "msg_1", "tenant_id": "ten_1", "inbox_id": "inb_w",
        "session_id": "ses_1", "channel": "waha", "recipient": "4915212345678@c.us",
        "text": "Your order shipped",
    });
    let job = Job::new(
        QueueName::new("deliveries").unwrap(),
        "delivery.send",
        payload,
    );

    let error = handler.run(&job).await.unwrap_err();
    assert!(matches!(error, JobError::Transient(_)), "{error:?}");
    assert!(
        handler.paused("inb_w").await.unwrap().is_none(),
        "flag removed again"
    );
    assert!(store.paused.lock().unwrap().is_empty());

    handler
        .run(&job.next_attempt("database down"))
        .await
        .unwrap();
    assert_eq!(
        *store.paused.lock().unwrap(),
        ["inb_w"],
        "recorded by the retry"
    );
    assert!(handler.paused("inb_w").await.unwrap().is_some());
}
