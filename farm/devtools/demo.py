"""`farm demo`: from nothing to ``out/demo.mp4`` on one machine.

Reuses a running farm when its API answers, else starts what is missing (embedded Redis, API,
workers, Flower) and stops it afterwards. Then: create an API key, register the sample portrait
as an agent and wait for its pack, synthesise a short voiced clip (espeak-ng when installed, else a
numpy vowel/consonant synthesiser), post a session, wait for ENDED and copy the MP4 to ``out``.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from farm.client import AgentInfo, AvatarError, AvatarSession, SessionInfo
from farm.infra.procs import LocalFarm, api_url, flower_url, resolve_redis_url
from farm.kernel.errors import FarmError
from farm.kernel.settings import Settings

DEMO_TENANT = "demo"
DEMO_TEXT = "Hello! I am an avatar rendered by the farm. Nice to meet you."
_FORMANTS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (570, 840))  # a, i, u, e, o


def synth_speech(seconds: float = 3.0, rate: int = 16_000, seed: int = 7) -> np.ndarray:
    """A speech-like int16 clip: voiced syllables (pulse train through two formant resonators) at
    ~4 Hz with noise bursts for consonants and short pauses. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate), dtype=np.float64)
    pos = int(0.15 * rate)
    while pos < out.size - rate // 10:
        syllable = int(rng.uniform(0.16, 0.28) * rate)
        end = min(pos + syllable, out.size)
        out[pos:end] = _syllable(end - pos, rate, rng)
        pos = end + int(rng.choice([0.03, 0.05, 0.25], p=[0.6, 0.3, 0.1]) * rate)
    out /= max(1e-9, float(np.max(np.abs(out))))
    return (out * 0.6 * 32767).astype(np.int16)


