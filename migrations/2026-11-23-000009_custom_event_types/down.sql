DROP TABLE custom_event_publications;
DROP TABLE custom_event_types;
