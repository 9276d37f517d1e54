#!/usr/bin/env python3
# Berth's reference benchmark script (see docs/performance.md).
"""registry-bench.py - throughput/latency benchmark for any OCI distribution registry.

Python 3 standard library only, plus `wrk` (Debian package `wrk`) as a subprocess for
the request-rate phases. Talks HTTP/1.1 itself (keep-alive, sendfile for upload
bodies, recv_into for downloads) so the client stays cheap on a small machine.

Single target:
    registry-bench.py --url http://127.0.0.1:5055 [--user U --password P] [--pid PID]

Side by side (same run, targets alternate round by round, median per metric,
ratio = target / first target):
    registry-bench.py --target distribution=http://127.0.0.1:5055,pid=123 \
                      --target ours=http://127.0.0.1:5080,pid=456 --rounds 2

Against a saved result (e.g. the Distribution baseline JSON) as the reference column:
    registry-bench.py --url http://127.0.0.1:5080 --pid 456 --compare-json distribution.json

Phases (each bounded in count and in time):
  upload_mono_64m / upload_mono_1g : POST /v2/<name>/blobs/uploads/ then PUT <location>?digest=
                                     with the whole body (sent with sendfile from a file)
  upload_chunked_1g                : POST, PATCH in --chunk-mib chunks (Content-Range), PUT ?digest=
  download_1g_single / _x8         : GET /v2/<name>/blobs/<digest>, body discarded
  image push                       : config + 3 layers + OCI manifest PUT (tag)
  wrk phases                       : manifest GET/HEAD by tag, tags/list, blob HEAD
                                     (--wrk-connections, --wrk-threads, --wrk-duration)
  small pushes                     : --small-images tiny images (HEAD/POST/PUT for layer and
                                     config, manifest PUT) over --small-repos repos with
                                     --push-concurrency workers, then tags/list latency
  server process                   : with a pid, CPU seconds (utime+stime from /proc/<pid>/stat)
                                     per phase, RSS sampled every 50 ms, VmHWM at the end

Human-readable lines go to stderr as the run goes; one JSON object goes to stdout at the end
(and to --json-out if given). MB = 10^6 bytes. Traffic goes only to the URLs given; a
redirect (e.g. a blob GET answered 307) is followed only to a loopback address.
"""

import argparse
import base64
import hashlib
import ipaddress
import json
import os
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import urljoin, urlsplit, quote

VERSION = 1
MB = 1e6
MIB = 1 << 20

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join([
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- HTTP client

def _is_loopback(host):
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(ai[4][0]).is_loopback
                       for ai in socket.getaddrinfo(host, None))
        except OSError:
            return False


class Response:
    __slots__ = ("status", "reason", "headers", "body", "url")

    def __init__(self, status, reason, headers, body, url):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.url = url

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        return json.loads(self.body.decode("utf-8"))


class Conn:
    """One keep-alive HTTP/1.1 connection (plain or TLS)."""

    def __init__(self, scheme, host, port, timeout, insecure):
        self.scheme, self.host, self.port = scheme, host, port
        self.timeout = timeout
        self.insecure = insecure
        self.sock = None
        self.buf = bytearray()

    def connect(self):
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "https":
            ctx = ssl.create_default_context()
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname=self.host)
        self.sock = s
        self.buf = bytearray()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.buf = bytearray()

    def _fill(self):
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def _readline(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > 65536:
                raise BenchError("header line too long")
            self._fill()

    def _readexact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _discard(self, n, bufsize=4 * MIB):
        """Read and drop n body bytes. Returns n."""
        left = n
        take = min(left, len(self.buf))
        if take:
            del self.buf[:take]
            left -= take
        if left:
            mv = memoryview(bytearray(min(bufsize, left)))
            while left:
                got = self.sock.recv_into(mv, min(len(mv), left))
                if not got:
                    raise ConnectionError("connection closed mid-body")
                left -= got
        return n

    def _digest_into(self, n, h, bufsize=4 * MIB):
        left = n
        take = min(left, len(self.buf))
        if take:
            h.update(self.buf[:take])
            del self.buf[:take]
            left -= take
        if left:
            ba = bytearray(min(bufsize, left))
            mv = memoryview(ba)
            while left:
                got = self.sock.recv_into(mv, min(len(mv), left))
                if not got:
                    raise ConnectionError("connection closed mid-body")
                h.update(mv[:got])
                left -= got
        return n

    def exchange(self, method, target, headers, body=None, body_file=None, sink=None):
        """Send one request and read the response.

        body: bytes or None.  body_file: (fileobj, offset, count) sent with sendfile.
        sink: None (keep body in memory), "discard" or a hashlib object (hash, keep nothing).
        Returns (status, reason, headers, body_bytes_or_None, body_len, keep_alive).
        """
        if self.sock is None:
            self.connect()
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % self._hostport()]
        has_len = False
        for k, v in headers.items():
            if v is None:
                continue
            if k.lower() == "content-length":
                has_len = True
            lines.append("%s: %s" % (k, v))
        if not has_len:
            if body is not None:
                lines.append("Content-Length: %d" % len(body))
            elif body_file is not None:
                lines.append("Content-Length: %d" % body_file[2])
            elif method in ("POST", "PUT", "PATCH"):
                lines.append("Content-Length: 0")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is not None and len(body) <= 65536:
            self.sock.sendall(head + body)
        else:
            self.sock.sendall(head)
            if body is not None:
                self.sock.sendall(body)
        if body_file is not None:
            f, off, cnt = body_file
            sent = 0
            while sent < cnt:
                n = self.sock.sendfile(f, off + sent, cnt - sent)
                if not n:
                    raise BenchError("sendfile sent nothing (file shorter than expected?)")
                sent += n
        # response (skip 1xx)
        while True:
            status_line = self._readline().decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise BenchError("bad status line: %r" % status_line)
            status = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            hdrs = {}
            while True:
                line = self._readline()
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                k = k.strip().lower()
                v = v.strip()
                hdrs[k] = (hdrs[k] + ", " + v) if k in hdrs else v
            if 100 <= status < 200 and status != 101:
                continue
            break
        keep = parts[0] != "HTTP/1.0" and "close" not in hdrs.get("connection", "").lower()
        if parts[0] == "HTTP/1.0" and "keep-alive" in hdrs.get("connection", "").lower():
            keep = True
        data = None
        blen = 0
        if method == "HEAD" or status in (204, 304):
            pass
        elif "chunked" in hdrs.get("transfer-encoding", "").lower():
            out = bytearray()
            while True:
                size_line = self._readline().split(b";")[0].strip()
                size = int(size_line, 16)
                if size == 0:
                    while self._readline():
                        pass
                    break
                piece = self._readexact(size)
                blen += size
                if sink is None:
                    out += piece
                elif sink != "discard":
                    sink.update(piece)
                self._readexact(2)
            data = bytes(out) if sink is None else None
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"].split(",")[0])
            blen = n
            if sink is None:
                data = self._readexact(n)
            elif sink == "discard":
                self._discard(n)
            else:
                self._digest_into(n, sink)
        else:
            # read until close
            out = bytearray(self.buf)
            self.buf = bytearray()
            while True:
                chunk = self.sock.recv(262144)
                if not chunk:
                    break
                out += chunk
            blen = len(out)
            if sink is None:
                data = bytes(out)
            elif sink != "discard":
                sink.update(out)
            keep = False
        if not keep:
            self.close()
        return status, reason, hdrs, data, blen, keep

    def _hostport(self):
        h = self.host if ":" not in self.host else "[%s]" % self.host
        default = 443 if self.scheme == "https" else 80
        return h if self.port == default else "%s:%d" % (h, self.port)


