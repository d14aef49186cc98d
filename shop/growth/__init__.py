"""Growth: promo codes, vouchers and gifts (``codes``), referrals, top-ups of any amount.

Each module is a feature's screens, written against the narrow
:class:`~shop.actors.conversation.Conversation`; what moves money or access is one
transaction in ``shop.store`` (``codes``, ``rewards``) or a payment through its actor.
"""
