"""The data of a VK world: communities, users, walls, comments and reply threads.

The emulator (``emulator.py``) serves a ``VkWorld`` the way VK's HTTP API serves the real
one; tests and benchmarks compare what the collector stored with ``expected_comments``.

Two worlds are built here:
- ``sandbox_world()``: a small, fixed, Russian-speaking world for demos and first runs;
- ``generated_world(...)``: a sized world for tests and benchmarks (50,000+ comments in well
  under a second per 10,000).

Both are deterministic: a fixed seed and a fixed base date, so a demo looks the same every time.
Tests change a world between two runs as people change VK (``edit_comment``, ``delete_comment``).
Like VK, post ids and comment ids of one wall come from one counter, and comment ids are unique
only within their wall.

A world can also move while it is read (``WallDrift``): moderators delete comments and posts,
people write comments, replies and posts, as on a busy community. The emulator applies a few
such changes before each request it answers; ``expected_comments`` always describes the world
as it is now, so a test compares what was stored with the world at the end of the run.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

BASE_DATE = datetime(2026, 10, 1, tzinfo=UTC)
BASE_TS = int(BASE_DATE.timestamp())
DAY = 86_400
USER_PHOTO = "https://vk.com/images/camera_100.png"  # VK's own default pictures
GROUP_PHOTO = "https://vk.com/images/community_100.png"
INLINE_REPLIES = 10  # VK's maximum thread_items_count
PAGE = 100  # VK's maximum count


# --- the data -------------------------------------------------------------------------------


@dataclass(slots=True)
class WorldGroup:
    id: int  # positive; the wall's owner_id is -id
    name: str
    screen_name: str
    is_closed: int = 0  # 0 open, 1 closed, 2 private
    type: str = "page"
    members_count: int = 0
    description: str = ""
    photo_100: str = GROUP_PHOTO
    deactivated: str | None = None


@dataclass(slots=True)
class WorldUser:
    id: int
    first_name: str
    last_name: str
    screen_name: str
    sex: int = 0
    photo_100: str = USER_PHOTO


@dataclass(slots=True)
class WorldComment:
    id: int
    owner_id: int
    post_id: int
    from_id: int  # negative: written on behalf of a community
    date: int
    text: str
    likes: int = 0
    deleted: bool = False
    thread_root: int | None = None  # the top-level comment of a reply (parents_stack[0])
    reply_to_comment: int | None = None
    reply_to_user: int | None = None
    replies: list[WorldComment] = field(default_factory=list)  # top-level comments only
    attachments: list[dict] = field(default_factory=list)  # a photo-only comment has text ""


@dataclass(slots=True)
class WorldPost:
    id: int
    owner_id: int
    from_id: int
    date: int
    text: str
    likes: int = 0
    reposts: int = 0
    views: int = 0
    is_pinned: bool = False
    comments_closed: bool = False  # wall.getComments answers error 212
    comments: list[WorldComment] = field(default_factory=list)  # top level, oldest first

    @property
    def comments_count(self) -> int:
        """VK's ``comments.count``: every comment of the post, replies included."""
        return len(self.comments) + sum(len(c.replies) for c in self.comments)