class Client:
    """Per-thread registry client: connection pool per origin, auth handling,
    relative/absolute Location resolution, loopback-only redirects."""

    def __init__(self, base_url, user=None, password=None, timeout=300.0, insecure=False,
                 auth_state=None):
        self.base = base_url.rstrip("/")
        u = urlsplit(self.base)
        if u.scheme not in ("http", "https"):
            raise BenchError("only http:// and https:// URLs are supported")
        if not _is_loopback(u.hostname or ""):
            raise BenchError("refusing non-loopback target %s" % self.base)
        self.user, self.password = user, password
        self.timeout = timeout
        self.insecure = insecure
        self.conns = {}
        # auth_state is shared between clients of one target (thread-safe dict ops only)
        self.auth = auth_state if auth_state is not None else {"scheme": None, "basic": None,
                                                                 "tokens": {}, "repo_hdr": {}}
        if user is not None and self.auth["basic"] is None:
            self.auth["basic"] = "Basic " + base64.b64encode(
                ("%s:%s" % (user, password or "")).encode()).decode()

    def _conn(self, scheme, host, port):
        key = (scheme, host, port)
        c = self.conns.get(key)
        if c is None:
            c = Conn(scheme, host, port, self.timeout, self.insecure)
            self.conns[key] = c
        return c

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}

    def abs_url(self, path_or_url, relative_to=None):
        return urljoin((relative_to or self.base) + ("" if relative_to else "/"), path_or_url)

    @staticmethod
    def _repo_of(path):
        m = re.match(r"^/v2/(.+?)/(blobs|manifests|tags|referrers)/", path)
        return m.group(1) if m else ""

    def _auth_header(self, path):
        st = self.auth
        if st["scheme"] == "basic":
            return st["basic"]
        if st["scheme"] == "bearer":
            return st["repo_hdr"].get(self._repo_of(path)) or st["repo_hdr"].get("*")
        return None

    def _handle_401(self, resp_headers, path):
        chal = resp_headers.get("www-authenticate", "")
        scheme = chal.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self.auth["basic"] is None:
                raise BenchError("registry wants Basic auth: pass --user/--password")
            if self.auth["scheme"] == "basic":
                raise BenchError("Basic credentials rejected (401)")
            self.auth["scheme"] = "basic"
            return
        if scheme == "bearer":
            params = dict(re.findall(r'(\w+)="([^"]*)"', chal))
            realm = params.get("realm")
            if not realm:
                raise BenchError("Bearer challenge without realm: %r" % chal)
            ru = urlsplit(realm)
            if not _is_loopback(ru.hostname or ""):
                raise BenchError("token realm %s is not on loopback; refusing" % realm)
            q = []
            if params.get("service"):
                q.append("service=" + quote(params["service"]))
            if params.get("scope"):
                for sc in params["scope"].split(" "):
                    q.append("scope=" + quote(sc))
            turl = realm + ("&" if "?" in realm else "?") + "&".join(q)
            hdrs = {}
            if self.auth["basic"]:
                hdrs["Authorization"] = self.auth["basic"]
            c = self._conn(ru.scheme, ru.hostname, ru.port or (443 if ru.scheme == "https" else 80))
            tpath = turl[len("%s://%s" % (ru.scheme, ru.netloc)):] or "/"
            st, _, _, data, _, _ = c.exchange("GET", tpath, hdrs)
            if st != 200:
                raise BenchError("token request to %s failed: %d" % (realm, st))
            tok = json.loads(data)
            token = tok.get("token") or tok.get("access_token")
            self.auth["scheme"] = "bearer"
            key = self._repo_of(path) or "*"
            self.auth["repo_hdr"][key] = "Bearer " + token
            return
        raise BenchError("401 with unsupported challenge %r" % chal)

    def request(self, method, url, headers=None, body=None, body_file=None, sink=None,
                expect=None, max_redirects=5):
        """url: path ('/v2/...') or absolute URL. Returns Response (body may be None)."""
        headers = dict(headers or {})
        full = self.abs_url(url)
        for _ in range(max_redirects + 1):
            u = urlsplit(full)
            if not _is_loopback(u.hostname or ""):
                raise BenchError("refusing to follow to non-loopback URL %s" % full)
            port = u.port or (443 if u.scheme == "https" else 80)
            target = u.path + ("?" + u.query if u.query else "")
            same_origin = full.startswith(self.base + "/")
            for attempt in (1, 2, 3):
                h = dict(headers)
                if same_origin:
                    ah = self._auth_header(u.path)
                    if ah:
                        h["Authorization"] = ah
                c = self._conn(u.scheme, u.hostname, port)
                fresh = c.sock is None
                try:
                    st, reason, rh, data, blen, _ = c.exchange(method, target, h, body, body_file, sink)
                except (ConnectionError, BrokenPipeError, ConnectionResetError) as e:
                    c.close()
                    if attempt == 1 and not fresh:
                        continue  # stale keep-alive connection: retry once on a new one
                    raise BenchError("%s %s: %s" % (method, full, e))
                if st == 401 and same_origin and attempt < 3:
                    self._handle_401(rh, u.path)
                    continue
                break
            if st in (301, 302, 303, 307, 308) and "location" in rh and method in ("GET", "HEAD"):
                full = urljoin(full, rh["location"])
                headers.pop("Authorization", None)
                continue
            resp = Response(st, reason, rh, data, full)
            if expect is not None and st not in (expect if isinstance(expect, tuple) else (expect,)):
                raise BenchError("%s %s -> %d %s %s" % (method, full, st, reason,
                                                       (data or b"")[:300].decode("utf-8", "replace")))
            return resp
        raise BenchError("too many redirects for %s" % url)

    # ---- OCI helpers
    def location(self, resp):
        loc = resp.header("location")
        if not loc:
            raise BenchError("no Location header in %d response to %s" % (resp.status, resp.url))
        return urljoin(resp.url, loc)

    def start_upload(self, repo):
        r = self.request("POST", "/v2/%s/blobs/uploads/" % repo, expect=202)
        return self.location(r)

    @staticmethod
    def with_digest(loc, digest):
        return loc + ("&" if "?" in loc else "?") + "digest=" + quote(digest)

    def push_blob_bytes(self, repo, data, digest=None, check=True):
        digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
        if check:
            r = self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest))
            if r.status == 200:
                return digest
        loc = self.start_upload(repo)
        r = self.request("PUT", self.with_digest(loc, digest),
                         {"Content-Type": "application/octet-stream"}, body=data, expect=201)
        got = r.header("docker-content-digest")
        if got and got != digest:
            raise BenchError("registry returned digest %s, expected %s" % (got, digest))
        return digest

    def put_manifest(self, repo, ref, body, media_type=OCI_MANIFEST):
        r = self.request("PUT", "/v2/%s/manifests/%s" % (repo, ref), {"Content-Type": media_type},
                         body=body, expect=201)
        want = "sha256:" + hashlib.sha256(body).hexdigest()
        got = r.header("docker-content-digest")
        if got and got != want:
            raise BenchError("manifest digest mismatch: %s vs %s" % (got, want))
        return want


