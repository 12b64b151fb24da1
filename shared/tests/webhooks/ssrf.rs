//! SSRF: internal addresses are refused in every spelling unless WEBHOOK_ALLOW_NETS allows
//! them, for probes and for real deliveries; the client's own resolver refuses them too, so a
//! name that re-resolves to an internal address at connection time cannot get through.

use reqwest::dns::Resolve;
use serde_json::json;
use shared::webhooks::{Outcome, WebhookConfig, logs, ssrf::VettingResolver};

use crate::{
    subscriber::{Reply, Subscriber},
    support::Harness,
};

#[tokio::test(flavor = "multi_thread")]
async fn internal_addresses_are_refused_without_an_allowance() {
    let h = Harness::with_config(WebhookConfig {
        allow_http: true,
        ..WebhookConfig::default()
    })
    .await;
    let endpoint = Subscriber::start(Reply::status(200)).await;
    let port = endpoint.port;
    let table = [
        ("http://10.0.0.7/hook".to_owned(), "private"),
        (format!("http://127.0.0.1:{port}/hook"), "loopback"),
        (format!("http://127.1.2.3:{port}/hook"), "loopback"),
        (format!("http://localhost:{port}/hook"), "loopback"),
        (format!("http://2130706433:{port}/hook"), "loopback"),
        (format!("http://0x7f.0.0.1:{port}/hook"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "cloud metadata",
        ),
        (format!("http://[::ffff:127.0.0.1]:{port}/hook"), "loopback"),
        ("http://[::ffff:a9fe:a9fe]/".to_owned(), "cloud metadata"),
        (format!("http://[::1]:{port}/hook"), "loopback"),
        ("http://100.64.1.1/hook".to_owned(), "carrier-grade NAT"),
        ("http://[fe80::1]/hook".to_owned(), "link-local"),
        ("http://[fd00:ec2::254]/".to_owned(), "cloud metadata"),
        ("http://0.0.0.0/".to_owned(), "unspecified"),
    ];
    let event = h.event("t1", "test.webhook", json!({}));
    for (url, why) in table {
        let probe = h.webhooks.test_webhook(&url, &event, None).await;
        assert!(!probe.ok, "{url} must be refused");
        let error = probe.error.unwrap_or_default();
        assert!(
            error.contains("refused") && error.contains(why),
            "{url}: {error}"
        );
    }
    assert!(
        endpoint.received().is_empty(),
        "nothing reached the loopback server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_allowance_opens_loopback_and_https_is_required_elsewhere() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(200)).await;
    let event = h.event("t1", "test.webhook", json!({"hello": "world"}));
    let secret = shared::webhooks::signing::generate_secret();
    let probe = h
        .webhooks
        .test_webhook(&endpoint.url, &event, Some(&secret))
        .await;
    assert!(probe.ok && probe.status == Some(200), "{probe:?}");
    let got = endpoint.received().remove(0);
    crate::verifier::verify_request(&secret, &got).expect("the probe is signed too");
    assert_eq!(got.header("webhook-id"), event["id"].as_str().unwrap());

    let other_loopback = format!("http://[::1]:{}/hook", endpoint.port);
    let probe = h.webhooks.test_webhook(&other_loopback, &event, None).await;
    assert!(
        probe.error.unwrap().contains("refused"),
        "::1 is outside 127.0.0.0/8"
    );

    let public_http = h
        .webhooks
        .test_webhook("http://93.184.216.34/hook", &event, None)
        .await;
    assert!(public_http.error.unwrap().contains("https is required"));
    let public_10 = h
        .webhooks
        .test_webhook("https://10.1.1.1/hook", &event, None)
        .await;
    assert!(public_10.error.unwrap().contains("private"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clients_resolver_vets_every_connection() {
    let resolver = VettingResolver {
        allow: Default::default(),
    };
    let refused = resolver.resolve("localhost".parse().unwrap()).await;
    assert!(
        refused.is_err(),
        "a name resolving to loopback never reaches the connector"
    );
    let allowed = VettingResolver {
        allow: "127.0.0.0/8, ::1/128".parse().unwrap(),
    };
    let addrs: Vec<_> = allowed
        .resolve("localhost".parse().unwrap())
        .await
        .unwrap()
        .collect();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_delivery_is_a_logged_failed_attempt() {
    let h = Harness::new().await;
    let sub = h
        .subscribe("t1", "https://169.254.169.254/hook", &["*"], json!({}))
        .await
        .subscription;
    h.webhooks
        .fan_out(&h.event("t1", "message.ready", json!({})))
        .await
        .unwrap();
    assert!(matches!(
        h.drain().await[..],
        [Outcome::RetryScheduled { .. }]
    ));
    let query = logs::LogQuery {
        subscription_id: Some(sub.id),
        limit: 5,
        ..Default::default()
    };
    let log = logs::list(&h.db.pool, "t1", &query).await.unwrap();
    assert_eq!(log[0].status, None);
    assert!(log[0].error.as_deref().unwrap().contains("cloud metadata"));
}
