"""``/studio``: the farm's web dashboard, served by the farm itself (no CDN, no server-side state).

The page is static: built from npm by ``make`` (``web/studio``, Vite, pinned in
``web/package-lock.json``) into ``farm/api/static/studio`` (gitignored), and it talks to the public
API only, with the API secret the user types (kept in the tab's sessionStorage). Hashed asset names
are cached for a year; the page itself never.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from farm.kernel.errors import FarmError, NotFound

router = APIRouter(tags=["studio"], include_in_schema=False)

STUDIO_DIR = Path(__file__).parents[1] / "static" / "studio"
AssetName = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")]
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".woff2": "font/woff2"}
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "connect-src 'self' ws: wss: http: https:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class StudioNotBuilt(FarmError):
    http_status = 503
    code = "ASSET_MISSING"


def _missing() -> StudioNotBuilt:
    return StudioNotBuilt(
        "the studio is not built on this farm: run `make studio` (npm ci and vite build in web/ write "
        "farm/api/static/studio)"
    )


@router.get("/studio", response_class=HTMLResponse)
def studio_page() -> Response:
    index = STUDIO_DIR / "index.html"
    if not index.is_file():
        raise _missing()
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": _CSP,
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(index.read_text(), headers=headers)


@router.get("/studio/", response_class=RedirectResponse)
def studio_slash() -> RedirectResponse:
    return RedirectResponse("/studio", status_code=308)


@router.get("/studio/assets/{name}")
def studio_asset(name: AssetName) -> FileResponse:
    path = STUDIO_DIR / "assets" / name
    if not path.is_file():
        raise _missing() if not STUDIO_DIR.is_dir() else NotFound(f"no studio asset {name!r}")
    media_type = _TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": "public, max-age=31536000, immutable"}
    )
