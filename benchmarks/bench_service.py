"""Service benchmarks: live latency, too-fast alert latency, CPU and memory at 1 kHz simulated.

    .venv/bin/python benchmarks/bench_service.py [--seconds 20] [--rate-hz 1000]
    .venv/bin/python benchmarks/bench_service.py --own-cpu [--seconds 20] [--rate-hz 200 1000]

Starts its own mosquitto on a free loopback port, then:

1. ``roller run --simulate`` as a subprocess with the emulated IMU at ``--rate-hz``: a
   subscriber in this process measures the sample-to-subscriber latency of every ``live``
   message (receive time minus the payload's ``t_s``: both CLOCK_MONOTONIC, one machine), and
   the service's CPU (utime + stime from /proc over the measuring window, % of one core) and
   memory (VmRSS and its peak VmHWM).
2. An in-process service (system clock, same driver and pipeline) rolling a scenario with many
   too-fast passes: for each ``event/too_fast_alert`` received, the latency from the true speed
   crossing (the simulator's ground truth, its t = 0 being the emulated chip's ``source_t0`` on
   the same monotonic clock) to the moment the subscriber got it.

``--own-cpu`` measures only the service's own CPU, split by where it goes, at each
``--rate-hz``: an in-process service (system clock, real broker, the production wiring) runs
for ``--seconds``, and the main thread's CPU time (``CLOCK_THREAD_CPUTIME_ID``) is charged to
the emulated sensor (``driver.read``: simulator + emulated chip + driver, what a real sensor
would not cost), the pipeline, and the rest of the loop (commands, session, coach, health,
sinks, publisher, outbox); the other threads (paho's network loop) are the process's CPU
minus the main thread's. Per second of running, in % of one core.

Targets (issue 4): live p99 <= 50 ms on loopback, alerts <= 0.6 s after the crossing,
CPU <= 5 % of a core, RSS <= 80 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = {"live_p99_ms": 50.0, "alert_max_s": 0.6, "cpu_percent": 5.0, "rss_mb": 80.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(workdir: Path) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


class Listener:
    """A paho subscriber stamping each message with time.monotonic() on arrival."""

    def __init__(self, port: int, topic: str) -> None:
        self.got: list[tuple[float, str, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, 1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        now = time.monotonic()
        with self._lock:
            self.got.append((now, msg.topic, bytes(msg.payload)))

    def take(self) -> list[tuple[float, str, bytes]]:
        with self._lock:
            out, self.got = self.got, []
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem_mb(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def bench_subprocess(port: int, workdir: Path, seconds: float, rate_hz: float) -> dict:
    config = workdir / "bench.toml"
    config.write_text(f'state_dir = "{workdir}/state"\n[device]\nid = "bench"\n'
                      f"[sensor]\noutput_rate_hz = {rate_hz}\n")
    listener = Listener(port, "roller/bench/live")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    log = open(workdir / "roller-run.log", "w")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "roller"), "run", "--simulate",
                             "--config", str(config), "--broker", f"127.0.0.1:{port}",
                             "--log-level", "warning"], stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + 30
        while not listener.got:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("roller run did not publish: "
                                   + (workdir / "roller-run.log").read_text()[-2000:])
            time.sleep(0.05)
        time.sleep(3.0)  # warm up: imports done, pipeline calibrated, caches hot
        listener.take()
        cpu0, wall0 = proc_cpu_s(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = proc_cpu_s(proc.pid), time.monotonic()
        rss, hwm = proc_mem_mb(proc.pid)
        got = listener.take()
    finally:
        proc.terminate()
        proc.wait(15)
        listener.close()
    lat_ms = np.array([(at - json.loads(p)["t_s"]) * 1000 for at, _, p in got])
    return {"live_messages": len(got), "live_rate_hz": len(got) / (wall1 - wall0),
            "live_p50_ms": float(np.percentile(lat_ms, 50)),
            "live_p90_ms": float(np.percentile(lat_ms, 90)),
            "live_p99_ms": float(np.percentile(lat_ms, 99)),
            "live_max_ms": float(lat_ms.max()),
            "cpu_percent": 100 * (cpu1 - cpu0) / (wall1 - wall0),
            "rss_mb": rss, "rss_peak_mb": hwm, "exit_status": proc.returncode}


def bench_emulator(seconds: float, rate_hz: float) -> float:
    """CPU [% of a core] of the emulated sensor alone (simulator + emulated chip + driver),
    read at the service's pace: what --simulate adds that a real sensor would not."""
    import resource

    from firmware_bridge.clock import SystemClock
    from firmware_bridge.sensor import SensorSettings, open_sensor
    from roller.service.loop import ServiceSettings

    driver = open_sensor(SensorSettings(output_rate_hz=rate_hz), simulate=True,
                         clock=SystemClock())
    period = min(ServiceSettings().read_interval_s, driver.max_read_interval_s / 2)
    driver.read()

    def used() -> float:
        r = resource.getrusage(resource.RUSAGE_THREAD)
        return r.ru_utime + r.ru_stime

    cpu0, wall0 = used(), time.monotonic()
    next_at = wall0
    while time.monotonic() - wall0 < seconds:
        driver.read()
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
    cpu = used() - cpu0
    driver.close()
    return 100 * cpu / (time.monotonic() - wall0)


