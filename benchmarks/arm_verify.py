"""ARM numerics without a phone: lightnets artifacts on the real aarch64 kernels (XNNPACK, MLAS
NEON, ncnn ARM) under qemu-user emulation. Timings under emulation mean nothing; numerics are real.

    python benchmarks/arm_verify.py --data DIR [--models mixnet_s,...] [--out DIR]

1. Builds once, in --cache (default ~/.cache/lightnets/arm64): an arm64 Debian bookworm root
   file system (mmdebstrap --variant=extract: packages unpacked, nothing run, so neither binfmt
   nor root inside it is needed) and the runtimes' aarch64 wheels, installed on the host by pip
   (--platform manylinux_*_aarch64 --target), so pip never runs emulated. The versions are the
   host's, so ARM runs what exported. A marker file with the package list makes re-runs skip it.
2. Trains one model per family briefly (`lightnets train`) and exports it to every precision of
   RUNTIMES (`lightnets export`); checkpoints and artifacts are cached by their settings.
3. Copies each artifact's files (sidecar "files", the sidecar, its "reference") into the root
   file system and runs `python3 -m lightnets verify ARTIFACT --format json --threads 1` there:
   `qemu-aarch64-static -cpu CPU -L ROOTFS ROOTFS/usr/bin/python3`. With --smoke a check of
   its own runs instead: this file itself, emulated (`--child`), runs the artifact on 16
   validation images and the host compares with the fp32 ONNX model and with the same artifact
   run on x86.
4. Prints the table (and writes arm_verify.json / arm_verify.md to --out).

qemu 7.2 (bookworm) emulates /proc/self but not /proc/cpuinfo for aarch64: the host's x86 text
would reach cpuinfo-based runtimes (ORT crashes on it). A /proc/cpuinfo in the ROOTFS (found first
under -L) is written from the emulated CPU's own AT_HWCAP/AT_HWCAP2 and MIDR_EL1, as Linux would.

ExecuTorch's Python runtime links libtorch (torch is imported first), and PyPI's aarch64 torch is
a CUDA build whose NVIDIA libraries are not all on PyPI for aarch64; the CUDA libraries it links
are replaced by stubs that only define their symbols (--executorch; needs aarch64 binutils).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

# fmt: off
#  model                     img  train flags (beyond the shared ones)  export flags
FAMILIES = {
    "mixnet_s":                (32,  (),                   ()),
    "vgnet_f_1_5mp":           (32,  (),                   ()),  # fixed Sobel/Laplacian/Gauss
    "mobilenet_v1_w025":       (32,  (),                   ()),
    "mobilenet_v2_w035":       (32,  (),                   ()),
    "mobilenet_v3_small_w100": (32,  (),                   ()),  # hard-swish, SE
    "shufflenet_v1_g3_w050":   (32,  (),                   ()),
    "shufflenet_v2_w050":      (32,  (),                   ()),
    "squeezenet_1_1":          (32,  ("--lr", "0.01"),     ()),
    "xception":                (32,  (),                   ()),
    "mobilefacenet":           (112, (),                   ()),  # an embedding: cosine only
    "efficientnet_b0":         (32,  (),                   ("--keep-float", "se")),
    "mnasnet_a1":              (32,  (),                   ()),
}

#  runtime        suffix         precisions here  ARM packages (pip names)
RUNTIMES = {
    "onnxruntime": (".onnx",       ("fp16", "int8"), ("onnxruntime",)),
    "litert":      (".tflite",     ("fp16", "int8"), ("ai-edge-litert",)),
    "executorch":  (".pte",        ("int8",),        ("executorch", "torch")),
    "ncnn":        (".ncnn.param", ("fp16",),        ("ncnn",)),
}
# fmt: on
BASE_PACKAGES = ("numpy",)
DEBIAN_PACKAGES = ("base-files", "python3", "libgomp1", "libstdc++6", "zlib1g")
# what `import torch` and `import executorch.runtime` need beyond the two wheels (no CUDA)
EXECUTORCH_EXTRAS = (
    "typing-extensions", "sympy", "mpmath", "filelock", "networkx", "jinja2", "markupsafe",
    "fsspec", "flatbuffers", "packaging", "pyyaml", "ruamel.yaml", "tabulate",
)  # fmt: skip
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_24_aarch64", "manylinux_2_27_aarch64",
             "manylinux_2_28_aarch64", "manylinux_2_31_aarch64", "manylinux_2_34_aarch64",
             "manylinux_2_35_aarch64", "linux_aarch64")  # fmt: skip
STAGE = "/srv/lightnets"  # inside the root file system: sources, wheels, artifacts
SMOKE_IMAGES = 16
SMOKE_MIN_COSINE = 0.9  # the exporter's int8 threshold; top-1: no worse than x86 on the images
# qemu 7.2's "max" (its default) adds SVE2 and SME; LiteRT int8 then returns noise (cosine ~0 with
# fp32, exact with SME off): qemu's SME or the SME kernels, not phones' usual cores; off by default
DEFAULT_CPU = "max,sme=off"
NVIDIA_PREFIXES = ("cu", "nccl", "nvshmem", "nvrtc", "cudnn")  # CUDA stubs: unversioned names
REPO = Path(__file__).resolve().parents[1]

# Linux arm64 hwcap names, bit by bit (arch/arm64/kernel/cpuinfo.c)
HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt "
         "fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs "
         "sb paca pacg").split()  # fmt: skip
HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm "
          "svef64mm svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme smei16i64 smef64f64 "
          "smei8i32 smef16f32 smeb16f32 smef32f32 smefa64 wfxt ebf16 sveebf16 cssc rprfm sve2p1 "
          "sme2 sme2p1 smei16i32 smebi32i32 smeb16b16 smef16f16 mops hbc").split()  # fmt: skip


# ---------------------------------------------------------------- run inside the emulated python


def child_probe() -> dict:
    """The emulated CPU as its programs see it: AT_HWCAP/AT_HWCAP2 names and MIDR_EL1."""
    import mmap

    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    hwcap, hwcap2 = libc.getauxval(16), libc.getauxval(26)
    code = (0xD5380000).to_bytes(4, "little") + (0xD65F03C0).to_bytes(4, "little")  # mrs; ret
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    midr = ctypes.CFUNCTYPE(ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
    names = [n for i, n in enumerate(HWCAP) if hwcap >> i & 1]
    names += [n for i, n in enumerate(HWCAP2) if hwcap2 >> i & 1]
    return {"machine": platform.machine(), "features": names, "midr": midr}


def child_run(artifact: Path, runtime: str, precision: str, inputs: Path, threads: int) -> dict:
    """Logits of `artifact` on the inputs in the .npy at `inputs`, with this machine's runtime."""
    import numpy as np

    x = np.load(inputs)
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
        y = session.run(None, {session.get_inputs()[0].name: x})[0]
        version = ort.__version__
    elif runtime == "litert":
        from ai_edge_litert import __version__ as version
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(artifact), num_threads=threads)
        (source,), (sink,) = interpreter.get_input_details(), interpreter.get_output_details()
        batch, outs = int(source["shape"][0]), []
        if source["shape_signature"][0] == -1:
            interpreter.resize_tensor_input(source["index"], [1, *x.shape[1:]])
            batch = 1
        interpreter.allocate_tensors()
        for image in x.reshape(-1, batch, *x.shape[1:]):
            interpreter.set_tensor(source["index"], _quantize(image, source))
            interpreter.invoke()
            outs.append(_dequantize(interpreter.get_tensor(sink["index"]), sink))
        y = np.concatenate(outs)
    elif runtime == "ncnn":
        import ncnn

        net, version = ncnn.Net(), ncnn.__version__
        net.opt.num_threads = threads
        if precision != "fp16":
            for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"):
                setattr(net.opt, option, False)
        weights = str(artifact)[: -len(".param")] + ".bin"
        assert net.load_param(str(artifact)) == 0 and net.load_model(weights) == 0
        source, sink = net.input_names()[0], net.output_names()[0]
        outs = []
        for image in x:
            with net.create_extractor() as extractor:
                extractor.input(source, ncnn.Mat(np.ascontiguousarray(image)).clone())
                outs.append(np.array(extractor.extract(sink)[1]).reshape(-1))
        y = np.stack(outs)
    elif runtime == "executorch":
        import torch
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime

        _unsafe_reset_threadpool(threads)
        method = Runtime.get().load_program(artifact).load_method("forward")
        batch = method.metadata.input_tensor_meta(0).sizes()[0]
        parts = torch.split(torch.from_numpy(x), batch)
        y = torch.cat([method.execute((p,))[0] for p in parts]).numpy()
        version = f"torch {torch.__version__}"
    else:
        raise ValueError(f"unknown runtime {runtime}")
    out = inputs.with_name(inputs.stem + "-arm.npy")
    np.save(out, np.asarray(y, dtype=np.float32))
    return {"logits": str(out), "runtime_version": version}