# --------------------------------------------------------------------------- process watch

CLK = os.sysconf("SC_CLK_TCK")


def _summed(one):
    """`one` over a pid or a tuple of pids (several nodes of one server), summed."""
    def over(pid, *args):
        if not isinstance(pid, tuple):
            return one(pid, *args)
        values = [one(p, *args) for p in pid]
        return None if None in values else sum(values)
    return over


@_summed
def proc_cpu_s(pid, user_only=False):
    """utime+stime (or utime only) of a process, seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        rest = s[s.rfind(")") + 2:].split()
        return (int(rest[11]) + (0 if user_only else int(rest[12]))) / CLK
    except (OSError, ValueError, IndexError):
        return None


@_summed
def proc_status(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB -> bytes
    except (OSError, ValueError):
        pass
    return None


class ProcWatch(threading.Thread):
    """Samples VmRSS of pid every interval; tracks the max since the last reset()."""

    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.alive = True
        self._halt = threading.Event()

    def run(self):
        while not self._halt.wait(self.interval):
            rss = proc_status(self.pid, "VmRSS")
            if rss is None:
                self.alive = False
                continue
            if rss > self.peak:
                self.peak = rss
        return

    def reset(self):
        cur = proc_status(self.pid, "VmRSS") or 0
        p, self.peak = self.peak, cur
        return p

    def stop(self):
        self._halt.set()


def host_cpu():
    """(busy_s, steal_s, user_s) of the whole machine from /proc/stat (all cpus)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / CLK, steal / CLK, (user + nice) / CLK
    except (OSError, ValueError):
        return None, None, None


class Phases:
    """Records wall time, server CPU seconds, server peak RSS, client CPU (this process and
    its finished children, e.g. wrk) and the rest of the machine's CPU use per phase."""

    def __init__(self, pid):
        self.pid = pid
        self.watch = ProcWatch(pid) if pid else None
        if self.watch:
            self.watch.start()
        self.out = {}

    def client_cpu(self, user_only=False):
        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_CHILDREN)
        if user_only:
            return a.ru_utime + b.ru_utime
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    def begin(self, name):
        rec = {"t0": time.perf_counter(), "c0": self.client_cpu(), "cu0": self.client_cpu(True),
               "s0": proc_cpu_s(self.pid) if self.pid else None,
               "su0": proc_cpu_s(self.pid, True) if self.pid else None, "h0": host_cpu()}
        if self.watch:
            self.watch.reset()
        return name, rec

    def end(self, token):
        name, rec = token
        wall = time.perf_counter() - rec["t0"]
        client = self.client_cpu() - rec["c0"]
        d = {"wall_s": round(wall, 3), "client_cpu_s": round(client, 3)}
        server = server_user = 0.0
        if self.pid:
            s1 = proc_cpu_s(self.pid)
            su1 = proc_cpu_s(self.pid, True)
            if s1 is not None and rec["s0"] is not None:
                server = s1 - rec["s0"]
                server_user = su1 - rec["su0"]
                d["server_cpu_s"] = round(server, 3)
                d["server_cpu_util"] = round(server / wall, 3) if wall > 0 else None
        h1 = host_cpu()
        if h1[0] is not None and rec["h0"][0] is not None:
            busy = h1[0] - rec["h0"][0]
            # CPU used by everything else on the machine (other jobs, kernel threads);
            # without --pid the server's share is included here
            d["other_cpu_s"] = round(max(0.0, busy - client - server), 3)
            # user-space CPU of other processes: the noise from other jobs (kernel work such as
            # page-cache writeback and loopback softirqs that this run causes is excluded)
            d["other_user_cpu_s"] = round(max(0.0, (h1[2] - rec["h0"][2]) - server_user
                                              - (self.client_cpu(True) - rec["cu0"])), 3)
            d["steal_s"] = round(h1[1] - rec["h0"][1], 3)
            if self.watch:
                d["server_peak_rss_mib"] = round(self.watch.reset() / MIB, 1)
        self.out[name] = d
        return d

    def close(self):
        if self.watch:
            self.watch.stop()


# --------------------------------------------------------------------------- data files

