DROP FUNCTION transaction_effects_append_steps(TEXT, TEXT, TEXT, TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], JSONB[], TEXT[], TIMESTAMPTZ[], TEXT[], JSONB[], TEXT[], TEXT[]);
