"""AMD and Intel GPUs: pure parsers for what their tools print, and the ordered probe chains.

AMD, first answer wins (after the overrides in `probes.py`):

1. `/sys/class/kfd/kfd/topology/nodes/*/properties`: the kernel's own list of GPU agents, with the
   gfx target encoded in `gfx_target_version` (90402 -> gfx942, 90010 -> gfx90a); no tool needed.
   Older kernels publish no `gfx_target_version`; then the chain moves on to the tools;
2. `rocminfo`: agents with `Device Type: GPU`, their `Name` (gfx942) and `Marketing Name`;
3. `amd-smi static --asic --json`: `target_graphics_version` and `market_name` (the parser also
   reads the human-readable form, `TARGET_GRAPHICS_VERSION:` / `MARKET_NAME:`, which is what users
   paste).

The ROCm release comes from `/opt/rocm/.info/version`, else `amd-smi version`.

Intel: `xpu-smi discovery -j` (names; the parser also reads the table `xpu-smi discovery` prints
without `-j`), else PCI display devices of vendor 0x8086 under
`/sys/class/drm/card*/device`.

The parsers raise `ProbeParseError`; the chains turn it into a warning naming the source and move
on, like the NVIDIA chain. Absent sources are silent: no AMD or Intel GPU is a normal answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from resolver.host.hostfile import parse_gfx_target
from resolver.host.model import Gpu
from resolver.host.parse import ProbeParseError

KFD_NODES_GLOB = "/sys/class/kfd/kfd/topology/nodes/*/properties"
ROCM_INFO_VERSION = "/opt/rocm/.info/version"
DRM_VENDOR_GLOB = "/sys/class/drm/card*/device/vendor"
AMD_PCI_VENDOR = 0x1002
INTEL_PCI_VENDOR = 0x8086
AMD_SMI_ARGS = ("static", "--asic", "--json")
XPU_SMI_ARGS = ("discovery", "-j")

_ROCM_VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?)", re.ASCII)
_AGENT_RE = re.compile(r"^\s*Agent\s+\d+\s*$", re.MULTILINE)
_FIELD_RE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?):\s*(.*?)\s*$")
_AMD_SMI_BLOCK_RE = re.compile(r"^([A-Z][A-Z_]*): *\d+\s*$")
_AMD_SMI_FIELD_RE = re.compile(r"^\s+([A-Za-z][A-Za-z_ ]*?)\s*:\s*(.*)$")
_XPU_NAME_RE = re.compile(r"Device Name:[ \t]*(.*?)[ \t]*\|?[ \t]*$", re.MULTILINE)

Read = Callable[[str], "str | None"]
Run = Callable[[Sequence[str], str], "str | None"]
Glob = Callable[[str], Sequence[str]]


# --- pure parsers ------------------------------------------------------------------------------


def gfx_from_target_version(value: int) -> str:
    """KFD's gfx_target_version (major*10000 + minor*100 + stepping) -> "gfx942"; the minor and
    stepping are hex digits in the target name (90010 -> gfx90a, 100300 -> gfx1030)."""
    major, rest = divmod(value, 10000)
    minor, stepping = divmod(rest, 100)
    if major <= 0 or minor > 15 or stepping > 15:
        raise ProbeParseError(f"not a gfx_target_version: {value}")
    return f"gfx{major}{minor:x}{stepping:x}"


class KfdNoTarget(ProbeParseError):
    """A KFD GPU node whose `properties` has no `gfx_target_version` line: kernels before the line
    was added publish none, so the node's target must come from rocminfo or amd-smi."""


def parse_kfd_properties(text: str) -> str | None:
    """One KFD topology node's `properties` file -> its gfx target, or None for a CPU node (no
    SIMDs, or a zero target). Raises `KfdNoTarget` for a GPU node of a kernel that does not
    publish `gfx_target_version`."""
    values: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ProbeParseError(f"line {number}: expected 'name value', got {line!r}")
        values[parts[0]] = int(parts[1])
    if "simd_count" not in values:
        raise ProbeParseError("no simd_count")
    if values["simd_count"] == 0:
        return None  # a CPU agent, whatever else the file says (old kernels: no target line)
    if "gfx_target_version" not in values:
        raise KfdNoTarget("a GPU node without gfx_target_version (a kernel too old to publish it)")
    if values["gfx_target_version"] == 0:
        return None
    return gfx_from_target_version(values["gfx_target_version"])


def parse_rocminfo(text: str) -> tuple[tuple[str, str], ...]:
    """`rocminfo` -> (gfx target, marketing name) of each GPU agent, in agent order."""
    if "Agent" not in text:
        raise ProbeParseError("no 'Agent' sections")
    gpus = []
    for block in _AGENT_RE.split(text)[1:]:
        fields: dict[str, str] = {}
        for line in block.splitlines():
            match = _FIELD_RE.match(line)
            if match and match.group(1) not in fields:
                fields[match.group(1)] = match.group(2)
        if fields.get("Device Type", "").upper() != "GPU":
            continue
        try:
            gfx = parse_gfx_target(fields.get("Name", ""))
        except ValueError:
            raise ProbeParseError(
                f"GPU agent with a name that is not a gfx target: {fields.get('Name')!r}"
            ) from None
        gpus.append((gfx, fields.get("Marketing Name", "")))
    return tuple(gpus)


