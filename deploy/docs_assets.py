"""Install the AsyncAPI viewer the gateway serves at ``/docs/events`` into ``.assets/docs/``.

The viewer is the standalone bundle of the npm package ``@asyncapi/react-component``, at a
pinned version whose tarball must match a pinned sha512 integrity (the one the npm registry
publishes), so what the gateway serves is exactly what was reviewed. The tarball comes from
``npm pack`` when npm is installed (it honours the machine's npm settings: registry, proxy,
cache), otherwise straight from the registry over HTTPS (``NPM_REGISTRY``, default
https://registry.npmjs.org); no CDN is involved and nothing is fetched at run time.

Only the named files are taken out of the tarball, by name (never an ``extractall``), and
written under new names; a ``manifest.json`` records the version and each file's sha256, so
a second run with everything in place does no network work at all.

Run ``python -m deploy.docs_assets`` (``make docs-assets``); ``--warn-only`` reports a failure
without failing (``make up`` still starts; ``/docs/events`` then answers 503 saying how to
install). Standalone on purpose (no project imports): the Dockerfile runs it before copying
the code.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PACKAGE = "@asyncapi/react-component"
VERSION = "3.2.1"
# `npm view @asyncapi/react-component@3.2.1 dist.integrity`
INTEGRITY = "sha512-k5ZqJd6+oxYaQ2o6F3rGWJ1MTIjXdpsUYB3NKQbVqr4yzrN0Ovj5c7eZx8NGd3wfKPhbOrLREtYl9K2OPfnSsA=="
# member of the tarball -> file name under the destination (the gateway's whitelist names)
FILES = {
    "package/browser/standalone/index.js": "asyncapi-standalone.js",
    "package/styles/default.min.css": "asyncapi-default.min.css",
    "package/browser/standalone/index.js.LICENSE.txt": "asyncapi-standalone.js.LICENSE.txt",
    "package/LICENSE": "asyncapi-react-component.LICENSE",
}
MAX_TARBALL_BYTES = 50 * 1024 * 1024
DEFAULT_DEST = Path(__file__).resolve().parents[1] / ".assets" / "docs"
HOW_TO = "make docs-assets  (or: python -m deploy.docs_assets)"


class AssetError(Exception):
    """The viewer could not be installed; the message says why and what to do."""


def integrity_of(data: bytes) -> str:
    """The Subresource-Integrity string npm records for a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def tarball_url(registry: str) -> str:
    scope_less = PACKAGE.split("/")[-1]
    return f"{registry.rstrip('/')}/{PACKAGE}/-/{scope_less}-{VERSION}.tgz"


def _npm_pack(npm: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="docs-assets-") as tmp:
        done = subprocess.run(  # fixed arguments; npm as found on PATH
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"],
            cwd=tmp, capture_output=True, text=True, timeout=300, check=False,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            raise AssetError(f"npm pack {PACKAGE}@{VERSION} failed: {(done.stderr or done.stdout).strip()[-500:]}")
        return tarballs[0].read_bytes()


def _download(url: str) -> bytes:
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
        raise AssetError(f"refusing to download over anything but HTTPS: {url}")
    try:
        with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 - checked above
            data = resp.read(MAX_TARBALL_BYTES + 1)
    except OSError as exc:
        raise AssetError(f"could not download {url}: {exc}") from exc
    if len(data) > MAX_TARBALL_BYTES:
        raise AssetError(f"{url} is larger than {MAX_TARBALL_BYTES} bytes")
    return data


def fetch_tarball(npm: str | None, registry: str) -> bytes:
    """The package's tarball: ``npm pack`` first when npm is there, else the registry's URL."""
    errors = []
    if npm:
        try:
            return _npm_pack(npm)
        except (AssetError, OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
    else:
        errors.append("npm is not installed (apt-get install npm, or put npm on PATH)")
    try:
        return _download(tarball_url(registry))
    except AssetError as exc:
        errors.append(str(exc))
    raise AssetError("; ".join(errors))


def extract(data: bytes, dest: Path) -> dict[str, str]:
    """Check the tarball's integrity, write the named files into ``dest``; their sha256 by name."""
    got = integrity_of(data)
    if got != INTEGRITY:
        raise AssetError(f"integrity mismatch for {PACKAGE}@{VERSION}: expected {INTEGRITY}, got {got}")
    dest.mkdir(parents=True, exist_ok=True)
    hashes = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member_name, out_name in FILES.items():
            try:
                member = tar.getmember(member_name)
            except KeyError as exc:
                raise AssetError(f"{member_name} is missing from {PACKAGE}@{VERSION}") from exc
            if not member.isfile():
                raise AssetError(f"{member_name} in {PACKAGE}@{VERSION} is not a regular file")
            content = tar.extractfile(member).read()
            tmp = dest / f".{out_name}.part"
            tmp.write_bytes(content)
            tmp.replace(dest / out_name)
            hashes[out_name] = hashlib.sha256(content).hexdigest()
    return hashes


def manifest_path(dest: Path) -> Path:
    return dest / "manifest.json"


def installed(dest: Path) -> bool:
    """The pinned version is in ``dest``, every file present and unaltered."""
    try:
        manifest = json.loads(manifest_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("package") != PACKAGE or manifest.get("version") != VERSION \
            or manifest.get("integrity") != INTEGRITY or set(manifest.get("files", {})) != set(FILES.values()):
        return False
    for name, digest in manifest["files"].items():
        try:
            if hashlib.sha256((dest / name).read_bytes()).hexdigest() != digest:
                return False
        except OSError:
            return False
    return True


def install(dest: Path, npm: str | None = None, registry: str = "https://registry.npmjs.org") -> bool:
    """Make ``dest`` hold the pinned viewer; True when it had to fetch it."""
    if installed(dest):
        return False
    hashes = extract(fetch_tarball(npm, registry), dest)
    manifest = {"package": PACKAGE, "version": VERSION, "integrity": INTEGRITY, "files": hashes}
    manifest_path(dest).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(os.environ.get("DOCS_ASSETS_DIR") or DEFAULT_DEST),
                        help="where to put the files (default: DOCS_ASSETS_DIR or %(default)s)")
    parser.add_argument("--warn-only", action="store_true",
                        help="on failure print the reason but exit 0 (/docs/events then answers 503)")
    args = parser.parse_args(argv)
    registry = os.environ.get("NPM_REGISTRY") or "https://registry.npmjs.org"
    try:
        fetched = install(args.dest, shutil.which("npm"), registry)
    except AssetError as exc:
        print(f"error: the AsyncAPI viewer ({PACKAGE}@{VERSION}) is not installed: {exc}\n"
              f"  /docs/events will answer 503 until it is; install it with: {HOW_TO}", file=sys.stderr)
        return 0 if args.warn_only else 1
    state = "installed" if fetched else "already installed"
    print(f"docs assets: {PACKAGE}@{VERSION} {state} in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
