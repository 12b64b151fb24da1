DROP TABLE inbox_outbound;