def parse_amd_smi_static(text: str) -> tuple[tuple[str, str], ...]:
    """`amd-smi static --asic` -> (gfx target, market name) per GPU. Reads the JSON of `--json`
    (the list of per-GPU objects older amd-smi prints, or the {"gpu_data": [...]} wrapper of newer
    ones) and the human-readable form (`GPU: 0` / `ASIC:` / `TARGET_GRAPHICS_VERSION: gfx942`)."""
    if not text.lstrip().startswith(("{", "[")):
        return _parse_amd_smi_static_text(text)
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProbeParseError(f"not JSON: {exc.msg}") from None
    if isinstance(data, dict):
        data = data.get("gpu_data")
    if not isinstance(data, list):
        raise ProbeParseError("expected a list of GPUs")
    gpus = []
    for item in data:
        asic = item.get("asic") if isinstance(item, dict) else None
        if not isinstance(asic, dict):
            raise ProbeParseError("a GPU entry has no 'asic' object")
        gpus.append(_amd_smi_gpu(asic.get("target_graphics_version"), asic.get("market_name")))
    return tuple(gpus)


def _amd_smi_gpu(target: object, name: object) -> tuple[str, str]:
    try:
        gfx = parse_gfx_target(str(target))
    except ValueError:
        raise ProbeParseError(f"target_graphics_version is not a gfx target: {target!r}") from None
    return gfx, str(name or "")


