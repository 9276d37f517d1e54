#!/usr/bin/env python3
"""CreateRepository capacity of ECR endpoints, measured with wrk on distinct requests.

One signed request cannot be replayed for CreateRepository (the second copy only gets
RepositoryAlreadyExistsException), so this signs N distinct requests up front with
botocore (repository names PREFIX-0 ... PREFIX-(N-1)) and has wrk send each exactly once.
Each wrk thread sends its share over its connections and stops when the last answer
arrives, so requests/s is N over the time from the first request to the last answer.
Every answer must be 200: anything else is counted and reported.

Usage:
  scripts/ecr-create-bench.py --target LABEL=URL[,key=ID,secret=SECRET] ... [--count N]
      [--batches B] [--threads T] [--connections C] [--prefix P]
e.g. (moto on 5001, Berth on 5000 with the credentials `berth env` prints):
  eval "$(berth env --data-dir D)"
  scripts/ecr-create-bench.py --target moto=http://127.0.0.1:5001,key=test,secret=test \\
      --target berth=http://127.0.0.1:5000,key=$AWS_ACCESS_KEY_ID,secret=$AWS_SECRET_ACCESS_KEY

With --batches B the N requests per target are sent as B consecutive wrk runs, so the
rate can be read as the registry grows (e.g. --count 100000 --batches 4 shows 0-25k,
25k-50k, 50k-75k and 75k-100k repositories). Signatures stay valid 15 minutes: each batch
is signed just before it is sent. Only loopback endpoints are accepted. Needs Debian's wrk.
"""

import argparse
import ipaddress
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TARGET = "AmazonEC2ContainerRegistry_V20150921.CreateRepository"

# Each wrk thread sends its own slice of the requests over its connections, notes when it
# started and when the slice's last answer came (LuaJIT's FFI gives a monotonic clock),
# leaves a marker file and stops; a connection whose thread has nothing left to send
# sends nothing. The script then interrupts wrk, whose
# main thread would otherwise sleep for the whole -d duration.
LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } berth_timespec;
int clock_gettime(int clk, berth_timespec *ts);
]]
local function now()
  local ts = ffi.new("berth_timespec")
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end
-- One request per line: X-Amz-Date, Authorization and body, separated by tabs.
local reqs = {}
for line in io.lines(REQS_FILE) do
  local date, auth, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
  table.insert(reqs, {{["X-Amz-Target"] = TARGET, ["Content-Type"] = "application/x-amz-json-1.1",
                       ["X-Amz-Date"] = date, ["Authorization"] = auth}, body})
end
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  nthreads = tonumber(args[1])
  nxt = id + 1
  mine = 0
  for k = id + 1, #reqs, nthreads do mine = mine + 1 end
  verifying = (id == 0)
  answered = 0
  non200 = 0
  first = 0
  last = 0
end
function request()
  -- wrk calls this once on thread 0's state, right after init, to count the requests
  -- it returns; that one is never sent, but must be a well-formed request.
  if verifying then
    verifying = false
    return wrk.format("GET", "/")
  end
  if first == 0 then first = now() end
  local r = reqs[nxt]
  if r == nil then
    -- This thread's share is sent: the connection stays quiet until the thread stops.
    return ""
  end
  nxt = nxt + nthreads
  return wrk.format("POST", "/", r[1], r[2])
end
function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then
    non200 = non200 + 1
    if non200 == 1 then io.stderr:write("first non-200: " .. status .. " " .. body .. "\n") end
  end
  if answered == mine then
    last = now()
    io.open(DONE_DIR .. "/" .. id, "w"):close()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  io.write(string.format("p50_ms %.3f\np99_ms %.3f\n", latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000))
  for _, t in ipairs(threads) do
    io.write(string.format("thread %d answered %d non200 %d first %.6f last %.6f\n",
      t:get("id"), t:get("answered"), t:get("non200"), t:get("first"), t:get("last")))
  end
