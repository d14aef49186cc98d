"""Fake payment provider APIs on loopback, one per provider the shop supports: the tests'
fakes, and the stand-in providers of ``shop sandbox``.

Each fake serves the provider's real HTTP API (paths, auth, idempotency, error shapes)
with hypercorn on ``127.0.0.1:0`` and keeps its state in plain dicts that tests read::

    fake = FakeYooKassa()
    api_url = await nursery.start(fake.serve)      # what the provider class takes
    checkout = await YooKassa(http, ..., api_url=api_url).create(request)
    fake.pay(checkout.provider_payment_id)
    headers, body = fake.webhook_for(checkout.provider_payment_id)

Shared by all six (see ``_base.FakeProvider``): ``calls`` (every API call: method,
path, headers, body, status), ``calls_to(method, path)``, ``created`` (payments really
created: an idempotent repeat does not count), ``outage(status=503)`` / ``end_outage()``,
``lose_answers(times=1)`` (carry the call out, then answer 504).
Each has ``pay(id, amount=None)`` and ``webhook_for(id, kind=None) -> (headers, body)``
with bodies signed exactly as the provider signs them; see each class for the rest.
"""

from __future__ import annotations

from ._base import Call as Call
from ._base import FakeProvider as FakeProvider
from .cryptopay import FakeCryptoPay as FakeCryptoPay
from .heleket import FakeHeleket as FakeHeleket
from .platega import FakePlatega as FakePlatega
from .stripe import FakeStripe as FakeStripe
from .yookassa import FakeYooKassa as FakeYooKassa
from .yoomoney import FakeYooMoney as FakeYooMoney
