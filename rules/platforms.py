"""Target platforms: the names buildx uses and the architecture names Debian and Docker use."""

from __future__ import annotations

from rules.errors import UserError

SUPPORTED = {"linux/amd64": "amd64", "linux/arm64": "arm64"}
DEFAULT_PLATFORMS = ["linux/amd64", "linux/arm64"]


def arch_of(platform: str) -> str:
    try:
        return SUPPORTED[platform]
    except KeyError:
        raise UserError(
            f"unsupported platform {platform!r}: choose from {', '.join(SUPPORTED)}"
        ) from None


def parse_platforms(text: str | None) -> list[str]:
    """``"linux/amd64,linux/arm64"`` -> a checked, de-duplicated, sorted list."""
    if not text:
        return list(DEFAULT_PLATFORMS)
    platforms = sorted({p.strip() for p in text.split(",") if p.strip()})
    for platform in platforms:
        arch_of(platform)
    if not platforms:
        raise UserError("--platform needs at least one platform")
    return platforms
