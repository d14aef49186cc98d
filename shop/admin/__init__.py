"""Operators in Telegram: ``/admin`` (panel and stats), ``/user`` (a customer's profile and
what an operator may do to it), ``/broadcast``, ``/audit``, ``/tickets`` (the open support
tickets, from ``shop.support``). Only for ``ADMIN_IDS``; to anyone else these commands and
``adm:`` buttons are unknown input, answered as the shop answers any (``router``). Screens
are in English: they are for the operator.
"""