class VkWorld:
    """Everything VK would know, indexed the ways the API methods look things up."""

    def __init__(self) -> None:
        self.groups: dict[int, WorldGroup] = {}
        self.users: dict[int, WorldUser] = {}
        self.walls: dict[int, list[WorldPost]] = {}  # owner_id -> wall order (pinned, then newest)
        self.posts: dict[tuple[int, int], WorldPost] = {}
        self.comments: dict[tuple[int, int], WorldComment] = {}
        self.screen_names: dict[str, tuple[str, int]] = {}
        self._next_id: dict[int, int] = {}
        self.deleted_posts: set[tuple[int, int]] = set()  # wall.getComments answers 15 for these

    # building

    def add_group(self, group: WorldGroup) -> WorldGroup:
        self.groups[group.id] = group
        self.screen_names[group.screen_name.lower()] = ("page" if group.type == "page" else "group", group.id)
        self.walls.setdefault(-group.id, [])
        return group

    def add_user(self, user: WorldUser) -> WorldUser:
        self.users[user.id] = user
        self.screen_names[user.screen_name.lower()] = ("user", user.id)
        return user

    def new_id(self, owner_id: int) -> int:
        """Posts and comments of one wall share VK's per-wall counter."""
        value = self._next_id.get(owner_id, 0) + 1
        self._next_id[owner_id] = value
        return value

    def add_post(self, post: WorldPost) -> WorldPost:
        self.walls.setdefault(post.owner_id, []).append(post)
        self.posts[(post.owner_id, post.id)] = post
        return post

    def add_comment(self, post: WorldPost, comment: WorldComment) -> WorldComment:
        self.comments[(comment.owner_id, comment.id)] = comment
        if comment.thread_root is None:
            post.comments.append(comment)
        else:
            self.comments[(comment.owner_id, comment.thread_root)].replies.append(comment)
        return comment

    # changing: what people do on VK, between two runs of the collector or while one pages

    def edit_comment(self, owner_id: int, comment_id: int, text: str) -> WorldComment:
        """An author edits a comment: the text changes; its id, date and the post's count do not."""
        comment = self.comments[(owner_id, comment_id)]
        if comment.deleted:
            raise ValueError(f"comment {owner_id}_{comment_id} is deleted: VK lets nobody edit it")
        comment.text = text
        return comment

    def delete_comment(self, owner_id: int, comment_id: int) -> WorldComment:
        """A comment is deleted. As on VK, one with replies stays in its place as ``deleted:
        true`` (no text, no likes, no attachments) so the thread still hangs from it; any other
        vanishes, and the post's ``comments.count`` drops by one. A deleted comment whose last
        reply goes vanishes with it."""
        comment = self.comments[(owner_id, comment_id)]
        if comment.replies:
            comment.deleted, comment.text, comment.likes, comment.attachments = True, "", 0, []
            return comment
        if comment.thread_root is None:
            self.posts[(owner_id, comment.post_id)].comments.remove(comment)
        else:
            root = self.comments[(owner_id, comment.thread_root)]
            root.replies.remove(comment)
            if root.deleted and not root.replies:
                self.delete_comment(owner_id, root.id)
        del self.comments[(owner_id, comment_id)]
        return comment

    def remove_post(self, owner_id: int, post_id: int) -> None:
        """A post is deleted, its comments with it; ``wall.getComments`` on it then answers 15."""
        post = self.posts.pop((owner_id, post_id), None)
        if post is None:
            return
        self.walls[owner_id].remove(post)
        self.deleted_posts.add((owner_id, post_id))
        for comment in post.comments:
            for reply in comment.replies:
                self.comments.pop((owner_id, reply.id), None)
            self.comments.pop((owner_id, comment.id), None)

    def publish_post(self, post: WorldPost) -> WorldPost:
        """A new post: after the pinned one, before every other (VK's order)."""
        wall = self.walls.setdefault(post.owner_id, [])
        at = 1 if wall and wall[0].is_pinned else 0
        wall.insert(at, post)
        self.posts[(post.owner_id, post.id)] = post
        return post

    def finish(self) -> VkWorld:
        """Put every wall in VK's order: the pinned post first, then newest first."""
        for wall in self.walls.values():
            wall.sort(key=lambda p: (not p.is_pinned, -p.date, -p.id))
        return self

    # reading

    def resolve(self, screen_name: str) -> tuple[str, int] | None:
        return self.screen_names.get(screen_name.lower())

    def group_by_ref(self, ref: str | int) -> WorldGroup | None:
        text = str(ref).strip().lower()
        for prefix in ("club", "public", "event"):
            if text.startswith(prefix) and text[len(prefix):].isdigit():
                text = text[len(prefix):]
        if text.lstrip("-").isdigit():
            return self.groups.get(abs(int(text)))
        found = self.screen_names.get(text)
        return self.groups.get(found[1]) if found and found[0] != "user" else None

    def is_open(self, owner_id: int) -> bool:
        group = self.groups.get(-owner_id)
        return group is not None and group.is_closed == 0 and group.deactivated is None

    def open_owner_ids(self) -> list[int]:
        return [-g.id for g in self.groups.values() if self.is_open(-g.id)]

    def readable_posts(self, owner_id: int) -> Iterator[WorldPost]:
        if self.is_open(owner_id):
            yield from (p for p in self.walls.get(owner_id, []) if not p.comments_closed)

    def expected_comments(self, owner_id: int) -> set[int]:
        """Every comment and reply id a complete collection of this wall stores."""
        ids: set[int] = set()
        for post in self.readable_posts(owner_id):
            for comment in post.comments:
                ids.add(comment.id)
                ids.update(r.id for r in comment.replies)
        return ids

    def closed_comment_posts(self, owner_id: int) -> list[int]:
        return [p.id for p in self.walls.get(owner_id, []) if p.comments_closed]

    def minimal_calls(self, owner_id: int) -> int:
        """The fewest API calls that read this wall completely: wall pages, top-level comment
        pages (one for a post with comments closed: that is how one learns it), and the thread
        pages for replies that do not come inline."""
        if not self.is_open(owner_id):
            return 1
        wall = self.walls.get(owner_id, [])
        calls = max(1, math.ceil(len(wall) / PAGE))
        for post in wall:
            if post.comments_count == 0:
                continue
            if post.comments_closed:
                calls += 1
                continue
            calls += max(1, math.ceil(len(post.comments) / PAGE))
            for comment in post.comments:
                calls += math.ceil(max(0, len(comment.replies) - INLINE_REPLIES) / PAGE)
        return calls

    def total_comments(self) -> int:
        return len(self.comments)

    def author(self, from_id: int) -> WorldUser | WorldGroup | None:
        return self.users.get(from_id) if from_id > 0 else self.groups.get(-from_id)


