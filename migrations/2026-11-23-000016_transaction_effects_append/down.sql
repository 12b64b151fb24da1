DROP FUNCTION transaction_effects_append(TEXT, TEXT, TEXT, TEXT, TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], JSONB[], TEXT[], TIMESTAMPTZ[], TEXT[], JSONB[], TEXT[]);