def _parse_amd_smi_static_text(text: str) -> tuple[tuple[str, str], ...]:
    """The human-readable form: a `GPU: N` line at the margin opens each GPU (`CPU: N` and the
    like open blocks that are skipped); the indented `KEY: value` lines below it are read with
    the key's case, blanks and underscores ignored."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        block = _AMD_SMI_BLOCK_RE.match(line)
        if block:
            current = {} if block.group(1) == "GPU" else None
            if current is not None:
                blocks.append(current)
            continue
        match = _AMD_SMI_FIELD_RE.match(line)
        if current is not None and match:
            key = re.sub(r"[\s_]", "", match.group(1)).lower()
            current.setdefault(key, match.group(2).strip())
    if not blocks:
        raise ProbeParseError("neither JSON nor 'GPU: N' blocks")
    gpus = []
    for fields in blocks:
        if "targetgraphicsversion" not in fields:
            raise ProbeParseError("a GPU block has no TARGET_GRAPHICS_VERSION")
        gpus.append(_amd_smi_gpu(fields["targetgraphicsversion"], fields.get("marketname")))
    return tuple(gpus)


def parse_rocm_version(text: str) -> str:
    """`/opt/rocm/.info/version` ("6.4.1-120") or `amd-smi version` ("... ROCm version: 6.4.1") -> 6.4.1."""
    marker = text.split("ROCm version:", 1)[-1] if "ROCm version:" in text else text
    match = _ROCM_VERSION_RE.search(marker)
    if not match:
        raise ProbeParseError(f"no ROCm version in {text.strip()[:80]!r}")
    return match.group(1)


def parse_xpu_smi_discovery(text: str) -> tuple[str, ...]:
    """`xpu-smi discovery -j` -> the device names, in device order. Also reads the table plain
    `xpu-smi discovery` prints (one `Device Name: ...` line per device, with or without the
    `|` borders of older releases)."""
    if not text.lstrip().startswith("{"):
        names = tuple(m.group(1) for m in _XPU_NAME_RE.finditer(text))
        if not names and "Device ID" not in text:
            raise ProbeParseError("neither JSON nor the discovery table")
        return names
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProbeParseError(f"not JSON: {exc.msg}") from None
    devices = data.get("device_list") if isinstance(data, dict) else None
    if not isinstance(devices, list):
        raise ProbeParseError("no 'device_list'")
    return tuple(str(d.get("device_name") or "") if isinstance(d, dict) else "" for d in devices)


def pci_id(text: str) -> int:
    """A sysfs PCI id file ("0x8086\\n") -> its value."""
    try:
        return int(text.strip(), 16)
    except ValueError:
        raise ProbeParseError(f"not a PCI id: {text.strip()!r}") from None


def is_display_class(text: str) -> bool:
    """PCI class 0x03xxxx: a display controller (VGA 0x0300, 3D 0x0302, other 0x0380)."""
    return pci_id(text) >> 16 == 0x03


def parse_amd_gpus_override(text: str) -> tuple[Gpu, ...]:
    """`STACK_RESOLVER_AMD_GPUS`: `;`- or `,`-separated `[NAME=]GFX`, e.g. `gfx942;gfx942`."""
    gpus = []
    for index, item in enumerate(p for p in re.split(r"[;,]", text) if p.strip()):
        name, _, gfx = item.rpartition("=")
        gpus.append(Gpu(index, name.strip(), None, vendor="amd", gfx_target=parse_gfx_target(gfx)))
    return tuple(gpus)


def parse_intel_gpus_override(text: str) -> tuple[Gpu, ...]:
    """`STACK_RESOLVER_INTEL_GPUS`: `;`-separated names, e.g. `Intel Arc A770;Intel Arc A770`."""
    names = [p.strip() for p in text.split(";") if p.strip()]
    return tuple(Gpu(i, name, None, vendor="intel") for i, name in enumerate(names))


# --- probe chains ------------------------------------------------------------------------------


@dataclass
class VendorReport:
    """What the AMD or Intel chain found: GPUs, the ROCm release, and the source of each."""

    gpus: tuple[Gpu, ...] | None = None
    gpus_source: str | None = None
    rocm_version: str | None = None
    rocm_source: str | None = None
    warnings: list[str] = field(default_factory=list)


def _amd(pairs: Sequence[tuple[str, str]]) -> tuple[Gpu, ...]:
    return tuple(Gpu(i, name, None, vendor="amd", gfx_target=gfx) for i, (gfx, name) in enumerate(pairs))


def probe_amd(read: Read, run: Run, glob: Glob) -> VendorReport:
    """The AMD chain. `read(path)` and `run(argv, source)` return None for an absent (or, with a
    warning already given, broken) source."""
    report = VendorReport()
    nodes = sorted(
        glob(KFD_NODES_GLOB), key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p)]
    )
    targets = []
    untargeted = 0
    for path in nodes:
        text = read(path)
        if text is None:
            continue
        try:
            gfx = parse_kfd_properties(text)
        except KfdNoTarget:
            untargeted += 1
            continue
        except ProbeParseError as exc:
            report.warnings.append(f"{path}: {exc}")
            continue
        if gfx is not None:
            targets.append((gfx, ""))
    if untargeted:
        # One kernel, one format: a list without these GPUs would be short, so ask the tools.
        report.warnings.append(
            f"/sys/class/kfd: {untargeted} GPU node(s) publish no gfx_target_version "
            "(an older kernel); asking rocminfo and amd-smi"
        )
        targets = []
    if targets:
        report.gpus, report.gpus_source = _amd(targets), "/sys/class/kfd"
    for argv, source, parser in (
        (("rocminfo",), "rocminfo", parse_rocminfo),
        (("amd-smi", *AMD_SMI_ARGS), "amd-smi", parse_amd_smi_static),
    ):
        if report.gpus is not None:
            break
        text = run(argv, source)
        if text is None:
            continue
        try:
            found = parser(text)
        except ProbeParseError as exc:
            report.warnings.append(f"{source}: {exc}")
            continue
        report.gpus, report.gpus_source = _amd(found), source
    for path_or_argv, source in (
        (ROCM_INFO_VERSION, ROCM_INFO_VERSION),
        (("amd-smi", "version"), "amd-smi version"),
    ):
        if report.rocm_version is not None:
            break
        text = read(path_or_argv) if isinstance(path_or_argv, str) else run(path_or_argv, source)
        if text is None:
            continue
        try:
            report.rocm_version, report.rocm_source = parse_rocm_version(text), source
        except ProbeParseError as exc:
            report.warnings.append(f"{source}: {exc}")
    return report


def probe_intel(read: Read, run: Run, glob: Glob) -> VendorReport:
    """The Intel chain: xpu-smi, then PCI display devices of vendor 0x8086 in sysfs."""
    report = VendorReport()
    text = run(("xpu-smi", *XPU_SMI_ARGS), "xpu-smi")
    if text is not None:
        try:
            names = parse_xpu_smi_discovery(text)
            report.gpus = tuple(Gpu(i, name, None, vendor="intel") for i, name in enumerate(names))
            report.gpus_source = "xpu-smi"
            return report
        except ProbeParseError as exc:
            report.warnings.append(f"xpu-smi: {exc}")
    found = []
    cards = [p for p in glob(DRM_VENDOR_GLOB) if re.fullmatch(r"card\d+", p.split("/")[-3])]
    for vendor_path in sorted(cards, key=lambda p: int(p.split("/")[-3][4:])):
        device_dir = vendor_path.rsplit("/", 1)[0]
        try:
            vendor, klass = read(vendor_path), read(f"{device_dir}/class")
            if (
                vendor is None
                or klass is None
                or pci_id(vendor) != INTEL_PCI_VENDOR
                or not is_display_class(klass)
            ):
                continue
            device = read(f"{device_dir}/device")
            found.append(f"Intel GPU {pci_id(device):#06x}" if device is not None else "Intel GPU")
        except ProbeParseError as exc:
            report.warnings.append(f"{device_dir}: {exc}")
    if found:
        report.gpus = tuple(Gpu(i, name, None, vendor="intel") for i, name in enumerate(found))
        report.gpus_source = "/sys/class/drm"
    return report
