"""Review: people mark comments viewed (read) and archived (dealt with), many at once."""

from __future__ import annotations

from collections.abc import Sequence

from domain.errors import InvalidInput, NotFound
from domain.ports import Adapters

MAX_BULK = 1000  # ids per call


async def set_comment_state(
    adapters: Adapters, comment_ids: Sequence[int], *, viewed: bool | None, archived: bool | None
) -> list[int]:
    """Mark comments viewed / archived in bulk; returns the ids that exist, in the order given."""
    if not comment_ids:
        raise InvalidInput("Give at least one comment id", field="ids")
    if len(comment_ids) > MAX_BULK:
        raise InvalidInput(f"At most {MAX_BULK} comments at once", field="ids")
    if viewed is None and archived is None:
        raise InvalidInput("Set viewed, archived or both", field="viewed")
    ids = list(dict.fromkeys(comment_ids))
    async with adapters.uow_factory() as uow:
        found = set(await uow.comments.set_state(ids, viewed=viewed, archived=archived))
        await uow.commit()
    if not found:
        raise NotFound(f"No comment with id {', '.join(map(str, sorted(ids)[:10]))}", field="ids")
    return [i for i in ids if i in found]
