"""What CUDA sees: `NVIDIA_VISIBLE_DEVICES`, `CUDA_VISIBLE_DEVICES` and MIG, from a table of cases;
`nvidia-smi -L` fixtures; detection records it and the host JSON round-trips."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from resolver.errors import HostFileError
from resolver.host import hostfile as hf
from resolver.host import parse as hp
from resolver.host import visible
from resolver.host.hostfile import parse_host_json
from resolver.host.model import ComputeCapability, Gpu, MigDevice
from tests.host.test_probes import FakeNvml, Machine, data, detect, ok

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA = Path(__file__).parents[1] / "data"
CASES = tomllib.loads((DATA / "visible" / "cases.toml").read_text(encoding="utf-8"))["case"]


def gpu_from(spec: str) -> Gpu:
    head, bar, migs = spec.partition("|")
    index, cc, *uuid = head.split(":", 2)
    mig = tuple(MigDevice(uuid=u, name="1g.5gb") for u in migs.split(",") if u) if bar else None
    return Gpu(
        int(index), f"GPU{index}", ComputeCapability.parse(cc), uuid=uuid[0] if uuid else None, mig=mig
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_visibility(case: dict[str, Any]) -> None:
    gpus = tuple(gpu_from(s) for s in case["gpus"])
    seen = visible.resolve_visibility(gpus, case.get("cuda"), case.get("nvidia"))
    shown = [f"{d.gpu}/{d.mig}" if d.mig else str(d.gpu) for d in seen.devices]
    assert shown == case["devices"]
    assert [d.index for d in seen.devices] == list(range(len(seen.devices)))
    assert list(seen.masked) == case["masked"]
    for device in seen.devices:  # a MIG instance has its parent's compute capability
        assert device.compute_capability == gpus[device.gpu].compute_capability
    if "note" in case:
        assert any(case["note"] in note for note in seen.notes), seen.notes


def test_nvidia_smi_list_fixtures() -> None:
    listed = hp.parse_nvidia_smi_list(data("nvidia-smi/list-a100-mig.txt"))
    assert [(g.index, g.uuid) for g in listed] == [
        (0, "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77"),
        (1, "GPU-0b6a1c4d-5a7e-2f3b-9c1d-7e8f9a0b1c2d"),
    ]
    assert [(m.name, m.uuid) for m in listed[0].mig or ()] == [
        ("3g.20gb", "MIG-8ccf34cf-4e66-5a62-b8a4-fa5a1b22cea3"),
        ("1g.5gb", "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"),
        ("1g.5gb", "MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb"),
    ]
    assert listed[1].mig is None
    old = hp.parse_nvidia_smi_list(data("nvidia-smi/list-a100-mig-r450.txt"))
    assert [m.uuid for m in old[0].mig or ()] == [
        "MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/7/0",
        "MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/8/0",
    ]
    assert hp.parse_nvidia_smi_list(data("nvidia-smi/a100-sxm4-40gb-x2.csv")) == ()


class SmiMachine(Machine):
    """nvidia-smi answers the CSV query and `-L` differently."""

    def run(self, argv: Any) -> Any:
        self.ran.append(argv[0])
        if argv[0] == "nvidia-smi" and list(argv[1:]) == ["-L"]:
            return ok(data("nvidia-smi/list-a100-mig.txt"))
        return super().run(argv)


def test_detection_records_mig_and_masking_and_round_trips() -> None:
    machine = SmiMachine(commands={"nvidia-smi": ok(data("nvidia-smi/a100-sxm4-40gb-x2.csv"))})
    detection = detect(machine, environ={"CUDA_VISIBLE_DEVICES": "MIG-c6d4f1ef"})
    host = detection.host
    assert host.gpus[0].uuid == "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77"
    assert len(host.gpus[0].mig or ()) == 3 and host.gpus[1].mig is None
    (device,) = host.cuda_devices
    assert (device.index, device.gpu, device.compute_capability) == (0, 0, ComputeCapability(8, 0))
    assert device.mig == "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f" and device.name == "MIG 1g.5gb"
    assert host.masked_gpus == (1,) and host.cuda_visible_devices == "MIG-c6d4f1ef"
    from resolver.host.render import render_host

    assert "   MIG mode: 3g.20gb, 1g.5gb, 1g.5gb (sm_80 each)" in render_host(host)
    assert host.sources["visible_devices"] == "CUDA_VISIBLE_DEVICES"
    text = host.dumps()
    payload = json.loads(text)
    assert payload["masked_gpus"] == [1] and payload["visible_devices"][0]["gpu"] == 0
    again = parse_host_json(text)
    assert again == host and again.dumps() == text


def test_nvml_reports_uuids_and_mig_instances() -> None:
    class MigNvml(FakeNvml):
        def nvmlDeviceGetUUID(self, handle: Any) -> str:
            return f"MIG-{handle[1]}" if isinstance(handle, tuple) else f"GPU-{handle}"

        def nvmlDeviceGetMigMode(self, handle: Any) -> tuple[int, int]:
            return (1, 1) if handle == 0 else (0, 0)

        def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
            return 7

        def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, slot: int) -> Any:
            if slot >= 2:
                raise RuntimeError("NVMLError_NotFound")
            return (handle, slot)

    a100 = ("NVIDIA A100-SXM4-40GB", (8, 0), 42949672960)
    nvml = MigNvml(gpus=(a100, a100))
    host = detect(Machine(nvml=nvml), environ={}).host
    assert host.gpus[0].uuid == "GPU-0"
    assert [m.uuid for m in host.gpus[0].mig or ()] == ["MIG-0", "MIG-1"]
    # No CUDA_VISIBLE_DEVICES: one MIG instance of GPU 0, then the whole GPUs.
    assert [(d.gpu, d.mig) for d in host.cuda_devices][:2] == [(0, "MIG-0"), (1, None)]


def test_old_host_files_read_and_write_unchanged() -> None:
    text = (
        '{"os": "linux", "arch": "x86_64", "gpus": [{"index": 0, "name": "A", "compute_capability": "8.0"},'
        ' {"index": 1, "name": "B", "compute_capability": "8.6"}]}'
    )
    host = parse_host_json(text)
    assert host.visible_devices is None and "visible_devices" not in host.to_json()
    assert [d.gpu for d in host.cuda_devices] == [0, 1]
    assert "uuid" not in host.to_json()["gpus"][0]
    masked, notes = visible.with_visibility(host, {"CUDA_VISIBLE_DEVICES": "1"})
    assert [d.gpu for d in masked.cuda_devices] == [1] and masked.masked_gpus == (0,)
    assert notes == (
        "indices in CUDA_VISIBLE_DEVICES are read in nvidia-smi's order; set "
        "CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA numbers these different GPUs the same way",
    )
    ordered = {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert visible.with_visibility(host, ordered)[1] == ()
    assert parse_host_json(masked.dumps()) == masked
    # What a host file records wins over this process's variables.
    recorded = parse_host_json(text[:-1] + ', "cuda_visible_devices": "0"}')
    assert [
        d.gpu for d in visible.with_visibility(recorded, {"CUDA_VISIBLE_DEVICES": "1"})[0].cuda_devices
    ] == [0]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"visible_devices": [{"index": 0}]}, "visible_devices[0]"),
        ({"masked_gpus": ["0"]}, "masked_gpus"),
        (
            {"gpus": [{"index": 0, "compute_capability": "8.0", "mig": [{"uuid": "x"}]}]},
            "gpus[0].mig[0].uuid",
        ),
        ({"limits": {"cpu_quota": -1}}, "limits.cpu_quota"),
        ({"limits": {"cgroups": "v2"}}, "limits.cgroups"),
    ],
)
def test_bad_visibility_keys_name_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(HostFileError) as error:
        hf.host_from_mapping({"os": "linux", "arch": "x86_64", **change}, "host.json")
    assert key in error.value.render()


def test_verify_expects_the_devices_cuda_sees(tmp_path: Path) -> None:
    from resolver.host.render import render_host
    from resolver.verify import poetry as verify
    from tests.verify.test_verify import write_target

    two = parse_host_json(
        '{"os": "linux", "arch": "x86_64", "python": "3.11", "nvidia_driver": "550.54.15", "gpus": ['
        '{"index": 0, "name": "H100", "compute_capability": "9.0"},'
        '{"index": 1, "name": "H100", "compute_capability": "9.0"}]}'
    )
    host, _ = visible.with_visibility(two, {"CUDA_VISIBLE_DEVICES": "1"})
    directory = write_target(tmp_path / "envs", "gpu", "cu129")
    assert verify.read_expectations(directory, two).host_gpus == 2
    assert verify.read_expectations(directory, host).host_gpus == 1
    shown = render_host(host)
    assert "CUDA sees  cuda:0 = GPU 1 (H100) (CUDA_VISIBLE_DEVICES='1')" in shown
    assert "Masked     GPU 0" in shown


def test_variables_on_a_host_without_nvidia_gpus_change_nothing_and_say_nothing() -> None:
    seen = visible.resolve_visibility((), "0,1", "all")
    assert seen == visible.Visibility(devices=(), masked=(), notes=())
