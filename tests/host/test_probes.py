"""The probe chain (resolver/probes.py) with fakes passed through `Probes`: no monkeypatching."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from resolver.errors import HostFileError, InputError
from resolver.host import hostfile as hf
from resolver.host import model as h
from resolver.host import overrides
from resolver.host import probes as p
from resolver.host.render import render_gpu, render_host

DATA = Path(__file__).parents[1] / "data"
SMI_FAILED = (DATA / "nvidia-smi/failed-no-driver.txt").read_text()
LINUX = p.PlatformInfo(system="Linux", machine="x86_64", python=(3, 11))


def data(name: str) -> str:
    return (DATA / name).read_text()


# --- fakes --------------------------------------------------------------------------------


class NVMLError(Exception):
    """Shaped like pynvml's: a generated subclass per error code, str() is NVML's message."""

    message = "Unknown Error"

    def __str__(self) -> str:
        return self.message


class NVMLError_DriverNotLoaded(NVMLError):
    message = "Driver Not Loaded"


class NVMLError_LibraryNotFound(NVMLError):
    message = "NVML Shared Library Not Found"


class NVMLError_GpuIsLost(NVMLError):
    message = "GPU is lost"


@dataclass
class FakeNvml:  # method names are pynvml's
    """The subset of the pynvml module the probe calls."""

    driver: str | bytes = "550.54.15"
    cuda: int = 12040
    gpus: Sequence[tuple[str | bytes, tuple[int, int], int]] = (
        ("NVIDIA H100 80GB HBM3", (9, 0), 85520809984),
    )
    init_error: Exception | None = None
    gpu_error: Exception | None = None
    calls: list[str] = field(default_factory=list)

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        if self.gpu_error is not None:
            raise self.gpu_error
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        return self.gpus[handle][0]

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        return self.gpus[handle][1]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        @dataclass
        class Memory:
            total: int

        return Memory(self.gpus[handle][2])


Answer = subprocess.CompletedProcess[str] | BaseException


def ok(stdout: str) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], 0, stdout, "")


def failed(code: int, stdout: str = "", stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], code, stdout, stderr)


@dataclass
class Machine:
    """A fake machine: files, commands, an optional NVML. Records what was asked."""

    files: Mapping[str, str | OSError] = field(default_factory=dict)
    commands: Mapping[str, Answer] = field(default_factory=dict)
    nvml: Any = None
    ran: list[str] = field(default_factory=list)
    nvml_loads: int = 0

    def read_text(self, path: str) -> str | None:
        value = self.files.get(path)
        if isinstance(value, OSError):
            raise value
        return value

    def run(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
        self.ran.append(argv[0])
        answer = self.commands.get(argv[0])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def load_nvml(self) -> Any:
        self.nvml_loads += 1
        if isinstance(self.nvml, BaseException):
            raise self.nvml
        return self.nvml

    def probes(
        self,
        environ: Mapping[str, str] | None = None,
        platform: p.PlatformInfo = LINUX,
        confstr: Callable[[str], str | None] = lambda name: "glibc 2.35",
        **kwargs: Any,
    ) -> p.Probes:
        return p.Probes(
            environ=environ or {},
            platform=platform,
            read_text=self.read_text,
            run=self.run,
            load_nvml=self.load_nvml,
            confstr=confstr,
            **kwargs,
        )


def detect(machine: Machine, **kwargs: Any) -> p.Detection:
    return p.detect(machine.probes(**kwargs))


def gpu_rows(host: h.Host) -> list[tuple[int, str, str, int | None]]:
    return [(g.index, g.name, str(g.compute_capability), g.memory_mib) for g in host.gpus]


# --- no GPU -------------------------------------------------------------------------------


def test_cpu_host_is_a_normal_result() -> None:
    detection = detect(Machine(files={"/etc/os-release": data("os/os-release-ubuntu-22.04")}))
    host = detection.host
    assert detection.warnings == ()
    assert (host.os, host.arch, host.os_version) == ("linux", "x86_64", "ubuntu 22.04")
    assert (host.libc, host.libc_version, host.python) == ("glibc", "2.35", "3.11")
    assert host.gpus == () and host.nvidia_driver is None and not host.has_nvidia_gpu
    assert host.sources["gpus"] == "none found"
    assert host.sources["libc"] == "os.confstr"


def test_nvidia_smi_missing_driver_loaded_nothing_else() -> None:
    # No NVML, no module, nvidia-smi absent: nothing is broken, nothing to warn about.
    machine = Machine()
    assert detect(machine).warnings == ()
    assert "nvidia-smi" in machine.ran


# --- NVML ---------------------------------------------------------------------------------


def test_nvml_answers_everything_and_nothing_else_runs() -> None:
    nvml = FakeNvml()
    machine = Machine(nvml=nvml, commands={"nvidia-smi": AssertionError("must not run")})
    host = detect(machine).host
    assert (host.nvidia_driver, host.cuda_driver_api) == ("550.54.15", "12.4")
    assert gpu_rows(host) == [(0, "NVIDIA H100 80GB HBM3", "9.0", 81559)]
    assert {k: host.sources[k] for k in ("nvidia_driver", "cuda_driver_api", "gpus")} == {
        "nvidia_driver": "nvml",
        "cuda_driver_api": "nvml",
        "gpus": "nvml",
    }
    assert nvml.calls == ["init", "shutdown"]
    assert "nvidia-smi" not in machine.ran


def test_nvml_bytes_from_old_bindings() -> None:
    nvml = FakeNvml(driver=b"470.82.01", cuda=11040, gpus=[(b"Tesla V100-SXM2-16GB", (7, 0), 17179869184)])
    host = detect(Machine(nvml=nvml)).host
    assert (host.nvidia_driver, host.cuda_driver_api) == ("470.82.01", "11.4")
    assert gpu_rows(host) == [(0, "Tesla V100-SXM2-16GB", "7.0", 16384)]


def test_nvml_driver_not_loaded_is_a_warning_and_the_chain_goes_on() -> None:
    machine = Machine(
        nvml=FakeNvml(init_error=NVMLError_DriverNotLoaded()),
        commands={"nvidia-smi": failed(9, stdout=SMI_FAILED)},
    )
    detection = detect(machine)
    assert detection.warnings == (
        "nvml: nvmlInit failed: NVMLError_DriverNotLoaded: Driver Not Loaded",
        "nvidia-smi: exited 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running.",
    )
    assert detection.host.gpus == () and detection.host.nvidia_driver is None


def test_nvml_library_not_found_is_absent_not_broken() -> None:
    # nvidia-ml-py installed on a CPU machine: no libnvidia-ml.so. Not worth a warning.
    detection = detect(Machine(nvml=FakeNvml(init_error=NVMLError_LibraryNotFound())))
    assert detection.warnings == ()


def test_nvml_import_crash_is_a_warning() -> None:
    detection = detect(Machine(nvml=RuntimeError("libnvidia-ml.so.1: cannot open shared object file")))
    assert detection.warnings == (
        "nvml: cannot load pynvml: libnvidia-ml.so.1: cannot open shared object file",
    )


def test_nvml_gpu_list_fails_nvidia_smi_fills_in() -> None:
    machine = Machine(
        nvml=FakeNvml(gpu_error=NVMLError_GpuIsLost()),
        commands={"nvidia-smi": ok(data("nvidia-smi/h100-sxm-x8.csv"))},
    )
    detection = detect(machine)
    host = detection.host
    assert detection.warnings == ("nvml: GPU list: NVMLError_GpuIsLost: GPU is lost",)
    assert host.sources["nvidia_driver"] == "nvml"
    assert host.sources["cuda_driver_api"] == "nvml"
    assert host.sources["gpus"] == "nvidia-smi"
    assert len(host.gpus) == 8


# --- kernel module files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "driver", "source"),
    [
        ({p.SYS_MODULE_VERSION: "535.104.05\n"}, "535.104.05", p.SYS_MODULE_VERSION),
        (
            {p.PROC_DRIVER_VERSION: data("proc/driver-version-x86_64-open")},
            "555.58.02",
            p.PROC_DRIVER_VERSION,
        ),
        (
            {
                p.SYS_MODULE_VERSION: "535.104.05\n",
                p.PROC_DRIVER_VERSION: data("proc/driver-version-x86_64-open"),
            },
            "535.104.05",
            p.SYS_MODULE_VERSION,
        ),
    ],
)
def test_kernel_module_gives_the_driver(files: dict[str, str], driver: str, source: str) -> None:
    detection = detect(Machine(files=files))
    assert (detection.host.nvidia_driver, detection.host.sources["nvidia_driver"]) == (driver, source)
    # A driver but no GPU list: say so, and how to fix it.
    assert len(detection.warnings) == 1
    assert detection.warnings[0].startswith(f"gpus: NVIDIA driver {driver} found ({source})")
    assert "STACK_RESOLVER_GPUS" in detection.warnings[0]


def test_broken_sys_file_falls_back_to_proc_with_a_warning() -> None:
    files = {
        p.SYS_MODULE_VERSION: "garbage\n",
        p.PROC_DRIVER_VERSION: data("proc/driver-version-x86_64-proprietary"),
    }
    detection = detect(
        Machine(files=files, commands={"nvidia-smi": ok(data("nvidia-smi/a100-sxm4-80gb.csv"))})
    )
    assert detection.warnings == ("/sys/module/nvidia/version: not an NVIDIA driver version: 'garbage'",)
    assert detection.host.sources["nvidia_driver"] == p.PROC_DRIVER_VERSION
    assert detection.host.sources["gpus"] == "nvidia-smi"


def test_unreadable_proc_file_is_a_warning() -> None:
    files: dict[str, str | OSError] = {p.PROC_DRIVER_VERSION: PermissionError(13, "Permission denied")}
    detection = detect(Machine(files=files))
    assert detection.warnings == ("/proc/driver/nvidia/version: cannot read: Permission denied",)


# --- nvidia-smi ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "driver", "count"),
    [
        ("a100-sxm4-80gb.csv", "535.104.05", 1),
        ("rtx-4090-d.csv", "550.107.02", 1),
        ("mixed-3090-1080ti.csv", "535.129.03", 2),
        ("h100-sxm-x8.csv", "550.54.15", 8),
    ],
)
def test_nvidia_smi_answers_gpus_and_driver(name: str, driver: str, count: int) -> None:
    detection = detect(Machine(commands={"nvidia-smi": ok(data(f"nvidia-smi/{name}"))}))
    assert detection.warnings == ()
    assert detection.host.nvidia_driver == driver
    assert len(detection.host.gpus) == count
    assert detection.host.sources["gpus"] == detection.host.sources["nvidia_driver"] == "nvidia-smi"
    assert detection.host.cuda_driver_api is None  # only NVML knows it


@pytest.mark.parametrize(
    ("answer", "warning"),
    [
        (
            failed(9, stdout=SMI_FAILED),
            "nvidia-smi: exited 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
            "driver. Make sure that the latest NVIDIA driver is installed and running.",
        ),
        (failed(6, stdout=data("nvidia-smi/no-devices.txt")), "nvidia-smi: exited 6: No devices were found"),
        (
            failed(2, stdout=data("nvidia-smi/old-driver-no-compute-cap.txt")),
            'nvidia-smi: exited 2: Field "compute_cap" is not a valid field to query. (drivers before 510 '
            "cannot report compute capability; set STACK_RESOLVER_GPUS)",
        ),
        (failed(255), "nvidia-smi: exited 255: no output"),
        (
            ok("Segmentation fault\n"),
            "nvidia-smi: line 1: expected 5 comma-separated fields, got 'Segmentation fault'",
        ),
        (subprocess.TimeoutExpired(["nvidia-smi"], 10), "nvidia-smi: timed out after 10 s"),
        (PermissionError(13, "Permission denied"), "nvidia-smi: cannot run: [Errno 13] Permission denied"),
    ],
)
def test_nvidia_smi_broken_is_a_warning(answer: Answer, warning: str) -> None:
    detection = detect(Machine(commands={"nvidia-smi": answer}))
    assert detection.warnings == (warning,)
    assert detection.host.gpus == ()


def test_nvidia_smi_keeps_the_kernel_module_driver() -> None:
    files = {p.SYS_MODULE_VERSION: "550.54.15\n"}
    host = detect(Machine(files=files, commands={"nvidia-smi": ok(data("nvidia-smi/h100-sxm-x8.csv"))})).host
    assert host.sources["nvidia_driver"] == p.SYS_MODULE_VERSION
    assert host.sources["gpus"] == "nvidia-smi"


# --- overrides ----------------------------------------------------------------------------


def test_overrides_win_over_every_probe() -> None:
    nvml = FakeNvml()
    environ = {
        "STACK_RESOLVER_GPUS": "NVIDIA A100-SXM4-80GB=8.0:81920;NVIDIA A100-SXM4-80GB=8.0:81920",
        "STACK_RESOLVER_NVIDIA_DRIVER": "535.104.05",
        "STACK_RESOLVER_CUDA_DRIVER_API": "12.2",
        "STACK_RESOLVER_OS_VERSION": "rhel 8.10",
        "STACK_RESOLVER_GLIBC": "2.28",
        "STACK_RESOLVER_PYTHON": "3.13t",
    }
    machine = Machine(nvml=nvml, files={"/etc/os-release": data("os/os-release-ubuntu-22.04")})
    host = detect(machine, environ=environ).host
    assert gpu_rows(host) == [
        (0, "NVIDIA A100-SXM4-80GB", "8.0", 81920),
        (1, "NVIDIA A100-SXM4-80GB", "8.0", 81920),
    ]
    assert (host.nvidia_driver, host.cuda_driver_api) == ("535.104.05", "12.2")
    assert (host.os_version, host.libc, host.libc_version, host.python) == (
        "rhel 8.10",
        "glibc",
        "2.28",
        "3.13t",
    )
    for key, variable in [
        ("gpus", "STACK_RESOLVER_GPUS"),
        ("nvidia_driver", "STACK_RESOLVER_NVIDIA_DRIVER"),
        ("cuda_driver_api", "STACK_RESOLVER_CUDA_DRIVER_API"),
        ("libc_version", "STACK_RESOLVER_GLIBC"),
        ("python", "STACK_RESOLVER_PYTHON"),
    ]:
        assert host.sources[key] == variable
    # Everything NVML could say was overridden, so it was never loaded.
    assert machine.nvml_loads == 0 and "nvidia-smi" not in machine.ran


def test_gpu_override_leaves_the_driver_to_the_probes() -> None:
    machine = Machine(nvml=FakeNvml())
    host = detect(machine, environ={"STACK_RESOLVER_GPUS": "8.6,8.6"}).host
    assert gpu_rows(host) == [(0, "", "8.6", None), (1, "", "8.6", None)]
    assert host.sources["gpus"] == "STACK_RESOLVER_GPUS"
    assert host.sources["nvidia_driver"] == "nvml"


def test_no_gpu_skips_every_nvidia_probe() -> None:
    machine = Machine(nvml=FakeNvml(), files={p.SYS_MODULE_VERSION: "550.54.15\n"})
    detection = detect(machine, environ={"STACK_RESOLVER_NO_GPU": "1"})
    assert detection.host.gpus == () and detection.host.nvidia_driver is None
    assert detection.host.sources["gpus"] == "STACK_RESOLVER_NO_GPU"
    assert machine.nvml_loads == 0 and machine.ran == []
    assert detection.warnings == ()


def test_empty_variables_count_as_unset() -> None:
    environ = {"STACK_RESOLVER_GPUS": "", "STACK_RESOLVER_NO_GPU": " ", "STACK_RESOLVER_PYTHON": ""}
    host = detect(Machine(), environ=environ).host
    assert host.python == "3.11" and host.sources["gpus"] == "none found"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"STACK_RESOLVER_NVIDIA_DRIVER": "r535"}, "STACK_RESOLVER_NVIDIA_DRIVER"),
        ({"STACK_RESOLVER_CUDA_DRIVER_API": "12"}, "STACK_RESOLVER_CUDA_DRIVER_API"),
        ({"STACK_RESOLVER_GPUS": "sm_86"}, "STACK_RESOLVER_GPUS"),
        ({"STACK_RESOLVER_GPUS": "8.6;;8.6"}, "STACK_RESOLVER_GPUS"),
        ({"STACK_RESOLVER_GPUS": "A100=8.0:80GB"}, "STACK_RESOLVER_GPUS"),
        ({"STACK_RESOLVER_GLIBC": "glibc 2.35"}, "STACK_RESOLVER_GLIBC"),
        ({"STACK_RESOLVER_PYTHON": "311"}, "STACK_RESOLVER_PYTHON"),
        ({"STACK_RESOLVER_NO_GPU": "maybe"}, "STACK_RESOLVER_NO_GPU"),
        ({"STACK_RESOLVER_NO_GPU": "1", "STACK_RESOLVER_GPUS": "8.6"}, "STACK_RESOLVER_GPUS"),
    ],
)
def test_bad_override_names_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(InputError) as info:
        detect(Machine(), environ=environ)
    assert info.value.render().startswith(f"${variable}:")
    assert "Hint:" in info.value.render()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8.6", [(0, "", "8.6", None)]),
        ("8.6, 8.9", [(0, "", "8.6", None), (1, "", "8.9", None)]),
        ("NVIDIA GeForce RTX 3090=8.6:24576", [(0, "NVIDIA GeForce RTX 3090", "8.6", 24576)]),
        (
            "NVIDIA GeForce RTX 3090=8.6:24576; NVIDIA GeForce GTX 1080 Ti=6.1:11264",
            [(0, "NVIDIA GeForce RTX 3090", "8.6", 24576), (1, "NVIDIA GeForce GTX 1080 Ti", "6.1", 11264)],
        ),
        ("12.0:32607", [(0, "", "12.0", 32607)]),
    ],
)
def test_gpus_override_format(text: str, expected: list[tuple[int, str, str, int | None]]) -> None:
    gpus = overrides.parse_gpus_override(text)
    assert [(g.index, g.name, str(g.compute_capability), g.memory_mib) for g in gpus] == expected


def write_host(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "host.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_host_file_keys_win_and_omitted_keys_are_detected(tmp_path: Path) -> None:
    path = write_host(
        tmp_path,
        {
            "os": "linux",
            "arch": "x86_64",
            "nvidia_driver": "550.54.15",
            "gpus": [
                {
                    "index": 0,
                    "name": "NVIDIA H100 80GB HBM3",
                    "compute_capability": "9.0",
                    "memory_mib": 81559,
                }
            ],
            "sources": {"gpus": "nvml"},
        },
    )
    machine = Machine(nvml=FakeNvml(cuda=12040))
    host = detect(machine, environ={"STACK_RESOLVER_HOST": path, "STACK_RESOLVER_PYTHON": "3.12"}).host
    assert host.nvidia_driver == "550.54.15" and len(host.gpus) == 1
    assert host.sources["gpus"] == host.sources["nvidia_driver"] == "STACK_RESOLVER_HOST"
    # Omitted: detected (NVML for the CUDA API, confstr for libc); a variable beats the file.
    assert (host.cuda_driver_api, host.sources["cuda_driver_api"]) == ("12.4", "nvml")
    assert (host.libc, host.python, host.sources["python"]) == ("glibc", "3.12", "STACK_RESOLVER_PYTHON")


def test_host_file_null_is_an_answer(tmp_path: Path) -> None:
    path = write_host(tmp_path, {"os": "linux", "arch": "x86_64", "nvidia_driver": None, "gpus": []})
    machine = Machine(nvml=FakeNvml())
    host = detect(machine, environ={"STACK_RESOLVER_HOST": path}).host
    assert host.gpus == () and host.nvidia_driver is None and host.cuda_driver_api == "12.4"


def test_host_file_for_another_os_gets_no_local_os_facts(tmp_path: Path) -> None:
    path = write_host(tmp_path, {"os": "macos", "arch": "arm64", "os_version": "14.5"})
    machine = Machine(nvml=FakeNvml(), commands={"nvidia-smi": AssertionError("must not run")})
    host = detect(machine, environ={"STACK_RESOLVER_HOST": path}).host
    assert (host.os, host.arch, host.os_version, host.libc) == ("macos", "arm64", "14.5", None)
    assert host.gpus == () and machine.nvml_loads == 0


def test_bad_host_file_names_file_and_key(tmp_path: Path) -> None:
    path = write_host(tmp_path, {"os": "linux", "arch": "x86_64", "gpus": [{"compute_capability": "sm_86"}]})
    with pytest.raises(HostFileError) as info:
        detect(Machine(), environ={"STACK_RESOLVER_HOST": path})
    assert f"{path} [gpus[0].compute_capability]" in info.value.render()


# --- OS, libc, resources ------------------------------------------------------------------


def test_musl_from_ldd_when_confstr_has_no_answer() -> None:
    musl = failed(1, stderr=data("os/ldd-musl-alpine"))
    host = detect(Machine(commands={"ldd": musl}), confstr=lambda name: None).host
    assert (host.libc, host.libc_version, host.sources["libc"]) == ("musl", "1.2.5", "ldd --version")


def test_musl_from_the_loader_when_there_is_no_ldd() -> None:
    machine = Machine()
    host = detect(machine, confstr=lambda name: None, glob=lambda pattern: ["/lib/ld-musl-aarch64.so.1"]).host
    assert (host.libc, host.libc_version, host.sources["libc"]) == ("musl", None, "/lib/ld-musl-aarch64.so.1")


def test_macos_uses_sw_vers_and_skips_nvidia() -> None:
    mac = p.PlatformInfo(system="Darwin", machine="arm64", mac_ver="10.16", python=(3, 12))
    machine = Machine(nvml=FakeNvml(), commands={"sw_vers": ok("14.5\n")})
    host = detect(machine, platform=mac, confstr=lambda name: None, memory_bytes=lambda: 17179869184).host
    assert (host.os, host.arch, host.os_version, host.python) == ("macos", "arm64", "14.5", "3.12")
    assert host.sources["os_version"] == "sw_vers"
    assert host.libc is None and host.memory_mib == 16384
    assert machine.nvml_loads == 0 and machine.ran == ["sw_vers"]


def test_macos_compat_version_10_16_is_not_trusted() -> None:
    mac = p.PlatformInfo(system="Darwin", machine="x86_64", mac_ver="10.16")
    host = detect(Machine(), platform=mac).host
    assert host.os_version is None


def test_windows_version_and_memory() -> None:
    win = p.PlatformInfo(system="Windows", machine="AMD64", version="10.0.22631")
    machine = Machine(commands={"nvidia-smi": ok(data("nvidia-smi/rtx-4090-windows.csv"))})
    host = detect(machine, platform=win, confstr=lambda name: None, memory_bytes=lambda: 68719476736).host
    assert (host.os, host.arch, host.os_version) == ("windows", "x86_64", "10.0.22631")
    assert (host.nvidia_driver, host.memory_mib) == ("560.94", 65536)
    assert gpu_rows(host) == [(0, "NVIDIA GeForce RTX 4090", "8.9", 24564)]


def test_resources(tmp_path: Path) -> None:
    seen: list[Path] = []

    def disk_free(path: Path) -> int:
        seen.append(path)
        return 107374182400

    machine = Machine(files={"/proc/meminfo": data("proc/meminfo")})
    host = detect(machine, cpu_count=lambda: 16, disk_free=disk_free, workdir=tmp_path).host
    assert (host.cpu_count, host.memory_mib, host.disk_free_mib) == (16, 64212, 102400)
    assert seen == [tmp_path]
    assert host.sources["memory_mib"] == "/proc/meminfo"


def test_disk_error_is_a_warning(tmp_path: Path) -> None:
    def disk_free(path: Path) -> int:
        raise FileNotFoundError(2, "No such file or directory")

    detection = detect(Machine(), disk_free=disk_free, workdir=tmp_path / "gone")
    assert detection.host.disk_free_mib is None
    assert detection.warnings[0].startswith("disk: cannot measure free space at")


def test_unsupported_platform_needs_a_host_file(tmp_path: Path) -> None:
    bsd = p.PlatformInfo(system="FreeBSD", machine="amd64")
    with pytest.raises(InputError, match="unsupported operating system"):
        detect(Machine(), platform=bsd)
    path = write_host(tmp_path, {"os": "linux", "arch": "x86_64"})
    host = detect(Machine(), platform=bsd, environ={"STACK_RESOLVER_HOST": path}).host
    assert host.platform == "linux-x86_64"


# --- round trip and rendering -------------------------------------------------------------


def test_detected_host_round_trips_through_json() -> None:
    machine = Machine(
        nvml=FakeNvml(gpu_error=NVMLError_GpuIsLost()),
        files={"/etc/os-release": data("os/os-release-rhel-9"), "/proc/meminfo": data("proc/meminfo")},
        commands={"nvidia-smi": ok(data("nvidia-smi/mixed-titanv-rtx5880.csv"))},
    )
    host = detect(machine, cpu_count=lambda: 32).host
    assert hf.parse_host_json(host.dumps()) == host
    assert hf.parse_host_json(host.dumps()).dumps() == host.dumps()


def test_render_host_lists_gpus_sources_and_warnings() -> None:
    machine = Machine(
        nvml=FakeNvml(gpu_error=NVMLError_GpuIsLost()),
        commands={"nvidia-smi": ok(data("nvidia-smi/mixed-3090-1080ti.csv"))},
    )
    text = render_host(detect(machine, cpu_count=lambda: 24))
    assert "OS         linux, x86_64" in text
    assert "Driver     NVIDIA 550.54.15 (CUDA driver API 12.4)" in text
    assert "GPUs       0: NVIDIA GeForce RTX 3090  sm_86 (8.6)  24576 MiB" in text
    assert "           1: NVIDIA GeForce GTX 1080 Ti  sm_61 (6.1)  11264 MiB" in text
    assert "CPU cores  24" in text
    assert "  gpus            nvidia-smi" in text
    assert "Warnings:\n  nvml: GPU list: NVMLError_GpuIsLost: GPU is lost" in text


def test_render_cpu_host() -> None:
    text = render_host(h.Host(os="macos", arch="arm64", os_version="14.5"))
    assert "GPUs       none (CPU host)" in text
    assert "Memory     unknown" in text
    assert "libc" not in text


def test_render_gpu_example_from_the_brief() -> None:
    gpu = h.Gpu(0, "NVIDIA A100-SXM4-80GB", h.ComputeCapability(8, 0), 81920)
    assert render_gpu(gpu) == "0: NVIDIA A100-SXM4-80GB  sm_80 (8.0)  81920 MiB"


# --- the real probes, with a fake nvidia-smi on PATH --------------------------------------


def fake_executable(directory: Path, name: str, stdout: str, code: int = 0) -> None:
    """A real executable `name` in `directory` that prints `stdout` and exits `code`."""
    out = directory / f"{name}.out"
    out.write_text(stdout)
    if sys.platform == "win32":  # pragma: no cover - the suite runs on Linux/macOS CI
        script = directory / f"{name}.bat"
        script.write_text(f'@type "{out}"\r\n@exit /b {code}\r\n')
        return
    script = directory / name
    # Shell builtins only: the probes' PATH may hold nothing but this directory.
    script.write_text(
        f"#!/bin/sh\nwhile IFS= read -r line; do printf '%s\\n' \"$line\"; done < '{out}'\nexit {code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def system_probes(bin_dir: Path, **environ: str) -> p.Probes:
    probes = p.Probes.system(bin_dir, environ={"PATH": str(bin_dir), **environ})
    # Keep this machine's NVML (if any) out of the test; everything else is the real probe.
    return p.Probes(**{**probes.__dict__, "load_nvml": lambda: None})


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS skips the NVIDIA probes")
def test_real_run_finds_a_fake_nvidia_smi_on_path(tmp_path: Path) -> None:
    fake_executable(tmp_path, "nvidia-smi", data("nvidia-smi/mixed-3090-1080ti.csv"))
    detection = p.detect(system_probes(tmp_path, STACK_RESOLVER_NO_GPU="0"))
    assert detection.host.sources["gpus"] == "nvidia-smi"
    assert [g.name for g in detection.host.gpus] == ["NVIDIA GeForce RTX 3090", "NVIDIA GeForce GTX 1080 Ti"]


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS skips the NVIDIA probes")
def test_real_run_reports_a_failing_nvidia_smi(tmp_path: Path) -> None:
    fake_executable(tmp_path, "nvidia-smi", SMI_FAILED, code=9)
    detection = p.detect(system_probes(tmp_path))
    assert any(w.startswith("nvidia-smi: exited 9: NVIDIA-SMI has failed") for w in detection.warnings)


def test_real_probes_on_this_machine_do_not_crash(tmp_path: Path) -> None:
    detection = p.detect(p.Probes.system(tmp_path, environ={**os.environ, "STACK_RESOLVER_NO_GPU": "1"}))
    host = detection.host
    assert host.os in h.OS_NAMES and host.arch in h.ARCH_NAMES
    assert host.python == f"{sys.version_info.major}.{sys.version_info.minor}" + (
        "t" if host.python and host.python.endswith("t") else ""
    )
    assert hf.parse_host_json(host.dumps()) == host