def _quantize(x, detail):
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantize(y, detail):
    import numpy as np

    if np.dtype(detail["dtype"]).kind == "f":
        return y.copy()
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


# ---------------------------------------------------------------------------- the aarch64 env


def sh(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def host_versions(packages) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in packages:
        try:
            found[name] = version(name).split("+")[0]  # torch 2.13.0+cpu -> 2.13.0
        except PackageNotFoundError:
            pass
    return found


def pip_target(target: Path, requirements: list[str], deps: bool = True) -> None:
    """aarch64 CPython 3.11 wheels of `requirements` unpacked in `target`, by the host's pip."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--target", str(target)]
    cmd += ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
    cmd += ["--abi", "cp311", "--abi", "abi3", "--abi", "none", "--upgrade"]
    cmd += [f"--platform={p}" for p in PLATFORMS] + ([] if deps else ["--no-deps"])
    sh(cmd + requirements)


def ensure_tools() -> str:
    missing = [tool for tool in ("qemu-aarch64-static", "mmdebstrap") if not shutil.which(tool)]
    if missing:
        if os.geteuid() != 0:
            sys.exit(f"arm_verify: needs {', '.join(missing)}: apt-get install qemu-user-static "
                     "mmdebstrap")  # fmt: skip
        sh(["apt-get", "install", "-y", "-q", "qemu-user-static", "mmdebstrap"])
    return sh(["qemu-aarch64-static", "--version"], capture_output=True).stdout.split("\n")[0]


def ensure_env(cache: Path, executorch: bool) -> dict:
    """The root file system and wheels in `cache`, built unless its marker matches."""
    qemu = ensure_tools()
    names = list(BASE_PACKAGES) + [p for rt in RUNTIMES.values() for p in rt[2]]
    wanted = host_versions(names)
    if not executorch:
        wanted = {k: v for k, v in wanted.items() if k not in ("executorch", "torch")}
    wanted["debian"] = ",".join(DEBIAN_PACKAGES)
    marker, rootfs = cache / "env.json", cache / "rootfs"
    if marker.is_file():
        env = json.loads(marker.read_text())
        if env["requested"] == wanted and (rootfs / "usr/bin/python3").exists():
            return env | {"qemu": qemu, "built_s": 0.0}
    start = time.perf_counter()
    shutil.rmtree(rootfs, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    include = "--include=" + ",".join(DEBIAN_PACKAGES)
    sh(["mmdebstrap", "--arch=arm64", "--variant=extract", include, "--quiet", "bookworm",
        str(rootfs), "http://deb.debian.org/debian"])  # fmt: skip
    site, notes = rootfs / STAGE.lstrip("/") / "site", {}
    base = [f"{n}=={v}" for n, v in wanted.items() if n not in ("executorch", "torch", "debian")]
    pip_target(site, base)
    if "executorch" in wanted and "torch" in wanted:
        torch_site = rootfs / STAGE.lstrip("/") / "site-executorch"
        pins = [f"executorch=={wanted['executorch']}", f"torch=={wanted['torch']}"]
        pip_target(torch_site, pins + list(EXECUTORCH_EXTRAS), deps=False)
        notes["executorch"] = stub_cuda_libraries(torch_site / "torch" / "lib", rootfs)
    compile_python(rootfs / "usr/lib/python3.11")  # dpkg never ran: no .pyc anywhere
    debian = (rootfs / "etc/debian_version").read_text().strip()
    installed = {
        p.name.removesuffix(".dist-info").split("-")[0]: p.name.removesuffix(".dist-info").split(
            "-"
        )[1]
        for p in rootfs.glob(STAGE.lstrip("/") + "/site*/*.dist-info")
    }
    env = {"requested": wanted, "installed": installed, "debian": debian, "notes": notes}
    marker.write_text(json.dumps(env, indent=1))
    return env | {"qemu": qemu, "built_s": time.perf_counter() - start}


def compile_python(folder: Path) -> None:
    """.pyc files by the host's CPython 3.11 (the same bytecode as bookworm's 3.11): under -L
    the emulated python cannot create them (qemu maps only existing paths into the root)."""
    sh([sys.executable, "-m", "compileall", "-q", "-j", "0", str(folder)], capture_output=True)


def stub_cuda_libraries(lib: Path, rootfs: Path) -> str:
    """Stand-ins for the NVIDIA libraries that PyPI's aarch64 torch (a CUDA build) links: each
    defines the symbols and versions torch's libraries ask of it; every function returns the
    address of a zeroed page: nonzero as an error code (CUDA: no device), "" as a string.
    Built with aarch64-linux-gnu-as/ld (binutils-aarch64-linux-gnu). Returns a note."""
    assembler, linker = shutil.which("aarch64-linux-gnu-as"), shutil.which("aarch64-linux-gnu-ld")
    if not (assembler and linker):
        if os.geteuid() != 0:
            return "no aarch64 binutils to stub torch's CUDA libraries"
        sh(["apt-get", "install", "-y", "-q", "binutils-aarch64-linux-gnu"])
        assembler, linker = "aarch64-linux-gnu-as", "aarch64-linux-gnu-ld"
    system = {p.name for d in ("usr/lib/aarch64-linux-gnu", "lib/aarch64-linux-gnu")
              for p in (rootfs / d).glob("*.so*")}  # fmt: skip
    present = {p.name for p in lib.iterdir()} | system
    wanted: dict[str, dict[str, tuple[str, str]]] = {}  # soname -> symbol -> (type, version)
    loose: dict[str, tuple[str, str]] = {}  # unversioned symbols: which library is not said
    for so in sorted(lib.glob("*.so*")):
        owner, file = {}, None  # version name -> the library that defines it
        for line in sh(["readelf", "-VW", str(so)], capture_output=True).stdout.split("\n"):
            if "File:" in line:
                file = line.split("File:")[1].split()[0]
            elif "Name:" in line and file and file not in present:
                owner[line.split("Name:")[1].split()[0]] = file
        dynamic = sh(["readelf", "-dW", str(so)], capture_output=True).stdout.split("\n")
        needed = {line.split("[")[1].rstrip("]") for line in dynamic if "(NEEDED)" in line}
        for name in (needed - present) | set(owner.values()):
            wanted.setdefault(name, {})
        symbols = sh(["readelf", "--dyn-syms", "-W", str(so)], capture_output=True).stdout
        for line in symbols.split("\n"):
            fields = line.split()
            if len(fields) >= 8 and fields[6] == "UND" and "@" in fields[7]:
                symbol, version = fields[7].split("@")[0], fields[7].split("@")[-1]
                if version in owner:
                    wanted[owner[version]][symbol] = (fields[3], version)
            elif len(fields) >= 8 and fields[6] == "UND" and fields[7].startswith(NVIDIA_PREFIXES):
                loose[fields[7]] = (fields[3], "")
    for symbols in wanted.values():  # unversioned libraries take every unversioned name
        if not symbols:
            symbols.update(loose)
    work = lib / "_stubs"
    work.mkdir(exist_ok=True)
    for soname, symbols in wanted.items():
        asm = [".bss", ".balign 16", "zeros:", ".zero 4096", ".text"]
        for symbol, (kind, _) in sorted(symbols.items()):
            if kind == "OBJECT":
                asm += [".data", f".globl {symbol}", f".type {symbol},%object", f"{symbol}:",
                        ".zero 64", ".text"]  # fmt: skip
            else:
                asm += [f".globl {symbol}", f".type {symbol},%function", f"{symbol}:",
                        "adrp x0, zeros", "add x0, x0, :lo12:zeros", "ret"]  # fmt: skip
        versions = sorted({v for _, v in symbols.values()} - {""}) or [soname]
        script = "".join(f"{v} {{ global: *; }};\n" for v in versions)
        (work / "stub.s").write_text("\n".join(asm) + "\n")
        (work / "stub.map").write_text(script)
        sh([assembler, "-o", str(work / "stub.o"), str(work / "stub.s")])
        sh([linker, "-shared", "-soname", soname, "--version-script", str(work / "stub.map"),
            "-o", str(lib / soname), str(work / "stub.o")])  # fmt: skip
    shutil.rmtree(work)
    return f"CUDA libraries stubbed: {', '.join(sorted(wanted))}"


def emulated(env: dict, cache: Path, cpu: str, args: list[str], extra_path: str = "",
             timeout: float = 1800) -> subprocess.CompletedProcess:  # fmt: skip
    rootfs = cache / "rootfs"
    path = f"{STAGE}/src:{STAGE}/site" + (f":{STAGE}/{extra_path}" if extra_path else "")
    variables = {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HOME": "/root", "LANG": "C.UTF-8",
                 "PATH": "/usr/bin:/bin"}  # fmt: skip
    cmd = ["qemu-aarch64-static", "-cpu", cpu, "-L", str(rootfs), str(rootfs / "usr/bin/python3")]
    return subprocess.run(cmd + args, env=variables, text=True, capture_output=True,
                          timeout=timeout)  # fmt: skip


def probe_cpu(env: dict, cache: Path, cpu: str) -> dict:
    """The emulated CPU's features; writes ROOTFS/proc/cpuinfo from them (see the docstring)."""
    stage = cache / "rootfs" / STAGE.lstrip("/")
    shutil.copy(__file__, stage / "arm_verify.py")
    done = emulated(env, cache, cpu, [f"{STAGE}/arm_verify.py", "--child", "probe"])
    if done.returncode:
        sys.exit(f"arm_verify: the emulated python does not start:\n{done.stderr}")
    probe = json.loads(done.stdout.strip().split("\n")[-1])
    midr, cpus = probe["midr"], os.cpu_count() or 1
    block = (f"BogoMIPS\t: 50.00\nFeatures\t: {' '.join(probe['features'])}\n"
             f"CPU implementer\t: {midr >> 24 & 0xFF:#04x}\nCPU architecture: 8\n"
             f"CPU variant\t: {midr >> 20 & 0xF:#x}\nCPU part\t: {midr >> 4 & 0xFFF:#05x}\n"
             f"CPU revision\t: {midr & 0xF}\n\n")  # fmt: skip
    (cache / "rootfs/proc").mkdir(exist_ok=True)
    text = "".join(f"processor\t: {i}\n{block}" for i in range(cpus))
    (cache / "rootfs/proc/cpuinfo").write_text(text)
    for i in range(cpus):  # oneDNN in libtorch (ExecuTorch) reads it, and crashes without it
        regs = cache / f"rootfs/sys/devices/system/cpu/cpu{i}/regs/identification"
        regs.mkdir(parents=True, exist_ok=True)
        (regs / "midr_el1").write_text(f"{midr:#018x}\n")
    features = set(probe["features"])
    named = [("asimd", "NEON"), ("asimddp", "dotprod"), ("i8mm", "i8mm"), ("bf16", "bf16"),
             ("fphp", "fp16"), ("sve", "SVE"), ("sve2", "SVE2"), ("sme", "SME")]  # fmt: skip
    probe["class"] = "aarch64 " + "+".join(label for f, label in named if f in features)
    return probe