def _syllable(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    f0 = rng.uniform(110, 160) * (1 + 0.08 * np.sin(2 * np.pi * 3 * t))
    phase = np.cumsum(2 * np.pi * f0 / rate)
    source = np.sign(np.sin(phase)) * 0.5 + np.sin(phase)
    f1, f2 = _FORMANTS[int(rng.integers(len(_FORMANTS)))]
    voiced = _resonate(source, f1, rate) + 0.5 * _resonate(source, f2, rate)
    envelope = np.sin(np.pi * np.arange(n) / n) ** 0.7
    burst = np.zeros(n)
    k = n // 6
    burst[:k] = rng.normal(0, 0.4, k) * np.linspace(1, 0, k)
    return np.asarray(voiced * envelope + burst)


def _resonate(x: np.ndarray, freq: float, rate: int, bandwidth: float = 90.0) -> np.ndarray:
    """A two-pole resonator at ``freq`` (a formant). SciPy is imported here, not at module level:
    the benches that import this module only for the sample portrait would pay ~1 s of CPU for it."""
    from scipy.signal import lfilter

    r = np.exp(-np.pi * bandwidth / rate)
    a1, a2 = -2 * r * np.cos(2 * np.pi * freq / rate), r * r
    return np.asarray(lfilter([1.0], [1.0, a1, a2], x))


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return buf.getvalue()


def speech_clip() -> tuple[bytes, str]:
    """WAV bytes of the demo line: espeak-ng if installed, else the synthesiser. Also says which."""
    espeak = shutil.which("espeak-ng")
    if espeak:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "speech.wav"
            done = subprocess.run([espeak, "-w", str(path), DEMO_TEXT], capture_output=True, check=False)
            if done.returncode == 0 and path.exists():
                return path.read_bytes(), "espeak-ng"
    return wav_bytes(synth_speech(), 16_000), "synthesised (numpy)"


def portrait_png() -> bytes:
    """PNG bytes of the sample portrait (scikit-image's astronaut), what the demos and benches register."""
    from PIL import Image

    from farm.render.essence import sample_portrait  # only the demo needs the render package

    image = sample_portrait()
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class Progress:
    """One status line per change, with elapsed seconds: long steps show they are alive."""

    def __init__(self, what: str) -> None:
        self.what, self.started, self.last = what, time.monotonic(), ""

    def __call__(self, info: AgentInfo | SessionInfo) -> None:
        if info.status != self.last:
            self.last = info.status
            print(f"  {self.what}: {info.status:<10} ({time.monotonic() - self.started:5.1f} s)", flush=True)


def _start_api(settings: Settings, local: LocalFarm) -> None:
    """Reuse a farm whose API answers; else start Redis (embedded if needed), the API and Flower."""
    if AvatarSession(api_url=api_url(settings)).ready() and resolve_redis_url(settings):
        print(f"using the running farm at {api_url(settings)}")
        return
    print("starting a local farm (Redis, API, Flower, then the workers it needs) …", flush=True)
    local.start_redis()
    local.start_api()
    local.start_flower()
    local.wait_api(deadline_s=120.0)


def _ensure_workers(
    farm: AvatarSession, local: LocalFarm, queues: tuple[str, ...], deadline_s: float = 300
) -> None:
    """Start a worker for each queue nobody serves, then wait until every queue has a READY one."""
    fleet = farm.fleet()["queues"]
    for queue in queues:
        alive = [w for w in fleet.get(queue, {}).get("workers", []) if w["state"] != "ERROR"]
        if not alive:
            if local.redis_url is None:
                local.start_redis()  # the running farm's Redis: only the worker is missing
            print(f"  starting a worker for queue {queue!r}", flush=True)
            local.start_worker(queue)
    started, end = time.monotonic(), time.monotonic() + deadline_s
    while True:
        local.check_alive()
        fleet = farm.fleet()["queues"]
        waiting = [q for q in queues if fleet.get(q, {}).get("ready", 0) == 0]
        if not waiting:
            print(f"  workers READY for {', '.join(queues)} ({time.monotonic() - started:.1f} s)", flush=True)
            return
        if time.monotonic() > end:
            raise TimeoutError(f"no READY worker for {waiting} after {deadline_s:g} s")
        time.sleep(0.5)


def make_demo_key(settings: Settings) -> str:
    from farm.infra.redis_conn import connect
    from farm.tenancy.api_keys import RedisKeyStore

    url = resolve_redis_url(settings)
    assert url is not None
    _, secret = RedisKeyStore(connect(url)).create(DEMO_TENANT, f"demo-{int(time.time())}")
    return secret


def _kept(local: LocalFarm) -> str:
    """Whether the studio keeps answering after the demo: only on a farm the demo did not start."""
    return "; `farm up` serves it after the demo" if local.children else ""


def run_demo(settings: Settings, env: Mapping[str, str], *, out: Path, model: str = "essence") -> int:
    """The whole demo; returns a process exit code. Stops whatever it started, also on failure."""
    started = time.monotonic()
    local = LocalFarm(settings, env)
    try:
        _start_api(settings, local)
        secret = make_demo_key(settings)
        with AvatarSession(api_url=api_url(settings), api_secret=secret, max_retries=0) as farm:
            _ensure_workers(farm, local, ("build", model))
            print("1/4 registering the sample avatar and building its pack …", flush=True)
            agent = farm.create_agent(portrait_png())
            agent = farm.wait_agent(agent.agent_id, deadline_s=900, on_status=Progress(agent.agent_id))
            if agent.status != "ready":
                print(f"the avatar build failed: {agent.raw.get('error_message')}", file=sys.stderr)
                return 1
            audio, source = speech_clip()
            print(f"2/4 speech clip: {source}, {len(audio) // 32000:.0f} s", flush=True)
            print(f"3/4 rendering the session on the {model} queue …", flush=True)
            session = farm.create_session(audio=audio, avatar_id=agent.agent_id, model=model)
            progress = Progress(session.session_id)
            done = farm.wait_session(session.session_id, deadline_s=900, on_status=progress)
            if done.status != "ENDED":
                print(f"the session failed: {done.raw.get('failure')}", file=sys.stderr)
                return 1
            written = _copy_output(done, out)
        print(f"4/4 done in {time.monotonic() - started:.0f} s: {written}")
        print(f"Studio: {api_url(settings)}/studio  (sign in with the demo key {secret}{_kept(local)})")
        print(f"Flower (task monitor): {flower_url(settings)}  API docs: {api_url(settings)}/docs")
        return 0
    except (AvatarError, FarmError, TimeoutError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if local.children or local.redis is not None:
            print("stopping what the demo started …", flush=True)
            local.stop()


def _copy_output(session: SessionInfo, out: Path) -> Path:
    produced = Path(str(session.raw.get("output") or ""))
    if not produced.is_file():
        raise FarmError(f"the session ended but its output {produced} is missing")
    out.parent.mkdir(parents=True, exist_ok=True)
    if produced.resolve() != out.resolve():
        shutil.copyfile(produced, out)
    return out.resolve()
