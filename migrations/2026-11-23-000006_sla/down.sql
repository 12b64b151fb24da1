DROP INDEX csat_surveys_sent;
UPDATE csat_surveys SET state = 'sent' WHERE state = 'expired';
ALTER TABLE csat_surveys DROP COLUMN expired_at;
ALTER TABLE csat_surveys DROP CONSTRAINT csat_surveys_state_check;
ALTER TABLE csat_surveys ADD CONSTRAINT csat_surveys_state_check
    CHECK (state IN ('sent', 'responded'));
DROP TABLE sla_notices;
DROP TABLE inbox_sla;
