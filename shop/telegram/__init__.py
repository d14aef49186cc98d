"""Telegram: the Bot API client, update types, the outbox, keyboards and texts."""
