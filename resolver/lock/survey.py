"""The one availability survey before the solve: the pip indexes (for Poetry locks) and the conda
channels (for conda locks) are asked at once, and what they lack becomes one `Availability` the
solver takes as input. `--dry-run` skips it (nothing is asked: `Availability(checked=False)`);
`--dry-run --check-indexes` runs exactly this, so it chooses what a real run chooses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from resolver.host.model import Host
from resolver.index.availability import Availability, survey_indexes
from resolver.index.client import IndexClient
from resolver.matrix.model import Matrix
from resolver.solve.request import Request
from resolver.sources import Indexes

if TYPE_CHECKING:
    from resolver.lock.conda import CondaSettings


def survey_channels(
    host: Host, matrix: Matrix, packages: Sequence[str], conda: CondaSettings
) -> Availability:
    # The conda machinery (asyncio, py-rattler) is loaded only for conda targets.
    from resolver.lock.conda import channel_gaps

    builds, transformers = channel_gaps(matrix, host, packages, conda)
    return Availability(builds, transformers, checked=True)


def survey(
    host: Host,
    matrix: Matrix,
    request: Request,
    formats: Sequence[str],
    indexes: Indexes,
    client: IndexClient,
    conda: CondaSettings | None,
) -> Availability:
    """Everything the formats' sources lack for `host`, asked in parallel."""
    jobs: list[Callable[[], Availability]] = []
    if "conda" in formats and conda is not None:
        jobs.append(lambda: survey_channels(host, matrix, request.packages, conda))
    if "poetry" in formats:
        # Both run at once and the solver takes the union; with the channels asked too, the pip
        # survey cannot stop at its first complete candidate (the channels may lack that one).
        complete = len(jobs) == 0
        jobs.append(lambda: survey_indexes(host, matrix, request, indexes, client, until_complete=complete))
    if not jobs:
        return Availability(checked=True)
    if len(jobs) == 1:
        return jobs[0]()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = [future.result() for future in [pool.submit(job) for job in jobs]]
    found = Availability(checked=True)
    for result in results:
        found = found.merged(result)
    return found