# --- Russian text ---------------------------------------------------------------------------

# Nouns with the forms templates ask for: nom gen dat acc ins prep, plural nom gen ins.
_CASES = ("nom", "gen", "dat", "acc", "ins", "prep", "pl_nom", "pl_gen", "pl_ins")
_NOUNS = {
    "кошка": "кошка кошки кошке кошку кошкой кошке кошки кошек кошками",
    "кот": "кот кота коту кота котом коте коты котов котами",
    "котёнок": "котёнок котёнка котёнку котёнка котёнком котёнке котята котят котятами",
    "приют": "приют приюта приюту приют приютом приюте приюты приютов приютами",
    "ветеринар": (
        "ветеринар ветеринара ветеринару ветеринара ветеринаром ветеринаре ветеринары ветеринаров ветеринарами"
    ),
    "корм": "корм корма корму корм кормом корме корма кормов кормами",
    "мост": "мост моста мосту мост мостом мосте мосты мостов мостами",
    "школа": "школа школы школе школу школой школе школы школ школами",
    "парк": "парк парка парку парк парком парке парки парков парками",
    "двор": "двор двора двору двор двором дворе дворы дворов дворами",
    "пирог": "пирог пирога пирогу пирог пирогом пироге пироги пирогов пирогами",
    "борщ": "борщ борща борщу борщ борщом борще борщи борщей борщами",
    "блин": "блин блина блину блин блином блине блины блинов блинами",
}
FORMS: dict[str, dict[str, str]] = {
    lemma: dict(zip(_CASES, forms.split(), strict=True)) for lemma, forms in _NOUNS.items()
}


@dataclass(frozen=True)
class Theme:
    roles: dict[str, tuple[str, ...]]  # slot name -> nouns that fit it
    posts: tuple[str, ...]
    comments: tuple[str, ...]


