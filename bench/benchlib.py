#!/usr/bin/env python3
"""Small helpers for bench/proxy_load.sh.

  benchlib.py ports N                 N distinct ports free on 127.0.0.1 for UDP and TCP
  benchlib.py cpu PID                 CPU seconds (utime+stime) of PID and all its descendants
  benchlib.py pids PID                PID and all its descendants, space separated
  benchlib.py drops PORT...            kernel receive-buffer drops of the UDP sockets on each port
  benchlib.py watch PORT FILE         poll drops of PORT every 0.2 s, keep the highest in FILE
  benchlib.py hostcpu                 busy CPU seconds of the whole host (all CPUs) since boot
  benchlib.py background SECS PID...  CPUs used by processes other than PIDs (and their
                                      descendants) over SECS seconds
  benchlib.py stat FILE               key=value summary of the last row of a SIPp -trace_stat CSV
  benchlib.py report TSV FIXED        markdown report of the steps recorded in TSV
"""

import os
import random
import socket
import sys

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_ports(n):
    found = []
    rng = random.Random(os.getpid())
    tries = 0
    while len(found) < n:
        tries += 1
        if tries > 5000:
            raise SystemExit("no free ports")
        p = rng.randrange(20000, 60000)
        if p in found:
            continue
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind(("127.0.0.1", p))
            t.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        found.append(p)
    return found


def proc_stat(pid):
    """(ppid, utime+stime ticks) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = s[s.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return int(rest[1]), int(rest[11]) + int(rest[12])


def tree(root):
    """root and all its descendants (by parent pid), with their CPU ticks."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                stats[int(d)] = st
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        p = todo.pop()
        if p in stats and p not in out:
            out[p] = stats[p][1]
            todo.extend(children.get(p, []))
    return out


def udp_drops(ports):
    """{port: drops} summed over the UDP sockets bound to each port (/proc/net/udp[6])."""
    want = {int(p): 0 for p in ports}
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    v = line.split()
                    port = int(v[1].rsplit(":", 1)[1], 16)
                    if port in want:
                        want[port] += int(v[-1])
        except OSError:
            pass
    return want


def host_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    busy = sum(v[:8]) - v[3] - v[4]
    return busy / CLK_TCK


def sipp_time(v):
    """SIPp's HH:MM:SS:uuuuuu -> milliseconds."""
    try:
        h, m, s, us = (int(x) for x in v.split(":"))
    except ValueError:
        return float("nan")
    return ((h * 60 + m) * 60 + s) * 1000 + us / 1000


def sipp_stat(path):
    with open(path, encoding="latin-1") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    if len(lines) < 2:
        return {"created": 0, "successful": 0, "failed": 0, "retrans": 0, "rt_ms": "nan",
                "elapsed_s": 0, "dead": 0, "unexpected": 0, "maxretrans": 0, "timeout": 0}
    cols = lines[0].split(";")
    vals = lines[-1].split(";")
    row = dict(zip(cols, vals))

    def num(k):
        try:
            return int(float(row.get(k, "0") or 0))
        except ValueError:
            return 0

    return {
        "created": num("TotalCallCreated"),
        "successful": num("SuccessfulCall(C)"),
        "failed": num("FailedCall(C)"),
        "retrans": num("Retransmissions(C)"),
        "dead": num("DeadCallMsgs(C)"),
        "unexpected": num("FailedUnexpectedMessage(C)"),
        "maxretrans": num("FailedMaxUDPRetrans(C)"),
        "timeout": num("FailedTimeoutOnRecv(C)"),
        "rt_ms": f"{sipp_time(row.get('ResponseTime1(C)', '')):.2f}",
        "elapsed_s": f"{sipp_time(row.get('ElapsedTime(C)', '') + ':0') / 1000:.0f}",
    }


FIELDS = ["proxy", "rate", "calls", "created", "successful", "failed", "retrans", "rc",
          "wall_s", "cpu_s", "sipp_cpu_s", "rt_ms", "host_cpu_s", "drops_proxy", "drops_uas",
          "drops_uac", "uas_aborts"]


