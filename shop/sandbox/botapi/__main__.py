"""``python -m shop.sandbox.botapi --port 8081``: the emulator alone, in its own process."""

from .emulator import main

main()
