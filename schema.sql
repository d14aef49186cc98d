-- The whole current schema of the shop. Applied at every start and by `shop migrate`;
-- every statement is idempotent. Money is integer minor units (whole Stars for XTR,
-- cents/kopecks for fiat); Telegram ids are BIGINT; times are timestamptz in UTC.

-- Customers and their conversation state --------------------------------------------

CREATE TABLE IF NOT EXISTS customers (
    telegram_id      BIGINT PRIMARY KEY,
    first_name       TEXT NOT NULL DEFAULT '',
    username         TEXT,
    language         TEXT NOT NULL DEFAULT 'en',
    blocked          BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen       TIMESTAMPTZ NOT NULL,
    last_seen        TIMESTAMPTZ NOT NULL,
    -- the deep-link payload of the first /start (ref_<id>, a promo code...)
    start_payload    TEXT,
    -- conversation state: the screen shown and the message that shows it
    screen           TEXT NOT NULL DEFAULT 'main',
    menu_message_id  BIGINT,
    state_updated_at TIMESTAMPTZ,
    trial_used       BOOLEAN NOT NULL DEFAULT FALSE,
    auto_renew       BOOLEAN NOT NULL DEFAULT FALSE
);

-- Telegram updates received and not yet fully handled (at-least-once delivery).
CREATE TABLE IF NOT EXISTS telegram_updates (
    update_id   BIGINT PRIMARY KEY,
    body        JSONB NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);

-- The last update id the poller took from Telegram, so a restart resumes after it.
CREATE TABLE IF NOT EXISTS telegram_offset (
    bot_id      BIGINT PRIMARY KEY,
    next_offset BIGINT NOT NULL
);