class BlobFile:
    """A file of random bytes whose first 64 bytes are rewritten with a fresh nonce
    before each use, so every upload has a new digest (no server-side dedupe)."""

    def __init__(self, path, size):
        self.path, self.size = path, size
        if not (os.path.exists(path) and os.path.getsize(path) == size):
            log("  generating %s (%d MiB of random data) ..." % (path, size // MIB))
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                left = size
                while left:
                    n = min(left, 8 * MIB)
                    f.write(os.urandom(n))
                    left -= n
            os.replace(tmp, path)
        self.digest = None
        self.hash_MBps = None

    def renew(self):
        with open(self.path, "r+b") as f:
            f.write(b"registry-bench nonce " + uuid.uuid4().hex.encode() + b" " * 11)
        h = hashlib.sha256()
        t = time.perf_counter()
        with open(self.path, "rb") as f:
            buf = bytearray(8 * MIB)
            mv = memoryview(buf)
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(mv[:n])
        dt = time.perf_counter() - t
        self.hash_MBps = self.size / dt / MB
        self.digest = "sha256:" + h.hexdigest()
        return self.digest


# --------------------------------------------------------------------------- wrk

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(tok):
    m = re.match(r"^([\d.]+)(us|ms|s|m)$", tok)
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


def _show_cmd(cmd):
    """Command line for the JSON record, with credentials redacted."""
    out = []
    for c in cmd:
        if c.lower().startswith("authorization:"):
            c = "Authorization: <redacted>"
        out.append(c if " " not in c else "'%s'" % c)
    return " ".join(out)


def run_wrk(args, url, method="GET", headers=None, label=""):
    wrk = shutil.which(args.wrk)
    if not wrk:
        log("  wrk not found (%s): skipping %s" % (args.wrk, label))
        return None
    cmd = [wrk, "-t%d" % args.wrk_threads, "-c%d" % args.wrk_connections,
           "-d%ds" % args.wrk_duration, "--latency", "--timeout", "10s"]
    for k, v in (headers or {}).items():
        cmd += ["-H", "%s: %s" % (k, v)]
    script = None
    if method != "GET":
        fd, script = tempfile.mkstemp(suffix=".lua", prefix="wrk-", dir=args.data_dir)
        with os.fdopen(fd, "w") as f:
            f.write('wrk.method = "%s"\n' % method)
        cmd += ["-s", script]
    cmd.append(url)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.wrk_duration + 60)
    finally:
        if script:
            os.unlink(script)
    out = p.stdout
    res = {"cmd": _show_cmd(cmd)}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    res["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        res["p%s_ms" % pct] = round(_ms(m.group(1)), 3) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    if p.returncode != 0 or res["rps"] is None:
        res["error"] = (p.stderr or out)[-500:]
    return res


def run_ab(args, url, method="HEAD", headers=None, label=""):
    """ApacheBench for HEAD load (wrk 4.1 waits for a body after a HEAD response and
    never completes a request). Keep-alive, --wrk-connections concurrency, --wrk-duration
    seconds, one thread. Percentiles come from ab's CSV (-e), in ms with 3 decimals."""
    ab = shutil.which(args.ab)
    if not ab:
        log("  ab not found (%s; Debian package apache2-utils): skipping %s" % (args.ab, label))
        return None
    fd, csv = tempfile.mkstemp(suffix=".csv", prefix="ab-", dir=args.data_dir)
    os.close(fd)
    cmd = [ab, "-k", "-q", "-c", str(args.wrk_connections), "-t", str(args.wrk_duration),
           "-n", "100000000", "-s", "10", "-e", csv]
    if method == "HEAD":
        cmd.append("-i")
    elif method != "GET":
        raise BenchError("run_ab: only GET and HEAD")
    for k, v in (headers or {}).items():
        cmd += ["-H", "%s: %s" % (k, v)]
    cmd.append(url)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.wrk_duration + 60)
        with open(csv) as f:
            rows = dict(line.strip().split(",", 1) for line in f if line[:1].isdigit())
    finally:
        os.unlink(csv)
    out = p.stdout
    res = {"tool": "ab", "cmd": _show_cmd(cmd)}
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"Complete requests:\s+(\d+)", out)
    res["requests"] = int(m.group(1)) if m else None
    for pc in ("50", "75", "90", "99"):
        res["p%s_ms" % pc] = float(rows[pc]) if pc in rows else None
    m = re.search(r"Non-2xx responses:\s+(\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Failed requests:\s+(\d+)", out)
    res["socket_errors"] = int(m.group(1)) if m else 0
    if p.returncode != 0 or res["rps"] is None:
        res["error"] = (p.stderr or out)[-500:]
    return res


# --------------------------------------------------------------------------- phases

def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def upload_mono(cl, repo, bf):
    bf.renew()
    with open(bf.path, "rb") as f:
        t0 = time.perf_counter()
        loc = cl.start_upload(repo)
        r = cl.request("PUT", cl.with_digest(loc, bf.digest),
                       {"Content-Type": "application/octet-stream"},
                       body_file=(f, 0, bf.size), expect=201)
        dt = time.perf_counter() - t0
    got = r.header("docker-content-digest")
    if got and got != bf.digest:
        raise BenchError("upload digest mismatch: %s vs %s" % (got, bf.digest))
    return dt


def upload_chunked(cl, repo, bf, chunk):
    bf.renew()
    n = 0
    with open(bf.path, "rb") as f:
        t0 = time.perf_counter()
        loc = cl.start_upload(repo)
        off = 0
        while off < bf.size and n < 100000:
            cnt = min(chunk, bf.size - off)
            r = cl.request("PATCH", loc, {"Content-Type": "application/octet-stream",
                                          "Content-Range": "%d-%d" % (off, off + cnt - 1)},
                           body_file=(f, off, cnt), expect=202)
            loc = cl.location(r)
            rng = r.header("range")
            if rng:
                end = int(rng.split("-")[-1])
                if end != off + cnt - 1:
                    raise BenchError("PATCH Range %s, expected 0-%d" % (rng, off + cnt - 1))
            off += cnt
            n += 1
        r = cl.request("PUT", cl.with_digest(loc, bf.digest), {"Content-Length": "0"}, expect=201)
        dt = time.perf_counter() - t0
    got = r.header("docker-content-digest")
    if got and got != bf.digest:
        raise BenchError("chunked upload digest mismatch: %s vs %s" % (got, bf.digest))
    return dt, n


def download(cl, repo, digest, size, verify=False):
    h = hashlib.sha256() if verify else "discard"
    t0 = time.perf_counter()
    r = cl.request("GET", "/v2/%s/blobs/%s" % (repo, digest), sink=h, expect=200)
    dt = time.perf_counter() - t0
    cl_len = r.header("content-length")
    if cl_len is not None and int(cl_len) != size:
        raise BenchError("GET blob Content-Length %s != %d" % (cl_len, size))
    if verify and "sha256:" + h.hexdigest() != digest:
        raise BenchError("downloaded blob digest mismatch")
    return dt


