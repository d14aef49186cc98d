"""The Bot API emulator: a Telegram Bot API server on loopback that speaks the real protocol.

The tests, the benchmarks and ``shop sandbox`` all use this one fake (see ``emulator`` for
what it keeps of the real server and what it leaves out)::

    fake = FakeTelegram()
    base_url = await nursery.start(fake.serve)
    fake.send_text(42, "/start")
    (reply,) = await fake.wait_for("sendMessage", chat_id=42)
"""

from __future__ import annotations

from .channels import BOT_RIGHTS as BOT_RIGHTS
from .channels import CHANNEL_RIGHTS as CHANNEL_RIGHTS
from .channels import Channel as Channel
from .channels import JoinRefused as JoinRefused
from .emulator import EPOCH as EPOCH
from .emulator import TOKEN as TOKEN
from .emulator import FakeTelegram as FakeTelegram
from .emulator import main as main
from .errors import ADMINISTRATOR as ADMINISTRATOR
from .errors import ALREADY_PARTICIPANT as ALREADY_PARTICIPANT
from .errors import BLOCKED as BLOCKED
from .errors import CHAT_NOT_FOUND as CHAT_NOT_FOUND
from .errors import EXPIRE_DATE_INVALID as EXPIRE_DATE_INVALID
from .errors import KICKED_FROM_CHANNEL as KICKED_FROM_CHANNEL
from .errors import LIMIT_WITH_REQUESTS as LIMIT_WITH_REQUESTS
from .errors import NO_INVITE_RIGHTS as NO_INVITE_RIGHTS
from .errors import NO_JOIN_REQUEST_RIGHTS as NO_JOIN_REQUEST_RIGHTS
from .errors import NO_REQUEST as NO_REQUEST
from .errors import NO_RESTRICT_RIGHTS as NO_RESTRICT_RIGHTS
from .errors import NOT_A_MEMBER as NOT_A_MEMBER
from .errors import NOT_MODIFIED as NOT_MODIFIED
from .errors import OWNER as OWNER
from .errors import QUERY_INVALID as QUERY_INVALID
from .errors import SELF as SELF
from .errors import TERMINATED as TERMINATED
from .errors import USAGE_LIMIT_INVALID as USAGE_LIMIT_INVALID
from .errors import WEBHOOK_ACTIVE as WEBHOOK_ACTIVE
from .errors import ApiError as ApiError
from .errors import Json as Json
from .html import HtmlError as HtmlError
from .html import parse_html as parse_html
from .params import Upload as Upload
from .server import Call as Call
