"""Reading the indexes for a refresh: wheels, releases and METADATA, a faulty listing named."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from resolver.errors import ExternalToolError
from resolver.index.client import IndexClient
from resolver.index.listing import IndexFile
from resolver.matrix.model import (
    Matrix,
    variant_kind,
)
from resolver.matrix.refresh.wheels import Metadata, Wheel, parse_metadata, read_wheel, variant_sort_key
from resolver.matrix.wheeltags import tag_platforms_all
from resolver.sources import Indexes

FAULTY_HINT = "the index or a proxy in front of it is faulty; nothing was written"
# --- reading the indexes -----------------------------------------------------------------------


@dataclass
class IndexReader:
    client: IndexClient
    indexes: Indexes
    general: str
    warnings: list[str] = field(default_factory=list)

    def wheels(self, index_url: str, project: str) -> list[Wheel]:
        url = self.client.project_url(index_url, project)
        out = []
        for file in self.client.files(index_url, project):
            if not file.filename.endswith(".whl"):
                continue
            try:
                out.append(read_wheel(file))
            except (InvalidWheelFilename, InvalidVersion):
                raise ExternalToolError(
                    f"{url} lists a wheel whose file name cannot be read: {file.filename!r}",
                    hint=FAULTY_HINT,
                ) from None
        return out

    def releases(self, project: str) -> dict[Version, list[IndexFile]]:
        """Files of a project on the general index by public version (wheels and sdists)."""
        url = self.client.project_url(self.general, project)
        out: dict[Version, list[IndexFile]] = {}
        for file in self.client.files(self.general, project):
            try:
                if file.filename.endswith(".whl"):
                    version = parse_wheel_filename(file.filename)[1]
                else:
                    version = parse_sdist_filename(file.filename)[1]
            except (InvalidWheelFilename, InvalidVersion):
                raise ExternalToolError(
                    f"{url} lists a wheel whose file name cannot be read: {file.filename!r}",
                    hint=FAULTY_HINT,
                ) from None
            except InvalidSdistFilename:
                continue  # installers and odd legacy archives carry no facts for the matrix
            out.setdefault(Version(version.public), []).append(file)
        return out

    def metadata(self, files: Sequence[IndexFile], prefer: str = "linux-x86_64") -> Metadata | None:
        """METADATA of one file (a `prefer` platform wheel first); None where none is served."""
        candidates = [f for f in files if f.has_metadata]
        if not candidates:
            return None

        def rank(file: IndexFile) -> tuple[int, str]:
            platform_tags = file.filename.removesuffix(".whl").rsplit("-", 1)[-1]
            platforms = [p for p, _ in tag_platforms_all(platform_tags)]
            return (0 if prefer in platforms else 1, file.filename)

        chosen = min(candidates, key=rank)
        return parse_metadata(self.client.metadata(chosen))


def upload_day(files: Iterable[IndexFile]) -> str | None:
    times = sorted(f.upload_time for f in files if f.upload_time)
    day = times[0][:10] if times else None
    try:
        return date.fromisoformat(day).isoformat() if day else None
    except ValueError:
        return None


def all_yanked(files: Sequence[IndexFile]) -> bool:
    return bool(files) and all(f.yanked for f in files)


def candidate_variants(matrix: Matrix, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Variants to look for on the PyTorch index: every variant the matrix names, one per CUDA
    toolkit in cuda.toml (a variant without a toolkit could not validate anyway), and `extra`."""
    names = {v for release in matrix.torch for v in release.variants}
    for toolkit in matrix.toolkits:
        names.add(f"cu{toolkit.version.major}{toolkit.version.minor}")
    names.update(extra)
    return tuple(sorted((n for n in names if variant_kind(n) is not None), key=variant_sort_key))
