DROP INDEX event_logs_causation;