def run_target(args, tgt, round_no, run_id, data):
    """One full round against one target. Returns (metrics, phases, errors)."""
    label, url = tgt["label"], tgt["url"]
    pid = tgt.get("pid")
    auth_state = {"scheme": None, "basic": None, "tokens": {}, "repo_hdr": {}}

    def new_client():
        return Client(url, tgt.get("user"), tgt.get("password"), timeout=args.timeout,
                      insecure=args.insecure, auth_state=auth_state)

    cl = new_client()
    ph = Phases(pid)
    m = {}
    errors = []
    tag = "%s-r%d" % (run_id, round_no)
    big_repo = "%s/big-%s" % (args.repo_prefix, tag)
    img_repo = "%s/img-%s" % (args.repo_prefix, tag)
    deadline_round = time.monotonic() + args.max_round_seconds

    def step(name, fn):
        if time.monotonic() > deadline_round:
            errors.append("%s: skipped (round time budget spent)" % name)
            log("  [%s] skipped: round time budget spent" % name)
            return
        tok = ph.begin(name)
        try:
            fn()
        except Exception as e:  # record and continue with the next phase
            errors.append("%s: %s" % (name, e))
            log("  [%s] ERROR: %s" % (name, e))
            cl.close()
        finally:
            d = ph.end(tok)
            log("  [%s] wall %.1fs%s, client cpu %.2fs, other cpu %.2fs (of it user %.2fs, steal %.2fs)" % (
                name, d["wall_s"],
                ", server cpu %.2fs, peak rss %.0f MiB" % (d["server_cpu_s"], d["server_peak_rss_mib"])
                if "server_cpu_s" in d else "", d["client_cpu_s"], d.get("other_cpu_s", -1),
                d.get("other_user_cpu_s", -1), d.get("steal_s", -1)))

    log("== target %s (%s) round %d" % (label, url, round_no))
    if pid:
        m["server_rss_start_mib"] = round((proc_status(pid, "VmRSS") or 0) / MIB, 1)

    # /v2/ probe
    r = cl.request("GET", "/v2/")
    if r.status == 401:
        cl._handle_401(r.headers, "/v2/")
        r = cl.request("GET", "/v2/")
    if r.status != 200:
        raise BenchError("GET /v2/ -> %d" % r.status)
    m["api_version_header"] = r.header("docker-distribution-api-version")
    m["auth_scheme"] = auth_state["scheme"] or "none"

    # ---- uploads
    small_bf, big_bf = data["small"], data["big"]
    state = {}

    def ph_mono_small():
        xs = []
        for i in range(args.reps):
            dt = upload_mono(cl, big_repo, small_bf)
            xs.append(small_bf.size / dt / MB)
            log("  upload mono %d MiB #%d: %.1f MB/s (%.3f s)" % (small_bf.size // MIB, i + 1, xs[-1], dt))
        m["upload_mono_64m_MBps"] = round(statistics.median(xs), 1)
        m["upload_mono_64m_samples"] = [round(x, 1) for x in xs]
        state["small_digest"] = small_bf.digest

    def ph_mono_big():
        xs = []
        for i in range(args.big_reps):
            dt = upload_mono(cl, big_repo, big_bf)
            xs.append(big_bf.size / dt / MB)
            m.setdefault("client_sha256_MBps_samples", []).append(round(big_bf.hash_MBps, 1))
            log("  upload mono %d MiB #%d: %.1f MB/s (%.2f s)  [client-side sha256 of the file: %.0f MB/s]"
                % (big_bf.size // MIB, i + 1, xs[-1], dt, big_bf.hash_MBps))
        m["upload_mono_1g_MBps"] = round(statistics.median(xs), 1)
        m["upload_mono_1g_samples"] = [round(x, 1) for x in xs]
        state["big_digest"] = big_bf.digest

    def ph_chunked():
        xs = []
        for i in range(args.big_reps):
            dt, n = upload_chunked(cl, big_repo, big_bf, args.chunk_mib * MIB)
            xs.append(big_bf.size / dt / MB)
            log("  upload chunked %d MiB in %d x %d MiB PATCH #%d: %.1f MB/s (%.2f s)"
                % (big_bf.size // MIB, n, args.chunk_mib, i + 1, xs[-1], dt))
        m["upload_chunked_1g_MBps"] = round(statistics.median(xs), 1)
        m["upload_chunked_1g_samples"] = [round(x, 1) for x in xs]
        m["upload_chunked_patches"] = n

    step("upload_mono_64m", ph_mono_small)
    step("upload_mono_1g", ph_mono_big)
    step("upload_chunked_1g", ph_chunked)

    # ---- downloads
    def ph_dl_single():
        dig = state.get("big_digest")
        if not dig:
            raise BenchError("no 1 GiB blob uploaded")
        if state.get("small_digest"):
            download(cl, big_repo, state["small_digest"], small_bf.size, verify=True)
        xs = []
        for i in range(args.reps):
            dt = download(cl, big_repo, dig, big_bf.size)
            xs.append(big_bf.size / dt / MB)
            log("  download 1 stream #%d: %.1f MB/s (%.2f s)" % (i + 1, xs[-1], dt))
        m["download_1g_single_MBps"] = round(statistics.median(xs), 1)
        m["download_1g_single_samples"] = [round(x, 1) for x in xs]

    def ph_dl_multi():
        dig = state.get("big_digest")
        if not dig:
            raise BenchError("no 1 GiB blob uploaded")
        n = args.download_streams
        barrier = threading.Barrier(n)
        res = [None] * n

        def worker(i):
            c = new_client()
            try:
                c.request("HEAD", "/v2/%s/blobs/%s" % (big_repo, dig), expect=200)  # warm conn
                barrier.wait(timeout=60)
                t0 = time.perf_counter()
                dl = download(c, big_repo, dig, big_bf.size)
                res[i] = (t0, t0 + dl)
            except Exception as e:
                res[i] = e
            finally:
                c.close()

        ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(timeout=args.timeout + 60)
        bad = [r for r in res if not isinstance(r, tuple)]
        if bad:
            raise BenchError("concurrent download failed: %s" % bad[0])
        wall = max(r[1] for r in res) - min(r[0] for r in res)
        agg = n * big_bf.size / wall / MB
        m["download_1g_x%d_aggregate_MBps" % n] = round(agg, 1)
        m["download_1g_x%d_wall_s" % n] = round(wall, 2)
        log("  download %d concurrent streams: %.1f MB/s aggregate (%.2f s)" % (n, agg, wall))

    step("download_1g_single", ph_dl_single)
    step("download_1g_x%d" % args.download_streams, ph_dl_multi)

    # ---- small image + wrk phases
    img = {}

    def ph_image_push():
        layers = []
        for sz in (1024, 16 * 1024, 256 * 1024):
            d = os.urandom(sz)
            layers.append({"mediaType": OCI_LAYER, "size": sz,
                           "digest": cl.push_blob_bytes(img_repo, d)})
        cfg = json.dumps({"architecture": "amd64", "os": "linux",
                          "config": {"Env": ["BENCH=%s" % tag]},
                          "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}},
                         sort_keys=True).encode()
        cfg_d = cl.push_blob_bytes(img_repo, cfg)
        man = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": OCI_CONFIG, "size": len(cfg), "digest": cfg_d},
                          "layers": layers}, indent=3).encode()
        lat = []
        for i in range(args.manifest_puts):
            t0 = time.perf_counter()
            dig = cl.put_manifest(img_repo, "v%d" % i, man)
            lat.append((time.perf_counter() - t0) * 1000)
        m["manifest_put_p50_ms"] = round(pct(lat, 0.5), 3)
        m["manifest_put_p99_ms"] = round(pct(lat, 0.99), 3)
        img.update(digest=dig, manifest=man, layer=layers[0]["digest"])
        # correctness checks before the wrk runs
        r = cl.request("GET", "/v2/%s/manifests/v0" % img_repo, {"Accept": MANIFEST_ACCEPT}, expect=200)
        if r.body != man:
            raise BenchError("GET manifest returned different bytes")
        if r.header("docker-content-digest") not in (None, dig):
            raise BenchError("GET manifest Docker-Content-Digest mismatch")
        r = cl.request("HEAD", "/v2/%s/manifests/v0" % img_repo, {"Accept": MANIFEST_ACCEPT}, expect=200)
        r = cl.request("GET", "/v2/%s/tags/list" % img_repo, expect=200)
        tags = r.json().get("tags") or []
        if len(tags) < min(args.manifest_puts, 50):
            raise BenchError("tags/list returned %d tags" % len(tags))
        log("  image pushed (%d manifest PUTs: p50 %.2f ms, p99 %.2f ms)"
            % (len(lat), m["manifest_put_p50_ms"], m["manifest_put_p99_ms"]))

    step("image_push", ph_image_push)

    def wrk_phase(key, method, path, accept=None, tool="wrk"):
        def fn():
            if not img:
                raise BenchError("no image pushed")
            hdrs = {}
            if accept:
                hdrs["Accept"] = accept
            ah = cl._auth_header(path)
            if ah:
                hdrs["Authorization"] = ah
            chk = cl.request(method, path, {"Accept": accept} if accept else None)
            if chk.status != 200:
                raise BenchError("%s %s -> %d before wrk" % (method, path, chk.status))
            if tool == "ab" or method == "HEAD":
                res = run_ab(args, cl.abs_url(path), method, hdrs, key)
            else:
                res = run_wrk(args, cl.abs_url(path), method, hdrs, key)
            if res is None:
                return
            m[key] = res
            if res.get("error"):
                raise BenchError("wrk: %s" % res["error"])
            log("  %-18s %9.0f req/s  p50 %.3f ms  p99 %.3f ms  non2xx %d  errors %d  (%s)"
                % (key, res["rps"], res["p50_ms"] or -1, res["p99_ms"] or -1,
                   res["non_2xx"], res["socket_errors"], res.get("tool", "wrk")))
            if res["non_2xx"] or res["socket_errors"]:
                errors.append("%s: %d non-2xx, %d socket errors" % (key, res["non_2xx"], res["socket_errors"]))
        step("wrk_" + key, fn)

    if not args.skip_wrk:
        wrk_phase("manifest_get", "GET", "/v2/%s/manifests/v0" % img_repo, MANIFEST_ACCEPT)
        if not args.skip_ab_get:
            wrk_phase("manifest_get_ab", "GET", "/v2/%s/manifests/v0" % img_repo, MANIFEST_ACCEPT, tool="ab")
        wrk_phase("manifest_head", "HEAD", "/v2/%s/manifests/v0" % img_repo, MANIFEST_ACCEPT)
        wrk_phase("tags_list", "GET", "/v2/%s/tags/list" % img_repo)
        img_layer = img.get("layer", "sha256:0")
        wrk_phase("blob_head", "HEAD", "/v2/%s/blobs/%s" % (img_repo, img_layer))

    # ---- many small pushes
    small_repos = ["%s/small-%s-%02d" % (args.repo_prefix, tag, i) for i in range(args.small_repos)]

    def ph_small():
        n_img = args.small_images
        deadline = time.monotonic() + args.small_max_seconds
        lock = threading.Lock()
        nxt = [0]
        lat = []
        errs = []

        def worker():
            c = new_client()
            try:
                while time.monotonic() < deadline:
                    with lock:
                        i = nxt[0]
                        if i >= n_img:
                            return
                        nxt[0] += 1
                    repo = small_repos[i % len(small_repos)]
                    t0 = time.perf_counter()
                    try:
                        layer = b"layer %s %d " % (tag.encode(), i) + os.urandom(512)
                        ld = c.push_blob_bytes(repo, layer)
                        cfg = json.dumps({"architecture": "amd64", "os": "linux",
                                          "config": {"Env": ["I=%d" % i, "RUN=%s" % tag]},
                                          "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode()
                        cd = c.push_blob_bytes(repo, cfg)
                        man = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                          "config": {"mediaType": OCI_CONFIG, "size": len(cfg),
                                                     "digest": cd},
                                          "layers": [{"mediaType": OCI_LAYER, "size": len(layer),
                                                      "digest": ld}]}).encode()
                        c.put_manifest(repo, "t%05d" % i, man)
                    except Exception as e:
                        with lock:
                            errs.append(str(e))
                        c.close()
                        if len(errs) > 20:
                            return
                        continue
                    with lock:
                        lat.append((time.perf_counter() - t0) * 1000)
            finally:
                c.close()

        t0 = time.perf_counter()
        ths = [threading.Thread(target=worker, daemon=True) for _ in range(args.push_concurrency)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(timeout=args.small_max_seconds + args.timeout + 30)
        wall = time.perf_counter() - t0
        done = len(lat)
        m["small_push_images"] = done
        m["small_push_images_per_s"] = round(done / wall, 1)
        m["small_push_image_p50_ms"] = round(pct(lat, 0.5), 2) if lat else None
        m["small_push_image_p99_ms"] = round(pct(lat, 0.99), 2) if lat else None
        m["small_push_concurrency"] = args.push_concurrency
        log("  small pushes: %d images in %.1f s = %.1f images/s (%d workers; per image p50 %.1f ms, p99 %.1f ms)"
            % (done, wall, done / wall, args.push_concurrency,
               m["small_push_image_p50_ms"] or -1, m["small_push_image_p99_ms"] or -1))
        if errs:
            raise BenchError("%d small-push errors, first: %s" % (len(errs), errs[0]))
        if done < n_img:
            raise BenchError("small pushes stopped at %d of %d (time budget)" % (done, n_img))

    def ph_small_tags():
        lat = []
        counts = {}
        deadline = time.monotonic() + 60
        for p in range(args.tag_list_passes):
            for repo in small_repos:
                if time.monotonic() > deadline:
                    break
                t0 = time.perf_counter()
                url = "/v2/%s/tags/list" % repo
                tags = []
                for _ in range(100):  # follow Link pagination, bounded
                    r = cl.request("GET", url, expect=200)
                    tags += r.json().get("tags") or []
                    link = r.header("link")
                    mm = re.search(r"<([^>]+)>", link or "")
                    if not mm:
                        break
                    url = urljoin(r.url, mm.group(1))
                lat.append((time.perf_counter() - t0) * 1000)
                counts[repo] = len(tags)
        expect_per_repo = args.small_images // max(1, args.small_repos)
        m["small_tags_list_p50_ms"] = round(pct(lat, 0.5), 3)
        m["small_tags_list_p99_ms"] = round(pct(lat, 0.99), 3)
        m["small_tags_list_requests"] = len(lat)
        m["small_tags_per_repo"] = sorted(set(counts.values()))
        log("  tags/list of %d-tag repos: p50 %.2f ms, p99 %.2f ms over %d sequential requests"
            % (expect_per_repo, m["small_tags_list_p50_ms"], m["small_tags_list_p99_ms"], len(lat)))
        if m.get("small_push_images") == args.small_images and set(counts.values()) != {expect_per_repo}:
            raise BenchError("tags/list counts %s, expected %d each" % (sorted(set(counts.values())),
                                                                       expect_per_repo))

    if args.small_images > 0:
        step("small_pushes", ph_small)
        step("small_tags_list", ph_small_tags)
        if not args.skip_wrk:
            wrk_phase("small_tags_list_wrk", "GET", "/v2/%s/tags/list" % small_repos[0])

    cl.close()
    ph.close()
    if pid:
        hwm = proc_status(pid, "VmHWM")
        m["server_vmhwm_mib"] = round(hwm / MIB, 1) if hwm else None
        m["server_rss_end_mib"] = round((proc_status(pid, "VmRSS") or 0) / MIB, 1)
        m["server_cpu_s_round"] = round(sum(p.get("server_cpu_s", 0) for p in ph.out.values()), 2)
        m["server_peak_rss_mib_round"] = max((p.get("server_peak_rss_mib", 0) for p in ph.out.values()),
                                            default=None)
        # efficiency figures: server CPU per request / image / GB (less sensitive to other
        # load on the machine than the rates are)
        for k, v in list(m.items()):
            p = ph.out.get("wrk_" + k)
            if isinstance(v, dict) and v.get("requests") and p and "server_cpu_s" in p:
                v["server_cpu_ms_per_req"] = round(p["server_cpu_s"] * 1000 / v["requests"], 3)
        p = ph.out.get("small_pushes")
        if p and "server_cpu_s" in p and m.get("small_push_images"):
            m["server_cpu_ms_per_small_image"] = round(p["server_cpu_s"] * 1000 / m["small_push_images"], 2)
        for k, size in (("upload_mono_1g", big_bf.size * args.big_reps),
                        ("upload_chunked_1g", big_bf.size * args.big_reps),
                        ("download_1g_single", big_bf.size * args.reps)):
            p = ph.out.get(k)
            if p and "server_cpu_s" in p:
                m["server_cpu_s_per_GB_" + k] = round(p["server_cpu_s"] / (size / 1e9), 3)
    walls = sum(p["wall_s"] for p in ph.out.values())
    others = sum(p.get("other_cpu_s", 0) for p in ph.out.values())
    others_user = sum(p.get("other_user_cpu_s", 0) for p in ph.out.values())
    m["other_cpu_s_round"] = round(others, 2)
    m["other_user_cpu_s_round"] = round(others_user, 2)
    # share of the machine's CPU capacity used by other processes' user space during the
    # timed phases: the noise indicator (0 = quiet machine)
    m["other_user_cpu_share"] = round(others_user / (walls * (os.cpu_count() or 1)), 3) if walls else None
    m["steal_s_round"] = round(sum(p.get("steal_s", 0) for p in ph.out.values()), 2)
    if m.get("client_sha256_MBps_samples"):
        m["client_sha256_MBps"] = round(statistics.median(m["client_sha256_MBps_samples"]), 1)
        if m.get("upload_mono_1g_MBps"):
            m["upload_mono_1g_frac_of_client_sha256"] = round(m["upload_mono_1g_MBps"] / m["client_sha256_MBps"], 3)
    if args.sha256_limit_MBps:
        for k in ("upload_mono_1g_MBps", "upload_mono_64m_MBps", "upload_chunked_1g_MBps"):
            if m.get(k):
                m[k.replace("_MBps", "_frac_of_sha256_limit")] = round(m[k] / args.sha256_limit_MBps, 3)
    return m, ph.out, errors


# --------------------------------------------------------------------------- summary

def flatten(m):
    """Flatten wrk sub-dicts to scalar metrics: manifest_get -> manifest_get_rps, ..._p50_ms, ..."""
    out = {}
    for k, v in m.items():
        if isinstance(v, dict):
            for kk in ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_req"):
                if v.get(kk) is not None:
                    out["%s_%s" % (k, kk)] = v[kk]
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = v
    return out


def better(metric):
    if metric.endswith(("_rps", "_MBps", "_per_s")):
        return "higher"
    if re.search(r"(_ms$|_mib$|_cpu_s|per_GB|_wall_s$)", metric):
        return "lower"
    return "n/a"


def median_metrics(rounds):
    keys = []
    for r in rounds:
        for k in r:
            if k not in keys:
                keys.append(k)
    med = {}
    for k in keys:
        vals = [r[k] for r in rounds if isinstance(r.get(k), (int, float))]
        if vals:
            med[k] = round(statistics.median(vals), 3)
    return med


KEY_METRICS = [
    "upload_mono_64m_MBps", "upload_mono_1g_MBps", "upload_chunked_1g_MBps",
    "download_1g_single_MBps", "download_1g_x8_aggregate_MBps",
    "manifest_put_p50_ms", "manifest_get_rps", "manifest_get_p50_ms", "manifest_get_p99_ms",
    "manifest_head_rps", "manifest_head_p99_ms", "tags_list_rps", "tags_list_p99_ms",
    "blob_head_rps", "blob_head_p99_ms", "small_push_images_per_s", "small_push_image_p99_ms",
    "small_tags_list_p50_ms", "small_tags_list_p99_ms", "small_tags_list_wrk_rps",
    "server_vmhwm_mib", "server_cpu_s_round", "server_cpu_s_per_GB_upload_mono_1g",
    "server_cpu_s_per_GB_download_1g_single", "manifest_get_server_cpu_ms_per_req",
    "blob_head_server_cpu_ms_per_req", "server_cpu_ms_per_small_image", "other_user_cpu_share",
]


def parse_target(spec):
    label, _, rest = spec.partition("=")
    if not rest:
        raise SystemExit("--target wants LABEL=URL[,pid=N][,user=U][,password=P]")
    parts = rest.split(",")
    t = {"label": label, "url": parts[0].rstrip("/")}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k == "pid":
            # pid=A+B+C: the nodes of one server (CPU and memory summed over them).
            pids = tuple(int(x) for x in v.split("+")) if v and v != "0" else ()
            t["pid"] = (pids[0] if len(pids) == 1 else pids) or None
        elif k in ("user", "password"):
            t[k] = v
        else:
            raise SystemExit("unknown --target field %r" % k)
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="registry base URL, e.g. http://127.0.0.1:5055")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--pid", type=int, help="registry process id (CPU seconds, RSS, VmHWM)")
    ap.add_argument("--label", default=None, help="name for --url's target (default: its URL)")
    ap.add_argument("--target", action="append", default=[],
                    help="LABEL=URL[,pid=N][,user=U][,password=P]; repeat for side by side")
    ap.add_argument("--compare-json", help="saved JSON from an earlier run: its first target's "
                    "medians become the reference column for ratios")
    ap.add_argument("--rounds", type=int, default=1, help="full rounds per target (alternating)")
    ap.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "registry-bench"),
                    help="where the random upload files live (kept between runs)")
    ap.add_argument("--repo-prefix", default="bench")
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--small-mib", type=int, default=64)
    ap.add_argument("--chunk-mib", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3, help="repeats of the 64 MiB upload and 1 GiB download")
    ap.add_argument("--big-reps", type=int, default=2, help="repeats of each 1 GiB upload")
    ap.add_argument("--download-streams", type=int, default=8)
    ap.add_argument("--manifest-puts", type=int, default=50)
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--wrk-duration", type=int, default=15)
    ap.add_argument("--wrk-connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--skip-wrk", action="store_true", help="skip all wrk/ab request-rate phases")
    ap.add_argument("--ab", default="ab", help="ApacheBench binary, used for the HEAD phases")
    ap.add_argument("--skip-ab-get", action="store_true",
                    help="skip the manifest GET run with ab (kept to compare ab and wrk figures)")
    ap.add_argument("--small-images", type=int, default=2000)
    ap.add_argument("--small-repos", type=int, default=20)
    ap.add_argument("--push-concurrency", type=int, default=8)
    ap.add_argument("--small-max-seconds", type=float, default=300)
    ap.add_argument("--tag-list-passes", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=300, help="socket timeout, seconds")
    ap.add_argument("--max-round-seconds", type=float, default=1200,
                    help="phases not started within this many seconds of the round start are skipped")
    ap.add_argument("--sha256-limit-MBps", type=float, default=None,
                    help="single-core SHA-256 limit (e.g. from openssl speed) for fraction figures")
    ap.add_argument("--insecure", action="store_true", help="https without certificate checks")
    ap.add_argument("--json-out")
    args = ap.parse_args()

    targets = [parse_target(s) for s in args.target]
    if args.url:
        targets.insert(0, {"label": args.label or args.url, "url": args.url.rstrip("/"),
                           "pid": args.pid, "user": args.user, "password": args.password})
    if not targets:
        ap.error("give --url or --target")
    for t in targets:
        if t.get("user") is None and args.user is not None:
            t["user"], t["password"] = args.user, args.password
        if not _is_loopback(urlsplit(t["url"]).hostname or ""):
            ap.error("target %s is not a loopback address" % t["url"])
        pids = t.get("pid") or ()
        for p in pids if isinstance(pids, tuple) else (pids,):
            if not os.path.exists("/proc/%d" % p):
                ap.error("no process %d" % p)
    if args.rounds < 1 or args.rounds > 10:
        ap.error("--rounds must be 1..10")

    os.makedirs(args.data_dir, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run_id = time.strftime("%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
    log("registry-bench v%d run %s: %d target(s), %d round(s)" % (VERSION, run_id, len(targets), args.rounds))
    data = {"small": BlobFile(os.path.join(args.data_dir, "blob-%dm.bin" % args.small_mib), args.small_mib * MIB),
            "big": BlobFile(os.path.join(args.data_dir, "blob-%dm.bin" % args.big_mib), args.big_mib * MIB)}

    host = {"nproc": os.cpu_count(), "loadavg_start": open("/proc/loadavg").read().split()[:3],
            "kernel": os.uname().release}
    try:
        with open("/proc/cpuinfo") as f:
            ci = f.read()
        host["cpu"] = re.search(r"model name\s*:\s*(.*)", ci).group(1)
        host["sha_ni"] = " sha_ni" in ci
    except Exception:
        pass
    results = {t["label"]: {"label": t["label"], "url": t["url"], "pid": t.get("pid"),
                            "user": t.get("user"),
                            "rounds": [], "phases": [], "errors": []} for t in targets}
    t_start = time.perf_counter()
    for rnd in range(1, args.rounds + 1):
        order = targets if rnd % 2 == 1 else list(reversed(targets))
        for t in order:
            try:
                m, phases, errs = run_target(args, t, rnd, run_id, data)
            except Exception as e:
                log("  target %s round %d aborted: %s" % (t["label"], rnd, e))
                m, phases, errs = {}, {}, ["aborted: %s" % e]
            results[t["label"]]["rounds"].append(m)
            results[t["label"]]["phases"].append(phases)
            results[t["label"]]["errors"] += ["round %d: %s" % (rnd, e) for e in errs]
    host["loadavg_end"] = open("/proc/loadavg").read().split()[:3]

    out = {"tool": "registry-bench.py", "version": VERSION, "run_id": run_id, "started": started,
           "elapsed_s": round(time.perf_counter() - t_start, 1), "host": host,
           "config": {k: v for k, v in vars(args).items() if k not in ("password", "target")},
           "targets": []}
    for t in targets:
        r = results[t["label"]]
        r["median"] = median_metrics([flatten(x) for x in r["rounds"]])
        out["targets"].append(r)

    # comparison
    ref = None
    if args.compare_json:
        with open(args.compare_json) as f:
            saved = json.load(f)
        st = saved["targets"][0]
        ref = {"label": "%s (saved %s)" % (st["label"], saved.get("run_id")), "median": st["median"]}
    elif len(targets) > 1:
        ref = {"label": targets[0]["label"], "median": out["targets"][0]["median"]}
    if ref:
        others = [t for t in out["targets"] if args.compare_json or t["label"] != ref["label"]]
        comp = {"reference": ref["label"], "metrics": {}}
        for k in KEY_METRICS + [k for k in ref["median"] if k not in KEY_METRICS]:
            if k not in ref["median"]:
                continue
            row = {"reference": ref["median"][k],
                   "better": better(k)}
            for t in others:
                v = t["median"].get(k)
                row[t["label"]] = v
                if v is not None and ref["median"][k]:
                    row[t["label"] + "_ratio"] = round(v / ref["median"][k], 3)
            comp["metrics"][k] = row
        out["comparison"] = comp
        log("")
        log("== side by side (ratio = target / %s)" % ref["label"])
        for k in KEY_METRICS:
            row = comp["metrics"].get(k)
            if not row:
                continue
            cells = ["%-40s %12s" % (k, row["reference"])]
            for t in others:
                cells.append("%12s  x%s" % (row.get(t["label"]), row.get(t["label"] + "_ratio")))
            log("  " + " ".join(cells) + "   (%s is better)" % row["better"])

    log("")
    log("== medians")
    for t in out["targets"]:
        log("  %s: %s" % (t["label"], ", ".join("%s=%s" % (k, t["median"][k]) for k in KEY_METRICS
                                                 if k in t["median"])))
        for e in t["errors"]:
            log("  ERROR %s: %s" % (t["label"], e))
    txt = json.dumps(out, indent=1, sort_keys=False)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(txt + "\n")
    print(txt)
    return 1 if any(t["errors"] for t in out["targets"]) else 0


if __name__ == "__main__":
    sys.exit(main())
