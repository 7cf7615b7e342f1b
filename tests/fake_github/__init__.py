"""A fake GitHub REST API for tests: a real HTTP server on 127.0.0.1 that answers as GitHub documents (webhook
deliveries and their redelivery, repositories and releases with ETags, Apps and installation tokens, rate limits),
and delivers webhooks for real, signed as Hookshot signs them.

    with FakeGitHub() as fake:                      # or the `fake_github` fixture
        token = fake.add_token()
        hook = fake.repo_hook("octo-org/hello", receiver_url, secret="s3cret")
        fake.deliver(hook, "release", payload)      # POSTs to the receiver, lists the attempt
        client = GitHubClient(api_url=fake.api_url, token=token)
        ... client.hook_deliveries(hook.ref) ...

Helpers (all thread-safe; the server runs in a thread of its own):
- holding: `add_token`, `add_org`, `add_repository`, `add_release`, `edit_release`, `delete_release`,
  `repo_hook`, `org_hook`, `app` (an App with a fresh RSA key: `app.private_key_pem`, `app.credentials`),
  `app_hook`, `install`, `uninstall`;
- delivering: `deliver` / `adeliver` (for real), `record_delivery` (listed only), `deliveries`,
  `wait_redeliveries` (redeliveries are sent asynchronously after the 202, as on GitHub);
- answering: `set_rate_limit`, `window`, `fail_next` (secondary limits, 5xx, delays), `redelivery_window`,
  `token_ttl`, `delivery_timeout`, `clock` (a `ManualClock` shared with the client drives expiry and resets);
- time: share one `ManualClock` between the fake (`FakeGitHub(clock=…)`) and the client, and give the client
  `sleep=Sleeper(clock)`: its waits are recorded (`sleeper.waits`) and move the clock instead of sleeping;
- seeing: `counters` (requests, per route, costly, not_modified, redeliveries_requested/sent …), `route_count`,
  `seen` (every request's method, route, path, query and headers).
"""

from tests.fake_github.clock import Sleeper
from tests.fake_github.server import FakeGitHub
from tests.fake_github.state import App, Counters, Delivery, Hook, Installation, Repository, Seen, Window

__all__ = [
    "App",
    "Counters",
    "Delivery",
    "FakeGitHub",
    "Hook",
    "Installation",
    "Repository",
    "Seen",
    "Sleeper",
    "Window",
]
