"""SDP munging that lets aiortc answer a libwebrtc publisher that offers simulcast.

aiortc cannot receive simulcast and drops the RID header extensions from its answer; libwebrtc then
rejects its own next offer ("negotiates simulcast but does not negotiate the RID RTP header
extension") and ``publish_track`` never completes. The model therefore (1) strips ``a=rid`` and
``a=simulcast`` from the offer before aiortc sees it and (2) echoes the offered RID extmaps in every
video m-section of the answer together with one accepted layer (``a=rid:f recv``,
``a=simulcast:recv f``). Production code keeps its real publish options; the fix lives here only.
"""

from __future__ import annotations

RID_EXTENSIONS = (
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
)


def _sections(sdp: str) -> list[list[str]]:
    """Split an SDP into the session section and one list of lines per m-section."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if not line:
            continue
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _join(sections: list[list[str]]) -> str:
    return "\r\n".join(line for section in sections for line in section) + "\r\n"


def _mid(section: list[str]) -> str | None:
    for line in section:
        if line.startswith("a=mid:"):
            return line[len("a=mid:") :]
    return None


def simulcast_offers(offer_sdp: str) -> dict[str, list[str]]:
    """Per video mid that offers simulcast, the RID ``a=extmap`` lines the offer carries."""
    found: dict[str, list[str]] = {}
    for section in _sections(offer_sdp)[1:]:
        if not section[0].startswith("m=video") or not any(x.startswith("a=simulcast") for x in section):
            continue
        mid = _mid(section)
        if mid is not None:
            found[mid] = [x for x in section if x.startswith("a=extmap:") and x.split()[-1] in RID_EXTENSIONS]
    return found


def strip_simulcast(offer_sdp: str) -> str:
    """The offer without ``a=rid`` / ``a=simulcast`` lines, for aiortc."""
    lines = [x for x in offer_sdp.splitlines() if x and not x.startswith(("a=rid:", "a=simulcast:"))]
    return "\r\n".join(lines) + "\r\n"


def accept_one_layer(answer_sdp: str, offered: dict[str, list[str]]) -> str:
    """Add the offered RID extmaps and a single received layer ``f`` to the answer's video sections."""
    sections = _sections(answer_sdp)
    for section in sections[1:]:
        mid = _mid(section)
        if mid not in offered or not section[0].startswith("m=video"):
            continue
        present = {x.split()[-1] for x in section if x.startswith("a=extmap:")}
        extra = [x for x in offered[mid] if x.split()[-1] not in present]
        section.extend(extra)
        section.extend(["a=rid:f recv", "a=simulcast:recv f"])
    return _join(sections)
