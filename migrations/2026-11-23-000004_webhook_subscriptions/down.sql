DROP TABLE webhook_logs;
DROP TABLE webhook_deliveries;
DROP TABLE event_subscriptions;
