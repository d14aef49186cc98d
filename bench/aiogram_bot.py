"""The reference bot for ``bench/vs_aiogram.py``: aiogram 3 + asyncpg, as their docs show it.

Long polling with ``Dispatcher.start_polling`` (aiogram's defaults: each update handled in
its own task, aiohttp session with up to 100 connections), one asyncpg pool, and a
``/start`` handler that upserts the customer and replies with the same greeting and inline
keyboard as the shop's main menu (HTML, five buttons in three rows). It is what a competent
aiogram bot does per update; nothing is batched or cached.

    BOT_API_URL=http://127.0.0.1:8081 BOT_TOKEN=... DATABASE_URL=postgresql://... \\
        python bench/aiogram_bot.py

aiogram and asyncpg are bench-only dependencies (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import asyncio
import html
import logging
import os

import asyncpg
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    telegram_id bigint PRIMARY KEY,
    first_name text NOT NULL,
    username text,
    language text NOT NULL DEFAULT 'en',
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now()
)
"""

UPSERT = """
INSERT INTO customers (telegram_id, first_name, username, language)
VALUES ($1, $2, $3, $4)
ON CONFLICT (telegram_id) DO UPDATE
    SET first_name = EXCLUDED.first_name, username = EXCLUDED.username, last_seen = now()
RETURNING telegram_id, first_name, language
"""

MENU = InlineKeyboardMarkup(
    inline_keyboard=[
        [InlineKeyboardButton(text="🛒 Buy", callback_data="buy")],
        [
            InlineKeyboardButton(text="📅 My subscription", callback_data="sub"),
            InlineKeyboardButton(text="💰 Balance", callback_data="bal"),
        ],
        [
            InlineKeyboardButton(text="❓ Help", callback_data="help"),
            InlineKeyboardButton(text="🌐 Language", callback_data="lang"),
        ],
    ]
)


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=10)
    await pool.execute(SCHEMA)
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["BOT_API_URL"]))
    bot = Bot(
        os.environ["BOT_TOKEN"], session=session, default=DefaultBotProperties(parse_mode="HTML")
    )
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        user = message.from_user
        assert user is not None
        row = await pool.fetchrow(
            UPSERT, user.id, user.first_name, user.username, user.language_code or "en"
        )
        name = html.escape(row["first_name"] or "🙂")
        await message.answer(
            f"Hello, <b>{name}</b>! 👋\nWelcome to the shop. What would you like to do?",
            reply_markup=MENU,
        )

    try:
        await dp.start_polling(bot)  # stops on SIGTERM/SIGINT
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