def report(tsv, fixed):
    rows = []
    with open(tsv) as f:
        for line in f:
            v = line.rstrip("\n").split("\t")
            if len(v) == len(FIELDS):
                rows.append(dict(zip(FIELDS, v)))
    fixed = int(fixed)
    out = []
    out.append("| proxy | target calls/s | calls attempted | successful | failed | SIPp exit | "
               "achieved calls/s | INVITE→200 avg ms | SIPp retrans | kernel drops proxy / UAS / "
               "UAC | UAS aborted calls | proxy CPU s | **proxy CPU s / 1,000 calls** | "
               "SIPp CPU s | other host CPU s |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    busy_steps = []
    for r in rows:
        created = int(r["created"])
        ok = int(r["successful"])
        failed = int(r["failed"])
        calls = int(r["calls"])
        wall = float(r["wall_s"])
        cpu = float(r["cpu_s"])
        sipp_cpu = float(r["sipp_cpu_s"])
        other = float(r["host_cpu_s"]) - cpu - sipp_cpu
        per_k = cpu / created * 1000 if created else float("nan")
        clean = failed == 0 and ok == calls and r["rc"] == "0"
        achieved = ok / wall if wall > 0 else 0
        out.append(
            f"| {r['proxy']} | {r['rate']} | {created} | {ok} | {failed} | {r['rc']} | "
            f"{achieved:.0f} | {float(r['rt_ms']):.0f} | {r['retrans']} | "
            f"{r['drops_proxy']} / {r['drops_uas']} / {r['drops_uac']} | {r['uas_aborts']} | "
            f"{cpu:.2f} | **{per_k:.3f}** | {sipp_cpu:.2f} | {max(other, 0):.2f}"
            f"{' ⚠' if other > 0.25 * wall else ''} |"
        )
        if other > 0.25 * wall:
            busy_steps.append(f"{r['proxy']} at {r['rate']}")
        s = summary.setdefault(r["proxy"], {"max_clean": None, "first_fail": None,
                                             "fixed": None})
        rate = int(r["rate"])
        if clean:
            s["max_clean"] = max(rate, s["max_clean"] or 0)
        elif s["first_fail"] is None:
            s["first_fail"] = rate
        if rate == fixed:
            s["fixed"] = (per_k, clean)
    out.append("")
    out.append(f"| proxy | highest rate with no failed call (calls/s) | first rate with a "
               f"failed call | proxy CPU s / 1,000 calls at {fixed} calls/s |")
    out.append("|---|---:|---:|---:|")
    for proxy, s in summary.items():
        mc = s["max_clean"] if s["max_clean"] is not None else "none"
        ff = s["first_fail"] if s["first_fail"] is not None else "—"
        if s["fixed"] is None:
            fx = "not measured"
        else:
            fx = f"{s['fixed'][0]:.3f}" + ("" if s["fixed"][1] else " (with failures)")
        out.append(f"| {proxy} | {mc} | {ff} | {fx} |")
    if busy_steps:
        out.append("")
        out.append("⚠ Other processes used more than a quarter of a CPU during "
                   + ", ".join(busy_steps) + " calls/s: those steps competed with other work "
                   "on the host; their failures and CPU figures are suspect.")
    print("\n".join(out))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "ports":
        print(" ".join(str(p) for p in free_ports(int(sys.argv[2]))))
    elif cmd == "cpu":
        ticks = sum(tree(int(sys.argv[2])).values())
        print(f"{ticks / CLK_TCK:.2f}")
    elif cmd == "pids":
        print(" ".join(str(p) for p in sorted(tree(int(sys.argv[2])))))
    elif cmd == "drops":
        print(" ".join(str(d) for d in udp_drops(sys.argv[2:]).values()))
    elif cmd == "watch":
        import time
        port, out, high = int(sys.argv[2]), sys.argv[3], 0
        while True:
            d = udp_drops([port])[port]
            if d > high:
                high = d
                with open(out, "w") as f:
                    f.write(f"{high}\n")
            time.sleep(0.2)
    elif cmd == "background":
        import time
        secs, pids = float(sys.argv[2]), [int(p) for p in sys.argv[3:]]

        def ours():
            return sum(sum(tree(p).values()) for p in pids) / CLK_TCK

        t0, h0, o0 = time.monotonic(), host_cpu(), ours()
        time.sleep(secs)
        t1, h1, o1 = time.monotonic(), host_cpu(), ours()
        print(f"{max(0.0, (h1 - h0) - (o1 - o0)) / (t1 - t0):.2f}")
    elif cmd == "hostcpu":
        print(f"{host_cpu():.2f}")
    elif cmd == "stat":
        for k, v in sipp_stat(sys.argv[2]).items():
            print(f"{k}={v}")
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
