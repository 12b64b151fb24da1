-- A customer message's conversation in one statement, whatever the customer: their contact and
-- open session, both locked (contact first), as a follow-up finds them; else, for a new
-- customer, both created (the contact `INSERT … ON CONFLICT DO NOTHING`, the unique
-- (inbox, external id) index deciding who creates it); else, for a returning customer or one
-- whose first message another transaction stored just now, the contact locked and its open
-- session found or opened. `session_created` tells the caller to record `session.created`.
--
-- Why one function: a transaction storing several messages (group commit,
-- worker/src/handlers/batch.rs) sends one call per message in one pipelined exchange, and each
-- call takes its locks before the next starts — the order the caller sorted the senders in, as
-- when each case was a statement of its own. Before, every sender was looked up in one
-- exchange, then each new customer created in a round trip of their own (and a returning one
-- took three): k + 1 round trips for k new conversations instead of one (BENCHMARKS.md,
-- pipeline, "One call per sender"). Creating new customers in a second pipelined exchange would
-- take a new contact's lock before an earlier sender's, which could deadlock.
--
-- The open session is matched by the partial index's literal predicate (`state <> 'closed'`),
-- which a generic plan can still prove (shared/src/conversation/partial.rs).
CREATE FUNCTION conversation_of_sender(
    p_tenant_id TEXT, p_inbox_id TEXT, p_external_id TEXT,
    p_name TEXT, p_email TEXT, p_phone TEXT,
    p_contact_id TEXT, p_session_id TEXT, p_session_state TEXT, p_correlation_id TEXT,
    OUT c_id TEXT, OUT c_tenant_id TEXT, OUT c_inbox_id TEXT, OUT c_external_id TEXT,
    OUT c_name TEXT, OUT c_email TEXT, OUT c_phone TEXT, OUT c_created_at TIMESTAMPTZ,
    OUT s_id TEXT, OUT s_state TEXT, OUT s_unrecognised_count INTEGER,
    OUT s_correlation_id TEXT, OUT s_created_at TIMESTAMPTZ, OUT s_closed_at TIMESTAMPTZ,
    OUT session_created BOOLEAN
) LANGUAGE plpgsql AS $$
BEGIN
    session_created := false;
    -- A follow-up: the contact and its open session.
    SELECT c.id, c.tenant_id, c.inbox_id, c.external_id, c.name, c.email, c.phone, c.created_at,
           s.id, s.state, s.unrecognised_count, s.correlation_id, s.created_at, s.closed_at
      INTO c_id, c_tenant_id, c_inbox_id, c_external_id, c_name, c_email, c_phone, c_created_at,
           s_id, s_state, s_unrecognised_count, s_correlation_id, s_created_at, s_closed_at
      FROM contacts c JOIN sessions s ON s.contact_id = c.id
     WHERE c.inbox_id = p_inbox_id AND c.external_id = p_external_id
       AND c.tenant_id = p_tenant_id AND s.state <> 'closed'
       FOR NO KEY UPDATE;
    IF FOUND THEN
        RETURN;
    END IF;

    -- A new customer.
    INSERT INTO contacts (id, tenant_id, inbox_id, external_id, name, email, phone)
    VALUES (p_contact_id, p_tenant_id, p_inbox_id, p_external_id, p_name, p_email, p_phone)
    ON CONFLICT (inbox_id, external_id) DO NOTHING
    RETURNING id, tenant_id, inbox_id, external_id, name, email, phone, created_at
      INTO c_id, c_tenant_id, c_inbox_id, c_external_id, c_name, c_email, c_phone, c_created_at;
    IF NOT FOUND THEN
        -- A known customer without an open session (or whose first message another
        -- transaction stored just now): their contact, then an open session if one appeared.
        SELECT c.id, c.tenant_id, c.inbox_id, c.external_id, c.name, c.email, c.phone,
               c.created_at
          INTO c_id, c_tenant_id, c_inbox_id, c_external_id, c_name, c_email, c_phone,
               c_created_at
          FROM contacts c
         WHERE c.inbox_id = p_inbox_id AND c.external_id = p_external_id
           AND c.tenant_id = p_tenant_id
           FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            -- (Not the customer's id: errors reach logs and Sentry.)
            RAISE EXCEPTION 'the contact of inbox % is not tenant %''s', p_inbox_id, p_tenant_id;
        END IF;
        SELECT s.id, s.state, s.unrecognised_count, s.correlation_id, s.created_at, s.closed_at
          INTO s_id, s_state, s_unrecognised_count, s_correlation_id, s_created_at, s_closed_at
          FROM sessions s
         WHERE s.contact_id = c_id AND s.state <> 'closed'
           FOR NO KEY UPDATE;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;

    INSERT INTO sessions (id, tenant_id, inbox_id, contact_id, state, correlation_id)
    VALUES (p_session_id, c_tenant_id, c_inbox_id, c_id, p_session_state, p_correlation_id)
    RETURNING id, state, unrecognised_count, correlation_id, created_at, closed_at
      INTO s_id, s_state, s_unrecognised_count, s_correlation_id, s_created_at, s_closed_at;
    session_created := true;
END;
$$;
