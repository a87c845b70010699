"""How requests share tokens (issue 13): each request's token sequence (prompt, then output) as a
list of segments, and the conversation turn each request follows.

A segment is a run of tokens with an id: a shared system prompt, one user message, one reply.
Segment ids are made so that a segment always follows the same segments, so the tokens before
position ``p`` are fixed by the segment that holds token ``p - 1`` and ``p`` alone. A full KV
block ending at ``p`` is therefore named by ``(segment id, p)`` (:func:`block_keys`): two requests
hold the same block exactly when their prompts agree up to its end, which is what vLLM's chained
block hashes decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["RequestLinks", "Segments", "block_keys"]

#: One request's tokens: (segment id, tokens) in order.
Segments = tuple[tuple[int, int], ...]
_POSITION_BITS = 34


def block_keys(segments: Segments, num_blocks: int, block_size: int) -> list[int]:
    """Names of the first ``num_blocks`` full blocks of a token sequence (``segment id`` of the
    block's last token and the block's end position, packed in one integer)."""
    keys: list[int] = []
    start, i = 0, 0
    for j in range(num_blocks):
        end = (j + 1) * block_size
        while i < len(segments) and start + segments[i][1] < end:
            start += segments[i][1]
            i += 1
        if i >= len(segments):
            break
        keys.append((segments[i][0] << _POSITION_BITS) | end)
    return keys


@dataclass(frozen=True, slots=True)
class RequestLinks:
    """Per request: its ``segments`` (prompt then output), the request whose turn it follows
    (``follows``, -1 for none), the think time before it is sent once that turn has finished
    (``think_s``) and its ``session`` (the requests of a session run on one engine)."""

    segments: tuple[Segments, ...]
    follows: np.ndarray
    think_s: np.ndarray
    session: np.ndarray

    def __len__(self) -> int:
        return len(self.segments)

    def subset(self, index: np.ndarray) -> RequestLinks:
        """The links of requests ``index`` (whole sessions), with ``follows`` renumbered."""
        where = np.full(len(self), -1, dtype=np.int64)
        where[index] = np.arange(len(index))
        follows = self.follows[index]
        renumbered = np.where(follows >= 0, where[np.maximum(follows, 0)], -1)
        return RequestLinks(
            tuple(self.segments[int(i)] for i in index), renumbered, self.think_s[index], self.session[index]
        )

    def successors(self) -> np.ndarray:
        """The turn that follows each request (-1 for none)."""
        nxt = np.full(len(self), -1, dtype=np.int64)
        has = self.follows >= 0
        nxt[self.follows[has]] = np.nonzero(has)[0]
        return nxt

    @staticmethod
    def independent(segments: Sequence[Segments]) -> RequestLinks:
        """Requests that share tokens but follow no other request (shared system prompts)."""
        n = len(segments)
        return RequestLinks(tuple(segments), np.full(n, -1, dtype=np.int64), np.zeros(n), np.arange(n))
