DROP FUNCTION outbox_forget_async(TEXT[], TEXT[]);
