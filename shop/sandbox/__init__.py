"""``shop sandbox``: the whole shop offline, in one process, with a web chat to try it in.

What stands in for the outside world, each on a loopback port and each the same fake the
tests use: the Telegram Bot API (``botapi``), the payment providers (``providers``, with
checkout pages in ``checkout``) and the VPN panels (``panels``). The people in the chats
(``chats``), what a message looks like to them (``views``), the page and its WebSocket
(``web``, ``static/``), the adjustable calendar (``clock``), the configuration (``settings``)
and the start of it all (``run``) complete it.
"""