# ``{role:case}`` slots: one noun per role and template, in the form the sentence needs.
_GENERIC_COMMENTS = (
    "Спасибо за пост!",
    "Полностью согласен.",
    "А где это?",
    "Кто-нибудь знает подробности?",
    "Очень полезно, сохранила себе.",
    "Ахаха, это прекрасно 😂",
    "+1",
    "Наконец-то!",
    "Поддерживаю, давно пора.",
    "Не понимаю, о чём спор.",
)
_REPLIES = (
    "согласен с вами.",
    "а вы сами пробовали?",
    "вот-вот, и я о том же.",
    "поддерживаю!",
    "спасибо, не знал.",
    "можно подробнее?",
    "ну не знаю, по-моему всё не так просто.",
    "ахах, точно.",
    "у меня было ровно так же.",
    "не соглашусь, но спасибо за мнение.",
)
THEMES: dict[str, Theme] = {
    "cats": Theme(
        roles={"pet": ("кошка", "кот", "котёнок"), "place": ("приют",), "food": ("корм",),
               "doc": ("ветеринар",)},
        posts=(
            "Ищем дом для {pet:gen}! Приучен к лотку, привит, очень ласковый характер.",
            "Наш читатель прислал фото: {pet:nom} на окошке греется на солнышке.",
            "Покажите в комментариях ваших {pet:pl_gen}!",
            "Совет дня: не кормите {pet:pl_gen} со стола.",
            "В {place:prep} на Лиговском нужны волонтёры и {food:nom}.",
        ),
        comments=(
            "Какая красивая кошка! Сразу видно, что любимая.",
            "У нас дома две кошки, и обе спят с котом на одном окошке.",
            "Сегодня видела {pet:acc} возле {place:gen}, кто-нибудь знает, чей?",
            "Мы с {pet:ins} ходили к {doc:dat}, всё хорошо, спасибо!",
            "Подкармливаем во дворе бездомных кошек уже третий год.",
            "Котята с кошками — это лучшее, что есть в ленте.",
            "Не покупайте {pet:acc} с рук, возьмите из {place:gen}.",
            "Кот сидит на окошке и ждёт хозяйку.",
            "Какой {food:nom} посоветуете для {pet:gen}?",
            "Отнесли {pet:acc} в {place:acc}, там помогут.",
            "Без {pet:gen} наш дом был бы пустым.",
            "Посмотрите, какая у нас кошка — совсем как ваша!",
            "{doc:nom} сказал, что {pet:dat} нужен другой {food:nom}.",
        ),
    ),
    "town": Theme(
        roles={"place": ("мост", "парк", "школа", "двор")},
        posts=(
            "Ремонт {place:gen} на Заречной улице продлится до конца месяца.",
            "Администрация обещает закончить ремонт {place:gen} к зиме. Верите?",
            "Жители жалуются на дорогу у {place:gen}. Что скажете?",
            "Сегодня после ремонта открыли {place:acc}: фото с открытия.",
            "Внимание: автобус №7 временно ходит в объезд {place:gen}.",
        ),
        comments=(
            "Дорога опять вся в ямах, как будто и не ремонтировали.",
            "Когда уже починят дорогу возле {place:gen}?",
            "Ехал вчера по этой дороге — ужас.",
            "Автобус снова опоздал на двадцать минут.",
            "Спасибо администрации за {place:acc}, наконец-то!",
            "С дорогами у нас беда который год.",
            "А что с дорогой у {place:gen}? Там же дети ходят.",
            "Лучше бы дорогой занялись, чем очередной клумбой.",
            "В нашем дворе тоже нужен ремонт.",
            "Дороги в Заречье — отдельная история.",
            "Кто-нибудь уже видел {place:acc} после ремонта?",
            "Администрация отвечает только перед выборами.",
            "Возле {place:gen} автобус не останавливается, это нормально?",
        ),
    ),
    "kitchen": Theme(
        roles={"dish": ("пирог", "борщ", "блин")},
        posts=(
            "Рецепт недели: {dish:nom} как у бабушки.",
            "Секрет идеального {dish:gen} — терпение и хорошая духовка.",
            "Что приготовить на выходных? Голосуем: пирог или борщ?",
        ),
        comments=(
            "Готовила по этому рецепту — {dish:nom} получился отличный!",
            "У меня {dish:nom} всегда подгорает, что я делаю не так?",
            "Бабушка делала {dish:acc} точно так же, спасибо за память.",
            "А можно без духовки?",
            "Блины с вареньем — лучшее воскресное утро.",
            "Духовка у всех разная, смотрите по цвету.",
            "Сделала {dish:acc} вчера, семья в восторге.",
            "Борщ без сметаны — не борщ!",
            "Моя бабушка добавляла в {dish:acc} щепотку сахара.",
        ),
    ),
    "bikes": Theme(
        roles={"place": ("парк", "мост")},
        posts=(
            "Новая дорожка через {place:acc} откроется в субботу.",
            "Где оставить велосипед на ночь, чтобы не украли?",
            "Вечерний заезд по {place:dat}: собираемся у моста в 19:00.",
        ),
        comments=(
            "Катался вчера по новой дорожке — шикарно.",
            "Через {place:acc} ехать страшно, машины не пропускают.",
            "У меня украли велосипед прямо у подъезда.",
            "Буду с велосипедом!",
            "Велосипед лучше автобуса в любое время года.",
            "Возле {place:gen} дорожку так и не доделали.",
        ),
    ),
}