# ---------------------------------------------------------------- train and export on the host


def lightnets_cli(args: list[str], log: Path) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "lightnets", *args]
    with open(log, "w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    lines = [line for line in log.read_text().split("\n") if line.strip()]
    return done.returncode == 0, (lines[-1] if lines else f"exit {done.returncode}")


def subset(data: Path, per_class: int, cache: Path) -> Path:
    """`data` with at most `per_class` training images per class (symbolic links)."""
    if not per_class:
        return data
    root = cache / "data" / f"{data.name}-{per_class}"
    if not (root / "done").exists():
        for split in ("train", "val"):
            for folder in sorted(p for p in (data / split).iterdir() if p.is_dir()):
                target = root / split / folder.name
                target.mkdir(parents=True, exist_ok=True)
                files = sorted(folder.iterdir())
                for file in files[:per_class] if split == "train" else files:
                    if not (target / file.name).exists():
                        (target / file.name).symlink_to(file.resolve())
        (root / "done").touch()
    return root


def train(model: str, data: Path, args, cache: Path) -> tuple[Path | None, str]:
    size, flags, _ = FAMILIES[model]
    flags = ["--epochs", str(args.epochs), "--img-size", str(size), *flags]
    if args.lr and "--lr" not in flags:
        flags += ["--lr", str(args.lr)]
    key = hashlib.sha1(json.dumps([str(data), flags]).encode()).hexdigest()[:8]
    run = cache / "runs" / f"{model}-{key}"
    if (run / "arm_verify.done").exists():
        return run, "cached"
    shutil.rmtree(run, ignore_errors=True)
    run.parent.mkdir(parents=True, exist_ok=True)
    cli = ["train", "--model", model, "--data", str(data), *flags, "--workers", "0"]
    cli += ["--no-progress", "--threads", str(args.threads), "--run-dir", str(run)]
    ok, last = lightnets_cli(cli, run.parent / f"{model}-{key}.log")
    if ok:
        (run / "arm_verify.done").write_text(last)
        return run, last
    return None, f"training failed: {last}"


def export(model: str, run: Path, runtime: str, precision: str, cache: Path) -> tuple[Path, str]:
    _, _, flags = FAMILIES[model]
    folder = cache / "artifacts" / run.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model}-{runtime}-{precision}{RUNTIMES[runtime][0]}"
    if Path(f"{path}.json").exists():
        return path, "cached"
    cli = ["export", "--checkpoint", str(run), "--runtime", runtime, "--precision", precision]
    cli += ["-o", str(path), *(flags if precision == "int8" else ())]
    ok, last = lightnets_cli(cli, Path(f"{path}.log"))
    return (path, last) if ok else (None, f"export failed: {last}")


