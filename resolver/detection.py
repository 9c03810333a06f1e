"""The host a command runs for: read from a host file (the `STACK_RESOLVER_*` overrides applied)
or probed from this machine. A GPU may be given by its product name, looked up in a matrix the
caller hands in, by default the shipped one (loaded only when a name is looked up). Loads neither
the solver nor the index client: `detect` runs on this alone."""

from __future__ import annotations

import os
from pathlib import Path

from resolver.host.gpunames import GpuNames
from resolver.host.model import Host
from resolver.matrix.products import shipped_gpu_names


def detect_host(host_file: Path | None, names: GpuNames | None = None) -> tuple[Host, tuple[str, ...]]:
    """(host, warnings): read from a file, or probed from this machine. A GPU may be given by its
    product name: `names` from the matrix in use (`gpu_names(matrix)`), by default the shipped one's."""
    names = names or shipped_gpu_names()
    if host_file is not None:
        from resolver.host import overrides
        from resolver.host.hostfile import read_host_file

        # the STACK_RESOLVER_* variables beat the host file, as they beat every probe
        return overrides.with_overrides(read_host_file(host_file, gpu_names=names), os.environ, names), ()
    from resolver.host import probes

    detection = probes.detect(probes.Probes.system(Path.cwd(), gpu_names=names))
    return detection.host, detection.warnings