_SLOT = re.compile(r"\{(\w+):(\w+)\}")

_MALE = ("Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Артём", "Илья", "Кирилл",
         "Михаил", "Никита", "Иван", "Егор", "Павел", "Роман", "Олег", "Владимир", "Николай")
_FEMALE = ("Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Екатерина", "Светлана",
           "Юлия", "Анастасия", "Дарья", "Полина", "Ксения", "Виктория", "Людмила", "Зинаида", "Алина")
_LAST = ("Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
         "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
         "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин")
_TRANSLIT = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
                     ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o",
                      "p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "sch", "", "y", "", "e",
                      "yu", "ya"], strict=True))


def translit(text: str) -> str:
    return "".join(_TRANSLIT.get(ch, ch) for ch in text.lower())


class TextMaker:
    """Fills templates with nouns in the form each slot needs."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def fill(self, template: str, theme: Theme) -> str:
        if "{" not in template:
            return template
        chosen: dict[str, str] = {}

        def form(m: re.Match) -> str:
            role, case = m.group(1), m.group(2)
            if role not in chosen:
                chosen[role] = self.rng.choice(theme.roles[role])
            return FORMS[chosen[role]][case]

        out = _SLOT.sub(form, template)
        return out[0].upper() + out[1:]

    def post(self, theme: Theme) -> str:
        return self.fill(self.rng.choice(theme.posts), theme)

    def comment(self, theme: Theme) -> str:
        pool = theme.comments if self.rng.random() < 0.8 else _GENERIC_COMMENTS
        first = self.rng.choice(pool)
        text = self.fill(first, theme)
        if self.rng.random() < 0.2:  # two sentences now and then
            second = self.rng.choice(theme.comments)
            if second != first:
                text += " " + self.fill(second, theme)
        return text

    def reply(self, theme: Theme, to_name: str | None) -> str:
        if self.rng.random() < 0.4:
            text = self.fill(self.rng.choice(theme.comments), theme)
            text = text[0].lower() + text[1:]
        else:
            text = self.rng.choice(_REPLIES)
        return f"{to_name}, {text}" if to_name else text[0].upper() + text[1:]


# --- building worlds ------------------------------------------------------------------------


def _add_users(world: VkWorld, rng: random.Random, count: int, first_id: int = 1) -> list[int]:
    ids = []
    for uid in range(first_id, first_id + count):
        female = rng.random() < 0.5
        first = rng.choice(_FEMALE if female else _MALE)
        last = rng.choice(_LAST) + ("а" if female else "")
        # Most people keep VK's default "id123"; some chose a name.
        screen = f"{translit(first)}_{translit(last)}{uid}" if rng.random() < 0.4 else f"id{uid}"
        world.add_user(WorldUser(uid, first, last, screen, sex=1 if female else 2))
        ids.append(uid)
    return ids


@dataclass
class _WallPlan:
    group: WorldGroup
    theme: Theme
    posts: int
    comments_per_post: int  # the mean; each post draws 0..2x
    reply_share: float = 0.3  # top-level comments that get a thread
    long_threads: tuple[int, ...] = ()
    closed_comment_posts: int = 0
    days: int = 60


def _fill_wall(world: VkWorld, rng: random.Random, text: TextMaker, users: list[int], plan: _WallPlan) -> None:
    owner = -plan.group.id
    span = plan.days * DAY
    dates = sorted(BASE_TS - rng.randrange(DAY // 2, span) for _ in range(plan.posts))
    posts = []
    for date in dates:  # oldest first, so ids grow with time as on VK
        post = world.add_post(WorldPost(
            id=world.new_id(owner), owner_id=owner, from_id=owner, date=date, text=text.post(plan.theme),
            likes=rng.randrange(0, 400), reposts=rng.randrange(0, 40), views=rng.randrange(300, 30_000),
        ))
        posts.append(post)
    if not posts:
        return
    rng.choice(posts[: max(1, len(posts) // 2)]).is_pinned = True  # an older post, pinned
    closable = [p for p in posts if not p.is_pinned]
    for post in rng.sample(closable, min(plan.closed_comment_posts, len(closable))):
        post.comments_closed = True
    # Long threads go to distinct posts; every other post draws its own thread sizes.
    long_posts = rng.sample(posts, min(len(plan.long_threads), len(posts)))
    long_for = {p.id: n for p, n in zip(long_posts, plan.long_threads, strict=False)}
    for post in posts:
        _fill_comments(world, rng, text, users, plan, post, long_for.get(post.id))


def _fill_comments(world, rng, text: TextMaker, users, plan: _WallPlan, post: WorldPost, long_thread: int | None):
    owner = post.owner_id
    top = rng.randrange(0, 2 * plan.comments_per_post + 1) if plan.comments_per_post else 0
    if long_thread is not None:
        top = max(top, 1)
    moment = post.date
    last_moment = BASE_TS - 60
    long_at = rng.randrange(top) if long_thread is not None else -1

    def next_moment() -> int:
        nonlocal moment
        moment = min(last_moment, moment + rng.randrange(20, 1800))
        return moment

    def author() -> int:
        roll = rng.random()
        if roll < 0.03:
            return owner  # the community answers on its own wall
        return rng.choice(users)

    for index in range(top):
        root = world.add_comment(post, _comment(world, rng, owner, post.id, author(), next_moment(),
                                                text.comment(plan.theme)))
        if index == long_at and long_thread is not None:
            replies = long_thread
        elif rng.random() < plan.reply_share:
            replies = min(int(rng.expovariate(1 / 3)) + 1, 14)
        else:
            replies = 0
        thread = [root]
        for _ in range(replies):
            to = rng.choice(thread) if rng.random() < 0.7 else None  # some just post into the thread
            to_name = _first_name(world, to.from_id) if to is not None and to is not root else None
            reply = _comment(world, rng, owner, post.id, author(), next_moment(),
                             text.reply(plan.theme, to_name), thread_root=root.id)
            if to is not None:
                reply.reply_to_comment, reply.reply_to_user = to.id, to.from_id
            world.add_comment(post, reply)
            thread.append(reply)


def _comment(world, rng, owner, post_id, from_id, date, text, thread_root=None) -> WorldComment:
    deleted = rng.random() < 0.02  # VK still returns deleted comments, with empty text
    return WorldComment(
        id=world.new_id(owner), owner_id=owner, post_id=post_id, from_id=from_id, date=date,
        text="" if deleted else text, likes=0 if deleted else int(rng.expovariate(1 / 4)),
        deleted=deleted, thread_root=thread_root,
    )


def _first_name(world: VkWorld, from_id: int) -> str | None:
    user = world.users.get(from_id)
    return user.first_name if user else None


def sandbox_world() -> VkWorld:
    """A small Russian-speaking VK for demos: a few thousand comments, always the same."""
    rng = random.Random(20261001)
    world = VkWorld()
    text = TextMaker(rng)
    users = _add_users(world, rng, 600, first_id=1001)
    open_walls = [
        _WallPlan(WorldGroup(11001, "Кошки Петербурга", "koshki_spb", members_count=48_210,
                             description="Кошки, коты и котята Петербурга: ищем дом, делимся фото."),
                  THEMES["cats"], posts=40, comments_per_post=14, long_threads=(15, 37, 130)),
        _WallPlan(WorldGroup(11002, "Новости Заречья", "zarechye_news", members_count=12_604,
                             description="Новости района Заречье: дороги, транспорт, школы, благоустройство."),
                  THEMES["town"], posts=60, comments_per_post=12, long_threads=(24, 61),
                  closed_comment_posts=1),
        _WallPlan(WorldGroup(11003, "Рецепты бабушки Зины", "babushka_recipes", members_count=3_877,
                             description="Домашние рецепты: пироги, борщи, блины."),
                  THEMES["kitchen"], posts=25, comments_per_post=8, long_threads=(12,)),
        _WallPlan(WorldGroup(11004, "Велосипедный Петербург", "velo_spb", members_count=9_140,
                             description="Велодорожки, заезды, советы."),
                  THEMES["bikes"], posts=20, comments_per_post=6),
    ]
    hidden_walls = [
        _WallPlan(WorldGroup(11005, "Закрытый клуб любителей чая", "closed_club", is_closed=1, type="group",
                             members_count=214, description="Только для своих."),
                  THEMES["kitchen"], posts=10, comments_per_post=5),
        _WallPlan(WorldGroup(11006, "Частная библиотека", "private_library", is_closed=2, type="group",
                             members_count=57, description="Вход по приглашениям."),
                  THEMES["town"], posts=5, comments_per_post=5),
    ]
    for plan in open_walls + hidden_walls:
        world.add_group(plan.group)
        _fill_wall(world, rng, text, users, plan)
    world.add_group(WorldGroup(11007, "Заблокированное сообщество", "banned_community", members_count=0,
                               deactivated="banned"))
    return world.finish()


def generated_world(
    seed: int = 1,
    *,
    communities: int = 3,
    posts_per_community: int = 50,
    comments_per_post: int = 20,
    reply_share: float = 0.3,
    long_threads: Sequence[int] = (15, 37, 130),
    closed_comment_posts: int = 1,
    closed_communities: int = 1,
    users: int = 2000,
    days: int = 90,
) -> VkWorld:
    """A sized world for tests and benchmarks. Open communities are ``-100001``, ``-100002``...;
    closed ones (``is_closed=1``) follow them. Each open wall gets the ``long_threads`` and
    ``closed_comment_posts`` posts with comments closed."""
    rng = random.Random(seed)
    world = VkWorld()
    text = TextMaker(rng)
    user_ids = _add_users(world, rng, users)
    themes = list(THEMES.values())
    for k in range(communities + closed_communities):
        closed = k >= communities
        group = world.add_group(WorldGroup(
            100_001 + k, f"Сообщество {k + 1}", f"community{k + 1}", is_closed=1 if closed else 0,
            members_count=rng.randrange(100, 100_000),
        ))
        _fill_wall(world, rng, text, user_ids, _WallPlan(
            group, themes[k % len(themes)], posts_per_community, comments_per_post, reply_share,
            tuple(long_threads), closed_comment_posts, days,
        ))
    return world.finish()


# --- a wall that moves ----------------------------------------------------------------------


class WallDrift:
    """Moderators and readers at work while a collector pages: each ``step()`` (the emulator
    takes one before answering each request) makes ``rate`` changes on average, chosen with a
    seeded generator, until ``budget`` changes were made (None: no end). The changes are VK's:
    a comment deleted (a top-level one with replies stays as ``deleted: true``), a post deleted
    (``wall.getComments`` on it then answers 15), comments and replies written (some of them a
    photo with no text), posts published (they come first after the pinned one, shifting the
    wall). Only the walls of ``owners`` move (default: every open one).

    How many changes a step makes is drawn apart from what they are: the k-th change depends
    on the seed and the k-1 before it only, not on how the requests that carried them fell."""

    KINDS = (("delete_comment", 0.3), ("write_comment", 0.25), ("write_reply", 0.25),
             ("publish_post", 0.1), ("delete_post", 0.1))

    def __init__(self, world: VkWorld, *, rate: float = 1.0, seed: int = 0, budget: int | None = None,
                 owners: Sequence[int] | None = None) -> None:
        self.world = world
        self.rate = rate
        self.budget = budget
        self.rng = random.Random(seed)
        self.pace = random.Random(seed + 1)  # changes per step
        self.text = TextMaker(self.rng)
        self.owners = list(owners) if owners is not None else world.open_owner_ids()
        self.users = sorted(world.users) or [1]
        self.made: Counter[str] = Counter()
        self.moment = BASE_TS  # every generated comment is older

    @property
    def changes(self) -> int:
        return sum(self.made.values())

    def step(self) -> int:
        whole = int(self.rate)
        wanted = whole + (1 if self.pace.random() < self.rate - whole else 0)
        made = 0
        for _ in range(wanted):
            if not self.owners or (self.budget is not None and self.changes >= self.budget):
                break
            kind = self.rng.choices([k for k, _ in self.KINDS], weights=[w for _, w in self.KINDS])[0]
            if getattr(self, f"_{kind}")(self.rng.choice(self.owners)):
                self.made[kind] += 1
                made += 1
        return made

    def _next_moment(self) -> int:
        self.moment += self.rng.randrange(1, 30)
        return self.moment

    def _post(self, owner_id: int, *, with_comments: bool = False) -> WorldPost | None:
        posts = [p for p in self.world.walls.get(owner_id, []) if not p.comments_closed
                 and (p.comments or not with_comments)]
        return self.rng.choice(posts) if posts else None

    def _new_comment(self, post: WorldPost, thread_root: int | None) -> WorldComment:
        author = self.rng.choice(self.users)
        comment = WorldComment(id=self.world.new_id(post.owner_id), owner_id=post.owner_id, post_id=post.id,
                               from_id=author, date=self._next_moment(), text="", thread_root=thread_root)
        if self.rng.random() < 0.2:  # a photo and no text
            comment.attachments = [{"type": "photo", "photo": {
                "id": 457_000_000 + comment.id, "owner_id": author, "date": comment.date,
                "sizes": [{"type": "m", "width": 130, "height": 97,
                           "url": f"https://sun9-1.userapi.com/photo{author}_{comment.id}.jpg"}]}}]
        else:
            town = THEMES["town"]
            comment.text = self.text.comment(town) if thread_root is None else self.text.reply(town, None)
        return comment

    def _delete_comment(self, owner_id: int) -> bool:
        post = self._post(owner_id, with_comments=True)
        if post is None:
            return False
        root = self.rng.choice(post.comments)
        target = self.rng.choice(root.replies) if root.replies and self.rng.random() < 0.5 else root
        if target.deleted and target.replies:
            return False  # already a placeholder
        self.world.delete_comment(owner_id, target.id)
        return True

    def _write_comment(self, owner_id: int) -> bool:
        post = self._post(owner_id)
        if post is None:
            return False
        self.world.add_comment(post, self._new_comment(post, None))
        return True

    def _write_reply(self, owner_id: int) -> bool:
        post = self._post(owner_id, with_comments=True)
        roots = [c for c in post.comments if not c.deleted] if post else []
        if post is None or not roots:
            return False
        root = self.rng.choice(roots)
        reply = self._new_comment(post, root.id)
        to = self.rng.choice([root, *root.replies])
        reply.reply_to_comment, reply.reply_to_user = to.id, to.from_id
        self.world.add_comment(post, reply)
        return True

    def _publish_post(self, owner_id: int) -> bool:
        self.world.publish_post(WorldPost(
            id=self.world.new_id(owner_id), owner_id=owner_id, from_id=owner_id, date=self._next_moment(),
            text=self.text.post(THEMES["town"]), views=self.rng.randrange(10, 300),
        ))
        return True

    def _delete_post(self, owner_id: int) -> bool:
        wall = [p for p in self.world.walls.get(owner_id, []) if not p.is_pinned]
        if len(wall) < 5:
            return False
        self.world.remove_post(owner_id, self.rng.choice(wall).id)
        return True
