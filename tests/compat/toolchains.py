"""Build-once, cache-forever for the non-Python clients of the compatibility matrix.

Each client is installed by the project's own files in tests/compat/ (java/pom.xml, go/go.mod+go.sum,
node/package.json+package-lock.json) into `<repo>/.cache/compat/<client>-<hash>/`, where the hash is
over every source file that goes into it: a second run (or a CI run with the cache dir restored)
builds nothing. A build goes to a temporary directory renamed into place at the end, so an
interrupted build never leaves a half-built cache entry. A missing toolchain is a `Missing` error
whose message says what to install; the tests turn it into a skip with that reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = Path(os.environ.get("BROOK_COMPAT_CACHE", REPO / ".cache" / "compat"))
BUILD_TIMEOUT_S = 900


class Missing(Exception):
    """A toolchain this client needs is not installed."""


class BuildFailed(Exception):
    """The toolchain is there but the build failed (the message has the tail of its output)."""


def _hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(HERE)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _need(*tools: str) -> None:
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        raise Missing(f"{', '.join(absent)} not installed (the matrix needs Java 17 + Maven, Go and Node.js/npm)")


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        raise BuildFailed(f"{' '.join(argv)} timed out after {BUILD_TIMEOUT_S}s") from e
    if proc.returncode != 0:
        raise BuildFailed(f"{' '.join(argv)} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-3000:]}")


def _cached(name: str, sources: list[Path], build) -> Path:
    """The cache entry for these sources, built by `build(tmp_dir)` on the first call."""
    target = CACHE / f"{name}-{_hash(sources)}"
    if target.is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass(frozen=True)
class Jvm:
    """Kafka 4.4.0 jars (kafka-clients, kafka-tools and their dependencies) and the compiled programs."""

    root: Path

    @property
    def classpath(self) -> str:
        return f"{self.root / 'classes'}{os.pathsep}{self.root / 'jars' / '*'}"

    def argv(self, main_class: str, *args: str) -> list[str]:
        return ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", self.classpath, main_class, *args]


def jvm() -> Jvm:
    """Kafka 4.4.0's Java client and tools (java/pom.xml) with the matrix programs."""
    return _jvm("jvm", HERE / "java")


def jvm_streams() -> Jvm:
    """Kafka Streams 4.4.0 (jvm_apps/pom.xml) with jvm_apps/WordCount.java."""
    return _jvm("jvm-streams", HERE / "jvm_apps")


def jvm_connect() -> Jvm:
    """Kafka Connect, its FileStream connectors and MirrorMaker 2 (jvm_apps/connect/pom.xml: 4.3.1,
    the newest release of connect-file and connect-mirror that the registry serves)."""
    return _jvm("jvm-connect", HERE / "jvm_apps" / "connect")


def _jvm(name: str, src: Path) -> Jvm:
    """The jars of `src`/pom.xml and its *.java compiled against them, cached by their hash."""
    _need("java", "javac", "mvn")
    sources = [src / "pom.xml", *src.glob("*.java")]

    def build(tmp: Path) -> None:
        _run(["mvn", "-q", "-B", "-f", str(src / "pom.xml"), "dependency:copy-dependencies",
              f"-DoutputDirectory={tmp / 'jars'}"], cwd=src)
        java_files = [str(s) for s in src.glob("*.java")]
        if java_files:
            _run(["javac", "-nowarn", "-d", str(tmp / "classes"), "-cp", str(tmp / "jars" / "*"), *java_files], cwd=src)
        else:
            (tmp / "classes").mkdir()

    return Jvm(_cached(name, sources, build))


def go_binaries() -> Path:
    """A directory holding the `franz` and `sarama` executables."""
    _need("go")
    src = HERE / "go"
    sources = [src / "go.mod", src / "go.sum", *src.rglob("*.go")]

    def build(tmp: Path) -> None:
        _run(["go", "build", "-trimpath", "-o", str(tmp) + os.sep, "./franz", "./sarama"], cwd=src,
             env={"GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"})

    return _cached("go", sources, build)


def node_modules() -> Path:
    """A node_modules directory with kafkajs and its codec packages (for NODE_PATH)."""
    _need("node", "npm")
    src = HERE / "node"
    sources = [src / "package.json", src / "package-lock.json"]

    def build(tmp: Path) -> None:
        shutil.copy(src / "package.json", tmp)
        shutil.copy(src / "package-lock.json", tmp)
        # No install scripts: lz4's optional native build is not needed (it has a JS implementation).
        _run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=tmp)

    return _cached("node", sources, build) / "node_modules"
