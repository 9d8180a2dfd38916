"""The VK emulator on a day its tokens meet their daily quota: for tests of waiting for VK.

Once armed, every token is answered error 29 "Rate limit reached" (a top-level error, as VK
answers a spent token) after ``after`` more requests, for ``seconds``. In-process as an object
(``QuotaDay(world, after=..., lasting=...)``), or as a process with an HTTP switch:

    python -m tests.quota_emulator --port 8766 --world generated --posts 80 --token T
    curl -X POST localhost:8766/_quota -d '{"after": 2, "seconds": 1}'
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from infrastructure.vk.emulator import ApiError, VkEmulator


class QuotaDay(VkEmulator):
    def __init__(self, *args: Any, after: int | None = None, lasting: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.quota_from: int | None = None  # the request count at which the quota starts
        self.quota_ends: float | None = None  # time.monotonic()
        self.lasting = 0.0
        if after is not None:
            self.arm(after, lasting)

    @property
    def requests_total(self) -> int:
        return sum(self.requests.values())

    def arm(self, after: int, lasting: float) -> None:
        self.quota_from, self.quota_ends, self.lasting = self.requests_total + after, None, lasting

    def _check_request(self, token: str, params: dict[str, Any]) -> None:
        if self.quota_from is not None and self.quota_ends is None and self.requests_total >= self.quota_from:
            self.quota_ends = time.monotonic() + self.lasting
        super()._check_request(token, params)  # counts the request
        if self.quota_ends is not None and time.monotonic() < self.quota_ends:
            raise ApiError(29, "Rate limit reached")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_quota" and scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            spec = orjson.loads(body or b"{}")
            self.arm(int(spec.get("after", 0)), float(spec["seconds"]))
            answer = b'{"ok":true}'
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer})
            return
        await super().__call__(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from infrastructure.vk.world import generated_world, sandbox_world

    parser = argparse.ArgumentParser(description="The VK emulator with a daily-quota switch (POST /_quota)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--world", choices=("sandbox", "generated"), default="generated")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--communities", type=int, default=1)
    parser.add_argument("--posts", type=int, default=80)
    parser.add_argument("--comments", type=int, default=20)
    parser.add_argument("--token", action="append", dest="tokens")
    args = parser.parse_args(argv)
    world = (sandbox_world() if args.world == "sandbox" else
             generated_world(args.seed, communities=args.communities, posts_per_community=args.posts,
                             comments_per_post=args.comments, closed_comment_posts=0, closed_communities=0))
    sys.setswitchinterval(0.001)  # as the emulator's own main: arrivals timestamped promptly
    app = QuotaDay(world, rps=args.rps or None, tokens=args.tokens, seed=args.seed)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
