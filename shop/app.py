"""The one object that holds the running shop's parts, built in :mod:`shop.main`."""

from __future__ import annotations

import attrs
import trio

from .actors.broadcast import Broadcaster
from .actors.broadcast_progress import ProgressReporter
from .actors.courier import Courier
from .actors.dispatcher import Dispatcher
from .actors.runtime import Registry
from .catalog import Catalog
from .clock import WallClock
from .config import Config
from .fulfilment import Fulfilment
from .growth.channel_gate import ChannelGate
from .limits import Limits, LocalLimits, RedisLink, rules_from
from .maintenance import Maintenance
from .metrics import Metrics
from .payments.gateways import Gateways
from .store.pool import Store
from .telegram.api import BotClient
from .telegram.identity import BotIdentity
from .telegram.outbox import Outbox
from .telegram.texts import Texts
from .wakeup import Wakeup


@attrs.frozen(kw_only=True)
class App:
    config: Config
    clock: WallClock
    store: Store
    actors: Registry
    metrics: Metrics
    bot: BotClient
    outbox: Outbox
    texts: Texts
    catalog: Catalog
    fulfilment: Fulfilment
    gateways: Gateways
    #: poked when a payment check is scheduled, so the reconciler looks again
    checks_due: Wakeup
    #: delivers notices; marks each sent once Telegram accepted it
    courier: Courier
    #: poked when a notice could not be delivered, so the deliverer looks again
    notices_due: Wakeup
    #: poked after every change of a subscription, so the fulfilment actor applies it
    fulfilment_due: Wakeup
    #: sends running broadcasts; ``broadcaster.due`` is poked by the API and the sweep
    broadcaster: Broadcaster
    #: shows a broadcast composed in Telegram to its operator; ``due`` is poked on creation
    broadcast_progress: ProgressReporter
    #: this running shop's id in the database (``store.instance``): it holds leases
    instance: int
    #: the bot's id and username, once ``getMe`` answered (for t.me links)
    identity: BotIdentity = attrs.field(factory=BotIdentity)
    #: no new purchases while on (an operator's switch, or the backend failing)
    maintenance: Maintenance = attrs.field(factory=Maintenance)
    #: the channel customers must join before buying (REQUIRED_CHANNEL_ID), if any
    channel_gate: ChannelGate | None = None
    #: per-customer limits by kind of action (``shop.limits``): this instance's, or Redis's
    limits: Limits = attrs.field(
        default=attrs.Factory(lambda app: LocalLimits(rules_from(app.config)), takes_self=True)
    )
    #: the Redis link when REDIS_URL is set (``/readyz`` reports it)
    redis: RedisLink | None = None
    #: hands journaled updates to actors, with customers leased across instances (webhook
    #: mode or INSTANCES > 1); None with one polling instance (the poller has its own)
    dispatcher: Dispatcher | None = None
    #: set on SIGTERM: /readyz answers 503 while in-flight work finishes
    draining: trio.Event = attrs.field(factory=trio.Event)