# ------------------------------------------------------------------------- verify on aarch64


def stage_artifact(path: Path, cache: Path) -> str:
    """Copies what the artifact needs into the root file system; returns its path there."""
    sidecar = json.loads(Path(f"{path}.json").read_text())
    names = [*sidecar.get("files", [path.name]), f"{path.name}.json"]
    if sidecar.get("reference"):
        names.append(sidecar["reference"]["file"])
    inside = f"{STAGE}/artifacts/{path.parent.name}"
    target = cache / "rootfs" / inside.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(path.parent / name, target / name)
    return f"{inside}/{path.name}"


def verify(path: Path, runtime: str, env: dict, cache: Path, cpu: str, row: dict) -> dict:
    """`lightnets verify` under emulation (it needs only numpy and the runtime): the row's ARM
    figures against fp32 and against the artifact's own outputs on x86 at export."""
    inside = stage_artifact(path, cache)
    extra = "site-executorch" if runtime == "executorch" else ""
    args = ["-m", "lightnets", "verify", inside, "--format", "json", "--threads", "1"]
    done = emulated(env, cache, cpu, args, extra)
    try:
        report = json.loads(done.stdout)[0]
    except (json.JSONDecodeError, IndexError):
        tail = (done.stderr.strip().split("\n") or ["?"])[-1]
        return row | {"status": f"verify exit {done.returncode}: {tail[:160]}"}
    figures = {"arm_agreement": report.get("agreement"), "arm_cosine": report.get("cosine"),
               "arm_vs_x86_agreement": report.get("same_as_export"),
               "arm_vs_x86_cosine": report.get("cosine_vs_export"),
               "arm_cpu": report["cpu_class"], "export_cpu": report["verified_on"]}  # fmt: skip
    if "relative_error" in report:  # float precisions: the export check's relative error
        figures["arm_relative_error"] = report["relative_error"]
    verdict = "pass" if report["passed"] else "DIFFERS"
    return row | figures | {"status": f"verify: {verdict}"}


