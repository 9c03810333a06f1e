"""Which GPUs CUDA will see in this process: `NVIDIA_VISIBLE_DEVICES`, then `CUDA_VISIBLE_DEVICES`.

Pure: the detected GPUs and the two variables' values in, the devices CUDA enumerates (in its
order) and the GPUs it hides out.

- `NVIDIA_VISIBLE_DEVICES` is the container runtime's: `all` (every GPU), `none` (the driver but
  no GPU), `void` or empty (nothing), or a list of indices, UUIDs or `GPU:MIG` pairs. Inside a
  container the runtime has already applied it and NVML lists only those GPUs, renumbered from 0;
  so a list that names GPUs this host does not have, while the host has exactly as many GPUs as
  the list names, counts as already applied.
- `CUDA_VISIBLE_DEVICES` (as the CUDA runtime reads it): unset means every device; empty or `-1`
  means none; otherwise a comma-separated list of indices, `GPU-` UUIDs (a unique prefix is
  enough) or `MIG-` UUIDs, enumerated in the order given. The list stops at the first entry that
  names no device (or one already named): `0,2,-1,1` shows 0 and 2.
- MIG: a GPU in MIG mode is reached through its instances, each a device of the parent's compute
  capability; a CUDA process enumerates at most one MIG instance.

Indices count in nvidia-smi's order (PCI bus), which is CUDA's with `CUDA_DEVICE_ORDER=PCI_BUS_ID`;
on a host with different GPU models CUDA's default order (fastest first) may differ, and a note
says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from resolver.host.model import CudaDevice, Gpu, Host, MigDevice, cuda_device, default_cuda_devices

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
NVIDIA_VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"


@dataclass(frozen=True)
class Visibility:
    devices: tuple[CudaDevice, ...]
    masked: tuple[int, ...]  # indices of GPUs no visible device comes from
    notes: tuple[str, ...] = ()


_Choice = tuple[Gpu, MigDevice | None]


def _by_uuid(gpus: Sequence[Gpu], token: str) -> Gpu | str:
    """The GPU a (prefix of a) UUID names; a string saying why not when none or several do."""
    wanted = token if token.upper().startswith("GPU-") else f"GPU-{token}"
    known = [g for g in gpus if g.uuid]
    if not known:
        return f"{token!r} is a UUID and no GPU UUIDs were detected"
    found = [g for g in known if (g.uuid or "").lower().startswith(wanted.lower())]
    if len(found) > 1:
        return f"{token!r} is the start of {len(found)} GPU UUIDs"
    return found[0] if found else f"{token!r} names no GPU of this host"


def _mig_by_uuid(gpus: Sequence[Gpu], token: str) -> _Choice | str:
    found = [(g, m) for g in gpus for m in g.mig or () if m.uuid.lower().startswith(token.lower()) and m.uuid]
    if len(found) == 1:
        return found[0]
    return f"{token!r} is the start of several MIG UUIDs" if found else f"{token!r} names no MIG instance"


def _whole(gpu: Gpu) -> list[_Choice]:
    """A GPU named as a whole: itself, or (in MIG mode) its first instance, if any."""
    if gpu.mig is None:
        return [(gpu, None)]
    return [(gpu, gpu.mig[0])] if gpu.mig else []


def _cuda_list(gpus: Sequence[Gpu], value: str, renumbered: bool) -> tuple[list[_Choice], list[str]]:
    chosen: list[_Choice] = []
    notes: list[str] = []
    # In a container that exposes some GPUs, CUDA numbers them from 0 in bus order.
    by_index = dict(enumerate(gpus)) if renumbered else {g.index: g for g in gpus}
    for raw in value.split(","):
        token = raw.strip()
        found: list[_Choice] | str
        if token.lstrip("-").isdigit():
            gpu = by_index.get(int(token))
            found = _whole(gpu) if gpu is not None else f"{token} is not a GPU index of this host"
        elif token.upper().startswith("MIG-"):
            mig = _mig_by_uuid(gpus, token)
            found = [mig] if not isinstance(mig, str) else mig
        elif token:
            gpu_or_why = _by_uuid(gpus, token)
            found = _whole(gpu_or_why) if isinstance(gpu_or_why, Gpu) else str(gpu_or_why)
        else:
            found = "an empty entry"
        if isinstance(found, str) or any(f in chosen for f in found):
            why = found if isinstance(found, str) else f"{token!r} names a device twice"
            notes.append(f"{CUDA_VISIBLE_DEVICES}={value!r}: {why}; CUDA stops reading the list there")
            break
        chosen.extend(found)
    return chosen, notes


def _nvidia_list(gpus: Sequence[Gpu], value: str) -> tuple[list[Gpu], list[str]]:
    """The GPUs a container runtime exposes for NVIDIA_VISIBLE_DEVICES (after all/none/void)."""
    tokens = [t.strip() for t in value.split(",") if t.strip()]
    by_index = {str(g.index): g for g in gpus}
    kept: list[Gpu] = []
    missing: list[str] = []
    for token in tokens:
        head = token.split(":", 1)[0]  # "0:1" is MIG instance 1 of GPU 0
        gpu: Gpu | None = by_index.get(head)
        if token.upper().startswith("MIG-"):
            mig = _mig_by_uuid(gpus, token)
            gpu = mig[0] if not isinstance(mig, str) else None
        elif gpu is None and not head.isdigit():
            named = _by_uuid(gpus, token)
            gpu = named if isinstance(named, Gpu) else None
        if gpu is None:
            missing.append(token)
        elif gpu not in kept:
            kept.append(gpu)
    if missing and len(gpus) == len(tokens):
        note = f"{NVIDIA_VISIBLE_DEVICES}={value!r}: applied by the container runtime (GPUs renumbered)"
        return list(gpus), [note]
    notes = [f"{NVIDIA_VISIBLE_DEVICES}={value!r}: {t!r} names no GPU of this host" for t in missing]
    return sorted(kept, key=lambda g: g.index), notes


def resolve_visibility(
    gpus: Sequence[Gpu], cuda_visible: str | None, nvidia_visible: str | None, device_order: str | None = None
) -> Visibility:
    notes: list[str] = []
    gpus = [g for g in gpus if g.vendor == "nvidia"]  # CUDA enumerates NVIDIA GPUs only
    available = list(gpus)
    renumbered = False
    if nvidia_visible is not None:
        keyword = nvidia_visible.strip().lower()
        if keyword in ("", "void", "none"):
            available = []
            notes.append(f"{NVIDIA_VISIBLE_DEVICES}={nvidia_visible!r}: the container exposes no GPU")
        elif keyword != "all":
            available, more = _nvidia_list(gpus, nvidia_visible)
            notes.extend(more)
            renumbered = len(available) < len(gpus)
    if cuda_visible is None:
        devices = default_cuda_devices(tuple(available))
    else:
        if cuda_visible.strip() in ("", "-1"):
            chosen: list[_Choice] = []
            notes.append(f"{CUDA_VISIBLE_DEVICES}={cuda_visible!r}: CUDA sees no GPU")
        else:
            chosen, more = _cuda_list(available, cuda_visible, renumbered)
            notes.extend(more)
            migs = [c for c in chosen if c[1] is not None]
            if len(migs) > 1:
                notes.append(
                    f"{CUDA_VISIBLE_DEVICES} names {len(migs)} MIG instances; CUDA enumerates only the first"
                )
                chosen = [c for c in chosen if c[1] is None or c is migs[0]]
            models = {g.name for g in available}
            if len(models) > 1 and (device_order or "").strip().upper() != "PCI_BUS_ID":
                notes.append(
                    f"indices in {CUDA_VISIBLE_DEVICES} are read in nvidia-smi's order; set "
                    f"{CUDA_DEVICE_ORDER}=PCI_BUS_ID so CUDA numbers these different GPUs the same way"
                )
        devices = tuple(cuda_device(i, gpu, mig) for i, (gpu, mig) in enumerate(chosen))
    if not gpus:
        notes = []  # no NVIDIA GPU: what the variables say changes nothing
    shown = {d.gpu for d in devices}
    masked = tuple(g.index for g in gpus if g.index not in shown)
    return Visibility(devices=devices, masked=masked, notes=tuple(notes))


def with_visibility(host: Host, environ: Mapping[str, str]) -> tuple[Host, tuple[str, ...]]:
    """The host with what CUDA sees recorded. What a host file recorded wins; the variables it
    does not record are read from `environ` (this process's)."""
    if host.visible_devices is not None:
        return host, ()
    cuda = host.cuda_visible_devices
    nvidia = host.nvidia_visible_devices
    if cuda is None and nvidia is None:
        cuda = environ.get(CUDA_VISIBLE_DEVICES)
        nvidia = environ.get(NVIDIA_VISIBLE_DEVICES)
    seen = resolve_visibility(host.gpus, cuda, nvidia, environ.get(CUDA_DEVICE_ORDER))
    updated = dataclasses.replace(
        host,
        cuda_visible_devices=cuda,
        nvidia_visible_devices=nvidia,
        visible_devices=seen.devices,
        masked_gpus=seen.masked,
    )
    return updated, seen.notes