end
"""


def lua_string(s: str) -> str:
    return json.dumps(s)  # JSON string escapes are valid Lua for this ASCII content


def sign_batch(url: str, creds: Credentials, region: str, names: list) -> str:
    rows = []
    for name in names:
        body = json.dumps({"repositoryName": name})
        req = AWSRequest(method="POST", url=url + "/", data=body.encode(),
                         headers={"X-Amz-Target": TARGET,
                                  "Content-Type": "application/x-amz-json-1.1"})
        SigV4Auth(creds, "ecr", region).add_auth(req)
        signed = set(k.lower() for k in req.headers.keys())
        if signed != {"x-amz-target", "content-type", "x-amz-date", "authorization"}:
            raise SystemExit("unexpected headers from botocore: %s" % sorted(signed))
        rows.append("%s\t%s\t%s" % (req.headers["X-Amz-Date"], req.headers["Authorization"], body))
    return "\n".join(rows) + "\n"


def run_batch(url, creds, region, names, threads, connections, tmp):
    t0 = time.perf_counter()
    data = os.path.join(tmp, "reqs.txt")
    with open(data, "w") as f:
        f.write(sign_batch(url, creds, region, names))
    sign_s = time.perf_counter() - t0
    script = os.path.join(tmp, "create.lua")
    done_dir = tempfile.mkdtemp(dir=tmp)
    with open(script, "w") as f:
        f.write("REQS_FILE = %s\nTARGET = %s\nDONE_DIR = %s\n"
                % (lua_string(data), lua_string(TARGET), lua_string(done_dir)) + LUA)
    threads = min(threads, len(names))
    connections = max(connections, threads)
    wrk = subprocess.Popen(["wrk", "-t%d" % threads, "-c%d" % connections, "-d900s", "-s", script,
                            url + "/", "--", str(threads)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 850
    while len(os.listdir(done_dir)) < threads and time.monotonic() < deadline:
        if wrk.poll() is not None:
            break
        time.sleep(0.02)  # polling wrk's progress, not synchronising with the server
    wrk.send_signal(signal.SIGINT)
    text, err = wrk.communicate(timeout=60)
    rows = re.findall(r"thread (\d+) answered (\d+) non200 (\d+) first ([\d.]+) last ([\d.]+)", text)
    if len(rows) != threads:
        raise SystemExit("wrk output not understood:\n" + text + err)
    answered = sum(int(r[1]) for r in rows)
    non200 = sum(int(r[2]) for r in rows)
    if answered != len(names):
        raise SystemExit("only %d of %d requests were answered" % (answered, len(names)))
    secs = max(float(r[4]) for r in rows) - min(float(r[3]) for r in rows)
    p50 = float(re.search(r"p50_ms ([\d.]+)", text).group(1))
    p99 = float(re.search(r"p99_ms ([\d.]+)", text).group(1))
    return {"requests": len(names), "seconds": round(secs, 3), "threads": threads,
            "connections": connections,
            "rps": round(len(names) / secs, 1), "p50_ms": p50, "p99_ms": p99,
            "non_200": non200, "sign_s": round(sign_s, 1), "first_error": err.strip()[:300]}


def parse_target(spec):
    label, _, rest = spec.partition("=")
    parts = rest.split(",")
    t = {"label": label, "url": parts[0].rstrip("/"),
         "key": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
         "secret": os.environ.get("AWS_SECRET_ACCESS_KEY", "test")}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        t[k] = v
    host = urlsplit(t["url"]).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise SystemExit("refusing a non-loopback endpoint: " + t["url"])
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", action="append", required=True)
    ap.add_argument("--count", type=int, default=20000, help="requests per target")
    ap.add_argument("--batches", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--connections", type=int, default=64, help="connections, over all threads")
    ap.add_argument("--prefix", default="create-bench-%d" % int(time.time()))
    ap.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    ap.add_argument("--count-for", action="append", default=[],
                    help="LABEL=N: another request count for one target (e.g. a slow one)")
    args = ap.parse_args()
    counts = dict((k, int(v)) for k, _, v in (c.partition("=") for c in args.count_for))
    results = {}
    with tempfile.TemporaryDirectory(prefix="ecr-create-") as tmp:
        for spec in args.target:
            t = parse_target(spec)
            creds = Credentials(t["key"], t["secret"])
            n = counts.get(t["label"], args.count)
            per = n // args.batches
            rows = []
            for b in range(args.batches):
                names = ["%s-%d" % (args.prefix, i) for i in range(b * per, (b + 1) * per)]
                r = run_batch(t["url"], creds, args.region, names, args.threads, args.connections, tmp)
                r["repositories_before"] = b * per
                rows.append(r)
                print("%-8s batch %d (%d..%d repositories): %.1f CreateRepository/s, p50 %.2f ms, "
                      "p99 %.2f ms, non-200: %d"
                      % (t["label"], b + 1, b * per, (b + 1) * per, r["rps"], r["p50_ms"],
                         r["p99_ms"], r["non_200"]), flush=True)
                if r["non_200"]:
                    print("         " + r["first_error"])
            results[t["label"]] = rows
    labels = list(results)
    if len(labels) > 1:
        base = sum(r["rps"] for r in results[labels[0]]) / len(results[labels[0]])
        for label in labels[1:]:
            mean = sum(r["rps"] for r in results[label]) / len(results[label])
            print("%s / %s: %.1f×" % (label, labels[0], mean / base))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
