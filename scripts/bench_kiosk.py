"""Drives `vaak kiosk` on the virtual devices of scripts/virtual-audio.sh (see bench-kiosk.sh):
feeds the microphone fifo in real time (silence between clips), reads the kiosk's captions and
its per-turn timing lines, and samples the CPU time of the kiosk's processes while idle."""
import argparse, os, queue, re, statistics, subprocess, threading, time, wave

RATE, CHUNK = 16000, 320  # 20 ms of s16le mono


def clips_of(eval_dir, lang, n, max_s):
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(eval_dir, lang, "manifest.tsv"))]
    rows = [r for r in rows if r and r[0] != "path"]
    out = []
    for row in rows[:n]:
        w = wave.open(os.path.join(eval_dir, lang, row[0]) if not os.path.isabs(row[0]) else row[0])
        assert w.getframerate() == RATE and w.getnchannels() == 1, row[0]
        out.append((lang, row[0], w.readframes(min(w.getnframes(), int(max_s * RATE)))))
    return out


def feeder(fifo, pending, stop):
    f = open(fifo, "wb", buffering=0)
    start, n, buf = time.monotonic(), 0, b""
    while not stop.is_set():
        if not buf:
            try:
                buf = pending.get_nowait()
            except queue.Empty:
                buf = b""
        chunk, buf = (buf[: CHUNK * 2], buf[CHUNK * 2 :]) if buf else (b"\0" * CHUNK * 2, b"")
        f.write(chunk.ljust(CHUNK * 2, b"\0"))
        n += 1
        time.sleep(max(0.0, start + n * 0.02 - time.monotonic()))


def cpu_seconds(pid):
    """CPU time of a process and its children (the LLM worker), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    total = 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total / tick


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--idle-s", type=float, default=30)
    a = ap.parse_args()
    cfg = os.path.join(a.dir, "kiosk.toml")
    open(cfg, "w").write('[pipeline]\nlanguages = ["hi", "te", "en"]\n[kiosk]\ngreeting_idle_s = 0\n')
    pending, stop = queue.Queue(), threading.Event()
    threading.Thread(target=feeder, args=(os.environ["PA_MIC_FIFO"], pending, stop), daemon=True).start()
    log = open(os.path.join(a.dir, "kiosk.log"), "w")
    k = subprocess.Popen([a.bin, "--config", cfg, "kiosk"], stdout=subprocess.PIPE, stderr=log, text=True,
                         env=dict(os.environ, VAAK_LOG="info"))
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.rstrip()) for l in k.stdout], daemon=True).start()

    def wait_for(pattern, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            print("  kiosk>", line, flush=True)
            m = re.search(pattern, line)
            if m:
                return m
        return None

    try:
        assert wait_for(r"^\[listening", 240), "the kiosk did not start"
        time.sleep(15)  # greetings in three languages play out
        c0, t0 = cpu_seconds(k.pid), time.monotonic()
        time.sleep(a.idle_s)
        idle = (cpu_seconds(k.pid) - c0) / (time.monotonic() - t0) * 100
        print(f"idle CPU while listening to silence: {idle:.1f} % of one core (vaak + LLM worker, {a.idle_s:.0f} s)")
        lat, missed = [], 0
        for lang, name, pcm in [c for l in ("hi", "te", "en") for c in clips_of(a.eval, l, a.clips, 6.0)]:
            pending.put(pcm)
            m = wait_for(r"^\[turn \d+: (\d+) ms", 120)
            if m:
                lat.append(int(m.group(1)))
                print(f"{lang} {name}: {m.group(1)} ms", flush=True)
            else:
                missed += 1
                print(f"{lang} {name}: no reply within 120 s", flush=True)
            time.sleep(3)
        if lat:
            lat.sort()
            p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
            print(f"end of speech → first reply sample at the speaker: p50 {statistics.median(lat):.0f} ms, "
                  f"p95 {p95} ms over {len(lat)} turns ({missed} unanswered)")
    finally:
        stop.set()
        k.terminate()
        try:
            k.wait(20)
        except subprocess.TimeoutExpired:
            k.kill()


if __name__ == "__main__":
    main()