def smoke_inputs(sidecar: dict, data: Path, count: int):
    """`count` validation images (one per class in turn) through the sidecar's preprocessing, read
    as `lightnets eval --model` reads them (lightnets.preprocess)."""
    import numpy as np
    import torch

    from lightnets.preprocess import Preprocessing, model_input, read_image

    folders = sorted(p for p in (data / "val").iterdir() if p.is_dir())
    files = [sorted(f.iterdir())[i // len(folders)] for i, f in
             zip(range(count), folders * count)]  # fmt: skip
    pre = Preprocessing.from_dict(sidecar)
    x = model_input(torch.stack([read_image(file, pre) for file in files]), pre)
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


def smoke(path: Path, runtime: str, run: Path, env: dict, cache: Path, cpu: str, row: dict,
          data: Path) -> dict:  # fmt: skip
    """--smoke: the artifact on ARM vs fp32 (ONNX on x86) and vs itself
    on x86, on SMOKE_IMAGES validation images."""
    import numpy as np

    sidecar = json.loads(Path(f"{path}.json").read_text())
    x = smoke_inputs(sidecar, data, SMOKE_IMAGES)
    fp32, _ = export(path.name.split("-")[0], run, "onnxruntime", "fp32", cache)
    if fp32 is None:
        return row | {"status": "no fp32 reference (ONNX export failed)"}
    precision = sidecar["precision"]
    reference = np.load(Path(child_run(fp32, "onnxruntime", "fp32", _save(x, cache), 1)["logits"]))
    x86 = np.load(Path(child_run(path, runtime, precision, _save(x, cache), 1)["logits"]))
    inside = stage_artifact(path, cache)
    inputs = cache / "rootfs" / STAGE.lstrip("/") / "inputs" / f"{path.name}.npy"
    inputs.parent.mkdir(exist_ok=True)
    np.save(inputs, x)
    inputs.with_name(inputs.stem + "-arm.npy").touch()  # under -L only existing paths map in
    extra = "site-executorch" if runtime == "executorch" else ""
    args = [f"{STAGE}/arm_verify.py", "--child", "run", inside, runtime, precision]
    done = emulated(env, cache, cpu, [*args, f"{STAGE}/inputs/{inputs.name}"], extra)
    if done.returncode:
        tail = [line for line in done.stderr.strip().split("\n") if line.strip()] or ["?"]
        return row | {"status": f"ARM run failed (exit {done.returncode}): {tail[-1][:160]}"}
    arm = np.load(inputs.with_name(inputs.stem + "-arm.npy"))
    agreement, cosine = (
        float((arm.argmax(1) == reference.argmax(1)).mean()),
        _cosine(arm, reference),
    )
    x86_agreement = float((x86.argmax(1) == reference.argmax(1)).mean())
    good = cosine >= SMOKE_MIN_COSINE and (agreement >= x86_agreement or arm.shape[1] > 100)
    return row | {
        "arm_agreement": agreement,
        "arm_cosine": cosine,
        "x86_agreement_smoke": x86_agreement,
        "arm_vs_x86_agreement": float((arm.argmax(1) == x86.argmax(1)).mean()),
        "arm_vs_x86_cosine": _cosine(arm, x86),
        "status": "smoke: " + ("pass" if good else "fail"),
    }


def _save(x, cache: Path) -> Path:
    import numpy as np

    path = cache / "host-inputs.npy"
    np.save(path, x)
    return path


def _cosine(a, b) -> float:
    import numpy as np

    a, b = a.reshape(len(a), -1).astype("f8"), b.reshape(len(b), -1).astype("f8")
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return float(cos.mean())


# ------------------------------------------------------------------------------------ report

COLUMNS = (("model", "model"), ("runtime", "runtime"), ("precision", "precision"),
           ("arm_agreement", "agreement ARM"), ("arm_cosine", "cosine ARM"),
           ("x86_agreement", "agreement x86 (export)"), ("arm_vs_x86_agreement", "ARM = x86 top-1"),
           ("arm_vs_x86_cosine", "cosine ARM vs x86"), ("arm_relative_error", "rel. error ARM"),
           ("arm_cpu", "ARM CPU"),
           ("status", "status"))  # fmt: skip


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 1 or value != int(value) else f"{value:.2f}"
    return "-" if value is None else str(value)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |"]
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="image folder with train/ and val/")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/lightnets/arm64")
    parser.add_argument("--out", type=Path, help="write arm_verify.json and arm_verify.md here")
    parser.add_argument("--models", default=",".join(FAMILIES), help="comma-separated")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated")
    parser.add_argument("--epochs", type=int, default=10, help="training budget per model")
    parser.add_argument("--lr", type=float, default=0.05, help="training learning rate")
    parser.add_argument("--images-per-class", type=int, default=0,
                        help="train on at most N images a class (0: all)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="host threads for training")
    parser.add_argument("--cpu", default=DEFAULT_CPU, help=f"qemu -cpu model [{DEFAULT_CPU}]")
    parser.add_argument("--smoke", action="store_true",
                        help="the built-in check instead of `lightnets verify`")  # fmt: skip
    parser.add_argument("--env-only", action="store_true", help="build the env, probe, stop")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # inside the emulated python: stdlib + numpy + one runtime only
        if args.child[0] == "probe":
            print(json.dumps(child_probe()))
        else:
            path, runtime, precision, inputs = args.child[1:5]
            print(json.dumps(child_run(Path(path), runtime, precision, Path(inputs), 1)))
        return 0
    cache, runtimes = args.cache.expanduser(), args.runtimes.split(",")
    start = time.perf_counter()
    env = ensure_env(cache, "executorch" in runtimes)
    source = cache / "rootfs" / STAGE.lstrip("/") / "src" / "lightnets"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(REPO / "lightnets", source, ignore=shutil.ignore_patterns("__pycache__"))
    compile_python(source)
    cpu = probe_cpu(env, cache, args.cpu)
    print(f"{env['qemu']}; -cpu {args.cpu}: {cpu['class']} (MIDR {cpu['midr']:#x})")
    print(f"features: {' '.join(cpu['features'])}")
    print(f"arm64 Debian {env['debian']}; wheels: "
          + ", ".join(f"{k} {v}" for k, v in sorted(env["installed"].items())))  # fmt: skip
    print(f"env ready in {time.perf_counter() - start:.0f} s ({env['notes'] or 'no notes'})")
    if args.env_only:
        return 0
    if args.data is None:
        parser.error("--data is required (an image folder with train/ and val/)")
    data = subset(args.data.resolve(), args.images_per_class, cache)
    use_verify = not args.smoke
    rows = []
    for model in args.models.split(","):
        t0 = time.perf_counter()
        run, note = train(model, data, args, cache)
        print(f"{model}: {note} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for runtime in runtimes:
            for precision in RUNTIMES[runtime][1]:
                row = {"model": model, "runtime": runtime, "precision": precision,
                       "arm_cpu": cpu["class"]}  # fmt: skip
                if runtime == "executorch" and "executorch" not in env["installed"]:
                    rows.append(row | {"status": "no executorch/torch in the ARM env"})
                    continue
                if run is None:
                    rows.append(row | {"status": note})
                    continue
                t0 = time.perf_counter()
                path, note_export = export(model, run, runtime, precision, cache)
                if path is None:
                    rows.append(row | {"status": note_export})
                    print(f"  {runtime} {precision}: {note_export}", flush=True)
                    continue
                check = json.loads(Path(f"{path}.json").read_text()).get("verification", {})
                row["x86_agreement"] = check.get("agreement")
                t1 = time.perf_counter()
                try:
                    if use_verify:
                        row = verify(path, runtime, env, cache, args.cpu, row)
                    else:
                        row = smoke(path, runtime, run, env, cache, args.cpu, row, data)
                except subprocess.TimeoutExpired:
                    row["status"] = "timed out under emulation"
                row["export_s"], row["arm_s"] = t1 - t0, time.perf_counter() - t1
                rows.append(row)
                print(f"  {runtime} {precision}: {row['status']} (export {t1 - t0:.0f} s, ARM "
                      f"{row['arm_s']:.0f} s)", flush=True)  # fmt: skip
    table = markdown(rows)
    print("\n" + table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"qemu": env["qemu"], "cpu": args.cpu, "cpu_class": cpu["class"],
                "features": cpu["features"], "debian": env["debian"],
                "wheels": env["installed"], "check": "lightnets verify" if use_verify else
                "smoke", "seconds": time.perf_counter() - start}  # fmt: skip
        (args.out / "arm_verify.json").write_text(json.dumps({"env": meta, "rows": rows}, indent=1))
        (args.out / "arm_verify.md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
