"""Several `berth serve` nodes sharing one metadata database and one S3 bucket, behind
nginx round-robin with no stickiness (Debian's nginx, started here).

What this file covers:

* docker, skopeo and boto3 push and pull through the load balancer; a chunked upload's
  PATCHes land on at least two nodes (nginx's access log says which);
* an IAM Deny added through node A blocks a push through node B once B has heard of
  the change (waited for, as a condition);
* `kill -9` of a node in the middle of 20 concurrent pushes: every push completes or
  fails cleanly and succeeds on retry, every image pulls and verifies, and after GC no
  object in the bucket is without metadata;
* a 1 GiB upload through the balancer keeps each node's memory bounded;
* lifecycle and GC run on exactly one node each;
* PostgreSQL restarted under the nodes: they reconnect without a restart of their own;
* a console session works on every node (sign-in, pages and forms land on different
  nodes), and a key deleted through one node ends its sessions on all of them.

The nodes share PostgreSQL when BERTH_TEST_POSTGRES is set, else one SQLite file opened
by URL; the bucket is BERTH_TEST_S3's or a private SeaweedFS.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import fresh_s3_prefix, s3_objects
from test_jobs import wait_until
from ocihelpers import OCI_MANIFEST, Registry, describe, path_of, push_image, sha256

MiB = 1024 * 1024


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx balancing over the nodes, round-robin, bodies streamed both ways."""

    def __init__(self, directory: Path, port: int, upstreams: list[int]):
        self.dir, self.port = directory, port
        self.access_log = directory / "access.log"
        directory.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
        (directory / "nginx.conf").write_text(f"""
user root;
worker_processes 2;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$request_method $uri $status $upstream_addr';
    access_log {self.access_log} upstream;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    upstream berth {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_read_timeout 600s;
        proxy_send_timeout 600s;
        proxy_next_upstream error timeout;
        location / {{
            proxy_pass http://berth;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            pytest.fail("nginx is not installed; run the README test command (scripts/test)")
        self.proc = subprocess.Popen(
            [nginx, "-c", str(directory / "nginx.conf"), "-p", str(directory)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(directory / "stderr.log", "wb"),
            start_new_session=True,
        )
        wait_until("nginx to listen", self._listening, timeout=30)

    def _listening(self) -> bool:
        assert self.proc.poll() is None, (self.dir / "stderr.log").read_text()
        try:
            requests.get(f"http://127.0.0.1:{self.port}/v2/", timeout=2)
            return True
        except requests.ConnectionError:
            return False

    def upstreams_of(self, method: str, path_prefix: str) -> list[str]:
        out = []
        for line in self.access_log.read_text().splitlines():
            m, uri, _status, upstream = (line.split(" ", 3) + ["", "", ""])[:4]
            if m == method and uri.startswith(path_prefix):
                out.append(upstream)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Cluster:
    def __init__(self, nodes, nginx: Nginx, blobs_url: str, host: str):
        self.nodes, self.nginx, self.blobs_url, self.host = nodes, nginx, blobs_url, host
        self.url = f"http://127.0.0.1:{nginx.port}"

    @property
    def first(self):
        return self.nodes[0]

    def registry(self) -> Registry:
        return Registry(self.url, auth=self.first.registry_auth(), host=self.host)

    def ecr(self, node=None):
        import boto3
        from botocore.config import Config

        key, secret = self.first.credentials()
        return boto3.client(
            "ecr", endpoint_url=node.url if node else self.url, region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}),
        )


@pytest.fixture
def cluster(berth_factory, tmp_path, s3_bucket, registry_hosts):
    key = tmp_path / "master.key"
    lb_port = free_port()
    domain = "localhost"
    public = f"http://{domain}:{lb_port}"
    shared_meta = None if os.environ.get("BERTH_TEST_POSTGRES") else f"sqlite:{tmp_path / 'shared.db'}"
    blobs = fresh_s3_prefix(s3_bucket)
    args = ["--master-key-file", str(key), "--public-url", public, "--job-lease", "2"]
    first = berth_factory(extra_args=args, metadata_url=shared_meta, blobs_url=blobs)
    nodes = [first]
    for _ in range(2):
        n = berth_factory(extra_args=args, metadata_url=first.metadata_url, blobs_url=blobs)
        shutil.copy(first.data_dir / "credentials", n.data_dir / "credentials")
        nodes.append(n)
    nginx = Nginx(tmp_path / "nginx", lb_port, [n.port for n in nodes])
    try:
        yield Cluster(nodes, nginx, blobs, f"000000000000.dkr.ecr.us-east-1.{domain}:{lb_port}")
    finally:
        nginx.stop()


def test_clients_push_and_pull_through_the_balancer(cluster, docker_env, build_test_image, tmp_path):
    from test_clients import docker, docker_push

    ecr = cluster.ecr()
    ecr.create_repository(repositoryName="app")
    host = cluster.host
    proc = subprocess.run(
        ["docker", "login", "--username", "AWS", "--password-stdin", host],
        input=cluster.first.registry_password(), capture_output=True, text=True, env=docker_env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    ref = f"{host}/app:v1"
    local = build_test_image()
    docker(docker_env, "tag", local, ref)
    pushed, _ = docker_push(docker_env, ref)
    docker(docker_env, "rmi", ref, local)
    docker(docker_env, "pull", ref)
    assert "tini version" in docker(docker_env, "run", "--rm", "--network", "none", ref).stdout

    # skopeo copies it on, within the cluster.
    ecr.create_repository(repositoryName="copy")
    creds = f"AWS:{cluster.first.registry_password()}"
    run = subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds,
         "--dest-creds", creds, f"docker://{host}/app:v1", f"docker://{host}/copy:v1"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    # boto3 sees it through every node.
    for node in cluster.nodes:
        got = cluster.ecr(node).batch_get_image(repositoryName="copy", imageIds=[{"imageTag": "v1"}])
        assert got["images"][0]["imageId"]["imageDigest"] == pushed
    # The clients' requests were spread over all the nodes.
    assert len(set(cluster.nginx.upstreams_of("PUT", "/v2/") + cluster.nginx.upstreams_of("GET", "/v2/"))) == 3


def test_a_chunked_upload_is_served_by_several_nodes(cluster):
    cluster.ecr().create_repository(repositoryName="chunks")
    reg = cluster.registry()
    data = os.urandom(20 * MiB + 3)
    r = reg.post("/v2/chunks/blobs/uploads/")
    assert r.status_code == 202, describe(r)
    location = path_of(r.headers["Location"])
    upload_path = location.split("?")[0]
    offset = 0
    for size in (1, MiB, 5 * MiB - 1, 9 * MiB, 3 * MiB):
        piece = data[offset : offset + size]
        r = reg.patch(location, data=piece, headers={
            "Content-Range": f"{offset}-{offset + len(piece) - 1}", "Content-Type": "application/octet-stream"})
        assert r.status_code == 202, describe(r)
        offset += len(piece)
        location = path_of(r.headers["Location"])
    done = reg.put(location, params={"digest": sha256(data)}, data=data[offset:])
    assert done.status_code == 201, describe(done)
    assert reg.get(f"/v2/chunks/blobs/{sha256(data)}").content == data
    nodes = set(cluster.nginx.upstreams_of("PATCH", upload_path))
    assert len(nodes) >= 2, f"the PATCHes all went to {nodes}"


def power_user_on(iam_node, ecr_node, user: str):
    """A user with the ECR power-user policy, created through `iam_node`; returns an
    IAM client (root, on `iam_node`) and the user's ECR client on `ecr_node`."""
    import boto3
    from botocore.config import Config

    key, secret = iam_node.credentials()
    iam = boto3.client("iam", endpoint_url=iam_node.url, region_name="us-east-1", aws_access_key_id=key,
                       aws_secret_access_key=secret)
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser")
    ak = iam.create_access_key(UserName=user)["AccessKey"]
    ecr = boto3.client("ecr", endpoint_url=ecr_node.url, region_name="us-east-1", aws_access_key_id=ak["AccessKeyId"],
                       aws_secret_access_key=ak["SecretAccessKey"], config=Config(retries={"max_attempts": 1}))
    return iam, ecr


def denied(ecr, repository: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        ecr.describe_repositories(repositoryNames=[repository])
        return False
    except ClientError as e:
        return e.response["Error"]["Code"] == "AccessDeniedException"


def deny_push_policy() -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": ["ecr:InitiateLayerUpload", "ecr:DescribeRepositories"], "Resource": "*"}]})


def test_a_deny_added_on_one_node_blocks_pushes_through_another(cluster):
    from botocore.exceptions import ClientError

    a, b = cluster.nodes[0], cluster.nodes[1]
    iam, ci_b = power_user_on(a, b, "ci")
    cluster.ecr(a).create_repository(repositoryName="guarded")
    # B has the user's key and policies cached once it served a request.
    ci_b.describe_repositories(repositoryNames=["guarded"])
    ci_b.initiate_layer_upload(repositoryName="guarded")

    iam.put_user_policy(UserName="ci", PolicyName="no-push", PolicyDocument=deny_push_policy())
    wait_until("node B to hear of the new Deny", lambda: denied(ci_b, "guarded"), timeout=30)
    with pytest.raises(ClientError) as e:
        ci_b.initiate_layer_upload(repositoryName="guarded")
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_tag_moved_or_deleted_on_one_node_is_seen_by_another(cluster):
    """Node B caches what it served (on PostgreSQL its read cache stays on); a tag moved
    and then deleted through node A reaches B's answers once B has heard of it."""
    a, b = cluster.nodes[0], cluster.nodes[1]
    cluster.ecr(a).create_repository(repositoryName="moving")
    via_a = Registry(a.url, auth=cluster.first.registry_auth(), host=cluster.host)
    via_b = Registry(b.url, auth=cluster.first.registry_auth(), host=cluster.host)

    def digest_on_b():
        r = via_b.get("/v2/moving/manifests/live", headers={"Accept": OCI_MANIFEST})
        return sha256(r.content) if r.status_code == 200 else r.status_code

    first = push_image(via_a, "moving", "live").digest
    assert digest_on_b() == first  # and now in B's cache
    assert digest_on_b() == first
    second = push_image(via_a, "moving", "live").digest
    wait_until("node B to serve the moved tag", lambda: digest_on_b() == second, timeout=30)
    # Once seen, never the old answer again (no stale read re-installed in the cache).
    assert all(digest_on_b() == second for _ in range(20))

    cluster.ecr(a).batch_delete_image(repositoryName="moving", imageIds=[{"imageTag": "live"}])
    wait_until("node B to forget the deleted tag", lambda: digest_on_b() == 404, timeout=30)
    r = via_b.get(f"/v2/moving/manifests/{second}", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 404, describe(r)


def rss_peak_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def test_a_1_gib_upload_keeps_memory_bounded(cluster):
    cluster.ecr().create_repository(repositoryName="big")
    reg = cluster.registry()
    size = 1024 * MiB
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    for _ in range(size // MiB):
        digest.update(block)
    expected = "sha256:" + digest.hexdigest()

    def body():
        for _ in range(size // MiB):
            yield block

    loc = path_of(reg.post("/v2/big/blobs/uploads/").headers["Location"])
    r = reg.put(loc, params={"digest": expected}, data=body(), headers={"Content-Type": "application/octet-stream"},
                timeout=900)
    assert r.status_code == 201, describe(r)
    head = reg.head(f"/v2/big/blobs/{expected}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == size
    for node in cluster.nodes:
        peak = rss_peak_kib(node.pid)
        assert peak < 256 * 1024, f"node {node.pid} peaked at {peak} KiB for a 1 GiB upload"


def push_one(reg: Registry, repo: str, tag: str) -> str:
    m = push_image(reg, repo, tag)
    return m.digest


def test_kill_9_of_a_node_during_concurrent_pushes(cluster):
    cluster.ecr().create_repository(repositoryName="load")
    reg_lock = threading.Lock()
    results: dict[str, str] = {}
    failures: list[str] = []
    victim = cluster.nodes[1]

    def worker(i: int) -> None:
        reg = cluster.registry()
        tag = f"t{i}"
        for attempt in range(3):
            try:
                d = push_one(reg, "load", tag)
                with reg_lock:
                    results[tag] = d
                return
            except (AssertionError, requests.RequestException) as e:
                with reg_lock:
                    failures.append(f"{tag} attempt {attempt}: {str(e)[:200]}")
        with reg_lock:
            failures.append(f"{tag}: gave up")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    # Once some pushes are under way, the node dies.
    wait_until("pushes under way", lambda: len(cluster.nginx.upstreams_of("PATCH", "/v2/load/")) + len(
        cluster.nginx.upstreams_of("PUT", "/v2/load/")) >= 10, timeout=60)
    victim.kill()
    for t in threads:
        t.join(timeout=600)
    assert len(results) == 20, [f for f in failures if "gave up" in f]

    # Every image listed pulls and verifies.
    reg = cluster.registry()
    listed = cluster.ecr(cluster.nodes[0]).list_images(repositoryName="load")["imageIds"]
    assert {i["imageTag"] for i in listed if "imageTag" in i} == set(results)
    for tag, digest in results.items():
        r = reg.get(f"/v2/load/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and sha256(r.content) == digest, describe(r)
        for d in [json.loads(r.content)["config"]] + json.loads(r.content)["layers"]:
            blob = reg.get(f"/v2/load/blobs/{d['digest']}")
            assert blob.status_code == 200 and sha256(blob.content) == d["digest"]

    # After GC every object in the bucket belongs to a recorded blob.
    survivor = cluster.nodes[0]
    survivor.admin("gc", "--grace", "0")
    stored = survivor.admin("storage").stdout
    total = [l for l in stored.splitlines() if l.startswith("total")][0].split("\t")
    recorded = int(total[1].split()[0])
    objects = [o for o in s3_objects(cluster.blobs_url) if "/blobs/" in "/" + o["Key"]]
    assert len(objects) == recorded, (len(objects), recorded)


def job_runs(node, job: str) -> list[float]:
    """When `node` finished runs of `job` (its log's timestamps, in seconds)."""
    from datetime import datetime

    out = []
    for line in Path(node.stderr_path).read_text().splitlines():
        if '"job run"' in line and f'"job":"{job}"' in line:
            stamp = json.loads(line)["timestamp"]
            out.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    return out


def test_periodic_jobs_run_once_per_period_on_one_node_at_a_time(berth_factory, tmp_path, s3_bucket):
    key = tmp_path / "master.key"
    shared_meta = None if os.environ.get("BERTH_TEST_POSTGRES") else f"sqlite:{tmp_path / 'shared.db'}"
    blobs = fresh_s3_prefix(s3_bucket)
    args = ["--master-key-file", str(key), "--gc-interval", "1", "--lifecycle-interval", "1"]
    first = berth_factory(extra_args=args, metadata_url=shared_meta, blobs_url=blobs)
    nodes = [first] + [
        berth_factory(extra_args=args, metadata_url=first.metadata_url, blobs_url=blobs) for _ in range(2)
    ]
    for job in ("gc", "lifecycle"):
        wait_until(f"six {job} runs", lambda: sum(len(job_runs(n, job)) for n in nodes) >= 6, timeout=60)
        runs = sorted(t for n in nodes for t in job_runs(n, job))
        gaps = [b - a for a, b in zip(runs, runs[1:])]
        # Three nodes each running every second on their own would run about three
        # times a second; one run per period across the cluster leaves ~1 s between.
        assert min(gaps) >= 0.8, f"{job} ran {len(runs)} times with gaps {gaps}"


@pytest.fixture
def private_postgres(tmp_path):
    """A PostgreSQL cluster of this test's own, so it can be restarted."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        pytest.fail("PostgreSQL is not installed; run the README test command (scripts/test)")
    pg_bin = bins[-1]
    # Under /tmp itself: pytest's own directories are closed to the postgres user.
    d = Path(tempfile.mkdtemp(prefix="berth-pg-"))
    shutil.chown(d, "postgres", "postgres")
    port = free_port()

    def as_postgres(*argv, check=True):
        return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)], capture_output=True,
                              text=True, timeout=120, check=check)

    as_postgres(pg_bin / "initdb", "-D", d / "data", "-U", "postgres", "-A", "trust", "--no-sync")
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={d} -c fsync=off"

    def start():
        as_postgres(pg_bin / "pg_ctl", "-D", d / "data", "-l", d / "log", "-w", "-t", "60", "-o", opts, "start")

    def stop():
        as_postgres(pg_bin / "pg_ctl", "-D", d / "data", "-m", "fast", "-w", "-t", "60", "stop")

    start()
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres", start, stop
    finally:
        as_postgres(pg_bin / "pg_ctl", "-D", d / "data", "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(d, ignore_errors=True)


def test_nodes_reconnect_after_a_postgresql_restart(berth_factory, tmp_path, s3_bucket, private_postgres):
    url, start_pg, stop_pg = private_postgres
    key = tmp_path / "master.key"
    blobs = fresh_s3_prefix(s3_bucket)
    args = ["--master-key-file", str(key)]
    a = berth_factory(extra_args=args, metadata_url=url, blobs_url=blobs)
    b = berth_factory(extra_args=args, metadata_url=url, blobs_url=blobs)
    shutil.copy(a.data_dir / "credentials", b.data_dir / "credentials")
    a.ecr().create_repository(repositoryName="before")
    push_image(Registry(b.url, auth=b.registry_auth()), "before", "v1")

    stop_pg()
    # Refused, as busy (the pool found no connection in time) or failed; not hung.
    r = requests.get(f"{a.url}/v2/before/tags/list", auth=a.registry_auth(), timeout=60)
    assert r.status_code == 429 or 500 <= r.status_code < 600, describe(r)
    start_pg()

    def works(node) -> bool:
        r = requests.get(f"{node.url}/v2/before/tags/list", auth=node.registry_auth(), timeout=60)
        return r.status_code == 200

    for node in (a, b):
        wait_until("the node to reconnect", lambda: works(node), timeout=60)
    push_image(Registry(a.url, auth=a.registry_auth()), "before", "v2")
    assert set(b.ecr().list_images(repositoryName="before")["imageIds"][0].keys()) >= {"imageDigest"}

    # B listens again: a Deny added through A reaches it.
    iam, ecr_b = power_user_on(a, b, "after")
    ecr_b.describe_repositories(repositoryNames=["before"])
    iam.put_user_policy(UserName="after", PolicyName="deny", PolicyDocument=deny_push_policy())
    wait_until("node B to hear of the Deny", lambda: denied(ecr_b, "before"), timeout=30)

    # With the database down again, a push is refused (its audit record stays queued)
    # and both nodes still stop on SIGTERM, cleanly, instead of waiting for the store.
    stop_pg()
    r = requests.post(f"{a.url}/v2/before/blobs/uploads/", auth=a.registry_auth(), timeout=60)
    assert r.status_code == 429 or 500 <= r.status_code < 600, describe(r)
    for node in (a, b):
        node.stop(timeout=30)
    assert "did not take the queued audit records" in a.stderr_path.read_text()


def test_a_console_session_works_on_every_node(cluster):
    """Round-robin with no stickiness: sign-in, pages and forms land on different nodes,
    and a key deleted through one node ends the sessions it opened on all of them."""
    import boto3

    key, secret = cluster.first.credentials()
    iam = boto3.client("iam", endpoint_url=cluster.url, region_name="us-east-1",
                       aws_access_key_id=key, aws_secret_access_key=secret)
    iam.create_user(UserName="operator")
    iam.attach_user_policy(UserName="operator",
                           PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess")
    k = iam.create_access_key(UserName="operator")["AccessKey"]
    s = requests.Session()
    token = re.search(r'name="csrf" value="([^"]+)"', s.get(cluster.url + "/console/signin", timeout=10).text).group(1)
    r = s.post(cluster.url + "/console/signin", allow_redirects=False, timeout=10, data={
        "method": "keys", "access_key_id": k["AccessKeyId"], "secret_access_key": k["SecretAccessKey"],
        "csrf": token})
    assert r.status_code == 303, r.text
    pages = [s.get(cluster.url + "/console/repositories", timeout=10) for _ in cluster.nodes]
    assert all(p.status_code == 200 and "Private repositories" in p.text for p in pages)
    session_token = re.search(r'name="csrf" value="([^"]+)"', pages[0].text).group(1)
    for name in ("one", "two", "three"):
        r = s.post(cluster.url + "/console/repositories", data={"name": name, "csrf": session_token},
                   allow_redirects=False, timeout=10)
        assert r.status_code == 303, r.text
    assert sorted(x["repositoryName"] for x in cluster.ecr().describe_repositories()["repositories"]) == \
        ["one", "three", "two"]
    # Each node answered some of the console's requests.
    assert len(set(cluster.nginx.upstreams_of("GET", "/console/repositories"))) == len(cluster.nodes)
    iam.delete_access_key(UserName="operator", AccessKeyId=k["AccessKeyId"])

    def signed_out_everywhere() -> bool:
        codes = [s.get(cluster.url + "/console/repositories", allow_redirects=False, timeout=10).status_code
                 for _ in cluster.nodes]
        return codes == [303] * len(cluster.nodes)

    wait_until("the deleted key's session to end on every node", signed_out_everywhere, timeout=30)