class _Charged:
    """Wraps a callable and adds the calling thread's CPU time it takes to ``self.cpu_s``."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.cpu_s = 0.0

    def __call__(self, *args, **kwargs):
        t0 = time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.cpu_s += time.thread_time() - t0


def bench_own_cpu(port: int, workdir: Path, seconds: float, rate_hz: float) -> dict:
    """The service's own CPU by part (see the module docstring), in % of one core."""
    from firmware_bridge.clock import SystemClock
    from firmware_bridge.sensor import SensorSettings
    from roller.mqtt.publisher import MqttSettings
    from roller.service.config import DeviceSettings, RollerConfig
    from roller.service.wiring import build_service

    config = RollerConfig(device=DeviceSettings(id=f"cpu{rate_hz:.0f}"),
                          mqtt=MqttSettings(host="127.0.0.1", port=port),
                          sensor=SensorSettings(output_rate_hz=rate_hz),
                          state_dir=str(workdir / f"cpu-{rate_hz:.0f}"))
    service = build_service(config, simulate=True, clock=SystemClock())
    read = service.driver.read = _Charged(service.driver.read)
    pipe = service.pipeline.update = _Charged(service.pipeline.update)
    service.publisher.start()
    service.publisher.wait_connected(5)
    end = time.monotonic() + 3.0  # warm up: calibrated, a session under way
    while time.monotonic() < end:
        service.step()
        time.sleep(service.period_s)
    read.cpu_s = pipe.cpu_s = 0.0
    main0, proc0, wall0 = time.thread_time(), time.process_time(), time.monotonic()
    next_at = wall0
    while time.monotonic() - wall0 < seconds:
        service.step()
        next_at += service.period_s
        time.sleep(max(0.0, next_at - time.monotonic()))
    main = time.thread_time() - main0
    proc = time.process_time() - proc0
    wall = time.monotonic() - wall0
    steps = service.steps
    service.request_stop()
    service.close()
    return {"sensor": 100 * read.cpu_s / wall, "pipeline": 100 * pipe.cpu_s / wall,
            "loop": 100 * (main - read.cpu_s - pipe.cpu_s) / wall,
            "threads": 100 * (proc - main) / wall, "steps": steps,
            "period_ms": 1000 * service.period_s}


def alert_scenario():
    from firmware_bridge.simulator import RestSegment, Scenario, StrokeSegment

    segments = [RestSegment(3.0)]
    for i in range(12):
        sign = (-1) ** i
        segments += [StrokeSegment(0.06 * sign, 0.03), RestSegment(0.5),
                     StrokeSegment(-0.25 * sign, 0.08 + 0.006 * i), RestSegment(1.0),
                     StrokeSegment(0.19 * sign, 0.03), RestSegment(0.5)]
    return Scenario(segments=tuple(segments), gyro_bias_rad_s=(0.03, -0.02, 0.01))


