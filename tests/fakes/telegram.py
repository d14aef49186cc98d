"""The Bot API emulator, under the name the tests have always imported it by.

The fake itself lives in the package (``shop.sandbox.botapi``) so that ``shop sandbox`` runs
the very same server the tests do; ``python -m tests.fakes.telegram`` still serves it alone.
"""

from __future__ import annotations

from shop.sandbox.botapi import ADMINISTRATOR as ADMINISTRATOR
from shop.sandbox.botapi import ALREADY_PARTICIPANT as ALREADY_PARTICIPANT
from shop.sandbox.botapi import BLOCKED as BLOCKED
from shop.sandbox.botapi import BOT_RIGHTS as BOT_RIGHTS
from shop.sandbox.botapi import CHANNEL_RIGHTS as CHANNEL_RIGHTS
from shop.sandbox.botapi import CHAT_NOT_FOUND as CHAT_NOT_FOUND
from shop.sandbox.botapi import EPOCH as EPOCH
from shop.sandbox.botapi import EXPIRE_DATE_INVALID as EXPIRE_DATE_INVALID
from shop.sandbox.botapi import KICKED_FROM_CHANNEL as KICKED_FROM_CHANNEL
from shop.sandbox.botapi import LIMIT_WITH_REQUESTS as LIMIT_WITH_REQUESTS
from shop.sandbox.botapi import NO_INVITE_RIGHTS as NO_INVITE_RIGHTS
from shop.sandbox.botapi import NO_JOIN_REQUEST_RIGHTS as NO_JOIN_REQUEST_RIGHTS
from shop.sandbox.botapi import NO_REQUEST as NO_REQUEST
from shop.sandbox.botapi import NO_RESTRICT_RIGHTS as NO_RESTRICT_RIGHTS
from shop.sandbox.botapi import NOT_A_MEMBER as NOT_A_MEMBER
from shop.sandbox.botapi import NOT_MODIFIED as NOT_MODIFIED
from shop.sandbox.botapi import OWNER as OWNER
from shop.sandbox.botapi import QUERY_INVALID as QUERY_INVALID
from shop.sandbox.botapi import SELF as SELF
from shop.sandbox.botapi import TERMINATED as TERMINATED
from shop.sandbox.botapi import TOKEN as TOKEN
from shop.sandbox.botapi import USAGE_LIMIT_INVALID as USAGE_LIMIT_INVALID
from shop.sandbox.botapi import WEBHOOK_ACTIVE as WEBHOOK_ACTIVE
from shop.sandbox.botapi import ApiError as ApiError
from shop.sandbox.botapi import Call as Call
from shop.sandbox.botapi import Channel as Channel
from shop.sandbox.botapi import FakeTelegram as FakeTelegram
from shop.sandbox.botapi import HtmlError as HtmlError
from shop.sandbox.botapi import JoinRefused as JoinRefused
from shop.sandbox.botapi import Json as Json
from shop.sandbox.botapi import Upload as Upload
from shop.sandbox.botapi import main as main
from shop.sandbox.botapi import parse_html as parse_html

if __name__ == "__main__":
    main()
