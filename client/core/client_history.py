"""The façade's calls about history and settings: the recovery code and PIN, restore, loading
conversations and older pages, the backfill and its progress, waiting for the mailbox to be
saved, the user's preferences, and what the relay holds of a conversation. A part of
:class:`client.core.client.AriadneClient`, which builds :class:`~client.core.history.History` and
the rest these calls go to.
"""

from __future__ import annotations

from client.core.context import ClientContext
from client.core.groups import Groups
from client.core.history import History
from client.core.link import RelayLink
from client.core.preferences import Preferences
from client.core.storage import ProfileStore
from shared import wire


class HistoryCalls:
    """Mixed into the façade, which builds the concerns below."""

    context: ClientContext
    history: History
    groups: Groups
    link: RelayLink
    _store: ProfileStore

    async def setup_recovery(self, pin: str | None = None) -> str:
        return await self.history.setup_recovery(pin)

    @property
    def has_recovery_code(self) -> bool:
        """This device made a recovery code for the account (so a new one replaces it)."""
        return self.context.state.codes_made > 0

    @property
    def preferences(self) -> Preferences:
        return self.context.state.preferences

    def set_preferences(self, preferences: Preferences) -> None:
        with self._store.transaction():
            self.context.state.set_preferences(preferences)

    async def restore(self, code: str | None = None, pin: str | None = None) -> list[str]:
        threads = await self.history.restore(code, pin)
        self.groups.recover(threads)  # membership from the members, history from the mailbox
        return threads

    async def load_conversations(self) -> list[str]:
        threads = await self.history.load_conversations()
        self.groups.recover(threads)
        return threads

    async def load_older(self, thread: str, limit: int = 100) -> int:
        return await self.history.load_older(thread, limit)

    def has_older(self, thread: str) -> bool:
        return self.history.has_older(thread)

    def has_history_to_load(self) -> bool:
        return self.history.has_history_to_load()

    def history_progress(self) -> tuple[int, int]:
        return self.history.progress()

    async def backfill(self) -> int:
        return await self.history.backfill()

    async def wait_saved(self, timeout: float = 30.0) -> None:
        await self.history.wait_saved(timeout)

    async def inspect(self, peer: str) -> list[wire.SeenEnvelope]:
        """What the relay holds and has seen of the conversation with ``peer`` (server view)."""
        answer = await self.link.request(
            lambda rid: wire.Inspect(rid=rid, peer=peer), expect=wire.Inspection
        )
        return answer.envelopes