def bench_alerts(port: int, workdir: Path, rate_hz: float) -> dict:
    from firmware_bridge.clock import SystemClock
    from firmware_bridge.sensor import SensorSettings, open_sensor
    from roller.contract.messages import Topics
    from roller.mqtt.client import MqttSettings
    from roller.mqtt.outbox import Outbox
    from roller.mqtt.publisher import Publisher
    from roller.pipeline import Pipeline, PipelineSettings
    from roller.service.config import DeviceSettings, RollerConfig
    from roller.service.loop import Service

    scenario = alert_scenario()
    clock = SystemClock()
    config = RollerConfig(device=DeviceSettings(id="alerts"),
                          mqtt=MqttSettings(host="127.0.0.1", port=port),
                          state_dir=str(workdir / "alerts"))
    listener = Listener(port, "roller/alerts/event/too_fast_alert")
    publisher = Publisher(config.mqtt, Topics("alerts"),
                          Outbox(workdir / "alerts-outbox.sqlite3"))
    publisher.start()
    publisher.wait_connected(5)
    driver = open_sensor(SensorSettings(output_rate_hz=rate_hz), simulate=True,
                         scenario=scenario, clock=clock)
    pipeline_settings = PipelineSettings()
    service = Service(config.service, config.session, device_id=config.device_id,
                      driver=driver, pipeline=Pipeline(pipeline_settings),
                      publisher=publisher, clock=clock)
    chip = driver.dev.bus.chips[driver.address]
    t0 = chip.source_t0
    truth = chip.simulation.truth(
        max_speed_m_s=pipeline_settings.max_speed_m_s,
        too_fast_min_duration_s=pipeline_settings.too_fast_min_duration_s).too_fast
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    time.sleep(scenario.duration_s + 1.0)
    service.request_stop()
    runner.join(15)
    got = listener.take()
    listener.close()
    latencies = []
    matched = set()
    for at, _, payload in got:
        sim_t = at - t0
        candidates = [i for i, ex in enumerate(truth) if ex.start <= sim_t <= ex.end + 1.0]
        if not candidates:
            continue
        i = candidates[-1]
        matched.add(i)
        latencies.append(at - (t0 + truth[i].start))
        json.loads(payload)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"alerts_true": len(truth), "alerts_received": len(got),
            "alerts_matched": len(matched), "alert_p50_s": float(np.nanpercentile(lat, 50)),
            "alert_max_s": float(np.nanmax(lat))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="measuring window for live latency and CPU [s]")
    parser.add_argument("--rate-hz", type=float, nargs="+", default=[1000.0],
                        help="emulated IMU output rate(s) [Hz]")
    parser.add_argument("--own-cpu", action="store_true",
                        help="only the service's own CPU, split by part, at each rate")
    args = parser.parse_args(argv)
    if args.own_cpu:
        return own_cpu_main(args)
    args.rate_hz = args.rate_hz[0]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker, port = start_broker(workdir)
        try:
            emulator_cpu = bench_emulator(min(args.seconds, 10.0), args.rate_hz)
            service = bench_subprocess(port, workdir, args.seconds, args.rate_hz)
            alerts = bench_alerts(port, workdir, args.rate_hz)
        finally:
            broker.terminate()
            broker.wait(5)
    print(f"roller run --simulate at {args.rate_hz:.0f} Hz, {args.seconds:.0f} s window, "
          f"mosquitto on loopback")
    print(f"  live: {service['live_messages']} messages at {service['live_rate_hz']:.1f} Hz; "
          f"sample-to-subscriber latency p50 {service['live_p50_ms']:.1f} ms, "
          f"p90 {service['live_p90_ms']:.1f} ms, "
          f"p99 {service['live_p99_ms']:.1f} ms, max {service['live_max_ms']:.1f} ms "
          f"(target p99 <= {TARGETS['live_p99_ms']:.0f} ms)")
    own = service["cpu_percent"] - emulator_cpu
    print(f"  CPU: {service['cpu_percent']:.1f} % of one core for the whole process, of which "
          f"the emulated sensor (simulator + emulated chip + driver, measured alone) "
          f"{emulator_cpu:.1f} %; the service itself (pipeline, coach, MQTT, loop) "
          f"{own:.1f} % (target <= {TARGETS['cpu_percent']:.0f} %)")
    print(f"  memory: RSS {service['rss_mb']:.1f} MB, peak {service['rss_peak_mb']:.1f} MB "
          f"(target <= {TARGETS['rss_mb']:.0f} MB)")
    print(f"  exit status after SIGTERM: {service['exit_status']}")
    print(f"too-fast alerts: {alerts['alerts_received']} received for "
          f"{alerts['alerts_true']} true excursions ({alerts['alerts_matched']} matched)")
    print(f"  latency from the true speed crossing to the subscriber: "
          f"p50 {alerts['alert_p50_s']:.3f} s, max {alerts['alert_max_s']:.3f} s "
          f"(target <= {TARGETS['alert_max_s']} s)")
    ok = (service["live_p99_ms"] <= TARGETS["live_p99_ms"]
          and own <= TARGETS["cpu_percent"]
          and service["rss_mb"] <= TARGETS["rss_mb"]
          and alerts["alert_max_s"] <= TARGETS["alert_max_s"])
    print("all targets met (CPU: the service's own share)" if ok else "SOME TARGETS MISSED")
    return 0


def own_cpu_main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker, port = start_broker(workdir)
        try:
            results = [(rate, bench_own_cpu(port, workdir, args.seconds, rate))
                       for rate in args.rate_hz]
        finally:
            broker.terminate()
            broker.wait(5)
    print(f"in-process service, {args.seconds:.0f} s per rate, mosquitto on loopback; "
          f"% of one core")
    print("  rate     loop period  emulated sensor  pipeline  loop+sinks+MQTT  paho thread"
          "  service's own")
    for rate, r in results:
        own = r["pipeline"] + r["loop"] + r["threads"]
        print(f"  {rate:6.0f} Hz  {r['period_ms']:5.1f} ms  {r['sensor']:13.2f} %  "
              f"{r['pipeline']:6.2f} %  {r['loop']:13.2f} %  {r['threads']:9.2f} %  "
              f"{own:11.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
