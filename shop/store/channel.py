"""What the shop knows of each customer's place in the private channel (``FULFILMENT=channel``).

One row per (channel, customer) in ``channel_members``:

- the personal invite link last created for them, until when it works, and when
  Telegram accepted the message that carries it (so a replayed apply sends no second
  one, and a crash before acceptance sends the same link again, never a new one);
- the grace period of a member whose access ended: since when they have been without
  it, when they were warned, when they are to be removed (``remove_at``: the hourly sync
  finds it through ``ChannelAccess.drift``), and whether a removal was begun (banned,
  not yet unbanned) so the next attempt finishes it.

Telegram is the record of who *is* in the channel; this table only remembers what the
shop did about it. The grace columns are written by ``apply`` only, the link columns by
``apply`` and ``access_text``; each write is one statement on its own columns.
"""

from __future__ import annotations

import datetime as dt

import attrs
from psycopg.rows import class_row

from .pool import Connection


@attrs.frozen
class Grace:
    """Where a member without access is on the way out (all None: not on it)."""

    inactive_since: dt.datetime | None = None
    warned_at: dt.datetime | None = None
    remove_at: dt.datetime | None = None
    removing: bool = False  # banned by the shop, the unban not done yet


@attrs.frozen
class ChannelRow:
    """One customer as the channel backend sees them (defaults when there is no row)."""

    language: str = "en"
    expires_at: dt.datetime | None = None  # of their subscription
    lifetime: bool = False
    invite_link: str | None = None
    link_expires_at: dt.datetime | None = None
    link_sent_at: dt.datetime | None = None
    inactive_since: dt.datetime | None = None
    warned_at: dt.datetime | None = None
    remove_at: dt.datetime | None = None
    removing: bool = False

    @property
    def grace(self) -> Grace:
        return Grace(self.inactive_since, self.warned_at, self.remove_at, self.removing)

    def working_link(self, now: dt.datetime) -> tuple[str, dt.datetime] | None:
        """The stored link and its end, if it still works."""
        if self.invite_link is None or self.link_expires_at is None:
            return None
        return (self.invite_link, self.link_expires_at) if self.link_expires_at > now else None


def load(conn: Connection, channel_id: int, telegram_id: int) -> ChannelRow:
    with conn.cursor(row_factory=class_row(ChannelRow)) as cur:
        cur.execute(
            "SELECT c.language, s.expires_at, COALESCE(s.lifetime, FALSE) AS lifetime,"
            " m.invite_link, m.link_expires_at, m.link_sent_at, m.inactive_since, m.warned_at,"
            " m.remove_at, COALESCE(m.removing, FALSE) AS removing"
            " FROM customers c"
            " LEFT JOIN subscriptions s ON s.telegram_id = c.telegram_id"
            " LEFT JOIN channel_members m ON m.telegram_id = c.telegram_id"
            "  AND m.channel_id = %(channel)s"
            " WHERE c.telegram_id = %(id)s",
            {"channel": channel_id, "id": telegram_id},
        )
        return cur.fetchone() or ChannelRow()


def remember_link(
    conn: Connection,
    channel_id: int,
    telegram_id: int,
    link: str,
    expires_at: dt.datetime,
    now: dt.datetime,
) -> None:
    """A new personal link, not sent yet (stored before any message names it)."""
    conn.execute(
        "INSERT INTO channel_members (channel_id, telegram_id, invite_link, link_expires_at,"
        " updated_at) VALUES (%(channel)s, %(id)s, %(link)s, %(until)s, %(now)s)"
        " ON CONFLICT (channel_id, telegram_id) DO UPDATE SET invite_link = EXCLUDED.invite_link,"
        " link_expires_at = EXCLUDED.link_expires_at, link_sent_at = NULL,"
        " updated_at = EXCLUDED.updated_at",
        {"channel": channel_id, "id": telegram_id, "link": link, "until": expires_at, "now": now},
    )


def link_sent(
    conn: Connection, channel_id: int, telegram_id: int, link: str, now: dt.datetime
) -> None:
    """Telegram accepted the message carrying ``link`` (or refused it for good)."""
    conn.execute(
        "UPDATE channel_members SET link_sent_at = %(now)s, updated_at = %(now)s"
        " WHERE channel_id = %(channel)s AND telegram_id = %(id)s AND invite_link = %(link)s",
        {"channel": channel_id, "id": telegram_id, "link": link, "now": now},
    )


def save_grace(
    conn: Connection, channel_id: int, telegram_id: int, grace: Grace, now: dt.datetime
) -> None:
    conn.execute(
        "INSERT INTO channel_members (channel_id, telegram_id, inactive_since, warned_at,"
        " remove_at, removing, updated_at)"
        " VALUES (%(channel)s, %(id)s, %(since)s, %(warned)s, %(remove)s, %(removing)s, %(now)s)"
        " ON CONFLICT (channel_id, telegram_id) DO UPDATE SET"
        " inactive_since = EXCLUDED.inactive_since, warned_at = EXCLUDED.warned_at,"
        " remove_at = EXCLUDED.remove_at, removing = EXCLUDED.removing,"
        " updated_at = EXCLUDED.updated_at",
        {
            "channel": channel_id,
            "id": telegram_id,
            "since": grace.inactive_since,
            "warned": grace.warned_at,
            "remove": grace.remove_at,
            "removing": grace.removing,
            "now": now,
        },
    )


def removed(conn: Connection, channel_id: int, telegram_id: int, now: dt.datetime) -> None:
    """Out of the channel and free to come back: the grace period is over."""
    conn.execute(
        "UPDATE channel_members SET inactive_since = NULL, warned_at = NULL, remove_at = NULL,"
        " removing = FALSE, removed_at = %(now)s, updated_at = %(now)s"
        " WHERE channel_id = %(channel)s AND telegram_id = %(id)s",
        {"channel": channel_id, "id": telegram_id, "now": now},
    )


def standing(conn: Connection, telegram_id: int, now: dt.datetime) -> tuple[bool, str]:
    """Whether the customer has access now (as the fulfilment queue judges it), and their
    language; (False, "en") for someone the shop does not know."""
    row = conn.execute(
        "SELECT s.status = 'active' AND (s.lifetime OR s.expires_at > %(now)s), c.language"
        " FROM customers c LEFT JOIN subscriptions s ON s.telegram_id = c.telegram_id"
        " WHERE c.telegram_id = %(id)s",
        {"id": telegram_id, "now": now},
    ).fetchone()
    if row is None:
        return False, "en"
    return bool(row[0]), str(row[1])
