"""A community's pages by likes and by match count: btree indexes ``(group_id, likes, id)`` and
``(group_id, matches_count, id)`` on comments.

A page is ordered by its key and the row id, both ascending or both descending
(``queries._comment_order``): a btree on (group_id, key, id) gives a community's rows in that
order read forwards or backwards, a cursor's ``key <= k`` (or ``>=``) is a range in it, and a
text filter is checked on the rows as they come. Without it the planner answered such pages
by walking the whole store's (key, id) index (0001) and filtering out the other communities'
rows: the further a community's rows lie from the walk's start, or the fewer of them hold the
words, the more of the store it read.

Measured with ``bench/group_text.py --section sort`` at 1,000,000 comments in 20 communities
of 25,000 to 224,000 (EXPLAIN ANALYZE, with and without the two indexes alternating, medians
of 5; a shared 2-core machine, load average 2.3-3.7):

- a community's page with a text filter the planner answered by walking the store's index
  (common words, words without a trigram), by likes or match count, either direction: 3 to 80
  times faster ("кошка" in a community of 40,500: by likes 209 ms and 41,035 buffers before,
  4.0 ms and 2,059 after; by match count 99 ms / 18,936, 3.9 ms / 931; "ст" in the smallest:
  113 ms / 27,079, 1.4 ms / 684; "пожар" in the largest: 94 ms / 23,286, 10.9 ms / 4,667).
  Where the GIN index's bitmap and a sort were used ("кошка" in the smallest: 5.8 ms, 851
  buffers), the ordered walk is chosen, 2 times faster (2.8 ms, up to 1,859 buffers);
- a community's page without text: 0.06-0.2 ms and at most 106 buffers (before up to 8 ms and
  4,054);
- rare words (the GIN index's bitmap, then a sort of a few hundred rows): the same plan and
  buffers as before.

Which of the two slow plans the planner picks without these indexes (the walk, or the GIN
index's bitmap and a sort) depends on its statistics: on a second database, filled with the
indexes in place, it took the bitmap for "кошка" in the community of 40,500 (6 ms, 1,264
buffers; 2.2 ms with the index) but still walked for "ст" in the smallest (114 ms / 27,078
buffers, 1.3 ms / 684 with the index) and for a community's page without text (up to 7.8 ms /
4,031 buffers, 0.13 ms / 106). With the indexes the cheap plan does not hang on the estimate.

The cost, inserting 20,000 comments (copies of stored rows) in rolled-back transactions, 24
interleaved rounds, median of each round's ratio: 1.14 times the time, 1.16 times the server
process's CPU (1,320 ms before), 1.15 times the WAL records (+40,000: one per index per row)
and bytes (43.8 MiB before); each index alone 1.10-1.17 times the time and CPU. On the second
database (16 rounds): 1.09 times the time, 1.12 the CPU, 1.15 the WAL records, 1.20 the
bytes. That is some 10 microseconds of CPU per comment the collectors store; two parses at
the soak's 460 comments a second spend under 5 ms of it a second. Each index is 39 MB at 1,000,000 comments
(the table 276 MB); both are built in 2 s on this machine, writes to comments waiting
meanwhile (the project's migrations build indexes in their transaction, not concurrently).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_comments_group_id_likes_id", "comments", ["group_id", "likes", "id"])
    op.create_index("ix_comments_group_id_matches_count_id", "comments", ["group_id", "matches_count", "id"])


def downgrade() -> None:
    op.drop_index("ix_comments_group_id_matches_count_id", table_name="comments")
    op.drop_index("ix_comments_group_id_likes_id", table_name="comments")
