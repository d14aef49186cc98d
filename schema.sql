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
    bot_id      BIGINT NOT NULL,
    update_id   BIGINT NOT NULL,
    body        JSONB NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (bot_id, update_id)
);

-- The last update id the poller took from Telegram, so a restart resumes after it.
CREATE TABLE IF NOT EXISTS telegram_offset (
    bot_id      BIGINT PRIMARY KEY,
    next_offset BIGINT NOT NULL
);

-- Subscriptions: one per customer. Expiry arithmetic happens only in SQL
-- (expires_at = GREATEST(expires_at, now) + duration), never read-add-write in Python.
CREATE TABLE IF NOT EXISTS subscriptions (
    telegram_id  BIGINT PRIMARY KEY REFERENCES customers (telegram_id),
    status       TEXT NOT NULL CHECK (status IN ('active', 'expired')),
    expires_at   TIMESTAMPTZ,
    -- set by an operator; arithmetic never changes a lifetime subscription
    lifetime     BOOLEAN NOT NULL DEFAULT FALSE,
    plan_id      TEXT,
    started_at   TIMESTAMPTZ NOT NULL,
    -- bumped by every renewal; reminders are sent at most once per period
    period       INTEGER NOT NULL DEFAULT 1,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Payments. States move only pending -> paid -> completed, pending -> canceled | expired,
-- completed -> refunded (and a success that arrives after expiry or cancel is honoured:
-- the money was taken). Every transition is a conditional UPDATE ... RETURNING.
CREATE TABLE IF NOT EXISTS payments (
    id              TEXT PRIMARY KEY,  -- opaque reference, also the invoice payload
    telegram_id     BIGINT NOT NULL REFERENCES customers (telegram_id),
    provider        TEXT NOT NULL,     -- stars, balance, yookassa, stripe, cryptopay, heleket
    product_kind    TEXT NOT NULL CHECK (product_kind IN ('plan', 'package')),
    product_id      TEXT NOT NULL,
    title           TEXT NOT NULL,
    -- what the payment grants, fixed when it is created (a catalog edit changes nothing)
    days            INTEGER NOT NULL DEFAULT 0 CHECK (days >= 0),
    credit          JSONB NOT NULL DEFAULT '{}',  -- {"XTR": 110} in minor units
    amount          BIGINT NOT NULL CHECK (amount > 0),  -- minor units
    currency        TEXT NOT NULL,
    recurring       BOOLEAN NOT NULL DEFAULT FALSE,  -- a Telegram Stars subscription
    parent_id       TEXT REFERENCES payments (id),   -- a renewal charge of a Stars subscription
    status          TEXT NOT NULL,  -- see payments_status below
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,  -- when a pending payment stops being payable
    completed_at    TIMESTAMPTZ,
    telegram_payment_charge_id TEXT UNIQUE,
    provider_payment_id        TEXT,
    paid_amount     BIGINT,            -- what the provider reported, in minor units
    paid_currency   TEXT,
    idempotency_key TEXT NOT NULL,
    checkout_url    TEXT,              -- where the customer pays (external providers)
    -- reconciliation: when the provider is asked next, and how often it was asked
    next_check_at   TIMESTAMPTZ,
    checks          INTEGER NOT NULL DEFAULT 0,
    -- what an operator should look at: an underpayment, another currency, an overpayment
    problem         TEXT
);
-- What an operator must look at, apart from the money paid: an underpayment, another
-- currency, a refund that found the credit already spent (amount = what is missing).
ALTER TABLE payments ADD COLUMN IF NOT EXISTS problem_amount BIGINT;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS problem_currency TEXT;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS problem_at TIMESTAMPTZ;
-- States (shop/actors/payment.py draws them): pending, paid, completed, canceled, expired,
-- refunded; problem (money taken but short or in another currency: an operator decides);
-- duplicate (a second Stars charge for one invoice, its refund owed) -> refunded | credited
-- (the refund kept failing, so the Stars went to the customer's balance).
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'payments_status'
                   AND pg_get_constraintdef(oid) LIKE '%credited%') THEN
        ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_status_check;
        ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_status;
        ALTER TABLE payments ADD CONSTRAINT payments_status CHECK (status IN
            ('pending', 'paid', 'completed', 'canceled', 'expired', 'refunded',
             'problem', 'duplicate', 'credited'));
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS payments_with_problems ON payments (problem_at DESC)
    WHERE problem IS NOT NULL;
CREATE INDEX IF NOT EXISTS payments_by_customer ON payments (telegram_id, created_at DESC);
CREATE INDEX IF NOT EXISTS payments_pending ON payments (expires_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS payments_to_check ON payments (next_check_at)
    WHERE next_check_at IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS payments_by_provider_id
    ON payments (provider, provider_payment_id) WHERE provider_payment_id IS NOT NULL;

-- What each fulfilled payment granted. The primary key is the backstop of "fulfilled at
-- most once": a second grant for one payment cannot exist.
CREATE TABLE IF NOT EXISTS grants (
    payment_id   TEXT PRIMARY KEY REFERENCES payments (id),
    telegram_id  BIGINT NOT NULL,
    days         INTEGER NOT NULL,
    granted_at   TIMESTAMPTZ NOT NULL,
    expires_after TIMESTAMPTZ,
    reversed_at  TIMESTAMPTZ
);

-- The ledger is append-only (a trigger refuses UPDATE and DELETE); balances is its sum per
-- customer and currency, kept in the same transaction, and can never go below zero.
CREATE TABLE IF NOT EXISTS ledger (
    id           BIGSERIAL PRIMARY KEY,
    telegram_id  BIGINT NOT NULL REFERENCES customers (telegram_id),
    currency     TEXT NOT NULL,
    delta        BIGINT NOT NULL CHECK (delta <> 0),
    reason       TEXT NOT NULL CHECK (reason IN
                     ('topup', 'bonus', 'purchase', 'refund', 'reversal', 'adjustment')),
    payment_id   TEXT REFERENCES payments (id),
    created_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (payment_id, reason, currency)
);
CREATE INDEX IF NOT EXISTS ledger_by_customer ON ledger (telegram_id, created_at DESC);

CREATE OR REPLACE FUNCTION ledger_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END $$;
CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();

CREATE TABLE IF NOT EXISTS balances (
    telegram_id  BIGINT NOT NULL REFERENCES customers (telegram_id),
    currency     TEXT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (telegram_id, currency)
);

-- Provider webhooks, stored (raw) before they are answered 2xx. The unique key makes a
-- redelivery a no-op; processed_at stays NULL until the payment's actor has handled the
-- event, so one stored but not handled (a crash) is handled after a restart.
CREATE TABLE IF NOT EXISTS provider_events (
    id           BIGSERIAL PRIMARY KEY,
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    payment_id   TEXT,
    body         BYTEA NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    processed_at TIMESTAMPTZ,
    outcome      TEXT,
    UNIQUE (provider, event_id)
);
CREATE INDEX IF NOT EXISTS provider_events_unprocessed ON provider_events (received_at)
    WHERE processed_at IS NULL;
CREATE INDEX IF NOT EXISTS provider_events_by_age ON provider_events (received_at);

-- Scheduled jobs: one row per (job, slot) that ran or is running. Claiming a slot is an
-- INSERT that only one instance wins, so a slot never runs twice.
CREATE TABLE IF NOT EXISTS job_runs (
    job          TEXT NOT NULL,
    slot         TIMESTAMPTZ NOT NULL,  -- the scheduled instant, in UTC
    claimed_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    outcome      TEXT,
    PRIMARY KEY (job, slot)
);

-- Messages the shop owes a customer: about their subscription (expiry, reminders,
-- auto-renewal), at most one of each kind per subscription period; about a payment
-- (confirmation, refund, duplicate charge), one of each kind per payment. Written in the
-- transaction that decides them, leased while being delivered, marked sent (sent_at) only
-- once Telegram accepted the message, so a crash neither loses nor repeats one (outside
-- the moment of delivery itself).
CREATE TABLE IF NOT EXISTS notices (
    telegram_id  BIGINT NOT NULL REFERENCES customers (telegram_id),
    kind         TEXT NOT NULL,  -- expired, remind_3d, remind_1d, remind_0d, renewed, renew_failed
    period       INTEGER NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    sent_at      TIMESTAMPTZ,
    -- taken by a deliverer until then; after that another may retry (a crash)
    claimed_until TIMESTAMPTZ,
    detail       JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (telegram_id, kind, period)
);
-- Notices about one payment (its confirmation, its refund, a duplicate charge) name it
-- here; subscription notices have ''. Part of the key: one notice per payment and kind.
ALTER TABLE notices ADD COLUMN IF NOT EXISTS ref TEXT NOT NULL DEFAULT '';
-- the shop instance holding the lease (shop/store/instance.py): a dead one's is void
ALTER TABLE notices ADD COLUMN IF NOT EXISTS claimed_by INTEGER;
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'notices_pkey'
                   AND array_length(conkey, 1) = 4) THEN
        ALTER TABLE notices DROP CONSTRAINT notices_pkey,
            ADD PRIMARY KEY (telegram_id, kind, period, ref);
    END IF;
END $$;
-- Unsent notices in the order they are claimed (created_at, telegram_id): a job owes
-- 100,000 at the same created_at, and on created_at alone every claim of 200 sorted all
-- of them (26 ms a claim at 1,000,000 subscriptions; 0.2 ms with this; issue 15).
CREATE INDEX IF NOT EXISTS notices_unsent_order ON notices (created_at, telegram_id)
    WHERE sent_at IS NULL;
DROP INDEX IF EXISTS notices_unsent;

-- How far the hourly sweep has read the bot's Telegram Stars transactions
-- (getStarTransactions, chronological): the number of transactions already looked at.
CREATE TABLE IF NOT EXISTS star_transactions_cursor (
    bot_id      BIGINT PRIMARY KEY,
    seen        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_expiry ON subscriptions (expires_at)
    WHERE status = 'active' AND NOT lifetime;

-- Fulfilment: the outside world (a VPN panel, a private channel) made to match each
-- customer's subscription. Every change of a subscription bumps ``version`` here, in the
-- same transaction (the trigger below), so no grant, renewal, refund or expiry can be
-- left unapplied; the fulfilment actor applies the subscription as it is then (an
-- absolute state, so a replay is harmless) and records the version it applied.
CREATE TABLE IF NOT EXISTS fulfilment_queue (
    telegram_id     BIGINT PRIMARY KEY REFERENCES customers (telegram_id),
    version         BIGINT NOT NULL DEFAULT 1,
    applied_version BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,          -- NULL: nothing to do
    attempts        INTEGER NOT NULL DEFAULT 0,
    failing_since   TIMESTAMPTZ,
    last_error      TEXT,
    alerted         BOOLEAN NOT NULL DEFAULT FALSE,
    claimed_until   TIMESTAMPTZ,
    claimed_by      INTEGER,              -- a shop instance (store.instance)
    changed_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS fulfilment_due ON fulfilment_queue (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;

CREATE OR REPLACE FUNCTION subscription_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- updated_at is the shop's clock (tests run on mock time), not the database's.
    INSERT INTO fulfilment_queue (telegram_id, version, next_attempt_at, changed_at)
    VALUES (NEW.telegram_id, 1, NEW.updated_at, NEW.updated_at)
    ON CONFLICT (telegram_id) DO UPDATE SET
        version = fulfilment_queue.version + 1,
        next_attempt_at = LEAST(fulfilment_queue.next_attempt_at, EXCLUDED.next_attempt_at),
        attempts = 0,
        changed_at = EXCLUDED.changed_at;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER subscription_changed
    AFTER INSERT OR UPDATE OF status, expires_at, lifetime, plan_id, period ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION subscription_changed();

-- A customer's account at a panel that keys accounts by an id the shop chooses (Hiddify:
-- a random uuid, which is also the customer's credential). Stored before the panel is
-- asked to create it, so a create whose answer was lost is found, not made twice.
CREATE TABLE IF NOT EXISTS panel_accounts (
    telegram_id  BIGINT NOT NULL REFERENCES customers (telegram_id),
    backend      TEXT NOT NULL,
    account_id   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (telegram_id, backend)
);

-- The private channel (FULFILMENT=channel): what the shop did about each customer's place in
-- it. Telegram is the record of who is a member; this keeps the personal invite link (stored
-- before the message that carries it, marked sent once Telegram accepted it) and the grace
-- period of a member whose access ended (warned, to be removed at remove_at; removing: banned,
-- the unban not done yet).
CREATE TABLE IF NOT EXISTS channel_members (
    channel_id      BIGINT NOT NULL,
    telegram_id     BIGINT NOT NULL REFERENCES customers (telegram_id),
    invite_link     TEXT,
    link_expires_at TIMESTAMPTZ,
    link_sent_at    TIMESTAMPTZ,
    inactive_since  TIMESTAMPTZ,
    warned_at       TIMESTAMPTZ,
    remove_at       TIMESTAMPTZ,
    removing        BOOLEAN NOT NULL DEFAULT FALSE,
    removed_at      TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, telegram_id)
);
CREATE INDEX IF NOT EXISTS channel_removals_due ON channel_members (remove_at)
    WHERE remove_at IS NOT NULL;

-- Broadcasts: one row per recipient (the audience as it was at creation), leased while
-- sent, given its outcome only once Telegram answered; a row without one is still owed.
CREATE TABLE IF NOT EXISTS broadcasts (
    id          BIGSERIAL PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('running', 'done', 'canceled')),
    audience    TEXT NOT NULL,
    language    TEXT,
    message     JSONB NOT NULL,   -- {"text", "button"?: {"text", "url"}, "photo_url"?}
    created_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS broadcast_recipients (
    broadcast_id  BIGINT NOT NULL REFERENCES broadcasts (id),
    telegram_id   BIGINT NOT NULL REFERENCES customers (telegram_id),
    outcome       TEXT CHECK (outcome IN ('sent', 'blocked', 'failed')),  -- NULL: owed
    error         TEXT,                 -- Telegram's reason for a 400
    claimed_until TIMESTAMPTZ,
    claimed_by    INTEGER,              -- a shop instance (store.instance)
    done_at       TIMESTAMPTZ,
    PRIMARY KEY (broadcast_id, telegram_id)
);
CREATE INDEX IF NOT EXISTS broadcast_recipients_owed
    ON broadcast_recipients (broadcast_id, telegram_id) WHERE outcome IS NULL;
CREATE INDEX IF NOT EXISTS broadcasts_running ON broadcasts (id) WHERE status = 'running';


-- Operators (shop/admin): a banned customer sees one short notice and nothing else, and
-- has no access at the fulfilment backend; ban_noticed is set once the notice went out.
ALTER TABLE customers ADD COLUMN IF NOT EXISTS banned BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS ban_noticed BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX IF NOT EXISTS customers_by_username ON customers (lower(username));
CREATE INDEX IF NOT EXISTS customers_by_first_seen ON customers (first_seen);
-- why an operator adjusted a balance (ledger reason 'adjustment')
ALTER TABLE ledger ADD COLUMN IF NOT EXISTS note TEXT;

-- Every operator action, written in the transaction that does it. ``key`` is unique per
-- action as the operator asked for it (the pressed button's nonce, or the message that
-- carried the input), so a double tap or a replayed update does it once.
CREATE TABLE IF NOT EXISTS audit (
    id          BIGSERIAL PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    admin_id    BIGINT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    before      JSONB,
    after       JSONB,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at DESC, id DESC);

-- A broadcast composed in Telegram reports to its operator: the progress message edited
-- while it runs, and a summary once it ended (summary_sent_at, so a restart sends one).
ALTER TABLE broadcasts ADD COLUMN IF NOT EXISTS created_by BIGINT;
ALTER TABLE broadcasts ADD COLUMN IF NOT EXISTS progress_chat_id BIGINT;
ALTER TABLE broadcasts ADD COLUMN IF NOT EXISTS progress_message_id BIGINT;
ALTER TABLE broadcasts ADD COLUMN IF NOT EXISTS summary_sent_at TIMESTAMPTZ;
-- how often a send to this recipient failed for now (network, 5xx); given up after a few
ALTER TABLE broadcast_recipients ADD COLUMN IF NOT EXISTS attempts INTEGER NOT NULL DEFAULT 0;

-- Growth (shop/growth): codes a customer redeems, referrals, gifts. ------------------------
-- A code: an operator's promo (many uses), a reseller's voucher (one use, in a batch) or a
-- gift a customer bought (one use). Redeeming inserts into code_uses first: its primary key
-- makes a code once per customer, and ``uses < max_uses`` in the same transaction's UPDATE
-- makes the limit hold under any concurrency (two shops included).
CREATE TABLE IF NOT EXISTS voucher_batches (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL,
    value       BIGINT NOT NULL,
    currency    TEXT,
    count       INTEGER NOT NULL,
    expires_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS codes (
    code        TEXT PRIMARY KEY,      -- promos upper case; vouchers and gifts random
    source      TEXT NOT NULL CHECK (source IN ('promo', 'voucher', 'gift')),
    kind        TEXT NOT NULL CHECK (kind IN ('days', 'balance', 'discount')),
    value       BIGINT NOT NULL CHECK (value > 0),  -- days; minor units; percent
    currency    TEXT,                  -- kind balance
    max_uses    INTEGER CHECK (max_uses > 0),       -- NULL: no limit
    uses        INTEGER NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ,
    new_only    BOOLEAN NOT NULL DEFAULT FALSE,     -- only customers who never paid
    batch_id    BIGINT REFERENCES voucher_batches (id),
    payment_id  TEXT REFERENCES payments (id),      -- the gift's purchase
    plan_id     TEXT,                  -- the gift's plan (its limits at the panel)
    created_by  BIGINT,                -- an operator, or the gift's buyer
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    CHECK (uses <= COALESCE(max_uses, uses))
);
CREATE INDEX IF NOT EXISTS codes_by_batch ON codes (batch_id) WHERE batch_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS code_uses (
    code        TEXT NOT NULL REFERENCES codes (code),
    telegram_id BIGINT NOT NULL REFERENCES customers (telegram_id),
    used_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (code, telegram_id)
);
-- A discount a customer redeemed, waiting for their next purchase: reserved by the payment
-- created with it, spent when that payment completes.
CREATE TABLE IF NOT EXISTS discounts (
    telegram_id BIGINT PRIMARY KEY REFERENCES customers (telegram_id),
    code        TEXT NOT NULL REFERENCES codes (code),
    percent     INTEGER NOT NULL CHECK (percent BETWEEN 1 AND 100),
    payment_id  TEXT REFERENCES payments (id),
    used_at     TIMESTAMPTZ
);
ALTER TABLE payments ADD COLUMN IF NOT EXISTS discount_percent INTEGER;
-- a plan bought for someone else: completing it makes a gift code, not days
ALTER TABLE payments ADD COLUMN IF NOT EXISTS gift BOOLEAN NOT NULL DEFAULT FALSE;
-- who invited this customer (recorded once, on their first /start)
ALTER TABLE customers ADD COLUMN IF NOT EXISTS referred_by BIGINT;
-- the reward for a referee's first paid purchase: the primary key makes it once
CREATE TABLE IF NOT EXISTS referral_rewards (
    referee     BIGINT PRIMARY KEY REFERENCES customers (telegram_id),
    referrer    BIGINT NOT NULL REFERENCES customers (telegram_id),
    payment_id  TEXT NOT NULL REFERENCES payments (id),
    rewarded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS referral_rewards_by_referrer ON referral_rewards (referrer);
CREATE INDEX IF NOT EXISTS customers_by_referrer ON customers (referred_by)
    WHERE referred_by IS NOT NULL;
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'ledger_reason'
                   AND pg_get_constraintdef(oid) LIKE '%referral%') THEN
        ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_reason_check;
        ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_reason;
        ALTER TABLE ledger ADD CONSTRAINT ledger_reason CHECK (reason IN
            ('topup', 'bonus', 'purchase', 'refund', 'reversal', 'adjustment',
             'promo', 'referral'));
    END IF;
END $$;

-- Switches an operator sets at run time (``maintenance``: {"on": true}), kept across restarts.
CREATE TABLE IF NOT EXISTS settings (
    key         TEXT PRIMARY KEY,
    value       JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Several instances (shop/actors/dispatcher.py): whose updates each instance handles. A
-- customer's journaled updates are handled by the one live instance holding the lease
-- (fenced by store.instance: a dead holder's lease is void), so they stay in order.
ALTER TABLE telegram_updates ADD COLUMN IF NOT EXISTS telegram_id BIGINT;
CREATE INDEX IF NOT EXISTS telegram_updates_by_customer
    ON telegram_updates (bot_id, telegram_id, update_id);
CREATE TABLE IF NOT EXISTS customer_leases (
    telegram_id BIGINT PRIMARY KEY,
    holder      INTEGER NOT NULL,
    taken_at    TIMESTAMPTZ NOT NULL
);
-- One holder per role across instances (the poller, the timer), fenced the same way.
CREATE TABLE IF NOT EXISTS leader_leases (
    role        TEXT PRIMARY KEY,
    holder      INTEGER NOT NULL,
    taken_at    TIMESTAMPTZ NOT NULL
);

-- Support (shop/support): a customer's conversation with the operators. At most one open
-- ticket per customer: the partial unique index makes two messages at once, or two shops,
-- open one ticket. ``chat_id`` is SUPPORT_CHAT_ID when the ticket went there (NULL: to the
-- ADMIN_IDS); ``thread_id`` its forum topic, in a forum.
CREATE TABLE IF NOT EXISTS tickets (
    id          BIGSERIAL PRIMARY KEY,
    telegram_id BIGINT NOT NULL REFERENCES customers (telegram_id),
    status      TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    chat_id     BIGINT,
    thread_id   BIGINT,
    opened_at   TIMESTAMPTZ NOT NULL,
    closed_at   TIMESTAMPTZ,
    closed_by   BIGINT              -- the customer, or the operator who closed it
);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_one_open ON tickets (telegram_id)
    WHERE status = 'open';
CREATE INDEX IF NOT EXISTS tickets_by_topic ON tickets (chat_id, thread_id)
    WHERE thread_id IS NOT NULL;
-- Every message relayed for a ticket, keyed by its source message and where it went: a
-- replayed update finds its relays done and sends nothing twice. ``message_id`` is the copy
-- (or the header) there, NULL until Telegram accepted it; a reply to it finds its ticket.
CREATE TABLE IF NOT EXISTS ticket_messages (
    ticket_id      BIGINT NOT NULL REFERENCES tickets (id),
    kind           TEXT NOT NULL CHECK (kind IN ('header', 'copy', 'reply')),
    source_chat    BIGINT NOT NULL,
    source_message BIGINT NOT NULL,
    chat_id        BIGINT NOT NULL,
    message_id     BIGINT,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source_chat, source_message, chat_id, kind)
);
CREATE UNIQUE INDEX IF NOT EXISTS ticket_messages_by_copy ON ticket_messages (chat_id, message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS ticket_messages_by_ticket ON ticket_messages (ticket_id);
