"""Support: Help → FAQ (from the catalog) and tickets a customer opens by writing to support.

``customers`` is the customer's side (writing, the messages that join a ticket, closing),
``operators`` the operators' (the support chat, replies, closing, ``/tickets``), ``desk``
where tickets go and what operators see there, ``faq`` the questions and answers. What is
stored, and the guards that keep one open ticket per customer and every relay once, are in
``shop.store.tickets``. Feature screens are written against
:class:`~shop.actors.conversation.Conversation`, like ``shop.growth`` and ``shop.admin``.
"""

from .customers import add_to_ticket as add_to_ticket
from .operators import in_support_chat as in_support_chat
from .operators import on_admin_reply as on_admin_reply
from .operators import on_support_chat as on_support_chat
