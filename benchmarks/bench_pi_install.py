"""How long ``scripts/install-pi`` takes on an arm64 Debian, under qemu-user-static emulation.

Not a test (minutes, and emulation): a script that prints figures. It builds (once, cached in
``$ROLLER_BENCH_ROOT``, default /var/cache/roller-bench-arm64) an arm64 Debian root with
debootstrap from this machine's apt sources, copies it, and runs the install script in it with
chroot (no systemd there: the script installs everything and says the services are not
started). Python packages come from PyPI as on a Pi (aarch64 wheels: numpy, lgpio), so the
figure includes the download.

    sudo apt-get install debootstrap qemu-user-static binfmt-support
    sudo .venv/bin/python benchmarks/bench_pi_install.py [--arch arm64] [--keep]

Prints: the root's build time (first run only), the install time, the upgrade (second run)
time, and whether lgpio imports in the venv.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from test_pi_install import ROOT_PACKAGES, host_apt_source  # noqa: E402

QEMU = {"arm64": "qemu-aarch64", "armhf": "qemu-arm"}


def build_root(cache: Path, arch: str) -> tuple[Path, float]:
    mirror, suite = host_apt_source()
    root = cache / f"{suite}-{arch}"
    if (root / ".complete").exists():
        return root, 0.0
    binfmt = Path(f"/proc/sys/fs/binfmt_misc/{QEMU[arch]}")
    if not binfmt.exists():
        sys.exit(f"bench_pi_install: {binfmt} is missing: install qemu-user-static and "
                 "binfmt-support (update-binfmts --enable)")
    shutil.rmtree(root, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    subprocess.run(["debootstrap", f"--arch={arch}", "--variant=minbase",
                    f"--include={','.join(p for p in ROOT_PACKAGES if p != 'systemd-sysv')}",
                    suite, str(root), mirror], check=True)
    subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True)
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    (root / ".complete").touch()
    return root, time.monotonic() - began


def pip_environment(root: Path) -> list[str]:
    """This machine's pip settings that the root needs to reach PyPI as this machine does (an
    index or a CA bundle it was told to use, e.g. behind a TLS-inspecting proxy)."""
    env = []
    cert = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    if cert and Path(cert).is_file():
        shutil.copy(cert, root / "etc" / "roller-bench-ca.pem")
        env.append("PIP_CERT=/etc/roller-bench-ca.pem")
    env += [f"{k}={v}" for k, v in os.environ.items()
            if k in ("PIP_INDEX_URL", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")]
    return env


def run_install(root: Path) -> tuple[float, str]:
    began = time.monotonic()
    proc = subprocess.run(["chroot", str(root), "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                           "LANG=C.UTF-8", *pip_environment(root), "/src/scripts/install-pi"],
                          capture_output=True, text=True, timeout=3600)
    took = time.monotonic() - began
    if proc.returncode != 0:
        sys.exit(f"bench_pi_install: install-pi failed ({proc.returncode}):\n"
                 f"{proc.stdout}\n{proc.stderr}")
    return took, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="arm64", choices=sorted(QEMU))
    parser.add_argument("--keep", action="store_true", help="keep the installed copy")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_pi_install: run as root (debootstrap, chroot)")
    cache = Path(os.environ.get("ROLLER_BENCH_ROOT", "/var/cache/roller-bench-arm64"))
    base, built_s = build_root(cache, args.arch)
    if built_s:
        print(f"{args.arch} root built with debootstrap under emulation: {built_s:.0f} s")
    work = Path(tempfile.mkdtemp(prefix="bench-pi-", dir=cache))
    try:
        root = work / "root"
        subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
        files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], check=True,
                               capture_output=True).stdout.decode().split("\0")
        for name in filter(None, files):
            target = root / "src" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / name).is_file():
                shutil.copy2(REPO / name, target)
        for mount in ("proc", "sys", "dev"):
            subprocess.run(["mount", "--bind", f"/{mount}", str(root / mount)], check=True)
        try:
            first, out = run_install(root)
            second, _ = run_install(root)
            lgpio = subprocess.run(["chroot", str(root), "/opt/roller/.venv/bin/python", "-c",
                                    "import lgpio"], capture_output=True).returncode == 0
        finally:
            for mount in ("dev", "sys", "proc"):
                subprocess.run(["umount", "-l", str(root / mount)], check=False)
        print(f"install-pi on {args.arch} under qemu-user-static (chroot, PyPI): "
              f"first install {first:.0f} s, upgrade {second:.0f} s; lgpio imports: {lgpio}")
        print("\n".join(line for line in out.splitlines() if line.startswith("  ")))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
